// Kernel struct layouts used from TypeScript (x86-64, <linux/kvm.h>), and encoders/decoders for
// the ones the VMM builds field by field. The numbers are constants so the hot path never asks
// the addon; native/src/layouts.cc reports the compiled-in values and a test compares them.

import { FaasnapError } from '../../common/errors.js';
import type { CpuidEntry } from '../cpu/cpuid.js';

export const LAYOUTS = {
  kvm_run: {
    size: 2352,
    fields: {
      request_interrupt_window: 0,
      immediate_exit: 1,
      exit_reason: 8,
      ready_for_interrupt_injection: 12,
      if_flag: 13,
      cr8: 16,
      apic_base: 24,
      'io.direction': 32,
      'io.size': 33,
      'io.port': 34,
      'io.count': 36,
      'io.data_offset': 40,
      'mmio.phys_addr': 32,
      'mmio.data': 40,
      'mmio.len': 48,
      'mmio.is_write': 52,
      'fail_entry.hardware_entry_failure_reason': 32,
      'fail_entry.cpu': 40,
      'internal.suberror': 32,
      'internal.ndata': 36,
      'internal.data': 40,
      'system_event.type': 32,
      'system_event.ndata': 36,
      'system_event.data': 40,
      'ex.exception': 32,
      'ex.error_code': 36,
    },
  },
  kvm_regs: {
    size: 144,
    fields: {
      rax: 0,
      rbx: 8,
      rcx: 16,
      rdx: 24,
      rsi: 32,
      rdi: 40,
      rsp: 48,
      rbp: 56,
      r8: 64,
      r9: 72,
      r10: 80,
      r11: 88,
      r12: 96,
      r13: 104,
      r14: 112,
      r15: 120,
      rip: 128,
      rflags: 136,
    },
  },
  kvm_segment: {
    size: 24,
    fields: {
      base: 0,
      limit: 8,
      selector: 12,
      type: 14,
      present: 15,
      dpl: 16,
      db: 17,
      s: 18,
      l: 19,
      g: 20,
      avl: 21,
      unusable: 22,
    },
  },
  kvm_dtable: {
    size: 16,
    fields: { base: 0, limit: 8 },
  },
  kvm_sregs: {
    size: 312,
    fields: {
      cs: 0,
      ds: 24,
      es: 48,
      fs: 72,
      gs: 96,
      ss: 120,
      tr: 144,
      ldt: 168,
      gdt: 192,
      idt: 208,
      cr0: 224,
      cr2: 232,
      cr3: 240,
      cr4: 248,
      cr8: 256,
      efer: 264,
      apic_base: 272,
      interrupt_bitmap: 280,
    },
  },
  kvm_fpu: {
    size: 416,
    fields: {
      fpr: 0,
      fcw: 128,
      fsw: 130,
      ftwx: 132,
      last_opcode: 134,
      last_ip: 136,
      last_dp: 144,
      xmm: 152,
      mxcsr: 408,
    },
  },
  kvm_cpuid2: {
    size: 8,
    fields: { nent: 0, entries: 8 },
  },
  kvm_cpuid_entry2: {
    size: 40,
    fields: { function: 0, index: 4, flags: 8, eax: 12, ebx: 16, ecx: 20, edx: 24 },
  },
  kvm_msrs: {
    size: 8,
    fields: { nmsrs: 0, entries: 8 },
  },
  kvm_msr_entry: {
    size: 16,
    fields: { index: 0, data: 8 },
  },
  kvm_msr_list: {
    size: 4,
    fields: { nmsrs: 0, indices: 4 },
  },
  kvm_mp_state: {
    size: 4,
    fields: { mp_state: 0 },
  },
  kvm_lapic_state: {
    size: 1024,
    fields: { regs: 0 },
  },
  kvm_vcpu_events: {
    size: 64,
    fields: { exception: 0, interrupt: 8, nmi: 12, sipi_vector: 16, flags: 20 },
  },
  kvm_debugregs: {
    size: 128,
    fields: { db: 0, dr6: 32, dr7: 40, flags: 48 },
  },
  kvm_xsave: {
    size: 4096,
    fields: { region: 0 },
  },
  kvm_xcrs: {
    size: 392,
    fields: { nr_xcrs: 0, flags: 4, xcrs: 8 },
  },
  kvm_irqchip: {
    size: 520,
    fields: { chip_id: 0, chip: 8 },
  },
  kvm_pit_state2: {
    size: 112,
    fields: { channels: 0, flags: 72 },
  },
  kvm_clock_data: {
    size: 48,
    fields: { clock: 0, flags: 8, realtime: 16, host_tsc: 24 },
  },
} as const;

