// Measures the VMM process's seccomp list (process/seccomp.ts): reads the strace logs a run with
// `FAASNAP_VMM_STRACE=<dir>` left (one per VMM process) and prints every system call made after
// the filter's marker, with how many processes made it, how often, and whether the list has it.
//   node dist/bench/vmm-syscalls.js <dir> [--delete]

import { readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  ADDRESS_FAMILIES,
  VMM_SOCKET_DOMAINS,
  VMM_SYSCALLS,
  syscallsAfterMarker,
} from '../process/seccomp.js';

/** Per call: how many processes made it, and how many times in all. */
export function summarizeStraceLogs(
  dir: string,
  remove = false,
): Map<string, { processes: number; calls: number }> {
  const out = new Map<string, { processes: number; calls: number }>();
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.strace'))) {
    for (const [call, n] of syscallsAfterMarker(readFileSync(join(dir, f), 'latin1'))) {
      const c = out.get(call) ?? { processes: 0, calls: 0 };
      out.set(call, { processes: c.processes + 1, calls: c.calls + n });
    }
    if (remove) rmSync(join(dir, f));
  }
  return out;
}

function listed(call: string): string {
  const family = /^socket\(AF_(\w+)\)$/.exec(call)?.[1];
  if (family) {
    const domain = ADDRESS_FAMILIES[family];
    return domain !== undefined && VMM_SOCKET_DOMAINS.includes(domain) ? 'listed' : 'MISSING';
  }
  if (call === 'clone' || call === 'clone3') return 'rule (threads only)';
  return VMM_SYSCALLS.includes(call) ? 'listed' : 'MISSING';
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const dir = process.argv[2];
  if (!dir) throw new Error('usage: vmm-syscalls <dir> [--delete]');
  const summary = summarizeStraceLogs(dir, process.argv.includes('--delete'));
  // Most frequent first: the order the list should have.
  for (const [call, { processes, calls }] of [...summary].sort((a, b) => b[1].calls - a[1].calls))
    console.log(`${call}\t${processes}\t${calls}\t${listed(call)}`);
}
