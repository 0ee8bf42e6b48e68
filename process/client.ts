// Controller side of one VMM process: forks process/worker.js (in a jail when given one,
// process/jail.ts), sends typed actions and matches replies by id. A crash of the process fails
// every pending call with VMM_CRASHED and is reported once through onExit.

import { scaledMs } from '../common/time-scale.js';
import { fork, type ChildProcess, type ForkOptions } from 'node:child_process';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { getPriority, setPriority } from 'node:os';
import { fileURLToPath } from 'node:url';
import { FaasnapError, errorFromBody } from '../common/errors.js';
import { BACKGROUND_NICE, setProcessNice } from './priority.js';
import type { VmmCgroup } from './cgroup.js';
import { jailedPid, killJailed, spawnJailed, type JailSpec } from './jail.js';
import type { Action, ErrorBody, Event, Reply } from './protocol.js';
import { SECCOMP_ENV, SeccompReport } from './seccomp.js';

type ActionBody = Action extends infer A
  ? A extends { id: number }
    ? Omit<A, 'id'>
    : never
  : never;

const WORKER = fileURLToPath(new URL('./worker.js', import.meta.url));
const START_TIMEOUT_MS = scaledMs(10_000);
/** A background start-up only gets idle CPU, so a busy machine may starve it for a while. */
const BACKGROUND_START_TIMEOUT_MS = scaledMs(60_000);

const CONSOLE_TAIL_BYTES = 4096;

let straced = 0;
/**
 * `FAASNAP_VMM_STRACE=<dir>`: unjailed VMM processes run under `strace -f`, one log each in
 * <dir>, with a non-enforcing filter as the marker from which their calls count: how the
 * seccomp list (seccomp.ts) is measured. Not for production: strace slows every call.
 */
function straceOptions(): Pick<ForkOptions, 'execPath' | 'execArgv' | 'env'> {
  const dir = process.env.FAASNAP_VMM_STRACE;
  if (!dir) return {};
  const log = join(dir, `vmm-${process.pid}-${++straced}.strace`);
  return {
    execPath: '/usr/bin/strace',
    execArgv: ['-f', '-qq', '-o', log, process.execPath, ...process.execArgv],
    env: { ...process.env, [SECCOMP_ENV.mode]: 'measure' },
  };
}

export class VmmProcess {
  /** The VMM process's own (host) PID: jailed, the child of `unshare`. */
  readonly pid: number;
  /** Jailed: the uid (= gid) the process runs as; files it must write are lent to it. */
  readonly jailUid: number | undefined;
  /** Console output of the guest, as it arrives. */
  onConsole: ((chunk: Uint8Array) => void) | undefined;
  /** The VM inside stopped (guest exit, error, or stop). */
  onVmExit: ((e: { reason: string; error?: ErrorBody }) => void) | undefined;
  /** The newest guest console output, for failure reports (panics, RCU stalls, oopses). */
  private consoleTailChunks: Buffer[] = [];
  private consoleTailBytes = 0;
  private nextId = 1;
  private readonly pending = new Map<
    number,
    { resolve(v: unknown): void; reject(e: unknown): void }
  >();
  private exited = false;
  private background = false;
  private readonly cgroup: VmmCgroup | undefined;
  /** Why the process ended, for calls made afterwards. */
  private exitError: FaasnapError | undefined;
  /** What the process reported before it died of an uncaught error. */
  private crashReport: ErrorBody | undefined;

  private constructor(
    private readonly child: ChildProcess,
    jail: JailSpec | undefined,
    /** Started through another program (the jail's `unshare`, or strace): `pid` is its child. */
    private readonly wrapped: boolean,
  ) {
    this.jailUid = jail?.uid;
    this.pid = (wrapped ? jailedPid(child.pid!) : undefined) ?? child.pid!;
    this.cgroup = jail?.cgroup;
    child.on('message', (m: Reply | Event) => this.onMessage(m));
    // Jailed, the seccomp filter's report comes on descriptor 6 (process/jail.ts).
    const seccomp = jail
      ? new SeccompReport((child.stdio as unknown[])[6] as Readable | undefined)
      : undefined;
    child.on('exit', (code, signal) => {
      this.exited = true;
      // Read before the cgroup goes.
      const oomKilled = (this.cgroup?.oomKills() ?? 0) > 0;
      void this.cgroup?.remove();
      // The report may still be in the pipe when the exit is seen.
      if (seccomp)
        void seccomp.ended.then(() => this.failPending(code, signal, oomKilled, seccomp));
      else this.failPending(code, signal, oomKilled, undefined);
    });
  }

  private failPending(
    code: number | null,
    signal: NodeJS.Signals | null,
    oomKilled: boolean,
    seccomp: SeccompReport | undefined,
  ): void {
    const report = this.crashReport;
    const err =
      seccomp?.error(this.pid, code, signal) ??
      new FaasnapError(
        oomKilled ? 'VMM_MEMORY_LIMIT' : 'VMM_CRASHED',
        `pid ${this.pid} exited (code ${code}, signal ${signal})${oomKilled ? ': killed by the kernel at its cgroup memory limit' : ''}${report ? `: ${report.message}` : ''}`,
        report ? { ...report.details, crash: report.message } : {},
      );
    this.exitError = err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }

