// The host end of a VM's virtio-console as a Unix socket: the VMM listens at a path per VM and
// one client at a time (the daemon's AgentClient, or a person with socat) exchanges bytes with
// the guest. Memory stays bounded in both directions:
//
// - client → guest: received bytes wait here until the guest posts receive buffers. Past
//   `inputHighWater` the client socket is paused, so the kernel's socket buffer fills and the
//   client's writes block: backpressure instead of an unbounded queue.
// - guest → client: the device cannot hold transmit buffers back (see device.ts), so output is
//   queued in the client socket up to `outputHighWater` and dropped (and counted) beyond, which
//   only happens when a client stops reading. Without a client, the first `outputBacklog`
//   bytes are kept for the next client (the agent's `ready` may come before anyone connects).
//
// Connections are not state: a snapshot saves the device, never a client or buffered bytes.

import * as fs from 'node:fs';
import * as net from 'node:net';
import { FaasnapError } from '../../../../common/errors.js';
import type { ConsoleBackend } from './device.js';

export interface UnixSocketConsoleOptions {
  /** Where to listen (at most 107 bytes: sockaddr_un). Must not exist, or be a dead socket. */
  path: string;
  /** Pending client → guest bytes at which the client is paused (resumed at half). 1 MiB. */
  inputHighWater?: number;
  /** Guest → host bytes kept while no client is connected. 1 MiB. */
  outputBacklog?: number;
  /** Guest → host bytes queued on a client that is not reading, before dropping. 32 MiB. */
  outputHighWater?: number;
}

// Linux sockaddr_un.sun_path is 108 bytes including the terminating NUL.
const MAX_SOCKET_PATH = 107;

function configError(detail: string, path: string): FaasnapError {
  return new FaasnapError('INVALID_VM_CONFIG', `console socket ${path}: ${detail}`, { path });
}

/** Resolves true when something accepts connections at `path`. */
function isLive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.createConnection({ path });
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}

function checkOptions(opts: UnixSocketConsoleOptions): void {
  const path = opts.path;
  for (const [name, v] of [
    ['inputHighWater', opts.inputHighWater],
    ['outputBacklog', opts.outputBacklog],
    ['outputHighWater', opts.outputHighWater],
  ] as const) {
    if (v !== undefined && (!Number.isSafeInteger(v) || v < 1)) {
      throw configError(`${name} must be a positive integer`, path);
    }
  }
  if (!path || Buffer.byteLength(path) > MAX_SOCKET_PATH) {
    throw configError(`path must be 1..${MAX_SOCKET_PATH} bytes`, path);
  }
}

export class UnixSocketConsoleBackend implements ConsoleBackend {
  readonly path: string;
  readonly stats = {
    connections: 0,
    /** Connections refused because a client was already connected. */
    rejected: 0,
    inputBytes: 0,
    outputBytes: 0,
    /** Guest output lost: no client and the backlog full, or a client not reading. */
    droppedOutputBytes: 0,
  };

  private readonly server: net.Server;
  private readonly inputHighWater: number;
  private readonly outputBacklogMax: number;
  private readonly outputHighWater: number;
  private client: net.Socket | undefined;
  private paused = false;
  private readonly input: Buffer[] = [];
  private inputSize = 0;
  private backlog: Buffer[] = [];
  private backlogSize = 0;
  private listener: (() => void) | undefined;
  private clientWaiters: (() => void)[] = [];
  private closed = false;

  private constructor(server: net.Server, path: string, opts: UnixSocketConsoleOptions) {
    this.server = server;
    this.path = path;
    this.inputHighWater = opts.inputHighWater ?? 1 << 20;
    this.outputBacklogMax = opts.outputBacklog ?? 1 << 20;
    this.outputHighWater = opts.outputHighWater ?? 32 << 20;
    server.on('connection', (s) => this.onConnection(s));
  }

  /**
   * Starts listening. Throws INVALID_VM_CONFIG for a bad, taken or unusable path; a socket
   * file that nobody accepts on (left by a VMM that died) is replaced.
   */
  static async listen(opts: UnixSocketConsoleOptions): Promise<UnixSocketConsoleBackend> {
    checkOptions(opts);
    const st = fs.lstatSync(opts.path, { throwIfNoEntry: false });
    if (st?.isSocket() && (await isLive(opts.path))) {
      throw configError('is in use by another process', opts.path);
    }
    return UnixSocketConsoleBackend.open(opts);
  }

