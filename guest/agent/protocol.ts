// The host side of the guest agent protocol (docs/agent-protocol.md): length-prefixed JSON
// frames over a byte stream (the virtio-console channel, or a socket in tests), the message
// shapes, and an incremental decoder. Everything received is untrusted: a malformed frame is
// reported as a typed error and the decoder carries on with the next frame; it never throws and
// never buffers more than one frame.

import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { FaasnapError } from '../../common/errors.js';

/** Bytes of the big-endian length prefix. */
export const FRAME_HEADER_BYTES = 4;
/**
 * Largest payload (16 MiB − 1). Keeping the length below 2^24 makes the first byte of every
 * frame 0x00, a byte that UTF-8 JSON text never contains (control characters are escaped), so
 * a receiver that lost its place can find the next frame.
 */
export const MAX_FRAME_BYTES = 0xffffff;

const Id = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });
const Key = Type.String({ minLength: 1, maxLength: 1024 });

/** What every message has; type-specific fields are checked by the schemas below. */
export const MessageSchema = Type.Object({
  id: Id,
  type: Type.String({ minLength: 1, maxLength: 64 }),
});
export type AgentMessage = Static<typeof MessageSchema> & Record<string, unknown>;

// ---- guest → host ----

export const PongSchema = Type.Object({ id: Id, type: Type.Literal('pong') });

/** Answers `define`: the function is installed, or why not. */
export const DefinedSchema = Type.Object({
  id: Id,
  type: Type.Literal('defined'),
  error: Type.Optional(Type.String()),
});

export const ReadySchema = Type.Object({
  id: Id,
  type: Type.Literal('ready'),
  /** True when this follows a `ping` with `restore: true`. */
  restored: Type.Boolean(),
  pid: Type.Integer(),
  python: Type.String(),
  functions: Type.Array(Type.String()),
  runtimes: Type.Array(Type.String()),
});
export type ReadyMessage = Static<typeof ReadySchema>;

export const TimingsSchema = Type.Object({
  /** t1 − t_start: everything before the handler's t1 mark (imports, storage reads). */
  readMs: Type.Number({ minimum: 0 }),
  /** t2 − t1. */
  processMs: Type.Number({ minimum: 0 }),
  /** t_end − t2: everything after the handler's t2 mark (storage writes, cleanup). */
  writeMs: Type.Number({ minimum: 0 }),
});
export type InvokeTimings = Static<typeof TimingsSchema>;

export const FunctionErrorSchema = Type.Object({
  /** not_found | bad_request | exception | timeout | runtime | result_too_large | … */
  type: Type.String(),
  message: Type.String(),
  traceback: Type.Optional(Type.String()),
});
export type FunctionErrorInfo = Static<typeof FunctionErrorSchema>;

export const ResultSchema = Type.Object({
  id: Id,
  type: Type.Literal('result'),
  result: Type.Optional(Type.Unknown()),
  error: Type.Optional(FunctionErrorSchema),
  timings: TimingsSchema,
});
export type ResultMessage = Static<typeof ResultSchema>;

/**
 * Values larger than a frame travel in chunks: a get names a byte range (the answer carries
 * the value's total size), a put an offset (0 replaces the value, more writes at that offset).
 */
export const STORAGE_CHUNK_BYTES = 8 << 20;
const Offset = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });

export const StorageGetSchema = Type.Object({
  id: Id,
  type: Type.Literal('storage.get'),
  key: Key,
  offset: Type.Optional(Offset),
  length: Type.Optional(Type.Integer({ minimum: 1, maximum: STORAGE_CHUNK_BYTES })),
});
export const StoragePutSchema = Type.Object({
  id: Id,
  type: Type.Literal('storage.put'),
  key: Key,
  /** Base64. */
  value: Type.String(),
  offset: Type.Optional(Offset),
});
export type StorageGetMessage = Static<typeof StorageGetSchema>;
export type StoragePutMessage = Static<typeof StoragePutSchema>;

export const LogSchema = Type.Object({
  id: Id,
  type: Type.Literal('log'),
  level: Type.Union([
    Type.Literal('debug'),
    Type.Literal('info'),
    Type.Literal('warn'),
    Type.Literal('error'),
  ]),
  msg: Type.String(),
});
export type LogMessage = Static<typeof LogSchema>;

