// Machine details stored with every benchmark run, so numbers are never read without context.

import { existsSync, readFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';

export interface MachineInfo {
  cpu: string;
  cores: number;
  memGiB: number;
  kernel: string;
  kvm: 'pvm' | 'hardware' | 'absent';
  node: string;
}

export function machineInfo(): MachineInfo {
  const kvm = !existsSync('/dev/kvm')
    ? 'absent'
    : existsSync('/sys/module/kvm_pvm')
      ? 'pvm'
      : 'hardware';
  let cpu = cpus()[0]?.model ?? 'unknown';
  try {
    cpu = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? cpu;
  } catch {
    // keep os.cpus()'s answer
  }
  return {
    cpu,
    cores: cpus().length,
    memGiB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    kvm,
    node: process.version,
  };
}