  /**
   * Synchronous listen, for device factories: the path belongs to this VM, so an existing
   * socket file there is stale and replaced without probing it. Node binds a Unix socket
   * synchronously inside listen() (only the events are deferred), so whether the socket file
   * exists right after the call tells whether the bind worked.
   */
  static open(opts: UnixSocketConsoleOptions): UnixSocketConsoleBackend {
    checkOptions(opts);
    const path = opts.path;
    const st = fs.lstatSync(path, { throwIfNoEntry: false });
    if (st) {
      if (!st.isSocket()) throw configError('exists and is not a socket', path);
      fs.rmSync(path, { force: true });
    }
    const server = net.createServer({ pauseOnConnect: false });
    let bindError: Error | undefined;
    // Also covers errors after the bind: clients see their own errors.
    server.on('error', (e) => (bindError ??= e));
    server.listen({ path, exclusive: true });
    if (!fs.lstatSync(path, { throwIfNoEntry: false })?.isSocket()) {
      server.close();
      throw configError(bindError?.message ?? 'could not bind', path);
    }
    return new UnixSocketConsoleBackend(server, path, opts);
  }

  /** True while a client is connected. */
  get connected(): boolean {
    return this.client !== undefined;
  }

  /** Resolves when a client is connected (immediately if one is). */
  waitForClient(): Promise<void> {
    if (this.client) return Promise.resolve();
    return new Promise((resolve) => this.clientWaiters.push(resolve));
  }

  // ---- ConsoleBackend ----

  get pendingInput(): number {
    return this.inputSize;
  }

  readInto(dst: Uint8Array): number {
    let n = 0;
    while (n < dst.length && this.input.length > 0) {
      const head = this.input[0]!;
      const k = Math.min(head.length, dst.length - n);
      dst.set(head.subarray(0, k), n);
      n += k;
      if (k === head.length) this.input.shift();
      else this.input[0] = head.subarray(k);
    }
    this.inputSize -= n;
    if (this.paused && this.inputSize <= this.inputHighWater / 2) {
      this.paused = false;
      this.client?.resume();
    }
    return n;
  }

  write(data: Uint8Array): void {
    if (this.closed || data.length === 0) return;
    const c = this.client;
    if (!c) {
      const room = this.outputBacklogMax - this.backlogSize;
      const keep = Math.min(room, data.length);
      if (keep > 0) {
        this.backlog.push(Buffer.from(data.subarray(0, keep)));
        this.backlogSize += keep;
      }
      this.stats.droppedOutputBytes += data.length - keep;
      return;
    }
    if (c.writableLength >= this.outputHighWater) {
      this.stats.droppedOutputBytes += data.length;
      return;
    }
    // Copy: `data` aliases guest memory, which the guest reuses as soon as the chain is used.
    c.write(Buffer.from(data));
    this.stats.outputBytes += data.length;
  }

  setInputListener(listener: (() => void) | undefined): void {
    this.listener = listener;
  }

  /** Disconnects the client, stops listening and removes the socket file. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.client?.destroy();
    this.client = undefined;
    this.server.close();
    try {
      fs.unlinkSync(this.path);
    } catch {
      // Already gone: libuv unlinks a listening path when the server closes.
    }
    this.input.length = 0;
    this.inputSize = 0;
    this.backlog = [];
    this.backlogSize = 0;
    this.listener = undefined;
  }

  private onConnection(socket: net.Socket): void {
    if (this.closed || this.client) {
      this.stats.rejected++;
      socket.destroy();
      return;
    }
    this.client = socket;
    this.stats.connections++;
    socket.on('error', () => {});
    socket.on('close', () => {
      if (this.client !== socket) return;
      this.client = undefined;
      // Bytes the client sent before leaving are still delivered; the next client starts
      // unpaused unless they are still above the mark.
      this.paused = false;
    });
    socket.on('data', (chunk: Buffer) => this.onInput(socket, chunk));
    if (this.inputSize >= this.inputHighWater) {
      this.paused = true;
      socket.pause();
    }
    if (this.backlogSize > 0) {
      for (const b of this.backlog) socket.write(b);
      this.stats.outputBytes += this.backlogSize;
      this.backlog = [];
      this.backlogSize = 0;
    }
    for (const w of this.clientWaiters.splice(0)) w();
  }

  private onInput(socket: net.Socket, chunk: Buffer): void {
    this.input.push(chunk);
    this.inputSize += chunk.length;
    this.stats.inputBytes += chunk.length;
    if (this.inputSize >= this.inputHighWater && !this.paused) {
      this.paused = true;
      socket.pause();
    }
    this.listener?.();
  }
}
