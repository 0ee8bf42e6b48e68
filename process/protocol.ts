// The closed, typed set of actions between a controller (CLI, daemon) and a VMM process, and
// their replies. One VM per VMM process (Firecracker's model): a crash takes down one VM only.
// Messages travel over the fork IPC channel (a Unix socketpair) with structured-clone
// serialisation; every incoming action is validated before it is dispatched.

import { Type, type Static } from '@sinclair/typebox';
import { MEMORY_MODES } from '../loader/modes.js';
import type { ErrorBody } from '../common/errors.js';

const Mode = Type.Union(MEMORY_MODES.map((m) => Type.Literal(m)));

export const ActionSchema = Type.Union([
  Type.Object({ id: Type.Integer(), type: Type.Literal('ping') }),
  Type.Object({
    id: Type.Integer(),
    type: Type.Literal('boot-micro'),
    /** Path of the flat image (the controller resolves a micro-guest's name: microBootImage). */
    image: Type.String({ minLength: 1 }),
    memMiB: Type.Integer({ minimum: 8, maximum: 65536 }),
    vcpus: Type.Integer({ minimum: 1, maximum: 8 }),
    /** The parameter blob, the guest's defaults included (the controller fills them in). */
    params: Type.Uint8Array(),
  }),
  /** Boots a Linux guest from a kernel and a root image, with the agent channel at agentSocket. */
  Type.Object({
    id: Type.Integer(),
    type: Type.Literal('boot-linux'),
    kernel: Type.String({ minLength: 1 }),
    rootfs: Type.String({ minLength: 1 }),
    /** The guest's init inside the root image (`init=` on the command line). */
    init: Type.String({ minLength: 1 }),
    memMiB: Type.Integer({ minimum: 64, maximum: 65536 }),
    vcpus: Type.Integer({ minimum: 1, maximum: 8 }),
    agentSocket: Type.String({ minLength: 1, maxLength: 107 }),
    cmdline: Type.Optional(Type.Array(Type.String())),
  }),
  Type.Object({
    id: Type.Integer(),
    type: Type.Literal('restore'),
    snapshotDir: Type.String({ minLength: 1 }),
    mode: Mode,
    agentSocket: Type.Optional(Type.String({ minLength: 1, maxLength: 107 })),
  }),
  Type.Object({ id: Type.Integer(), type: Type.Literal('start') }),
  Type.Object({ id: Type.Integer(), type: Type.Literal('pause') }),
  Type.Object({ id: Type.Integer(), type: Type.Literal('resume') }),
  Type.Object({
    id: Type.Integer(),
    type: Type.Literal('snapshot'),
    dir: Type.String({ minLength: 1 }),
  }),
  Type.Object({
    id: Type.Integer(),
    type: Type.Literal('wait'),
    timeoutMs: Type.Integer({ minimum: 1 }),
  }),
  Type.Object({ id: Type.Integer(), type: Type.Literal('console') }),
  /** Places bytes into guest RAM of a paused VM (e.g. a micro-guest's input). */
  Type.Object({
    id: Type.Integer(),
    type: Type.Literal('write-memory'),
    gpa: Type.Integer({ minimum: 0 }),
    data: Type.Uint8Array({ maxByteLength: 16 << 20 }),
  }),
  /**
   * Records a snapshot's working set (FaaSnap loading set or REAP pages) by running it once
   * with `input` placed into guest RAM; the VM lives only for the recording. With
   * `drive: 'controller'` the action returns once the VM runs; the controller makes the guest
   * run its function (through the agent channel) and then sends `record-finish`.
   */
  Type.Object({
    id: Type.Integer(),
    type: Type.Union([Type.Literal('record-faasnap'), Type.Literal('record-reap')]),
    snapshotDir: Type.String({ minLength: 1 }),
    input: Type.Optional(
      Type.Object({
        gpa: Type.Integer({ minimum: 0 }),
        data: Type.Uint8Array({ maxByteLength: 16 << 20 }),
      }),
    ),
    timeoutMs: Type.Integer({ minimum: 1 }),
    mincoreSize: Type.Optional(Type.Integer({ minimum: 1 })),
    intervalMs: Type.Optional(Type.Integer({ minimum: 1 })),
    intervalThreshold: Type.Optional(Type.Integer({ minimum: 0 })),
    agentSocket: Type.Optional(Type.String({ minLength: 1, maxLength: 107 })),
    drive: Type.Optional(
      Type.Union([Type.Literal('run-to-completion'), Type.Literal('controller')]),
    ),
  }),
  Type.Object({ id: Type.Integer(), type: Type.Literal('record-finish') }),
  /** Resource usage of the VMM process: faults, bytes read from storage, loader progress. */
  Type.Object({ id: Type.Integer(), type: Type.Literal('stats') }),
  Type.Object({ id: Type.Integer(), type: Type.Literal('stop') }),
]);
export type Action = Static<typeof ActionSchema>;
export type ActionType = Action['type'];

export interface ReplyOk {
  id: number;
  ok: true;
  value: unknown;
}
/** A FaasnapError as it crosses the IPC channel. */
export type { ErrorBody };
export interface ReplyErr {
  id: number;
  ok: false;
  error: ErrorBody;
}
export type Reply = ReplyOk | ReplyErr;

export interface VmmStats {
  majorFaults: number;
  minorFaults: number;
  /** Bytes this process caused to be read from storage (/proc/self/io read_bytes). */
  readBytes: number;
  /** FaaSnap's prefetcher; populated: bytes of guest RAM whose page tables it filled (#15). */
  prefetch?: {
    bytes: number;
    ms: number;
    cancelled: boolean;
    populated?: number;
    populateMs?: number;
  };
  /** The memory loader failed (SNAPSHOT_IO): whatever the guest answered must not count. */
  loaderError?: ErrorBody;
}

/** Unsolicited messages from the VMM process. */
export type Event =
  | { event: 'ready'; pid: number; readyMs: number }
  | { event: 'console'; chunk: Uint8Array }
  | { event: 'exit'; reason: string; error?: ErrorBody }
  /** An uncaught exception or rejection: sent just before the process exits. */
  | { event: 'crash'; error: ErrorBody };
