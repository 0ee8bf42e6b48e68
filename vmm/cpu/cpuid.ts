// CPUID vocabulary shared by the CPU templates: the entry type (struct kvm_cpuid_entry2), the
// leaf and feature-bit numbers we touch, and the per-vCPU topology fix-ups both templates need.
// Pure data manipulation; the native struct encoding lives with the addon.

/** Mirrors struct kvm_cpuid_entry2 (without its padding). All registers are unsigned 32-bit. */
export interface CpuidEntry {
  function: number;
  index: number;
  flags: number;
  eax: number;
  ebx: number;
  ecx: number;
  edx: number;
}

/** kvm_cpuid_entry2.flags bit 0 (the kernel header's spelling): `index` selects a subleaf. */
export const KVM_CPUID_FLAG_SIGNIFCANT_INDEX = 1;

export const LEAF = {
  VENDOR: 0x0,
  FEATURES: 0x1,
  CACHE_DESCRIPTORS: 0x2,
  CACHE_PARAMS: 0x4,
  THERMAL_POWER: 0x6,
  STRUCTURED_EXT: 0x7,
  PERFMON: 0xa,
  EXT_TOPOLOGY: 0xb,
  XSAVE: 0xd,
  TSC_CRYSTAL: 0x15,
  PROCESSOR_FREQ: 0x16,
  V2_EXT_TOPOLOGY: 0x1f,
  EXT_MAX: 0x80000000,
  EXT_FEATURES: 0x80000001,
  BRAND_0: 0x80000002,
  BRAND_1: 0x80000003,
  BRAND_2: 0x80000004,
  EXT_L2_CACHE: 0x80000006,
  EXT_POWER: 0x80000007,
  EXT_ADDRESS_SIZES: 0x80000008,
  AMD_CACHE_TOPOLOGY: 0x8000001d,
  AMD_EXT_APIC_ID: 0x8000001e,
} as const;

/** The hypervisor range (KVM's "KVMKVMKVM" signature and paravirt feature leaves live here). */
export const HYPERVISOR_LEAF_FIRST = 0x40000000;
export const HYPERVISOR_LEAF_LAST = 0x400000ff;

const bit = (n: number): number => (1 << n) >>> 0;

/** CPUID.1:EDX */
export const F1_EDX = {
  FPU: bit(0),
  VME: bit(1),
  DE: bit(2),
  PSE: bit(3),
  TSC: bit(4),
  MSR: bit(5),
  PAE: bit(6),
  MCE: bit(7),
  CX8: bit(8),
  APIC: bit(9),
  SEP: bit(11),
  MTRR: bit(12),
  PGE: bit(13),
  MCA: bit(14),
  CMOV: bit(15),
  PAT: bit(16),
  PSE36: bit(17),
  CLFSH: bit(19),
  MMX: bit(23),
  FXSR: bit(24),
  SSE: bit(25),
  SSE2: bit(26),
  HTT: bit(28),
} as const;

/** CPUID.1:ECX */
export const F1_ECX = {
  SSE3: bit(0),
  PCLMULQDQ: bit(1),
  MONITOR: bit(3),
  VMX: bit(5),
  SSSE3: bit(9),
  FMA: bit(12),
  CX16: bit(13),
  PCID: bit(17),
  SSE4_1: bit(19),
  SSE4_2: bit(20),
  X2APIC: bit(21),
  MOVBE: bit(22),
  POPCNT: bit(23),
  TSC_DEADLINE: bit(24),
  AES: bit(25),
  XSAVE: bit(26),
  OSXSAVE: bit(27),
  AVX: bit(28),
  F16C: bit(29),
  RDRAND: bit(30),
  HYPERVISOR: bit(31),
} as const;

/** CPUID.6:EAX */
export const F6_EAX = { ARAT: bit(2) } as const;

/** CPUID.(7,0):EBX */
export const F7_EBX = {
  FSGSBASE: bit(0),
  TSC_ADJUST: bit(1),
  AVX2: bit(5),
  SMEP: bit(7),
  ERMS: bit(9),
  INVPCID: bit(10),
  AVX512F: bit(16),
  SMAP: bit(20),
} as const;

