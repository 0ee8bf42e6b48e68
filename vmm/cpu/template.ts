// CPU templates: the CPUID table each vCPU gets (set with KVM_SET_CPUID2).
//
//  - `host`: what KVM supports, with per-vCPU topology fixed up. For hardware-virtualised KVM.
//  - `pvm-safe`: a conservative QEMU `qemu64`-like model for the PVM host (docs/architecture.md, "The PVM host"). Every
//    item there was needed to get a Linux guest past early boot under PVM's instruction emulator:
//    GenuineIntel vendor, no SMAP/SMEP/POPCNT/XSAVE, no KVM paravirt leaves. It also hands the
//    guest its TSC frequency (leaves 0x15/0x16) so it neither calibrates against the PIT nor
//    runs its clock wrong.
//
// Pure: the supported list comes from KVM_GET_SUPPORTED_CPUID, the result goes to the addon.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { FaasnapError } from '../../common/errors.js';
import {
  KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
  LEAF,
  F1_ECX,
  F1_EDX,
  F6_EAX,
  F81_ECX,
  F81_EDX,
  F87_EDX,
  VENDOR_AMD,
  VENDOR_INTEL,
  brandEntries,
  decodeVendor,
  encodeVendor,
  entry,
  findEntry,
  fixAmdAddressSizesTopology,
  fixAmdCacheTopology,
  fixAmdExtApicId,
  fixLeaf1Topology,
  fixLeaf4Topology,
  normalizeEntries,
  x2apicTopologyLeaves,
  type CpuidEntry,
  type VcpuTopology,
} from './cpuid.js';

export const CPU_TEMPLATE_NAMES = ['host', 'pvm-safe'] as const;
export type CpuTemplateName = (typeof CPU_TEMPLATE_NAMES)[number];

export function isCpuTemplateName(v: unknown): v is CpuTemplateName {
  return typeof v === 'string' && (CPU_TEMPLATE_NAMES as readonly string[]).includes(v);
}

export interface CpuidOptions {
  vcpuIndex: number;
  vcpuCount: number;
  /** Guest TSC frequency (KVM_GET_TSC_KHZ). 0 = unknown: pvm-safe then omits leaves 0x15/0x16. */
  tscKhz: number;
}

/** xAPIC ids are 8 bits and 0xff is the broadcast id. */
export const MAX_VCPUS = 255;

export function buildCpuid(
  template: CpuTemplateName,
  supported: readonly CpuidEntry[],
  opts: CpuidOptions,
): CpuidEntry[] {
  checkOptions(opts);
  const topo: VcpuTopology = { vcpuIndex: opts.vcpuIndex, vcpuCount: opts.vcpuCount };
  switch (template) {
    case 'host':
      return buildHost(supported, topo);
    case 'pvm-safe':
      return buildPvmSafe(supported, topo, opts.tscKhz);
    default:
      throw new FaasnapError('INVALID_VM_CONFIG', `unknown CPU template ${String(template)}`);
  }
}

/** PVM's module is the only way to tell its /dev/kvm apart from hardware KVM. */
export function detectCpuTemplate(sysModuleDir = '/sys/module'): CpuTemplateName {
  return existsSync(join(sysModuleDir, 'kvm_pvm')) ? 'pvm-safe' : 'host';
}

