// Puts vCPUs straight into 64-bit long mode, as the Linux 64-bit boot protocol and our
// micro-guests expect: a GDT, identity-mapped page tables and the matching special registers.
// Pure: writes into GuestMemory and returns register values; the VM applies them.

import type { GuestMemory } from '../guest-memory.js';
import type { Regs, Segment, Sregs } from '../kvm/structs.js';

export const GDT_ADDR = 0x500;
export const PML4_ADDR = 0x9000;
export const PDPT_ADDR = 0xa000;
export const PD_ADDR = 0xb000;
/** The identity map covers the first 4 GiB (RAM below the hole, IOAPIC and LAPIC). */
const IDENTITY_GIB = 4;

export const SELECTOR = {
  kernelCode: 0x08,
  kernelData: 0x10,
  userData: 0x18,
  userCode: 0x20,
} as const;

// Descriptor flag words (access byte | flags nibble << 12), see the SDM's segment descriptor.
const GDT_ENTRIES: readonly { selector: number; flags: number }[] = [
  { selector: 0, flags: 0 },
  { selector: SELECTOR.kernelCode, flags: 0xa09b }, // present, DPL0, code exec/read, L=1, G=1
  { selector: SELECTOR.kernelData, flags: 0xc093 }, // present, DPL0, data r/w, D/B=1, G=1
  { selector: SELECTOR.userData, flags: 0xc0f3 }, // present, DPL3, data r/w
  { selector: SELECTOR.userCode, flags: 0xa0fb }, // present, DPL3, code exec/read, L=1
];

function gdtEntry(flags: number, base: number, limit: number): bigint {
  const b = BigInt(base);
  const l = BigInt(limit);
  const f = BigInt(flags);
  return (
    ((b & 0xff000000n) << 32n) |
    ((f & 0xf0ffn) << 40n) |
    ((l & 0xf0000n) << 32n) |
    ((b & 0x00ffffffn) << 16n) |
    (l & 0xffffn)
  );
}

function segmentFromEntry(selector: number, flags: number): Segment {
  return {
    base: 0n,
    limit: 0xfffff,
    selector,
    type: flags & 0xf,
    present: (flags >> 7) & 1,
    dpl: (flags >> 5) & 3,
    db: (flags >> 14) & 1,
    s: (flags >> 4) & 1,
    l: (flags >> 13) & 1,
    g: (flags >> 15) & 1,
    avl: (flags >> 12) & 1,
    unusable: 0,
  };
}

/** Writes the GDT and the identity-mapping page tables. Done once per VM, before vCPU set-up. */
export function writeLongModeTables(mem: GuestMemory): void {
  GDT_ENTRIES.forEach((e, i) => mem.writeU64(GDT_ADDR + i * 8, gdtEntry(e.flags, 0, 0xfffff)));
  // Present | writable | user; user so micro-guests can run CPL3 payloads on the same map.
  const P_RW_US = 0x7n;
  mem.writeU64(PML4_ADDR, BigInt(PDPT_ADDR) | P_RW_US);
  for (let g = 0; g < IDENTITY_GIB; g++) {
    const pd = PD_ADDR + g * 0x1000;
    mem.writeU64(PDPT_ADDR + g * 8, BigInt(pd) | P_RW_US);
    for (let i = 0; i < 512; i++) {
      const phys = (BigInt(g) << 30n) | (BigInt(i) << 21n);
      mem.writeU64(pd + i * 8, phys | P_RW_US | 0x80n); // PS: 2 MiB page
    }
  }
}

const CR0_PE = 1n;
const CR0_MP = 1n << 1n;
const CR0_ET = 1n << 4n;
const CR0_NE = 1n << 5n;
const CR0_WP = 1n << 16n;
const CR0_PG = 1n << 31n;
const CR4_PAE = 1n << 5n;
const CR4_OSFXSR = 1n << 9n;
const CR4_OSXMMEXCPT = 1n << 10n;
const EFER_SCE = 1n;
const EFER_LME = 1n << 8n;
const EFER_LMA = 1n << 10n;
const EFER_NXE = 1n << 11n;

/** Special registers for 64-bit mode on our GDT and page tables, keeping KVM's other fields. */
export function longModeSregs(current: Sregs): Sregs {
  const code = segmentFromEntry(SELECTOR.kernelCode, GDT_ENTRIES[1]!.flags);
  const data = segmentFromEntry(SELECTOR.kernelData, GDT_ENTRIES[2]!.flags);
  return {
    ...current,
    cs: code,
    ds: data,
    es: data,
    fs: data,
    gs: data,
    ss: data,
    gdt: { base: BigInt(GDT_ADDR), limit: GDT_ENTRIES.length * 8 - 1 },
    idt: { base: 0n, limit: 0 },
    cr0: CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG,
    cr3: BigInt(PML4_ADDR),
    cr4: CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT,
    efer: EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE,
  };
}

export function entryRegs(rip: number, args: Partial<Regs> = {}): Regs {
  const r: Regs = {
    rax: 0n,
    rbx: 0n,
    rcx: 0n,
    rdx: 0n,
    rsi: 0n,
    rdi: 0n,
    rsp: 0n,
    rbp: 0n,
    r8: 0n,
    r9: 0n,
    r10: 0n,
    r11: 0n,
    r12: 0n,
    r13: 0n,
    r14: 0n,
    r15: 0n,
    rip: BigInt(rip),
    rflags: 0x2n, // bit 1 is reserved-one; interrupts off
  };
  return { ...r, ...args };
}
