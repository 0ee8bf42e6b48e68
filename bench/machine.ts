// Machine details stored with every benchmark run, so numbers are never read without context.

import { existsSync, readFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';

export interface MachineInfo {
  cpu: string;
  cores: number;
  memGiB: number;
  kernel: string;
  /** `lab`: hardware-style KVM (kvm_amd) inside the lab's emulated L1 (docs/lab.md). */
  kvm: 'pvm' | 'hardware' | 'lab' | 'absent';
  node: string;
}

export function machineInfo(): MachineInfo {
  const kvm = !existsSync('/dev/kvm')
    ? 'absent'
    : existsSync('/sys/module/kvm_pvm')
      ? 'pvm'
      : process.env.FAASNAP_LAB === '1'
        ? 'lab'
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