/**
 * Guest kernel parameters the pvm-safe template needs (docs/architecture.md, "The PVM host"):
 *  - hide what the CPUID model hides a second time in the kernel. Under PVM the guest kernel's
 *    CPUID reads do not all go through the table above: its feature words also show host
 *    features the table leaves out (measured: ERMS, FSRM, SSE4.2, BMI2, ...), so whatever must
 *    not be used is cleared here too;
 *  - ERMS/FSRM among them: with them the kernel's memcpy/memset/clear_page run byte-granular
 *    `rep movsb/stosb`, which the emulator executes a byte per step (boot to init 29 s → 23 s);
 *  - noreplace-smp and percpu_alloc=page: a 1-vCPU kernel otherwise rewrites every LOCK prefix
 *    through text_poke(), and the first per-CPU chunk would be a zeroed 2 MiB block per CPU;
 *    both are boot work that costs seconds emulated (together ~2 s of ~22 s, measured);
 *  - nofsgsbase: with FSGSBASE the kernel's paranoid entry (NMI, #DB, #MC) finds its per-CPU
 *    base with LSL, which KVM's emulator cannot execute under PVM: a restored guest that took an
 *    NMI stopped with "could not emulate ... rip=paranoid_entry+0x51" (found by the E1 run);
 *    without it the entry reads MSR_GS_BASE, which traps and is served;
 *  - our guest kernel's handler for SYSCALLs that PVM delivers as page faults
 *    (guest/kernel/patches/0003-*), and its one-step catch-up of the clock jump a restore shows
 *    (the guest reads the host's TSC, which ran on while the snapshot sat on disk; step by step
 *    that cost ~0.4 s per hour of snapshot age: patches/0004-*). A kernel without those patches
 *    hands the unknown parameters to init as environment variables, harmlessly.
 */
export function pvmSafeKernelParams(): string[] {
  return [
    'noxsave',
    'nosmap',
    'nosmep',
    'clearcpuid=smap,smep,popcnt,erms,fsrm',
    'noreplace-smp',
    'percpu_alloc=page',
    'nofsgsbase',
    'faasnap_pvm_syscall=1',
    'faasnap_tsc_jump=1',
  ];
}

export function templateKernelParams(template: CpuTemplateName): string[] {
  return template === 'pvm-safe' ? pvmSafeKernelParams() : [];
}

function checkOptions(o: CpuidOptions): void {
  const { vcpuIndex, vcpuCount, tscKhz } = o;
  if (!Number.isInteger(vcpuCount) || vcpuCount < 1 || vcpuCount > MAX_VCPUS) {
    throw new FaasnapError('INVALID_VM_CONFIG', `vcpuCount must be 1..${MAX_VCPUS}`, {
      vcpuCount,
    });
  }
  if (!Number.isInteger(vcpuIndex) || vcpuIndex < 0 || vcpuIndex >= vcpuCount) {
    throw new FaasnapError('INVALID_VM_CONFIG', `vcpuIndex must be 0..${vcpuCount - 1}`, {
      vcpuIndex,
    });
  }
  if (!Number.isInteger(tscKhz) || tscKhz < 0 || tscKhz > 0xffffffff) {
    throw new FaasnapError('INVALID_VM_CONFIG', 'tscKhz must be a 32-bit unsigned integer', {
      tscKhz,
    });
  }
}

// ---- host -----------------------------------------------------------------------------------

function buildHost(supported: readonly CpuidEntry[], topo: VcpuTopology): CpuidEntry[] {
  const leaf0 = findEntry(supported, LEAF.VENDOR);
  const vendor = leaf0 ? decodeVendor(leaf0) : '';
  const out: CpuidEntry[] = [];
  const topologyLeaves = new Set<number>();
  for (const e of supported) {
    switch (e.function) {
      case LEAF.FEATURES:
        out.push(fixLeaf1Topology(e, topo));
        break;
      case LEAF.CACHE_PARAMS:
        // AMD leaves leaf 4 empty; only Intel's describes cores.
        out.push(vendor === VENDOR_AMD ? { ...e } : fixLeaf4Topology(e, topo));
        break;
      case LEAF.THERMAL_POWER:
        // KVM emulates none of the thermal/energy MSRs; only "APIC timer always running" is true.
        out.push({ ...e, eax: e.eax & F6_EAX.ARAT, ebx: 0, ecx: 0, edx: 0 });
        break;
      case LEAF.EXT_TOPOLOGY:
      case LEAF.V2_EXT_TOPOLOGY:
        // KVM copies the host's ids of whatever CPU ran the ioctl: replace them wholesale.
        topologyLeaves.add(e.function);
        break;
      case LEAF.EXT_ADDRESS_SIZES:
        out.push(vendor === VENDOR_AMD ? fixAmdAddressSizesTopology(e, topo) : { ...e });
        break;
      case LEAF.AMD_CACHE_TOPOLOGY:
        out.push(vendor === VENDOR_AMD ? fixAmdCacheTopology(e, topo) : { ...e });
        break;
      case LEAF.AMD_EXT_APIC_ID:
        out.push(vendor === VENDOR_AMD ? fixAmdExtApicId(e, topo) : { ...e });
        break;
      default:
        // Everything else, including KVM's paravirt leaves and the PMU leaf 0xA (KVM already
        // describes the vPMU it emulates), stays as KVM reports it.
        out.push({ ...e });
    }
  }
  for (const fn of topologyLeaves) out.push(...x2apicTopologyLeaves(fn, topo));
  return normalizeEntries(out);
}

