// The VMM process's seccomp filter (issue #14). A jailed VMM process installs it once it is set
// up (after /dev/kvm is open and the warm-up VM ran, before `ready`): from then on only the
// system calls listed here are allowed, on every thread. The list was measured, not guessed
// (docs/security.md, "How the seccomp list was measured"): every call a VMM process made after
// that point, in every memory mode, recording and snapshotting included, traced with strace
// (`FAASNAP_VMM_STRACE`).
//
// A call outside the list ends the process; the filter's SIGSYS handler (native/src/seccomp.cc)
// writes the call's number to a pipe the daemon reads, so the error names it.

import type { Readable } from 'node:stream';
import { FaasnapError } from '../common/errors.js';
import { native } from '../native/index.js';
import { SYSCALL_NUMBERS } from './syscall-numbers.js';

/** What a VMM process calls once it is ready (see the header). */
export const VMM_SYSCALLS: readonly string[] = [
  // Measured 2026-12-07 in the hardware-KVM lab (docs/security.md), most frequent first: the
  // filter compares in this order. The last two were not seen (the processes were killed): Node
  // resets its signal handlers on a natural exit, and exit_group ends every process, the
  // filter's handler included.
  'futex',
  'ioctl',
  'epoll_pwait',
  'read',
  'pread64',
  'write',
  'poll',
  'rt_sigprocmask',
  'mmap',
  'close',
  'statx',
  'openat',
  'epoll_ctl',
  'mprotect',
  'recvmsg',
  'eventfd2',
  'rseq',
  'set_robust_list',
  'pwrite64',
  'getpid',
  'munmap',
  'prctl',
  'io_uring_enter',
  'madvise',
  'brk',
  'fsync',
  'sched_yield',
  'readlink',
  'tgkill',
  'access',
  'exit',
  'rename',
  'fstat',
  'getsockname',
  'getsockopt',
  'bind',
  'listen',
  'accept4',
  'mincore',
  'unlink',
  'sched_getparam',
  'sched_getscheduler',
  'fcntl',
  'getrusage',
  'clock_nanosleep',
  'rt_sigreturn',
  'newfstatat',
  'shutdown',
  'mkdir',
  'getdents64',
  'userfaultfd',
  'sched_getaffinity',
  'fadvise64',
  'lseek',
  'rt_sigaction',
  'exit_group',
  // Added 2026-12-08: FaaSnap's recorder checks it owns the memory file (loader/recorder.ts).
  'geteuid',
];

/** Address families by the name strace prints after AF_ (linux/socket.h). */
export const ADDRESS_FAMILIES: Readonly<Record<string, number>> = { UNIX: 1, INET: 2, INET6: 10 };

/** socket(2) is not on the list: these address families only (AF_UNIX: the agent's sockets). */
export const VMM_SOCKET_DOMAINS: readonly number[] = [ADDRESS_FAMILIES.UNIX!];

/** Environment of a VMM process: where to report a violation (enforcing), or `measure`. */
export const SECCOMP_ENV = { reportFd: 'FAASNAP_SECCOMP_REPORT_FD', mode: 'FAASNAP_SECCOMP' };

export function syscallNumbers(names: readonly string[]): number[] {
  return names.map((n) => {
    const nr = SYSCALL_NUMBERS[n];
    if (nr === undefined) throw new TypeError(`unknown x86-64 system call: ${n}`);
    return nr;
  });
}

export function syscallName(nr: number): string | undefined {
  return Object.keys(SYSCALL_NUMBERS).find((n) => SYSCALL_NUMBERS[n] === nr);
}

/**
 * Installs the filter the environment asks for, if any: enforcing with a report descriptor
 * (a jailed process), or allowing everything as a marker for strace (`measure`).
 */
export function installVmmFilter(env: NodeJS.ProcessEnv = process.env): void {
  const reportFd = env[SECCOMP_ENV.reportFd];
  const measure = env[SECCOMP_ENV.mode] === 'measure';
  if (!reportFd && !measure) return;
  native.InstallSeccompFilter(
    syscallNumbers(VMM_SYSCALLS),
    [...VMM_SOCKET_DOMAINS],
    reportFd ? Number(reportFd) : -1,
    !measure,
  );
}

/**
 * Collects what a VMM process's filter reported on `stream` (the report pipe). `error()` is the
 * typed error for a process that ended, or undefined when its filter did not stop it.
 */
export class SeccompReport {
  private text = '';
  /** Resolves once every writer of the pipe is gone (at once without a pipe). */
  readonly ended: Promise<void>;

  constructor(stream: Readable | null | undefined) {
    stream?.setEncoding('latin1');
    stream?.on('data', (chunk: string) => {
      if (this.text.length < 256) this.text += chunk;
    });
    this.ended = stream
      ? new Promise((resolve) => {
          stream.once('close', resolve);
          stream.once('error', resolve);
        }).then(() => undefined)
      : Promise.resolve();
  }

  /** The system call number the filter stopped, if it reported one. */
  get syscall(): number | undefined {
    const m = /^seccomp (\d+)$/m.exec(this.text);
    return m ? Number(m[1]) : undefined;
  }

  /**
   * The typed error for a process that ended with `code`/`signal`, or undefined when its filter
   * did not stop it. A thread that blocks every signal (libuv's threads do) cannot run the
   * handler: the kernel then kills the process with SIGSYS, and only its audit log names the
   * call.
   */
  error(pid: number, code: number | null, signal: string | null): FaasnapError | undefined {
    const nr = this.syscall;
    if (nr !== undefined && code === native.SECCOMP_EXIT_CODE) {
      const name = syscallName(nr) ?? `#${nr}`;
      return new FaasnapError(
        'VMM_SECCOMP',
        `pid ${pid} called ${name} (${nr}), which VMM processes may not`,
        { syscall: name, nr },
      );
    }
    if (signal === 'SIGSYS')
      return new FaasnapError(
        'VMM_SECCOMP',
        `pid ${pid} was killed by SIGSYS: a thread that blocks signals made a call outside the list (the kernel's audit log names it)`,
      );
    return undefined;
  }
}

/**
 * The system calls made after the filter was installed (the `seccomp(SECCOMP_SET_MODE_FILTER`
 * line) in one `strace -f` log, with how often, socket(2) by family: how VMM_SYSCALLS is
 * measured (and ordered: the filter compares in list order, so the most frequent come first).
 */
export function syscallsAfterMarker(straceLog: string): Map<string, number> {
  const seen = new Map<string, number>();
  let marked = false;
  for (const line of straceLog.split('\n')) {
    const m = /^\d+\s+([a-z0-9_]+)\(([A-Z0-9_]*)/.exec(line);
    if (!m) continue;
    if (!marked) {
      marked = m[1] === 'seccomp' && line.includes('SECCOMP_SET_MODE_FILTER');
      continue;
    }
    // socket(2) is judged by its address family (VMM_SOCKET_DOMAINS).
    const call = m[1] === 'socket' ? `socket(${m[2]})` : m[1]!;
    seen.set(call, (seen.get(call) ?? 0) + 1);
  }
  return seen;
}
