// An Intel MultiProcessor Specification 1.4 table: how a guest without ACPI learns its CPUs,
// its I/O APIC and how ISA interrupts reach it. Linux finds the floating pointer by scanning the
// last KiB of base memory (639 KiB), so the table goes there and the e820 map reserves it.
// Interrupt routing matches KVM's default GSI routing: ISA IRQ n is I/O APIC pin n (no IRQ0 →
// pin 2 override, because KVM's in-kernel PIT raises GSI 0, which KVM routes to pin 0).
// Pure: returns bytes for the caller to place.

import { FaasnapError } from '../../common/errors.js';

/** 639 KiB: the start of the last KiB of conventional memory, a place Linux scans. */
export const MPTABLE_ADDR = 0x9_fc00;
export const MPTABLE_MAX = 0x400;
export const LAPIC_ADDR = 0xfee0_0000;
export const IOAPIC_ADDR = 0xfec0_0000;
/** ISA IRQs listed in the table; GSIs above 15 are not ISA interrupts. */
export const ISA_IRQS = 16;

/** KVM's in-kernel LAPIC and I/O APIC report these versions. */
const LAPIC_VERSION = 0x14;
const IOAPIC_VERSION = 0x11;
const SPEC_REV = 4;

const FLOATING_SIZE = 16;
const HEADER_SIZE = 44;
const PROCESSOR_SIZE = 20;
const SMALL_ENTRY_SIZE = 8;

const ENTRY_PROCESSOR = 0;
const ENTRY_BUS = 1;
const ENTRY_IOAPIC = 2;
const ENTRY_IO_INTERRUPT = 3;
const ENTRY_LOCAL_INTERRUPT = 4;

const CPU_ENABLED = 1;
const CPU_BOOTSTRAP = 2;
const IOAPIC_ENABLED = 1;
const INT_VECTORED = 0;
const INT_NMI = 1;
const INT_EXTINT = 3;
/** Polarity and trigger "conform to the bus": edge, active high for ISA. */
const FLAGS_CONFORM = 0;
const ISA_BUS_ID = 0;
const ALL_LAPICS = 0xff;

export interface MpTableOptions {
  vcpus: number;
  /** CPUID.1:EAX and EDX for the processor entries (informational for Linux). */
  cpuSignature?: number;
  cpuFeatures?: number;
}

/** The floating pointer followed by the configuration table, for placement at `addr`. */
export function buildMpTable(opts: MpTableOptions, addr = MPTABLE_ADDR): Uint8Array {
  const { vcpus } = opts;
  if (!Number.isInteger(vcpus) || vcpus < 1 || vcpus > 254) {
    throw new FaasnapError('INVALID_VM_CONFIG', `MP table for ${vcpus} vCPUs`);
  }
  // APIC ids are the vCPU indexes (KVM's default); the I/O APIC takes the next id.
  const ioapicId = vcpus;
  const entries: Uint8Array[] = [];
  for (let i = 0; i < vcpus; i++) {
    const e = new Uint8Array(PROCESSOR_SIZE);
    const v = new DataView(e.buffer);
    v.setUint8(0, ENTRY_PROCESSOR);
    v.setUint8(1, i);
    v.setUint8(2, LAPIC_VERSION);
    v.setUint8(3, CPU_ENABLED | (i === 0 ? CPU_BOOTSTRAP : 0));
    v.setUint32(4, opts.cpuSignature ?? 0, true);
    v.setUint32(8, opts.cpuFeatures ?? 0, true);
    entries.push(e);
  }
  entries.push(Uint8Array.of(ENTRY_BUS, ISA_BUS_ID, ...Buffer.from('ISA   ', 'ascii')));
  const ioapic = new Uint8Array(SMALL_ENTRY_SIZE);
  ioapic.set([ENTRY_IOAPIC, ioapicId, IOAPIC_VERSION, IOAPIC_ENABLED]);
  new DataView(ioapic.buffer).setUint32(4, IOAPIC_ADDR, true);
  entries.push(ioapic);
  for (let irq = 0; irq < ISA_IRQS; irq++) {
    if (irq === 2) continue; // the PICs' cascade input carries no device
    entries.push(interruptEntry(ENTRY_IO_INTERRUPT, INT_VECTORED, irq, ioapicId, irq));
  }
  // Virtual-wire mode before the I/O APIC is set up: the PIC on LINT0, NMI on LINT1.
  entries.push(interruptEntry(ENTRY_LOCAL_INTERRUPT, INT_EXTINT, 0, ALL_LAPICS, 0));
  entries.push(interruptEntry(ENTRY_LOCAL_INTERRUPT, INT_NMI, 0, ALL_LAPICS, 1));

  const tableLen = HEADER_SIZE + entries.reduce((n, e) => n + e.length, 0);
  const out = new Uint8Array(FLOATING_SIZE + tableLen);
  if (out.length > MPTABLE_MAX) {
    throw new FaasnapError('INVALID_VM_CONFIG', `MP table of ${out.length} bytes is too large`);
  }
  const tableAddr = addr + FLOATING_SIZE;

  const fp = new DataView(out.buffer, 0, FLOATING_SIZE);
  out.set(Buffer.from('_MP_', 'ascii'), 0);
  fp.setUint32(4, tableAddr, true);
  fp.setUint8(8, 1); // length in 16-byte units
  fp.setUint8(9, SPEC_REV);
  // Feature byte 1 = 0: a configuration table follows (no default configuration). Feature byte
  // 2 bit 7 = 0: virtual-wire mode, no IMCR to program.
  fp.setUint8(10, checksum(out.subarray(0, FLOATING_SIZE)));

  const table = out.subarray(FLOATING_SIZE);
  const h = new DataView(table.buffer, table.byteOffset, table.byteLength);
  table.set(Buffer.from('PCMP', 'ascii'), 0);
  h.setUint16(4, tableLen, true);
  h.setUint8(6, SPEC_REV);
  table.set(Buffer.from('FAASNAP ', 'ascii'), 8); // OEM id, 8 bytes
  table.set(Buffer.from('microVM     ', 'ascii'), 16); // product id, 12 bytes
  h.setUint16(34, entries.length, true);
  h.setUint32(36, LAPIC_ADDR, true);
  let at = HEADER_SIZE;
  for (const e of entries) {
    table.set(e, at);
    at += e.length;
  }
  h.setUint8(7, checksum(table));
  return out;
}

function interruptEntry(
  type: number,
  intType: number,
  srcIrq: number,
  dest: number,
  destPin: number,
): Uint8Array {
  const e = new Uint8Array(SMALL_ENTRY_SIZE);
  const v = new DataView(e.buffer);
  v.setUint8(0, type);
  v.setUint8(1, intType);
  v.setUint16(2, FLAGS_CONFORM, true);
  v.setUint8(4, ISA_BUS_ID);
  v.setUint8(5, srcIrq);
  v.setUint8(6, dest);
  v.setUint8(7, destPin);
  return e;
}

/** The byte that makes `bytes` (with the checksum byte still zero) sum to 0 mod 256. */
function checksum(bytes: Uint8Array): number {
  let sum = 0;
  for (const x of bytes) sum = (sum + x) & 0xff;
  return (0x100 - sum) & 0xff;
}