// ---- pvm-safe -------------------------------------------------------------------------------

/** QEMU's qemu64 (since QEMU 6.1; Debian bookworm's 7.2 is what the reference boot used). */
const QEMU64_SIGNATURE = { family: 15, model: 107, stepping: 1 };

/** qemu64's CPUID.1:EDX: the Pentium Pro set plus MTRR, CLFLUSH, MCA, PSE36. */
const PVM_SAFE_1_EDX =
  F1_EDX.FPU |
  F1_EDX.DE |
  F1_EDX.PSE |
  F1_EDX.TSC |
  F1_EDX.MSR |
  F1_EDX.PAE |
  F1_EDX.MCE |
  F1_EDX.CX8 |
  F1_EDX.APIC |
  F1_EDX.SEP |
  F1_EDX.MTRR |
  F1_EDX.PGE |
  F1_EDX.MCA |
  F1_EDX.CMOV |
  F1_EDX.PAT |
  F1_EDX.PSE36 |
  F1_EDX.CLFSH |
  F1_EDX.MMX |
  F1_EDX.FXSR |
  F1_EDX.SSE |
  F1_EDX.SSE2;

/**
 * qemu64's CPUID.1:ECX (SSE3) plus x2APIC, which QEMU turns on for every model under KVM
 * (so the reference boot had it) and which makes APIC accesses MSR exits instead of emulated
 * MMIO. Deliberately absent: CX16, which qemu64 has, because KVM's instruction emulator cannot
 * execute CMPXCHG16B (it returns "unhandleable") and SLUB's lockless path runs it in emulated
 * kernel code (the guest stopped with an emulation failure in ___slab_alloc; the reference
 * kernel used SLOB and never hit it); user code does not need the bit (x86-64 baseline).
 * POPCNT, XSAVE/OSXSAVE/AVX (docs/architecture.md), PCID (INVPCID/PCID flushes
 * are more for the emulator to get wrong and buy nothing under shadow paging), and TSC-deadline:
 * qemu64 lacks it, the reference boot ran without it, and the LAPIC one-shot timer needs no
 * calibration here because leaf 0x15's crystal is KVM's 1 GHz APIC bus clock (see below).
 */
const PVM_SAFE_1_ECX = F1_ECX.SSE3 | F1_ECX.X2APIC;

/** qemu64's 0x80000001: SYSCALL, NX, LM; LAHF_LM (its SVM bit is off under KVM, and here). */
const PVM_SAFE_81_EDX = F81_EDX.SYSCALL | F81_EDX.NX | F81_EDX.LM;
const PVM_SAFE_81_ECX = F81_ECX.LAHF_LM;

const PVM_SAFE_BRAND = 'faasnap pvm-safe vCPU (qemu64-like)';

/**
 * KVM's LAPIC timer counts at 1 GHz (APIC_BUS_CYCLE_NS = 1). Linux takes leaf 0x15's crystal
 * as the LAPIC clock (lapic_timer_period = crystal / HZ), so reporting 1 GHz makes the LAPIC
 * timer right without calibrating it, and the numerator/denominator carry the TSC ratio.
 */
const CRYSTAL_HZ = 1_000_000_000;
const CRYSTAL_KHZ = CRYSTAL_HZ / 1000;

