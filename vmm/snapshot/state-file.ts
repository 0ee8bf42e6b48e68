// The snapshot state file: everything of a snapshot except guest RAM. A small fixed header
// (little-endian) with what must be checked before anything else is trusted, a JSON body with
// the VM config and the persist-contract state, and a SHA-256 over both.
//
//   offset  size  field
//        0     8  magic "FSNPSTAT"
//        8     4  u32 format version (1)
//       12     4  u32 flags: bit 0 = memory SHA-256 present; other bits 0
//       16     8  u64 memory file size in bytes (> 0, multiple of 4096)
//       24    32  memory file SHA-256 (all zero when flag bit 0 is clear)
//       56    16  CPU template name, ASCII, NUL-padded
//       72     4  u32 body length N
//       76     4  u32 reserved (0)
//       80     N  body: UTF-8 JSON {"config": ..., "state": ...}
//     80+N    32  SHA-256 over bytes [0, 80+N)
//
// Every format version keeps the magic first, the version at offset 8 and the checksum as the
// last 32 bytes over everything before it; that lets a reader tell a genuine file of another
// version (checksum good → SNAPSHOT_VERSION) from a damaged version field (→ SNAPSHOT_CORRUPT).

import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Static, TSchema, TUnknown } from '@sinclair/typebox';
import { FaasnapError } from '../../common/errors.js';
import { isCpuTemplateName, type CpuTemplateName } from '../cpu/template.js';
import { validateState } from '../../common/state.js';
import {
  statSnapshotFile,
  writeAll,
  writeFileAtomic,
  type AtomicWriteHooks,
} from '../../common/files.js';

export const STATE_MAGIC = 'FSNPSTAT';
export const STATE_FORMAT_VERSION = 1;
export const STATE_HEADER_SIZE = 80;
export const STATE_CHECKSUM_SIZE = 32;
/** The body is config + device/vCPU state: KiBs. The cap refuses absurd files before reading. */
export const STATE_BODY_MAX = 64 << 20;

const FLAG_MEMORY_SHA256 = 1;
const TEMPLATE_FIELD = 16;
const PAGE = 4096;
const SHA256_HEX = /^[0-9a-f]{64}$/;

const OFF = {
  version: 8,
  flags: 12,
  memSize: 16,
  memSha: 24,
  template: 56,
  bodyLen: 72,
  reserved: 76,
} as const;

export interface StateFileContents<C = unknown, S = unknown> {
  cpuTemplate: CpuTemplateName;
  /** The VM configuration (plain JSON). */
  config: C;
  /** The persist-contract state (plain JSON: no bigints, fds or pointers). */
  state: S;
  memory: { size: number; sha256?: string };
}

export interface StateFile<C = unknown, S = unknown> extends StateFileContents<C, S> {
  version: number;
  /** SHA-256 (hex) of header + body: identifies this snapshot (loading sets are bound to it). */
  checksum: string;
}

export interface ReadStateOptions<C extends TSchema, S extends TSchema> {
  /** Refuse a snapshot taken with another CPU template (SNAPSHOT_TEMPLATE_MISMATCH). */
  expectTemplate?: CpuTemplateName;
  /** Validate `config` / `state` (STATE_INVALID) before returning them. */
  configSchema?: C;
  stateSchema?: S;
}

