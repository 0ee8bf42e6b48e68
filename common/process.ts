// Processes: whether one exists, and the ones /proc shows, for clean-up decisions about what a
// (possibly killed) process left and for the checks that a run left nothing behind (tests, the
// soak benchmark).

import { readFileSync, readdirSync } from 'node:fs';

/** True while `pid` names a process (also one this process may not signal: EPERM). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface ProcessInfo {
  pid: number;
  ppid: number;
  /** The command line, arguments separated by NUL bytes. */
  cmdline: string;
}

export function listProcesses(): ProcessInfo[] {
  const out: ProcessInfo[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      // Field 4 of stat is the parent pid; the command name before it may hold spaces.
      const stat = readFileSync(`/proc/${d}/stat`, 'latin1');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      out.push({ pid: Number(d), ppid, cmdline: readFileSync(`/proc/${d}/cmdline`, 'utf8') });
    } catch {
      // exited while we looked
    }
  }
  return out;
}

/** Pids of this process's children. */
export function childPids(): number[] {
  return listProcesses()
    .filter((p) => p.ppid === process.pid)
    .map((p) => p.pid);
}