/** CPUID.80000001h:ECX */
export const F81_ECX = { LAHF_LM: bit(0), CMP_LEGACY: bit(1), SVM: bit(2), ABM: bit(5) } as const;

/** CPUID.80000001h:EDX */
export const F81_EDX = {
  SYSCALL: bit(11),
  NX: bit(20),
  PDPE1GB: bit(26),
  RDTSCP: bit(27),
  LM: bit(29),
} as const;

/** CPUID.80000007h:EDX */
export const F87_EDX = { INVARIANT_TSC: bit(8) } as const;

export const VENDOR_INTEL = 'GenuineIntel';
export const VENDOR_AMD = 'AuthenticAMD';

/** Leaf 0's EBX/EDX/ECX spell the vendor in that register order, little-endian. */
export function encodeVendor(vendor: string): { ebx: number; ecx: number; edx: number } {
  const b = Buffer.alloc(12);
  b.write(vendor, 'latin1');
  return { ebx: b.readUInt32LE(0), edx: b.readUInt32LE(4), ecx: b.readUInt32LE(8) };
}

export function decodeVendor(leaf0: Pick<CpuidEntry, 'ebx' | 'ecx' | 'edx'>): string {
  const b = Buffer.alloc(12);
  b.writeUInt32LE(leaf0.ebx >>> 0, 0);
  b.writeUInt32LE(leaf0.edx >>> 0, 4);
  b.writeUInt32LE(leaf0.ecx >>> 0, 8);
  return b.toString('latin1');
}

/** 0x80000002..4: 48 bytes of NUL-padded brand string, 16 per leaf in EAX, EBX, ECX, EDX order. */
export function brandEntries(brand: string): CpuidEntry[] {
  const b = Buffer.alloc(48);
  b.write(brand.slice(0, 47), 'latin1');
  return [LEAF.BRAND_0, LEAF.BRAND_1, LEAF.BRAND_2].map((fn, i) =>
    entry(fn, 0, {
      eax: b.readUInt32LE(i * 16),
      ebx: b.readUInt32LE(i * 16 + 4),
      ecx: b.readUInt32LE(i * 16 + 8),
      edx: b.readUInt32LE(i * 16 + 12),
    }),
  );
}

export function entry(
  fn: number,
  index: number,
  regs: Partial<Pick<CpuidEntry, 'eax' | 'ebx' | 'ecx' | 'edx' | 'flags'>> = {},
): CpuidEntry {
  return {
    function: fn >>> 0,
    index: index >>> 0,
    flags: (regs.flags ?? 0) >>> 0,
    eax: (regs.eax ?? 0) >>> 0,
    ebx: (regs.ebx ?? 0) >>> 0,
    ecx: (regs.ecx ?? 0) >>> 0,
    edx: (regs.edx ?? 0) >>> 0,
  };
}

export function findEntry(
  entries: readonly CpuidEntry[],
  fn: number,
  index = 0,
): CpuidEntry | undefined {
  return entries.find((e) => e.function === fn && e.index === index);
}

/** Sorted by (function, index) with every register forced to u32: a stable, comparable table. */
export function normalizeEntries(entries: readonly CpuidEntry[]): CpuidEntry[] {
  return entries
    .map((e) => entry(e.function, e.index, e))
    .sort((a, b) => a.function - b.function || a.index - b.index);
}

export function isHypervisorLeaf(fn: number): boolean {
  return fn >= HYPERVISOR_LEAF_FIRST && fn <= HYPERVISOR_LEAF_LAST;
}

// ---- Topology -------------------------------------------------------------------------------
// We present one package with `vcpuCount` cores of one thread each; APIC id = vCPU index (KVM's
// default LAPIC id is the vCPU id, so this keeps CPUID and the LAPIC in agreement).

export interface VcpuTopology {
  vcpuIndex: number;
  vcpuCount: number;
}

/** Width of the APIC-id field that numbers `count` things (0 for a single one). */
export function idBits(count: number): number {
  return count <= 1 ? 0 : 32 - Math.clz32(count - 1);
}