  /**
   * Forks a VMM process and waits until it has opened /dev/kvm and is ready for an action.
   * A `background` process starts at the lowest CPU priority (its start-up, ~0.4 s of CPU here,
   * then only uses idle CPU); `foreground()` restores it. See priority.ts.
   */
  static spawn(
    opts: { background?: boolean; signal?: AbortSignal; jail?: JailSpec } = {},
  ): Promise<VmmProcess> {
    return new Promise((resolve, reject) => {
      if (opts.signal?.aborted) {
        reject(new FaasnapError('VMM_START_FAILED', 'start-up cancelled'));
        return;
      }
      const { jail } = opts;
      const strace = jail ? {} : straceOptions();
      const wrapped = jail !== undefined || strace.execPath !== undefined;
      const child = jail
        ? spawnJailed(jail, [process.execPath, ...process.execArgv, WORKER])
        : fork(WORKER, [], {
            serialization: 'advanced',
            stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
            ...strace,
          });
      // Before it is ready, a process that dies takes its cgroup with it (after, VmmProcess does).
      const kill = (): void => {
        if (wrapped) killJailed(child.pid!);
        else child.kill('SIGKILL');
        child.once('exit', () => void jail?.cgroup?.remove());
      };
      // A cancelled start-up (the pool closing) kills the child at once instead of leaving it to
      // finish starting, or to its timeout, with the caller gone.
      const onAbort = (): void => {
        clearTimeout(timer);
        child.off('exit', onEarlyExit);
        child.once('exit', () =>
          reject(new FaasnapError('VMM_START_FAILED', 'start-up cancelled')),
        );
        kill();
      };
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      // At once, so that start-up itself runs in the background; threads Node started before
      // this call are lowered when the process is ready.
      if (opts.background && child.pid) setPriority(child.pid, BACKGROUND_NICE);
      const timeoutMs = opts.background ? BACKGROUND_START_TIMEOUT_MS : START_TIMEOUT_MS;
      const timer = setTimeout(() => {
        opts.signal?.removeEventListener('abort', onAbort);
        kill();
        reject(new FaasnapError('VMM_START_FAILED', `no ready message within ${timeoutMs} ms`));
      }, timeoutMs);
      const onEarlyExit = (code: number | null): void => {
        void jail?.cgroup?.remove();
        clearTimeout(timer);
        opts.signal?.removeEventListener('abort', onAbort);
        reject(
          new FaasnapError('VMM_START_FAILED', `exited with code ${code} before it was ready`),
        );
      };
      child.once('exit', onEarlyExit);
      child.once('message', (m: Event) => {
        clearTimeout(timer);
        child.off('exit', onEarlyExit);
        opts.signal?.removeEventListener('abort', onAbort);
        if (m.event !== 'ready') {
          kill();
          reject(new FaasnapError('VMM_START_FAILED', 'unexpected first message'));
          return;
        }
        const p = new VmmProcess(child, jail, wrapped);
        if (opts.background) {
          p.background = true;
          setProcessNice(p.pid, BACKGROUND_NICE);
        }
        resolve(p);
      });
    });
  }

  get alive(): boolean {
    return !this.exited;
  }

  /** Limits the memory of a jailed process with a cgroup (else nothing to do). */
  limitMemory(bytes: number): void {
    this.cgroup?.limitMemory(bytes);
  }

  /** Gives every thread of a background process the daemon's own priority again. */
  foreground(): void {
    if (!this.background) return;
    setProcessNice(this.pid, getPriority());
    this.background = false;
  }

  call<T = unknown>(action: ActionBody): Promise<T> {
    if (this.exited)
      return Promise.reject(
        this.exitError ?? new FaasnapError('VMM_CRASHED', `pid ${this.pid} is gone`),
      );
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.child.send({ ...action, id });
    });
  }

  /** Ends the process (the VM inside stops with it). Resolves when it has exited. */
  kill(): Promise<void> {
    if (this.exited) return Promise.resolve();
    return new Promise((resolve) => {
      this.child.once('exit', () => resolve());
      // A wrapper killed alone would leave its child running (strace detaches it).
      if (this.wrapped) killJailed(this.child.pid!);
      else this.child.kill('SIGKILL');
    });
  }

  /** The last CONSOLE_TAIL_BYTES or so of what the guest printed on its console. */
  consoleTail(): string {
    return Buffer.concat(this.consoleTailChunks).toString('utf8');
  }

  private keepConsoleTail(chunk: Uint8Array): void {
    this.consoleTailChunks.push(Buffer.from(chunk));
    this.consoleTailBytes += chunk.length;
    while (this.consoleTailBytes - this.consoleTailChunks[0]!.length >= CONSOLE_TAIL_BYTES)
      this.consoleTailBytes -= this.consoleTailChunks.shift()!.length;
  }

  private onMessage(m: Reply | Event): void {
    if ('event' in m) {
      if (m.event === 'console') {
        this.keepConsoleTail(m.chunk);
        this.onConsole?.(m.chunk);
      } else if (m.event === 'exit') this.onVmExit?.(m);
      else if (m.event === 'crash') this.crashReport = m.error;
      return;
    }
    const p = this.pending.get(m.id);
    if (!p) return;
    this.pending.delete(m.id);
    if (m.ok) p.resolve(m.value);
    // The process is alive (it answered): an unknown code is an internal error, not a crash.
    else p.reject(errorFromBody(m.error, 'VMM_INTERNAL'));
  }
}