/** Serialises a state file (pure). Throws INVALID_VM_CONFIG / STATE_INVALID for bad input. */
export function encodeStateFile(contents: StateFileContents): Buffer {
  const { cpuTemplate, memory } = contents;
  if (!isCpuTemplateName(cpuTemplate)) {
    throw new FaasnapError('INVALID_VM_CONFIG', `unknown CPU template ${String(cpuTemplate)}`);
  }
  if (!Number.isSafeInteger(memory.size) || memory.size <= 0 || memory.size % PAGE !== 0) {
    throw new FaasnapError(
      'INVALID_VM_CONFIG',
      `memory size ${memory.size} is not a positive multiple of 4 KiB`,
    );
  }
  if (memory.sha256 !== undefined && !SHA256_HEX.test(memory.sha256)) {
    throw new FaasnapError('INVALID_VM_CONFIG', 'memory sha256 must be 64 lowercase hex digits');
  }
  let json: string | undefined;
  try {
    json = JSON.stringify({ config: contents.config, state: contents.state });
  } catch (e) {
    // BigInt or a cycle: the persist contract was not followed.
    throw new FaasnapError('STATE_INVALID', `state is not plain JSON (${(e as Error).message})`);
  }
  if (json === undefined) throw new FaasnapError('STATE_INVALID', 'state is not plain JSON');
  const body = Buffer.from(json, 'utf8');
  if (body.length > STATE_BODY_MAX) {
    throw new FaasnapError('STATE_INVALID', `state body of ${body.length} bytes is too large`);
  }

  const out = Buffer.alloc(STATE_HEADER_SIZE + body.length + STATE_CHECKSUM_SIZE);
  out.write(STATE_MAGIC, 0, 'latin1');
  out.writeUInt32LE(STATE_FORMAT_VERSION, OFF.version);
  out.writeUInt32LE(memory.sha256 !== undefined ? FLAG_MEMORY_SHA256 : 0, OFF.flags);
  out.writeBigUInt64LE(BigInt(memory.size), OFF.memSize);
  if (memory.sha256 !== undefined) out.write(memory.sha256, OFF.memSha, 'hex');
  out.write(cpuTemplate, OFF.template, 'latin1');
  out.writeUInt32LE(body.length, OFF.bodyLen);
  body.copy(out, STATE_HEADER_SIZE);
  const end = STATE_HEADER_SIZE + body.length;
  createHash('sha256').update(out.subarray(0, end)).digest().copy(out, end);
  return out;
}

/** Writes the state file atomically; returns its checksum (hex) and size. */
export async function writeStateFile(
  path: string,
  contents: StateFileContents,
  hooks?: AtomicWriteHooks,
): Promise<{ checksum: string; bytes: number }> {
  const bytes = encodeStateFile(contents);
  await writeFileAtomic(path, (fh) => writeAll(fh, bytes, 0), hooks);
  return {
    checksum: bytes.subarray(bytes.length - STATE_CHECKSUM_SIZE).toString('hex'),
    bytes: bytes.length,
  };
}

/** Reads and fully validates a state file; never writes to it. */
export async function readStateFile<C extends TSchema = TUnknown, S extends TSchema = TUnknown>(
  path: string,
  opts: ReadStateOptions<C, S> = {},
): Promise<StateFile<Static<C>, Static<S>>> {
  const st = await statSnapshotFile(path, 'state file');
  if (!st.isFile()) throw corrupt(path, 'not a regular file');
  if (st.size > STATE_HEADER_SIZE + STATE_BODY_MAX + STATE_CHECKSUM_SIZE) {
    throw corrupt(path, `${st.size} bytes is far larger than any state file`);
  }
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? String(e);
    throw new FaasnapError('SNAPSHOT_IO', `read ${path}: ${code}`, { path });
  }
  return decodeStateFile(bytes, opts, path);
}