/** Schemas of the messages a guest may send, by type. */
export const GUEST_MESSAGE_SCHEMAS = {
  pong: PongSchema,
  defined: DefinedSchema,
  ready: ReadySchema,
  result: ResultSchema,
  'storage.get': StorageGetSchema,
  'storage.put': StoragePutSchema,
  log: LogSchema,
} as const satisfies Record<string, TSchema>;

export type GuestMessage =
  | Static<typeof PongSchema>
  | Static<typeof DefinedSchema>
  | ReadyMessage
  | ResultMessage
  | StorageGetMessage
  | StoragePutMessage
  | LogMessage;

// ---- host → guest ----

export interface PingMessage {
  id: number;
  type: 'ping';
  /** The VM was just restored from a snapshot: the agent fixes up and answers with `ready`. */
  restore?: boolean;
  /** Host wall clock (ms since the epoch) for the guest to set after a restore. */
  wallClockMs?: number;
  /** Fresh random bytes (base64) the guest mixes into its kernel RNG and reseeds from. */
  entropy?: string;
}
export interface InvokeMessage {
  id: number;
  type: 'invoke';
  function: string;
  params: unknown;
  timeoutMs: number;
}
export interface StorageResultMessage {
  id: number;
  type: 'storage.result';
  /** storage.get: base64 of the value (or of the range asked for), null: no such key. */
  value?: string | null;
  /** storage.get of a range: the value's total size in bytes. */
  size?: number;
  error?: string;
}
/** Installs a function from source (tmpfs in the guest): uploaded code, not in the image. */
export interface DefineMessage {
  id: number;
  type: 'define';
  function: string;
  language: 'python' | 'node';
  source: string;
}
export type HostMessage = PingMessage | InvokeMessage | DefineMessage | StorageResultMessage;

function protocolError(detail: string, details: Record<string, unknown> = {}): FaasnapError {
  return new FaasnapError('AGENT_PROTOCOL', detail, details);
}

/**
 * Checks a decoded message against the schema of its type; throws AGENT_PROTOCOL for an unknown
 * type or a field that does not match.
 */
export function parseGuestMessage(message: AgentMessage): GuestMessage {
  const schema = (GUEST_MESSAGE_SCHEMAS as Record<string, TSchema>)[message.type];
  if (!schema) throw protocolError(`unknown message type ${JSON.stringify(message.type)}`);
  // Checked as unknown: Value.Check's type guard would narrow `message` itself.
  const value: unknown = message;
  if (!Value.Check(schema, value)) {
    const first = Value.Errors(schema, value).First();
    throw protocolError(
      `${message.type} message: ${first ? `${first.path || '/'} ${first.message}` : 'invalid'}`,
      { type: message.type, id: message.id },
    );
  }
  return message as GuestMessage;
}

function checkMaxFrame(maxFrameBytes: number): number {
  if (!Number.isInteger(maxFrameBytes) || maxFrameBytes < 1 || maxFrameBytes > MAX_FRAME_BYTES) {
    throw new FaasnapError('AGENT_CHANNEL', `max frame size must be 1..${MAX_FRAME_BYTES}`);
  }
  return maxFrameBytes;
}

/** One frame: length prefix + JSON. Throws AGENT_FRAME_TOO_LARGE past `maxFrameBytes`. */
export function encodeFrame(message: AgentMessage, maxFrameBytes = MAX_FRAME_BYTES): Buffer {
  const max = checkMaxFrame(maxFrameBytes);
  const json = Buffer.from(JSON.stringify(message), 'utf8');
  if (json.length > max) {
    throw new FaasnapError('AGENT_FRAME_TOO_LARGE', `${json.length} bytes > ${max}`, {
      bytes: json.length,
      max,
      type: message.type,
    });
  }
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + json.length);
  frame.writeUInt32BE(json.length, 0);
  json.copy(frame, FRAME_HEADER_BYTES);
  return frame;
}