/** A simple, deterministic cache hierarchy (sizes do not come from the host on purpose). */
const PVM_SAFE_CACHES = [
  { type: 1, level: 1, ways: 8, sets: 64 }, // L1d 32 KiB
  { type: 2, level: 1, ways: 8, sets: 64 }, // L1i 32 KiB
  { type: 3, level: 2, ways: 16, sets: 1024 }, // L2 1 MiB per core
  { type: 3, level: 3, ways: 16, sets: 8192 }, // L3 8 MiB shared by the package
] as const;
const CACHE_LINE = 64;
const L2 = PVM_SAFE_CACHES[2];
const L2_KIB = (L2.ways * L2.sets * CACHE_LINE) / 1024;
/** 0x80000006's associativity code for 16 ways. */
const ASSOC_16_WAY = 0x8;

function buildPvmSafe(
  supported: readonly CpuidEntry[],
  topo: VcpuTopology,
  tscKhz: number,
): CpuidEntry[] {
  const has = (fn: number, reg: 'eax' | 'ebx' | 'ecx' | 'edx', mask: number): number =>
    ((findEntry(supported, fn)?.[reg] ?? 0) & mask) >>> 0;
  const idx = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
  const basic: CpuidEntry[] = [];
  const ext: CpuidEntry[] = [];

  // Leaf 1: qemu64 signature with the Intel vendor. Family 15 fits the base field (extended
  // family 0); model 107 = extended model 6, base model 0xB.
  const { family, model, stepping } = QEMU64_SIGNATURE;
  const sig = ((model >> 4) << 16) | (family << 8) | ((model & 0xf) << 4) | stepping;
  const clflushLine = (CACHE_LINE / 8) << 8;
  basic.push(
    fixLeaf1Topology(
      entry(LEAF.FEATURES, 0, {
        eax: sig,
        ebx: clflushLine,
        ecx: has(LEAF.FEATURES, 'ecx', PVM_SAFE_1_ECX),
        edx: has(LEAF.FEATURES, 'edx', PVM_SAFE_1_EDX),
      }),
      topo,
    ),
  );

  // Leaf 2: one round, descriptor 0xFF = "see leaf 4" (Linux parses leaf 2 on family 15).
  basic.push(entry(LEAF.CACHE_DESCRIPTORS, 0, { eax: 0x0000ff01 }));

  PVM_SAFE_CACHES.forEach((c, i) => {
    const raw = entry(LEAF.CACHE_PARAMS, i, {
      flags: idx,
      eax: c.type | (c.level << 5) | (1 << 8), // self-initialising
      ebx: ((c.ways - 1) << 22) | (CACHE_LINE - 1),
      ecx: c.sets - 1,
    });
    basic.push(fixLeaf4Topology(raw, topo));
  });
  basic.push(entry(LEAF.CACHE_PARAMS, PVM_SAFE_CACHES.length, { flags: idx }));

  // ARAT is true of KVM's hrtimer-backed LAPIC timer; without it Linux wants a broadcast timer
  // (the PIT: more port-I/O exits).
  basic.push(entry(LEAF.THERMAL_POWER, 0, { eax: has(LEAF.THERMAL_POWER, 'eax', F6_EAX.ARAT) }));

  // Leaf 7 present but empty: no SMEP, SMAP, INVPCID, FSGSBASE, AVX2, ... and no subleaves.
  basic.push(entry(LEAF.STRUCTURED_EXT, 0, { flags: idx }));

  basic.push(...x2apicTopologyLeaves(LEAF.EXT_TOPOLOGY, topo));

  const ratio = tscKhz > 0 ? tscRatio(tscKhz) : undefined;
  if (ratio) {
    basic.push(
      entry(LEAF.TSC_CRYSTAL, 0, { eax: ratio.denominator, ebx: ratio.numerator, ecx: CRYSTAL_HZ }),
    );
    const mhz = Math.min(Math.round(tscKhz / 1000), 0xffff);
    basic.push(entry(LEAF.PROCESSOR_FREQ, 0, { eax: mhz, ebx: mhz, ecx: CRYSTAL_HZ / 1_000_000 }));
  }

  const maxBasic = Math.max(...basic.map((e) => e.function));
  const vendor = encodeVendor(VENDOR_INTEL);
  basic.push(entry(LEAF.VENDOR, 0, { eax: maxBasic, ...vendor }));

  ext.push(
    entry(LEAF.EXT_FEATURES, 0, {
      ecx: has(LEAF.EXT_FEATURES, 'ecx', PVM_SAFE_81_ECX),
      edx: has(LEAF.EXT_FEATURES, 'edx', PVM_SAFE_81_EDX),
    }),
  );
  ext.push(...brandEntries(PVM_SAFE_BRAND));
  // Intel's 0x80000006 restates leaf 4's L2: size in KiB, associativity code, line size.
  ext.push(
    entry(LEAF.EXT_L2_CACHE, 0, { ecx: (L2_KIB << 16) | (ASSOC_16_WAY << 12) | CACHE_LINE }),
  );
  // Invariant TSC (when KVM offers it): the guest clocksource is the TSC (no kvmclock here).
  ext.push(entry(LEAF.EXT_POWER, 0, { edx: has(LEAF.EXT_POWER, 'edx', F87_EDX.INVARIANT_TSC) }));
  // Physical address width must not exceed the host's (shadow paging checks reserved bits);
  // linear width 48 because LA57 is not offered.
  const physBits = has(LEAF.EXT_ADDRESS_SIZES, 'eax', 0xff) || 36;
  ext.push(entry(LEAF.EXT_ADDRESS_SIZES, 0, { eax: (48 << 8) | physBits }));
  const maxExt = Math.max(...ext.map((e) => e.function));
  ext.push(entry(LEAF.EXT_MAX, 0, { eax: maxExt }));

  // Built from scratch, so none of KVM's 0x4000_00xx leaves is carried over: with KVM's
  // signature visible the guest enables kvmclock, PV EOI, steal time etc. and spins in
  // hypercalls under PVM.
  return normalizeEntries([...basic, ...ext]);
}

