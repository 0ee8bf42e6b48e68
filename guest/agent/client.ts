// The host's end of the guest agent channel: sends pings and invocations, matches replies by id,
// and serves the guest's storage requests from an AgentStorage. Works on any byte stream: the
// VM's console socket (vmm/devices/virtio/console/unix-socket-backend.ts) or, in tests, a pipe
// to an agent running on the host.

import { scaledMs } from '../../common/time-scale.js';
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import { FaasnapError, isFaasnapError, type ErrorCode } from '../../common/errors.js';
import {
  type AgentMessage,
  type FunctionErrorInfo,
  type HostMessage,
  type InvokeTimings,
  type LogMessage,
  type ReadyMessage,
  type ResultMessage,
  type StorageGetMessage,
  type StoragePutMessage,
  FrameDecoder,
  MAX_FRAME_BYTES,
  STORAGE_CHUNK_BYTES,
  encodeFrame,
  parseGuestMessage,
} from './protocol.js';
import { type AgentStorage, MemoryStorage } from './storage.js';

export interface AgentClientOptions {
  /** Serves the guest's storage.get/put; default: an empty MemoryStorage. */
  storage?: AgentStorage;
  maxFrameBytes?: number;
  /** Default time to wait for a pong (the guest may be slow: its kernel can be emulated). */
  pingTimeoutMs?: number;
  /** How long past an invocation's own timeout to wait for the agent's result. */
  resultGraceMs?: number;
}

export interface InvokeOptions {
  /** Enforced by the agent: the handler is interrupted and the result is a timeout. */
  timeoutMs: number;
  /** Overrides AgentClientOptions.resultGraceMs for this call. */
  graceMs?: number;
}

export interface InvokeResult {
  result: unknown;
  timings: InvokeTimings;
}

export interface PingOptions {
  timeoutMs?: number;
}

interface Pending {
  kind: 'ping' | 'invoke' | 'restore' | 'define';
  resolve(message: AgentMessage): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
  function?: string;
}

interface ClientEvents {
  ready: [ReadyMessage];
  log: [LogMessage];
  /** A malformed frame or message from the guest; the client carries on. */
  protocolError: [FaasnapError];
  close: [];
}

// No repeated group: V8's backtracking would overflow its stack on megabytes of base64.
const BASE64_CHARS = /^[A-Za-z0-9+/]*={0,2}$/;
const isBase64 = (s: string): boolean => s.length % 4 === 0 && BASE64_CHARS.test(s);
const FUNCTION_ERROR_CODES: Record<string, ErrorCode> = {
  not_found: 'FUNCTION_NOT_FOUND',
  timeout: 'FUNCTION_TIMEOUT',
};

/** Host randomness sent with every restore-ping (a ChaCha key's worth). */
const RESTORE_ENTROPY_BYTES = 32;

export class AgentClient extends EventEmitter<ClientEvents> {
  readonly storage: AgentStorage;
  /** The most recent `ready` the agent sent. */
  lastReady: ReadyMessage | undefined;
  /** Malformed frames/messages received so far. */
  protocolErrors = 0;

  private readonly socket: Duplex;
  private readonly decoder: FrameDecoder;
  private readonly maxFrameBytes: number;
  private readonly pingTimeoutMs: number;
  private readonly resultGraceMs: number;
  private readonly pending = new Map<number, Pending>();
  /** waitReady() calls in progress: settled by the next `ready`, or by the channel closing. */
  private readonly readyWaiters: { ready(m: ReadyMessage): void; fail(e: Error): void }[] = [];
  private nextId = 1;
  private closed = false;

  constructor(socket: Duplex, opts: AgentClientOptions = {}) {
    super();
    this.socket = socket;
    this.storage = opts.storage ?? new MemoryStorage();
    this.maxFrameBytes = opts.maxFrameBytes ?? MAX_FRAME_BYTES;
    this.decoder = new FrameDecoder({ maxFrameBytes: this.maxFrameBytes });
    this.pingTimeoutMs = opts.pingTimeoutMs ?? scaledMs(30_000);
    this.resultGraceMs = opts.resultGraceMs ?? scaledMs(30_000);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('close', () => this.onClose());
    // 'close' follows; an error event without a listener would crash the process.
    socket.on('error', () => {});
  }

