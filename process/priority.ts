// CPU priority of VMM processes. A pool refill starts at the lowest priority so that its start-up
// only uses idle CPU, and gets the daemon's priority back when it is taken. Raising a priority
// again needs CAP_SYS_NICE or an RLIMIT_NICE that allows it; without either, refills start at
// normal priority (a daemon run as a user in the kvm group, say).

import { readFileSync, readdirSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';

export const BACKGROUND_NICE = 19;
const CAP_SYS_NICE = 23n;

/**
 * Whether a process with this `/proc/<pid>/status` and `/proc/<pid>/limits` text may set a
 * thread's nice value back down to `nice`.
 */
export function mayRaisePriorityTo(nice: number, status: string, limits: string): boolean {
  const cap = /^CapEff:\s*([0-9a-f]+)\s*$/m.exec(status);
  if (cap && (BigInt(`0x${cap[1]}`) >> CAP_SYS_NICE) & 1n) return true;
  // An RLIMIT_NICE of r allows nice values down to 20 - r (setrlimit(2)).
  const limit = /^Max nice priority\s+(\S+)/m.exec(limits)?.[1];
  if (limit === undefined) return false;
  return limit === 'unlimited' || 20 - Number(limit) <= nice;
}

let background: boolean | undefined;

/** Whether this process can start VMM processes at low priority and restore them later. */
export function canStartInBackground(): boolean {
  background ??= mayRaisePriorityTo(
    getPriority(),
    readFileSync('/proc/self/status', 'utf8'),
    readFileSync('/proc/self/limits', 'utf8'),
  );
  return background;
}

/** Sets the nice value of every thread of `pid`: setpriority(2) on Linux sets one thread. */
export function setProcessNice(pid: number, nice: number): void {
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) setPriority(Number(tid), nice);
  } catch (e) {
    // It exited in between: the first call on it reports VMM_CRASHED.
    if (!['ENOENT', 'ESRCH'].includes((e as NodeJS.ErrnoException).code ?? '')) throw e;
  }
}