/** Validates and decodes state-file bytes (pure). `label` names the file in errors. */
export function decodeStateFile<C extends TSchema = TUnknown, S extends TSchema = TUnknown>(
  bytes: Uint8Array,
  opts: ReadStateOptions<C, S> = {},
  label = 'state file',
): StateFile<Static<C>, Static<S>> {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = Buffer.from(STATE_MAGIC, 'latin1');
  const head = buf.subarray(0, magic.length);
  if (!head.equals(magic.subarray(0, head.length))) {
    throw corrupt(label, 'not a faasnap state file (bad magic)');
  }
  if (buf.length < STATE_HEADER_SIZE) {
    throw truncated(label, `${buf.length} bytes, the header alone is ${STATE_HEADER_SIZE}`);
  }

  const version = buf.readUInt32LE(OFF.version);
  if (version !== STATE_FORMAT_VERSION) {
    if (buf.length >= STATE_HEADER_SIZE + STATE_CHECKSUM_SIZE && checksumOk(buf, buf.length)) {
      throw new FaasnapError(
        'SNAPSHOT_VERSION',
        `${label} has format version ${version}, this build reads version ${STATE_FORMAT_VERSION}`,
        { version, supported: STATE_FORMAT_VERSION },
      );
    }
    throw corrupt(label, `version field reads ${version} and the checksum does not match`);
  }

  const bodyLen = buf.readUInt32LE(OFF.bodyLen);
  const expected = STATE_HEADER_SIZE + bodyLen + STATE_CHECKSUM_SIZE;
  if (buf.length !== expected) {
    // A self-consistent checksum with a wrong length field is a writer bug, not a short file.
    if (buf.length < expected && !checksumOk(buf, buf.length)) {
      throw truncated(label, `${buf.length} bytes, the header says ${expected}`);
    }
    throw corrupt(label, `${buf.length} bytes, the header says ${expected}`);
  }
  if (!checksumOk(buf, buf.length)) throw corrupt(label, 'checksum mismatch');
  const checksum = buf.subarray(buf.length - STATE_CHECKSUM_SIZE).toString('hex');

  // Past the checksum the bytes are what a writer produced; the rest catches writer bugs.
  const flags = buf.readUInt32LE(OFF.flags);
  if ((flags & ~FLAG_MEMORY_SHA256) !== 0) {
    throw corrupt(label, `unknown flag bits 0x${flags.toString(16)}`);
  }
  if (buf.readUInt32LE(OFF.reserved) !== 0) throw corrupt(label, 'reserved header field is set');
  const memSize = buf.readBigUInt64LE(OFF.memSize);
  if (memSize === 0n || memSize > BigInt(Number.MAX_SAFE_INTEGER) || memSize % BigInt(PAGE)) {
    throw corrupt(label, `memory size ${memSize} is not a positive multiple of 4 KiB`);
  }
  const shaField = buf.subarray(OFF.memSha, OFF.memSha + 32);
  const hasSha = (flags & FLAG_MEMORY_SHA256) !== 0;
  if (!hasSha && shaField.some((b) => b !== 0)) {
    throw corrupt(label, 'memory SHA-256 is set but its flag is not');
  }
  const memory: StateFile['memory'] = { size: Number(memSize) };
  if (hasSha) memory.sha256 = shaField.toString('hex');

  const cpuTemplate = decodeTemplate(
    buf.subarray(OFF.template, OFF.template + TEMPLATE_FIELD),
    label,
  );
  const body = decodeBody(buf.subarray(STATE_HEADER_SIZE, STATE_HEADER_SIZE + bodyLen), label);

  if (opts.expectTemplate !== undefined && cpuTemplate !== opts.expectTemplate) {
    throw new FaasnapError(
      'SNAPSHOT_TEMPLATE_MISMATCH',
      `${label} was taken with CPU template '${cpuTemplate}', this host uses '${opts.expectTemplate}'`,
      { snapshot: cpuTemplate, host: opts.expectTemplate },
    );
  }
  const config = opts.configSchema
    ? validateState('snapshot config', opts.configSchema, body.config)
    : body.config;
  const state = opts.stateSchema
    ? validateState('snapshot state', opts.stateSchema, body.state)
    : body.state;
  return {
    version,
    cpuTemplate,
    config: config as Static<C>,
    state: state as Static<S>,
    memory,
    checksum,
  };
}

function checksumOk(buf: Buffer, length: number): boolean {
  const end = length - STATE_CHECKSUM_SIZE;
  const digest = createHash('sha256').update(buf.subarray(0, end)).digest();
  return timingSafeEqual(digest, buf.subarray(end, length));
}

function decodeTemplate(field: Buffer, label: string): CpuTemplateName {
  const nul = field.indexOf(0);
  const end = nul < 0 ? field.length : nul;
  if (
    field.subarray(end).some((b) => b !== 0) ||
    field.subarray(0, end).some((b) => b < 0x21 || b > 0x7e)
  ) {
    throw corrupt(label, 'CPU template field is not NUL-padded printable ASCII');
  }
  const name = field.subarray(0, end).toString('latin1');
  if (!isCpuTemplateName(name)) {
    throw new FaasnapError(
      'SNAPSHOT_TEMPLATE_MISMATCH',
      `${label} names CPU template '${name}', which this build does not know`,
      { snapshot: name },
    );
  }
  return name;
}

function decodeBody(bytes: Buffer, label: string): { config: unknown; state: unknown } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    throw corrupt(label, 'body is not UTF-8 JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw corrupt(label, 'body is not a JSON object');
  }
  const keys = Object.keys(parsed).sort();
  if (keys.length !== 2 || keys[0] !== 'config' || keys[1] !== 'state') {
    throw corrupt(label, `body has keys [${keys.join(', ')}], expected [config, state]`);
  }
  return parsed as { config: unknown; state: unknown };
}

function corrupt(label: string, why: string): FaasnapError {
  return new FaasnapError('SNAPSHOT_CORRUPT', `${label}: ${why}`, { file: label });
}

function truncated(label: string, why: string): FaasnapError {
  return new FaasnapError('SNAPSHOT_TRUNCATED', `${label}: ${why}`, { file: label });
}