/**
 * TSC/crystal ratio for leaf 0x15. Linux computes `crystal_khz * EBX / EAX` in 32-bit unsigned
 * arithmetic, so EBX must stay <= 0xffffffff / crystal_khz (4294 for a 1 GHz crystal); the
 * best rational approximation under that bound is well within 1 ppm for real TSC rates.
 */
export function tscRatio(tscKhz: number): { numerator: number; denominator: number } | undefined {
  const maxNum = Math.floor(0xffffffff / CRYSTAL_KHZ);
  const best = bestRational(tscKhz, CRYSTAL_KHZ, maxNum);
  if (!best || best.p === 0) return undefined;
  return { numerator: best.p, denominator: best.q };
}

/** Closest p/q to num/den with p <= maxP (continued fractions with semiconvergents). */
function bestRational(
  num: number,
  den: number,
  maxP: number,
): { p: number; q: number } | undefined {
  const g = gcd(num, den);
  if (num / g <= maxP) return { p: num / g, q: den / g };
  let [p0, q0, p1, q1] = [0, 1, 1, 0];
  let [n, d] = [num, den];
  while (d !== 0) {
    const a = Math.floor(n / d);
    const p2 = a * p1 + p0;
    const q2 = a * q1 + q0;
    if (p2 > maxP) {
      if (p1 === 0) return undefined;
      const k = Math.floor((maxP - p0) / p1);
      const semi = { p: k * p1 + p0, q: k * q1 + q0 };
      const conv = { p: p1, q: q1 };
      const err = (c: { p: number; q: number }): number => Math.abs(c.p / c.q - num / den);
      return k > 0 && err(semi) < err(conv) ? semi : conv;
    }
    [p0, q0, p1, q1] = [p1, q1, p2, q2];
    [n, d] = [d, n - a * d];
  }
  return { p: p1, q: q1 };
}

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}