/** Leaf 1: initial APIC id, addressable logical ids in the package, HTT; always `hypervisor`. */
export function fixLeaf1Topology(e: CpuidEntry, t: VcpuTopology): CpuidEntry {
  const addressable = 1 << idBits(t.vcpuCount);
  const ebx = (e.ebx & 0x0000ffff) | ((addressable & 0xff) << 16) | ((t.vcpuIndex & 0xff) << 24);
  let edx = e.edx & ~F1_EDX.HTT;
  // HTT only says "EBX[23:16] is valid"; set it when there is more than one logical CPU.
  if (t.vcpuCount > 1) edx |= F1_EDX.HTT;
  return { ...e, ebx: ebx >>> 0, ecx: (e.ecx | F1_ECX.HYPERVISOR) >>> 0, edx: edx >>> 0 };
}

/** Cache level encoded in leaf 4 / 0x8000001D EAX[7:5]. */
function cacheLevel(eax: number): number {
  return (eax >>> 5) & 7;
}

/**
 * Leaf 4 subleaf (Intel deterministic cache parameters): EAX[25:14] = logical ids sharing the
 * cache - 1 (per-core caches: 0 with one thread per core; the L3: the whole package) and
 * EAX[31:26] = addressable core ids in the package - 1.
 */
export function fixLeaf4Topology(e: CpuidEntry, t: VcpuTopology): CpuidEntry {
  if ((e.eax & 0x1f) === 0) return { ...e }; // the null subleaf ends the list
  const pkg = 1 << idBits(t.vcpuCount);
  const sharing = cacheLevel(e.eax) >= 3 ? pkg : 1;
  const eax = (e.eax & 0x00003fff) | (((sharing - 1) & 0xfff) << 14) | (((pkg - 1) & 0x3f) << 26);
  return { ...e, eax: eax >>> 0 };
}

/** Leaf 0xB / 0x1F for one vCPU: SMT level (1 thread), core level (all vCPUs), then the end. */
export function x2apicTopologyLeaves(fn: number, t: VcpuTopology): CpuidEntry[] {
  const flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
  const id = t.vcpuIndex;
  const LEVEL_SMT = 1;
  const LEVEL_CORE = 2;
  return [
    entry(fn, 0, { flags, eax: 0, ebx: 1, ecx: (LEVEL_SMT << 8) | 0, edx: id }),
    entry(fn, 1, {
      flags,
      eax: idBits(t.vcpuCount),
      ebx: t.vcpuCount,
      ecx: (LEVEL_CORE << 8) | 1,
      edx: id,
    }),
    // Level type 0 marks the end; ECX[7:0] still echoes the subleaf number.
    entry(fn, 2, { flags, eax: 0, ebx: 0, ecx: 2, edx: id }),
  ];
}

/** AMD 0x80000008 ECX: NC = cores - 1 and ApicIdCoreIdSize, the AMD way of giving core counts. */
export function fixAmdAddressSizesTopology(e: CpuidEntry, t: VcpuTopology): CpuidEntry {
  const ecx = (e.ecx & ~0xf0ff) | ((idBits(t.vcpuCount) & 0xf) << 12) | ((t.vcpuCount - 1) & 0xff);
  return { ...e, ecx: ecx >>> 0 };
}

/** AMD 0x8000001D: EAX[25:14] = logical processors sharing the cache - 1 (like Intel leaf 4). */
export function fixAmdCacheTopology(e: CpuidEntry, t: VcpuTopology): CpuidEntry {
  if ((e.eax & 0x1f) === 0) return { ...e };
  const sharing = cacheLevel(e.eax) >= 3 ? 1 << idBits(t.vcpuCount) : 1;
  const eax = (e.eax & ~(0xfff << 14)) | (((sharing - 1) & 0xfff) << 14);
  return { ...e, eax: eax >>> 0 };
}

/** AMD 0x8000001E: extended APIC id, core (compute unit) id with one thread, node 0 of 1. */
export function fixAmdExtApicId(e: CpuidEntry, t: VcpuTopology): CpuidEntry {
  return {
    ...e,
    eax: t.vcpuIndex >>> 0,
    ebx: ((e.ebx & ~0xffff) | (t.vcpuIndex & 0xff)) >>> 0,
    ecx: (e.ecx & ~0x7ff) >>> 0,
  };
}
