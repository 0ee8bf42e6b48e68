// What the daemon needs from a function runtime: how to boot a fresh VM for a function, how to
// turn invocation params into the VM's input, how to run one invocation in a (restored or
// booted) paused VM, and what the record input is. The daemon's deploy chain, invocations,
// traces and metrics are written against this interface only.

import type { AgentStorage } from '../../guest/agent/storage.js';
import type { VmmProcess } from '../../process/client.js';
import type { ErrorBodyT, FunctionConfigT, InvokeMode, RuntimeName } from '../schemas.js';

export type InvokeOutcome = { ok: true; result: unknown } | { ok: false; error: ErrorBodyT };

/** Records one named phase of an invocation as a trace span and a phase timing. */
export interface PhaseRecorder {
  phase<T>(name: string, fn: () => Promise<T>, attributes?: Record<string, unknown>): Promise<T>;
  /** A phase measured elsewhere (the guest, the VMM process), from `startPerf` (performance.now()). */
  record(name: string, startPerf: number, durationMs: number): void;
}

/** An invocation's input, checked and encoded before any VM is taken. */
export interface PreparedInput {
  /** Bytes placed into guest RAM before the VM resumes. */
  memory?: { gpa: number; data: Uint8Array };
  /** The params as the function sees them (after defaults). */
  params: Record<string, unknown>;
}

export interface RuntimeDeps {
  /** Reads an object from the object store (Redis). */
  getObject(key: string): Promise<Buffer>;
}

/** A live VM as a runtime sees it: its VMM process and where its agent channel listens. */
export interface RuntimeVm {
  id: string;
  vmm: VmmProcess;
  agentSocket: string;
}

/** What boot/run/record may use beyond the VM: the object store as the guest sees it. */
export interface RunContext {
  storage: AgentStorage;
}

export interface RecordSpec {
  kind: 'faasnap' | 'reap';
  snapshotDir: string;
  input: PreparedInput;
  timeoutMs: number;
  mincoreSize?: number;
  intervalThreshold?: number;
}

export interface FunctionRuntime {
  readonly name: RuntimeName;
  /** False until the runtime's guest exists: every deploy/boot/invoke answers RUNTIME_UNAVAILABLE. */
  readonly available: boolean;
  /** Why it is not available (what is missing), for the RUNTIME_UNAVAILABLE message. */
  readonly unavailableReason?: string;
  /** Throws REQUEST_INVALID when a registration does not fit this runtime. */
  validateConfig(fn: FunctionConfigT): void;
  supportsMode(mode: InvokeMode): boolean;
  /** The record input: used for the warm-up invocation and the working-set recordings. */
  recordParams(fn: FunctionConfigT): Record<string, unknown>;
  /** Checks and encodes params (INVALID_PARAMS); may read the object store. */
  prepareInput(
    fn: FunctionConfigT,
    params: Record<string, unknown>,
    deps: RuntimeDeps,
  ): Promise<PreparedInput>;
  /**
   * True when boot() runs the warm-up invocation itself, in the VM that is then snapshotted
   * (agent runtimes: the snapshot holds the imported handler). Otherwise the deploy chain
   * warms up in a throw-away VM.
   */
  readonly warmUpInBoot: boolean;
  /** Boots a fresh VM for `fn` and leaves it paused where the base snapshot is taken. */
  boot(vm: RuntimeVm, fn: FunctionConfigT, warmUp: PreparedInput, ctx: RunContext): Promise<void>;
  /**
   * Runs one invocation in `vm`: paused right after a restore, or still running from an earlier
   * invocation (warm). Function failures are outcomes, not throws.
   */
  run(
    vm: RuntimeVm,
    fn: FunctionConfigT,
    input: PreparedInput,
    timeoutMs: number,
    rec: PhaseRecorder,
    ctx: RunContext,
  ): Promise<InvokeOutcome>;
  /** Records a working set of a snapshot of `fn` in the fresh VMM process of `vm`. */
  record(vm: RuntimeVm, fn: FunctionConfigT, spec: RecordSpec, ctx: RunContext): Promise<void>;
}