export type DecodeItem = { message: AgentMessage } | { error: FaasnapError };

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Incremental frame decoder. Frames may arrive split across chunks or several to a chunk.
 * Errors: a length of 0 or above the maximum (AGENT_FRAME_TOO_LARGE), a payload that is not
 * UTF-8 JSON of an object with a valid `id` and `type` (AGENT_PROTOCOL). After a bad length the
 * decoder drops that header and skips to the next 0x00 byte (see MAX_FRAME_BYTES), which is
 * also how it finds its place in a stream joined in the middle of a frame.
 */
export class FrameDecoder {
  readonly maxFrameBytes: number;
  /** Bytes dropped while resynchronising after a bad length. */
  skippedBytes = 0;

  // Chunks are kept as a list and joined once per frame: joining on every push would copy a
  // large frame once per chunk (quadratic in its size).
  private chunks: Buffer[] = [];
  private size = 0;
  private resyncing = false;

  constructor(opts: { maxFrameBytes?: number } = {}) {
    this.maxFrameBytes = checkMaxFrame(opts.maxFrameBytes ?? MAX_FRAME_BYTES);
  }

  /** Bytes received but not yet decoded (at most one partial frame). */
  get bufferedBytes(): number {
    return this.size;
  }

  /** Feeds received bytes; returns the messages and errors they completed, in order. */
  push(chunk: Uint8Array): DecodeItem[] {
    const out: DecodeItem[] = [];
    if (chunk.length > 0) {
      // Copy: the caller may reuse its buffer (or it may alias guest memory).
      this.chunks.push(Buffer.from(chunk));
      this.size += chunk.length;
    }
    for (;;) {
      if (this.resyncing && !this.skipToZero()) break;
      if (this.size < FRAME_HEADER_BYTES) break;
      const len = this.peek(FRAME_HEADER_BYTES).readUInt32BE(0);
      if (len === 0 || len > this.maxFrameBytes) {
        out.push({
          error:
            len === 0
              ? protocolError('empty frame')
              : new FaasnapError('AGENT_FRAME_TOO_LARGE', `${len} bytes > ${this.maxFrameBytes}`, {
                  bytes: len,
                  max: this.maxFrameBytes,
                }),
        });
        // An honest oversized frame is a header plus JSON text (no 0x00): skipping the header
        // and then to the next 0x00 lands on the next frame.
        this.discard(FRAME_HEADER_BYTES);
        this.skippedBytes += FRAME_HEADER_BYTES;
        this.resyncing = true;
        continue;
      }
      if (this.size < FRAME_HEADER_BYTES + len) break;
      this.discard(FRAME_HEADER_BYTES);
      out.push(decodePayload(this.take(len)));
    }
    return out;
  }

  /** Drops bytes up to the next 0x00; false when none is buffered yet (all dropped). */
  private skipToZero(): boolean {
    while (this.chunks.length > 0) {
      const c = this.chunks[0]!;
      const at = c.indexOf(0);
      if (at >= 0) {
        this.discard(at);
        this.skippedBytes += at;
        this.resyncing = false;
        return true;
      }
      this.discard(c.length);
      this.skippedBytes += c.length;
    }
    return false;
  }

  private peek(n: number): Buffer {
    const first = this.chunks[0]!;
    if (first.length >= n) return first.subarray(0, n);
    return Buffer.concat(this.chunks, Math.min(n, this.size)).subarray(0, n);
  }

  private take(n: number): Buffer {
    const out = this.peek(n);
    const copy = this.chunks[0]!.length >= n ? out : Buffer.from(out);
    this.discard(n);
    return copy;
  }

  private discard(n: number): void {
    let left = n;
    while (left > 0) {
      const c = this.chunks[0]!;
      if (c.length <= left) {
        this.chunks.shift();
        left -= c.length;
        this.size -= c.length;
      } else {
        this.chunks[0] = c.subarray(left);
        this.size -= left;
        left = 0;
      }
    }
  }
}

function decodePayload(payload: Buffer): DecodeItem {
  let value: unknown;
  try {
    value = JSON.parse(utf8.decode(payload));
  } catch (e) {
    return { error: protocolError(`frame is not UTF-8 JSON: ${(e as Error).message}`) };
  }
  if (!Value.Check(MessageSchema, value)) {
    return { error: protocolError('frame is not an object with an integer id and a type') };
  }
  return { message: value as AgentMessage };
}