  /** Connects to a Unix socket (the VM's console channel). Throws AGENT_CHANNEL. */
  static connect(path: string, opts: AgentClientOptions = {}): Promise<AgentClient> {
    return new Promise((resolve, reject) => {
      const socket = net.createConnection({ path });
      const onError = (e: Error): void => {
        reject(new FaasnapError('AGENT_CHANNEL', `connect ${path}: ${e.message}`, { path }));
      };
      socket.once('error', onError);
      socket.once('connect', () => {
        socket.off('error', onError);
        resolve(new AgentClient(socket, opts));
      });
    });
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Round trip to the agent; resolves with the round-trip time in ms. */
  async ping(opts: PingOptions = {}): Promise<number> {
    const t0 = performance.now();
    await this.request('ping', {}, opts.timeoutMs ?? this.pingTimeoutMs);
    return performance.now() - t0;
  }

  /**
   * Tells the agent that its VM was just restored (it sets the wall clock, reseeds randomness)
   * and resolves with the `ready` it answers with.
   */
  async restored(opts: PingOptions = {}): Promise<ReadyMessage> {
    const m = await this.request(
      'restore',
      {
        restore: true,
        wallClockMs: Date.now(),
        entropy: randomBytes(RESTORE_ENTROPY_BYTES).toString('base64'),
      },
      opts.timeoutMs ?? this.pingTimeoutMs,
    );
    // The first message after a restore waits for the guest to fault its pages back in, so the
    // clock it carried is late by that much. A second sync, now that delivery is quick, fixes
    // that; nobody waits for its pong, and an invocation sent next is handled after it.
    this.send({ id: this.nextId++, type: 'ping', wallClockMs: Date.now() });
    return m as unknown as ReadyMessage;
  }

  /** Resolves with the agent's `ready` (the latest one if it has already arrived). */
  waitReady(timeoutMs = this.pingTimeoutMs): Promise<ReadyMessage> {
    if (this.lastReady) return Promise.resolve(this.lastReady);
    if (this.closed) return Promise.reject(this.disconnected());
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const i = this.readyWaiters.indexOf(waiter);
        if (i >= 0) this.readyWaiters.splice(i, 1);
        reject(new FaasnapError('AGENT_TIMEOUT', `no ready within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter = {
        ready: (m: ReadyMessage): void => {
          clearTimeout(timer);
          resolve(m);
        },
        fail: (e: Error): void => {
          clearTimeout(timer);
          reject(e);
        },
      };
      this.readyWaiters.push(waiter);
    });
  }

  /**
   * Runs `fn` in the guest. Rejects with FUNCTION_NOT_FOUND, FUNCTION_TIMEOUT or FUNCTION_ERROR
   * (details: errorType, traceback, timings) when the agent reports an error, AGENT_TIMEOUT when
   * no result arrives within timeoutMs + grace, AGENT_DISCONNECTED when the channel closes.
   */
  async invoke(fn: string, params: unknown, opts: InvokeOptions): Promise<InvokeResult> {
    if (!Number.isInteger(opts.timeoutMs) || opts.timeoutMs <= 0) {
      throw new FaasnapError('AGENT_PROTOCOL', `invoke timeoutMs must be a positive integer`);
    }
    const wait = opts.timeoutMs + (opts.graceMs ?? this.resultGraceMs);
    const m = (await this.request(
      'invoke',
      { function: fn, params: params ?? {}, timeoutMs: opts.timeoutMs },
      wait,
      fn,
    )) as unknown as ResultMessage;
    if (m.error) throw functionError(fn, m.error, m.timings);
    return { result: m.result, timings: m.timings };
  }

  /**
   * Installs `fn` from source in the guest (a tmpfs file the agent imports like a bundled
   * handler; later definitions replace it). Rejects with FUNCTION_ERROR when the agent refuses.
   */
  async define(
    fn: string,
    language: 'python' | 'node',
    source: string,
    opts: PingOptions = {},
  ): Promise<void> {
    const m = await this.request(
      'define',
      { function: fn, language, source },
      opts.timeoutMs ?? this.pingTimeoutMs,
    );
    if (typeof m.error === 'string')
      throw new FaasnapError('FUNCTION_ERROR', `define ${fn}: ${m.error}`, { function: fn });
  }

  /** Closes the channel; pending calls reject with AGENT_DISCONNECTED. */
  close(): void {
    this.socket.destroy();
    this.onClose();
  }

  private request(
    kind: Pending['kind'],
    fields: Record<string, unknown>,
    timeoutMs: number,
    fn?: string,
  ): Promise<AgentMessage> {
    if (this.closed) return Promise.reject(this.disconnected());
    const id = this.nextId++;
    const type = kind === 'restore' ? 'ping' : kind;
    // Encode first: an oversized message rejects without leaving anything pending.
    let frame: Buffer;
    try {
      frame = encodeFrame({ id, type, ...fields } as AgentMessage, this.maxFrameBytes);
    } catch (e) {
      return Promise.reject(e as Error);
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(
          new FaasnapError('AGENT_TIMEOUT', `no answer to ${type} ${id} within ${timeoutMs} ms`, {
            id,
            type,
          }),
        );
      }, timeoutMs);
      this.pending.set(id, { kind, resolve, reject, timer, ...(fn ? { function: fn } : {}) });
      this.socket.write(frame);
    });
  }

  private send(message: HostMessage): void {
    if (this.closed) return;
    this.socket.write(encodeFrame(message as unknown as AgentMessage, this.maxFrameBytes));
  }

  private onData(chunk: Buffer): void {
    for (const item of this.decoder.push(chunk)) {
      if ('error' in item) this.reportProtocolError(item.error);
      else this.onMessage(item.message);
    }
  }

  private onMessage(raw: AgentMessage): void {
    let m;
    try {
      m = parseGuestMessage(raw);
    } catch (e) {
      if (!isFaasnapError(e)) throw e;
      this.reportProtocolError(e);
      return;
    }
    switch (m.type) {
      case 'pong': {
        const p = this.pending.get(m.id);
        // A restore-ping completes with the `ready` that follows its pong.
        if (p?.kind === 'ping') this.settle(m.id, m);
        return;
      }
      case 'defined': {
        if (this.pending.get(m.id)?.kind === 'define') this.settle(m.id, m);
        return;
      }
      case 'ready': {
        this.lastReady = m;
        if (this.pending.get(m.id)?.kind === 'restore') this.settle(m.id, m);
        for (const w of this.readyWaiters.splice(0)) w.ready(m);
        this.emit('ready', m);
        return;
      }
      case 'result': {
        if (this.pending.get(m.id)?.kind === 'invoke') this.settle(m.id, m);
        return;
      }
      case 'storage.get':
      case 'storage.put':
        void this.serveStorage(m);
        return;
      case 'log':
        this.emit('log', m);
        return;
    }
  }

  private settle(id: number, m: AgentMessage): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    p.resolve(m);
  }

  private async serveStorage(m: StorageGetMessage | StoragePutMessage): Promise<void> {
    const id = m.id;
    let reply: HostMessage;
    try {
      if (m.type === 'storage.get' && m.offset === undefined && m.length === undefined) {
        const v = await this.storage.get(m.key);
        reply = {
          id,
          type: 'storage.result',
          value: v === undefined ? null : v.toString('base64'),
        };
      } else if (m.type === 'storage.get') {
        const r = await this.storage.getRange(
          m.key,
          m.offset ?? 0,
          m.length ?? STORAGE_CHUNK_BYTES,
        );
        reply = r
          ? { id, type: 'storage.result', value: r.data.toString('base64'), size: r.size }
          : { id, type: 'storage.result', value: null };
      } else {
        if (!isBase64(m.value)) throw new Error('value is not base64');
        const data = Buffer.from(m.value, 'base64');
        if (m.offset === undefined) await this.storage.put(m.key, data);
        else await this.storage.putRange(m.key, m.offset, data);
        reply = { id, type: 'storage.result' };
      }
    } catch (e) {
      reply = { id, type: 'storage.result', error: (e as Error).message };
    }
    try {
      this.send(reply);
    } catch (e) {
      // A value too large for one frame: tell the guest instead of leaving it waiting.
      if (!isFaasnapError(e, 'AGENT_FRAME_TOO_LARGE')) throw e;
      this.send({ id, type: 'storage.result', error: e.message });
    }
  }

  private reportProtocolError(e: FaasnapError): void {
    this.protocolErrors++;
    this.emit('protocolError', e);
  }

  private disconnected(): FaasnapError {
    return new FaasnapError('AGENT_DISCONNECTED');
  }

  private onClose(): void {
    if (this.closed) return;
    this.closed = true;
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(id);
      p.reject(this.disconnected());
    }
    // A boot waits here for up to minutes: a VMM that dies meanwhile must end the wait now.
    for (const w of this.readyWaiters.splice(0)) w.fail(this.disconnected());
    this.emit('close');
  }
}

function functionError(fn: string, e: FunctionErrorInfo, timings: InvokeTimings): FaasnapError {
  const code = FUNCTION_ERROR_CODES[e.type] ?? 'FUNCTION_ERROR';
  return new FaasnapError(code, `${fn}: ${e.message}`, {
    function: fn,
    errorType: e.type,
    ...(e.traceback !== undefined ? { traceback: e.traceback } : {}),
    timings,
  });
}
