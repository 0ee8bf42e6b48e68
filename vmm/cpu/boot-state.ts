// Architectural state a vCPU needs before its first instruction, beyond registers: the MSRs a
// 64-bit kernel expects initialised and the local APIC's LINT pins wired as on a PC (LINT0 =
// ExtINT from the PIC, LINT1 = NMI). Pure functions; vmm/vm.ts applies them.

import type { MsrEntry } from '../kvm/structs.js';

export const MSR = {
  IA32_TSC: 0x10,
  IA32_SYSENTER_CS: 0x174,
  IA32_SYSENTER_ESP: 0x175,
  IA32_SYSENTER_EIP: 0x176,
  IA32_MISC_ENABLE: 0x1a0,
  MTRR_DEF_TYPE: 0x2ff,
  STAR: 0xc0000081,
  LSTAR: 0xc0000082,
  CSTAR: 0xc0000083,
  SYSCALL_MASK: 0xc0000084,
  KERNEL_GS_BASE: 0xc0000102,
  // KVM's paravirtual MSRs (Documentation/virt/kvm/x86/msr.rst)
  KVM_WALL_CLOCK: 0x11,
  KVM_WALL_CLOCK_NEW: 0x4b564d00,
  KVM_SYSTEM_TIME_NEW: 0x4b564d01,
  KVM_ASYNC_PF_EN: 0x4b564d02,
  KVM_ASYNC_PF_INT: 0x4b564d06,
} as const;

const MISC_ENABLE_FAST_STRING = 1n;
const MTRR_ENABLE = 1n << 11n;
const MTRR_MEM_TYPE_WB = 6n;

/** Boot MSRs; only those KVM lists as supported (`supported`) are returned. */
export function bootMsrs(supported: ReadonlySet<number>): MsrEntry[] {
  const all: MsrEntry[] = [
    { index: MSR.IA32_SYSENTER_CS, data: 0n },
    { index: MSR.IA32_SYSENTER_ESP, data: 0n },
    { index: MSR.IA32_SYSENTER_EIP, data: 0n },
    { index: MSR.STAR, data: 0n },
    { index: MSR.CSTAR, data: 0n },
    { index: MSR.KERNEL_GS_BASE, data: 0n },
    { index: MSR.SYSCALL_MASK, data: 0n },
    { index: MSR.LSTAR, data: 0n },
    { index: MSR.IA32_TSC, data: 0n },
    { index: MSR.IA32_MISC_ENABLE, data: MISC_ENABLE_FAST_STRING },
    { index: MSR.MTRR_DEF_TYPE, data: MTRR_ENABLE | MTRR_MEM_TYPE_WB },
  ];
  return all.filter((m) => supported.has(m.index));
}

const APIC_LVT_LINT0 = 0x350;
const APIC_LVT_LINT1 = 0x360;
const APIC_MODE_NMI = 0x4;
const APIC_MODE_EXTINT = 0x7;

function setDeliveryMode(reg: number, mode: number): number {
  return (reg & ~0x700) | (mode << 8);
}

/** Rewrites LINT0/LINT1 of a kvm_lapic_state buffer in place. */
export function wireLapicLints(lapic: Buffer): void {
  lapic.writeUInt32LE(
    setDeliveryMode(lapic.readUInt32LE(APIC_LVT_LINT0), APIC_MODE_EXTINT),
    APIC_LVT_LINT0,
  );
  lapic.writeUInt32LE(
    setDeliveryMode(lapic.readUInt32LE(APIC_LVT_LINT1), APIC_MODE_NMI),
    APIC_LVT_LINT1,
  );
}