const RUN = LAYOUTS.kvm_run.fields;
/** Offsets into the kvm_run page read on every exit. */
export const KVM_RUN = {
  immediateExit: RUN.immediate_exit,
  exitReason: RUN.exit_reason,
  ioDirection: RUN['io.direction'],
  ioSize: RUN['io.size'],
  ioPort: RUN['io.port'],
  ioCount: RUN['io.count'],
  ioDataOffset: RUN['io.data_offset'],
  mmioPhysAddr: RUN['mmio.phys_addr'],
  mmioData: RUN['mmio.data'],
  mmioLen: RUN['mmio.len'],
  mmioIsWrite: RUN['mmio.is_write'],
  failEntryReason: RUN['fail_entry.hardware_entry_failure_reason'],
  internalSuberror: RUN['internal.suberror'],
  internalNdata: RUN['internal.ndata'],
  internalData: RUN['internal.data'],
  systemEventType: RUN['system_event.type'],
} as const;

export const REG_NAMES = [
  'rax',
  'rbx',
  'rcx',
  'rdx',
  'rsi',
  'rdi',
  'rsp',
  'rbp',
  'r8',
  'r9',
  'r10',
  'r11',
  'r12',
  'r13',
  'r14',
  'r15',
  'rip',
  'rflags',
] as const;
export type Regs = Record<(typeof REG_NAMES)[number], bigint>;

export function encodeRegs(r: Regs): Buffer {
  const b = Buffer.alloc(LAYOUTS.kvm_regs.size);
  for (const name of REG_NAMES) b.writeBigUInt64LE(r[name], LAYOUTS.kvm_regs.fields[name]);
  return b;
}

export function decodeRegs(b: Buffer): Regs {
  const r = {} as Regs;
  for (const name of REG_NAMES) r[name] = b.readBigUInt64LE(LAYOUTS.kvm_regs.fields[name]);
  return r;
}

export interface Segment {
  base: bigint;
  limit: number;
  selector: number;
  type: number;
  present: number;
  dpl: number;
  db: number;
  s: number;
  l: number;
  g: number;
  avl: number;
  unusable: number;
}

export interface DTable {
  base: bigint;
  limit: number;
}

export const SEGMENT_NAMES = ['cs', 'ds', 'es', 'fs', 'gs', 'ss', 'tr', 'ldt'] as const;
export type SegmentName = (typeof SEGMENT_NAMES)[number];

export type Sregs = Record<SegmentName, Segment> & {
  gdt: DTable;
  idt: DTable;
  cr0: bigint;
  cr2: bigint;
  cr3: bigint;
  cr4: bigint;
  cr8: bigint;
  efer: bigint;
  apicBase: bigint;
  /** Pending external interrupt bitmap (4 x u64), kept opaque. */
  interruptBitmap: Buffer;
};

const SEG = LAYOUTS.kvm_segment.fields;
const SREGS = LAYOUTS.kvm_sregs.fields;
const SEG_BYTE_FIELDS = ['type', 'present', 'dpl', 'db', 's', 'l', 'g', 'avl', 'unusable'] as const;

function decodeSegment(b: Buffer, off: number): Segment {
  const s = {
    base: b.readBigUInt64LE(off + SEG.base),
    limit: b.readUInt32LE(off + SEG.limit),
    selector: b.readUInt16LE(off + SEG.selector),
  } as Segment;
  for (const f of SEG_BYTE_FIELDS) s[f] = b.readUInt8(off + SEG[f]);
  return s;
}

function encodeSegment(b: Buffer, off: number, s: Segment): void {
  b.writeBigUInt64LE(s.base, off + SEG.base);
  b.writeUInt32LE(s.limit, off + SEG.limit);
  b.writeUInt16LE(s.selector, off + SEG.selector);
  for (const f of SEG_BYTE_FIELDS) b.writeUInt8(s[f], off + SEG[f]);
}

const CR_FIELDS = [
  ['cr0', 'cr0'],
  ['cr2', 'cr2'],
  ['cr3', 'cr3'],
  ['cr4', 'cr4'],
  ['cr8', 'cr8'],
  ['efer', 'efer'],
  ['apicBase', 'apic_base'],
] as const;

export function decodeSregs(b: Buffer): Sregs {
  const s = {} as Sregs;
  for (const n of SEGMENT_NAMES) s[n] = decodeSegment(b, SREGS[n]);
  for (const t of ['gdt', 'idt'] as const) {
    s[t] = {
      base: b.readBigUInt64LE(SREGS[t] + LAYOUTS.kvm_dtable.fields.base),
      limit: b.readUInt16LE(SREGS[t] + LAYOUTS.kvm_dtable.fields.limit),
    };
  }
  for (const [key, field] of CR_FIELDS) s[key] = b.readBigUInt64LE(SREGS[field]);
  s.interruptBitmap = Buffer.from(b.subarray(SREGS.interrupt_bitmap, SREGS.interrupt_bitmap + 32));
  return s;
}

export function encodeSregs(s: Sregs): Buffer {
  const b = Buffer.alloc(LAYOUTS.kvm_sregs.size);
  for (const n of SEGMENT_NAMES) encodeSegment(b, SREGS[n], s[n]);
  for (const t of ['gdt', 'idt'] as const) {
    b.writeBigUInt64LE(s[t].base, SREGS[t] + LAYOUTS.kvm_dtable.fields.base);
    b.writeUInt16LE(s[t].limit, SREGS[t] + LAYOUTS.kvm_dtable.fields.limit);
  }
  for (const [key, field] of CR_FIELDS) b.writeBigUInt64LE(s[key], SREGS[field]);
  s.interruptBitmap.copy(b, SREGS.interrupt_bitmap, 0, 32);
  return b;
}

const CPUID = LAYOUTS.kvm_cpuid_entry2;
const CPUID_FIELDS = ['function', 'index', 'flags', 'eax', 'ebx', 'ecx', 'edx'] as const;

/** An empty kvm_cpuid2 with room for `capacity` entries (for KVM_GET_SUPPORTED_CPUID). */
export function allocCpuid2(capacity: number): Buffer {
  const b = Buffer.alloc(LAYOUTS.kvm_cpuid2.size + capacity * CPUID.size);
  b.writeUInt32LE(capacity, LAYOUTS.kvm_cpuid2.fields.nent);
  return b;
}

export function encodeCpuid2(entries: readonly CpuidEntry[]): Buffer {
  const b = allocCpuid2(entries.length);
  entries.forEach((e, i) => {
    const off = LAYOUTS.kvm_cpuid2.fields.entries + i * CPUID.size;
    for (const f of CPUID_FIELDS) b.writeUInt32LE(e[f] >>> 0, off + CPUID.fields[f]);
  });
  return b;
}

export function decodeCpuid2(b: Buffer): CpuidEntry[] {
  const n = b.readUInt32LE(LAYOUTS.kvm_cpuid2.fields.nent);
  const out: CpuidEntry[] = [];
  for (let i = 0; i < n; i++) {
    const off = LAYOUTS.kvm_cpuid2.fields.entries + i * CPUID.size;
    const e = {} as CpuidEntry;
    for (const f of CPUID_FIELDS) e[f] = b.readUInt32LE(off + CPUID.fields[f]);
    out.push(e);
  }
  return out;
}

export interface MsrEntry {
  index: number;
  data: bigint;
}

const MSR = LAYOUTS.kvm_msr_entry;

export function encodeMsrs(entries: readonly MsrEntry[]): Buffer {
  const b = Buffer.alloc(LAYOUTS.kvm_msrs.size + entries.length * MSR.size);
  b.writeUInt32LE(entries.length, LAYOUTS.kvm_msrs.fields.nmsrs);
  entries.forEach((e, i) => {
    const off = LAYOUTS.kvm_msrs.fields.entries + i * MSR.size;
    b.writeUInt32LE(e.index, off + MSR.fields.index);
    b.writeBigUInt64LE(e.data, off + MSR.fields.data);
  });
  return b;
}

export function decodeMsrs(b: Buffer, count: number): MsrEntry[] {
  const out: MsrEntry[] = [];
  for (let i = 0; i < count; i++) {
    const off = LAYOUTS.kvm_msrs.fields.entries + i * MSR.size;
    out.push({
      index: b.readUInt32LE(off + MSR.fields.index),
      data: b.readBigUInt64LE(off + MSR.fields.data),
    });
  }
  return out;
}

export function encodeMpState(state: number): Buffer {
  const b = Buffer.alloc(LAYOUTS.kvm_mp_state.size);
  b.writeUInt32LE(state, LAYOUTS.kvm_mp_state.fields.mp_state);
  return b;
}

/** A kvm_fpu with the x87 control word and MXCSR at their reset values (what Linux expects). */
export function initialFpu(): Buffer {
  const b = Buffer.alloc(LAYOUTS.kvm_fpu.size);
  b.writeUInt16LE(0x37f, LAYOUTS.kvm_fpu.fields.fcw);
  b.writeUInt32LE(0x1f80, LAYOUTS.kvm_fpu.fields.mxcsr);
  return b;
}

/** Decodes a saved (untrusted) base64 blob of a KVM struct, refusing any other size. */
export function decodeStructBlob(
  b64: string,
  struct: keyof typeof LAYOUTS,
  what: string = struct,
): Buffer {
  const b = Buffer.from(b64, 'base64');
  if (b.length !== LAYOUTS[struct].size) {
    throw new FaasnapError(
      'STATE_INVALID',
      `${what} is ${b.length} bytes, ${struct} is ${LAYOUTS[struct].size}`,
    );
  }
  return b;
}
