import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isFaasnapError } from '../../common/errors.js';
import { F1_ECX, F1_EDX, F7_EBX, decodeVendor, findEntry, type CpuidEntry } from './cpuid.js';
import {
  buildCpuid,
  detectCpuTemplate,
  pvmSafeKernelParams,
  templateKernelParams,
  tscRatio,
  type CpuTemplateName,
} from './template.js';

const e = (
  fn: number,
  index: number,
  flags: number,
  eax: number,
  ebx: number,
  ecx: number,
  edx: number,
): CpuidEntry => ({ function: fn, index, flags, eax, ebx, ecx, edx });

/** KVM_GET_SUPPORTED_CPUID as captured on the PVM development host (AMD EPYC, kvm_pvm). */
const PVM_AMD: CpuidEntry[] = [
  e(0x0, 0, 0, 0x0000000d, 0x68747541, 0x444d4163, 0x69746e65),
  e(0x1, 0, 0, 0x00a00f11, 0x01020800, 0x81202000, 0x078bfbff),
  e(0x2, 0, 0, 0, 0, 0, 0),
  e(0x4, 0, 1, 0, 0, 0, 0),
  e(0x6, 0, 0, 0x00000004, 0, 0, 0),
  e(0x7, 0, 1, 0x00000000, 0x01800002, 0x00000004, 0x20000000),
  e(0xb, 0, 1, 0, 0, 0, 0x00000001),
  e(0xd, 0, 1, 0x00000007, 0x00000340, 0x00000340, 0),
  e(0xd, 1, 1, 0, 0, 0, 0),
  e(0xd, 2, 1, 0x00000100, 0x00000240, 0, 0),
  e(0x80000000, 0, 0, 0x80000021, 0x68747541, 0x444d4163, 0x69746e65),
  e(0x80000001, 0, 0, 0x00a00f11, 0x40000000, 0x00400393, 0x23d3fbff),
  e(0x80000005, 0, 0, 0xff40ff40, 0xff40ff40, 0x20080140, 0x20080140),
  e(0x80000006, 0, 0, 0x48002200, 0x68004200, 0x02006140, 0x08009140),
  e(0x80000007, 0, 0, 0, 0, 0, 0x00000100),
  e(0x80000008, 0, 0, 0x00003030, 0x10000005, 0x00007001, 0),
  e(0x8000001d, 0, 1, 0x00000121, 0x01c0003f, 0x0000003f, 0),
  e(0x8000001d, 1, 1, 0x00000122, 0x01c0003f, 0x0000003f, 0),
  e(0x8000001d, 2, 1, 0x00000143, 0x01c0003f, 0x000003ff, 0x00000002),
  e(0x8000001d, 3, 1, 0x00004163, 0x03c0003f, 0x00007fff, 0x00000001),
  e(0x8000001d, 4, 1, 0, 0, 0, 0),
  e(0x8000001e, 0, 0, 0, 0, 0, 0),
  e(0x80000021, 0, 0, 0x00000204, 0, 0x00000006, 0),
  e(0x40000000, 0, 0, 0x40000001, 0x4b4d564b, 0x564b4d56, 0x0000004d),
  e(0x40000001, 0, 0, 0x01007efb, 0, 0, 0),
];

const INTEL_1_ECX =
  F1_ECX.SSE3 |
  F1_ECX.PCLMULQDQ |
  F1_ECX.SSSE3 |
  F1_ECX.FMA |
  F1_ECX.CX16 |
  F1_ECX.PCID |
  F1_ECX.SSE4_1 |
  F1_ECX.SSE4_2 |
  F1_ECX.X2APIC |
  F1_ECX.MOVBE |
  F1_ECX.POPCNT |
  F1_ECX.TSC_DEADLINE |
  F1_ECX.AES |
  F1_ECX.XSAVE |
  F1_ECX.AVX |
  F1_ECX.F16C |
  F1_ECX.RDRAND;
const INTEL_7_EBX =
  F7_EBX.FSGSBASE |
  F7_EBX.TSC_ADJUST |
  F7_EBX.AVX2 |
  F7_EBX.SMEP |
  F7_EBX.ERMS |
  F7_EBX.INVPCID |
  F7_EBX.AVX512F |
  F7_EBX.SMAP;

/** Hand-made, modelled on what hardware KVM reports on a Skylake server. */
const INTEL_HW: CpuidEntry[] = [
  e(0x0, 0, 0, 0x00000016, 0x756e6547, 0x6c65746e, 0x49656e69),
  e(0x1, 0, 0, 0x00050654, 0x00100800, INTEL_1_ECX >>> 0, 0x178bfbff),
  e(0x2, 0, 0, 0x00feff01, 0, 0, 0x00c30000),
  e(0x4, 0, 1, 0x1c004121, 0x01c0003f, 0x0000003f, 0),
  e(0x4, 1, 1, 0x1c004122, 0x01c0003f, 0x0000003f, 0),
  e(0x4, 2, 1, 0x1c004143, 0x03c0003f, 0x000003ff, 0),
  e(0x4, 3, 1, 0x1c03c163, 0x0280003f, 0x0000bfff, 0x00000004),
  e(0x4, 4, 1, 0, 0, 0, 0),
  e(0x6, 0, 0, 0x00000004, 0, 0, 0),
  e(0x7, 0, 1, 0, INTEL_7_EBX >>> 0, 0x00000008, 0xbc000400),
  e(0xa, 0, 0, 0x07300402, 0, 0, 0x00000603),
  e(0xb, 0, 1, 0x00000001, 0x00000002, 0x00000100, 0x00000035),
  e(0xb, 1, 1, 0x00000006, 0x00000030, 0x00000201, 0x00000035),
  e(0xd, 0, 1, 0x000002e7, 0x00000a88, 0x00000a88, 0),
  e(0xd, 1, 1, 0x0000000f, 0, 0, 0),
  e(0x15, 0, 0, 0x00000002, 0x000000a8, 0, 0),
  e(0x16, 0, 0, 0x00000834, 0x00000e74, 0x00000064, 0),
  e(0x40000000, 0, 0, 0x40000001, 0x4b4d564b, 0x564b4d56, 0x0000004d),
  e(0x40000001, 0, 0, 0x01007afb, 0, 0, 0),
  e(0x80000000, 0, 0, 0x80000008, 0, 0, 0),
  e(0x80000001, 0, 0, 0, 0, 0x00000121, 0x2c100800),
  e(0x80000006, 0, 0, 0, 0, 0x04008040, 0),
  e(0x80000007, 0, 0, 0, 0, 0, 0x00000100),
  e(0x80000008, 0, 0, 0x0000302e, 0, 0, 0),
];

const TSC_KHZ = 2445432; // KVM_GET_TSC_KHZ on the PVM host

function build(
  t: CpuTemplateName,
  supported: CpuidEntry[],
  vcpuIndex = 0,
  vcpuCount = 1,
  tscKhz = TSC_KHZ,
): CpuidEntry[] {
  return buildCpuid(t, supported, { vcpuIndex, vcpuCount, tscKhz });
}

function leaf(entries: CpuidEntry[], fn: number, index = 0): CpuidEntry {
  const found = findEntry(entries, fn, index);
  assert.ok(found, `leaf 0x${fn.toString(16)}.${index} present`);
  return found;
}

const basicFns = (es: CpuidEntry[]): number[] =>
  es.map((x) => x.function).filter((f) => f < 0x40000000);
const extFns = (es: CpuidEntry[]): number[] =>
  es.map((x) => x.function).filter((f) => f >= 0x80000000);

for (const [name, fixture] of [
  ['PVM/AMD', PVM_AMD],
  ['Intel', INTEL_HW],
] as const) {
  test(`pvm-safe (${name}): GenuineIntel, qemu64 signature, no KVM leaves`, () => {
    const out = build('pvm-safe', fixture);
    const l0 = leaf(out, 0);
    assert.equal(l0.ebx, 0x756e6547); // "Genu"
    assert.equal(l0.edx, 0x49656e69); // "ineI"
    assert.equal(l0.ecx, 0x6c65746e); // "ntel"
    assert.equal(decodeVendor(l0), 'GenuineIntel');
    const sig = leaf(out, 1).eax;
    assert.equal(sig, 0x00060fb1);
    const family = ((sig >>> 8) & 0xf) + ((sig >>> 20) & 0xff);
    const model = (((sig >>> 16) & 0xf) << 4) | ((sig >>> 4) & 0xf);
    assert.deepEqual([family, model, sig & 0xf], [15, 107, 1]);
    assert.equal(out.filter((x) => x.function >= 0x40000000 && x.function <= 0x400000ff).length, 0);
    assert.equal(leaf(out, 0x80000000).ebx, 0, 'no AMD vendor echoed in the extended range');
  });

  test(`pvm-safe (${name}): max leaves match the leaves present`, () => {
    for (const tsc of [TSC_KHZ, 0]) {
      const out = build('pvm-safe', fixture, 0, 1, tsc);
      assert.equal(leaf(out, 0).eax, Math.max(...basicFns(out)));
      assert.equal(leaf(out, 0).eax, tsc ? 0x16 : 0xb);
      assert.equal(leaf(out, 0x80000000).eax, Math.max(...extFns(out)));
      assert.equal(leaf(out, 0x80000000).eax, 0x80000008);
      assert.equal(findEntry(out, 0x15) !== undefined, tsc !== 0);
      assert.equal(findEntry(out, 0xd), undefined, 'no XSAVE leaf');
      const keys = out.map((x) => `${x.function}.${x.index}`);
      assert.equal(new Set(keys).size, keys.length, 'no duplicate leaves');
      assert.deepEqual(
        keys,
        [...out]
          .sort((a, b) => a.function - b.function || a.index - b.index)
          .map((x) => `${x.function}.${x.index}`),
      );
    }
  });
}

test('pvm-safe (Intel host): SMAP, SMEP, POPCNT, XSAVE, AVX, PCID, TSC-deadline, CX16 are gone', () => {
  const out = build('pvm-safe', INTEL_HW);
  const l1 = leaf(out, 1);
  for (const [n, bit] of Object.entries({
    POPCNT: F1_ECX.POPCNT,
    XSAVE: F1_ECX.XSAVE,
    OSXSAVE: F1_ECX.OSXSAVE,
    AVX: F1_ECX.AVX,
    PCID: F1_ECX.PCID,
    TSC_DEADLINE: F1_ECX.TSC_DEADLINE,
    SSE4_2: F1_ECX.SSE4_2,
    CX16: F1_ECX.CX16,
  })) {
    assert.equal(l1.ecx & bit, 0, n);
  }
  assert.equal(l1.ecx, (F1_ECX.SSE3 | F1_ECX.X2APIC | F1_ECX.HYPERVISOR) >>> 0);
  assert.equal(l1.edx, 0x078bfbfd, 'qemu64 EDX (no VME, no HTT for one vCPU)');
  const l7 = leaf(out, 7);
  assert.equal(l7.ebx & (F7_EBX.SMEP | F7_EBX.SMAP | F7_EBX.INVPCID), 0);
  assert.deepEqual([l7.eax, l7.ebx, l7.ecx, l7.edx], [0, 0, 0, 0]);
  const l81 = leaf(out, 0x80000001);
  assert.equal(l81.ecx, 0x1, 'LAHF_LM only (no ABM/LZCNT)');
  assert.equal(l81.edx, 0x20100800, 'SYSCALL, NX, LM (no RDTSCP, no 1 GiB pages)');
  assert.equal(leaf(out, 0x80000008).eax, 0x302e, 'host physical width, 48-bit linear');
  assert.equal(leaf(out, 6).eax, 0x4, 'ARAT');
  assert.equal(leaf(out, 0x80000007).edx, 0x100, 'invariant TSC');
});

test('pvm-safe (PVM host): only what KVM supports survives the qemu64 mask', () => {
  const out = build('pvm-safe', PVM_AMD);
  const l1 = leaf(out, 1);
  assert.equal(l1.ecx, 0x80200000, 'x2APIC | hypervisor: PVM offers no SSE3; CX16 hidden');
  assert.equal(l1.edx, 0x078bfbfd);
  assert.equal(leaf(out, 0x80000001).ecx, 0x1);
  assert.equal(leaf(out, 0x80000001).edx, 0x20100800);
  assert.equal(leaf(out, 0x80000008).eax, 0x3030);
  const l2 = leaf(out, 4, 2);
  const l2Bytes = (((l2.ebx >>> 22) & 0x3ff) + 1) * ((l2.ebx & 0xfff) + 1) * (l2.ecx + 1);
  assert.equal(leaf(out, 0x80000006).ecx >>> 16, l2Bytes / 1024, 'both L2 descriptions agree');
  assert.equal(findEntry(out, 0x8000001d), undefined);
  assert.equal(findEntry(out, 0x8000001e), undefined);
});

test('pvm-safe: per-vCPU APIC ids and topology', () => {
  for (const count of [1, 2, 3]) {
    for (let i = 0; i < count; i++) {
      const out = build('pvm-safe', PVM_AMD, i, count);
      const l1 = leaf(out, 1);
      const addressable = count === 1 ? 1 : count === 2 ? 2 : 4;
      assert.equal(l1.ebx >>> 24, i, 'initial APIC id');
      assert.equal((l1.ebx >>> 16) & 0xff, addressable);
      assert.equal((l1.ebx >>> 8) & 0xff, 8, 'CLFLUSH line 64 bytes');
      assert.equal((l1.edx & F1_EDX.HTT) !== 0, count > 1);
      for (const sub of [0, 1, 2]) assert.equal(leaf(out, 0xb, sub).edx, i, 'x2APIC id');
      assert.equal(leaf(out, 0xb, 0).ebx, 1);
      assert.equal(leaf(out, 0xb, 0).ecx >>> 8, 1, 'SMT level');
      assert.equal(leaf(out, 0xb, 1).ebx, count);
      assert.equal(leaf(out, 0xb, 1).eax, count === 1 ? 0 : count === 2 ? 1 : 2);
      assert.equal(leaf(out, 0xb, 1).ecx >>> 8, 2, 'core level');
      assert.equal(leaf(out, 0xb, 2).ecx, 2, 'terminator');
      for (const sub of [0, 1, 2, 3]) {
        const c = leaf(out, 4, sub);
        assert.equal(c.eax >>> 26, addressable - 1, 'cores in package');
        const sharing = ((c.eax >>> 14) & 0xfff) + 1;
        assert.equal(sharing, sub === 3 ? addressable : 1);
      }
      assert.equal(leaf(out, 4, 4).eax, 0, 'cache list ends');
    }
  }
});

test('pvm-safe: TSC frequency through leaves 0x15/0x16 as Linux computes it', () => {
  for (const khz of [TSC_KHZ, 2400000, 2099999, 3000001, 800000, 4200000, 1]) {
    const out = build('pvm-safe', PVM_AMD, 0, 1, khz);
    const l15 = leaf(out, 0x15);
    assert.equal(l15.ecx, 1_000_000_000, 'crystal = the 1 GHz LAPIC bus clock');
    const crystalKhz = Math.floor(l15.ecx / 1000);
    assert.ok(crystalKhz * l15.ebx <= 0xffffffff, 'no u32 overflow in native_calibrate_tsc');
    assert.ok(l15.eax > 0 && l15.ebx > 0);
    const linux = Math.floor((crystalKhz * l15.ebx) / l15.eax);
    assert.ok(Math.abs(linux - khz) <= Math.max(1, khz * 1e-6), `${khz} kHz -> ${linux} kHz`);
    const l16 = leaf(out, 0x16);
    assert.equal(l16.eax, Math.round(khz / 1000));
    assert.equal(l16.ebx, l16.eax);
    assert.equal(l16.ecx, 1000);
  }
  assert.deepEqual(tscRatio(2400000), { numerator: 12, denominator: 5 });
});

test('host: KVM features kept, topology fixed per vCPU, paravirt leaves kept', () => {
  const before = JSON.stringify(INTEL_HW);
  const out = build('host', INTEL_HW, 1, 2);
  assert.equal(JSON.stringify(INTEL_HW), before, 'input not mutated');
  assert.equal(decodeVendor(leaf(out, 0)), 'GenuineIntel');
  assert.equal(leaf(out, 0).eax, 0x16);
  const l1 = leaf(out, 1);
  assert.equal(l1.eax, 0x00050654);
  assert.equal(l1.ecx, (INTEL_1_ECX | F1_ECX.HYPERVISOR) >>> 0);
  assert.equal(l1.ebx, 0x01020800);
  assert.equal(l1.edx, 0x178bfbff);
  assert.equal(leaf(out, 7).ebx, INTEL_7_EBX >>> 0, 'SMEP/SMAP/INVPCID/AVX2 kept');
  assert.equal(leaf(out, 0xd).eax, 0x2e7, 'XSAVE leaf kept');
  assert.equal(leaf(out, 0xa).eax, 0x07300402, 'vPMU as KVM reports it');
  assert.equal(leaf(out, 0x40000000).ebx, 0x4b4d564b, 'KVMKVMKVM kept');
  assert.equal(leaf(out, 0x40000001).eax, 0x01007afb);
  assert.equal(leaf(out, 0x15).ebx, 0xa8);
  for (const sub of [0, 1, 2]) assert.equal(leaf(out, 0xb, sub).edx, 1);
  assert.equal(leaf(out, 0xb, 1).ebx, 2);
  assert.equal(leaf(out, 4, 0).eax, (1 << 26) | 0x121);
  assert.equal(leaf(out, 4, 3).eax, (1 << 26) | (1 << 14) | 0x163);
  assert.equal(leaf(out, 4, 3).ecx, 0xbfff, 'cache geometry kept');
});

test('host on AMD: core counts in 0x80000008, 0x8000001D/E ids', () => {
  const out = build('host', PVM_AMD, 1, 2);
  assert.equal(decodeVendor(leaf(out, 0)), 'AuthenticAMD');
  assert.equal(leaf(out, 1).ebx >>> 24, 1);
  assert.equal(leaf(out, 0x80000008).ecx, 0x1001);
  assert.equal(leaf(out, 0x8000001e).eax, 1);
  assert.equal(leaf(out, 0x8000001e).ebx & 0xff, 1);
  assert.equal((leaf(out, 0x8000001d, 0).eax >>> 14) & 0xfff, 0);
  assert.equal((leaf(out, 0x8000001d, 3).eax >>> 14) & 0xfff, 1);
  assert.equal(leaf(out, 4, 0).eax, 0, "AMD's empty leaf 4 untouched");
  assert.equal(leaf(out, 0xb, 0).edx, 1, 'host APIC id from KVM replaced');
  assert.ok(findEntry(out, 0x40000000));
});

test('invalid options are rejected', () => {
  const bad: [CpuTemplateName, number, number, number][] = [
    ['host', 2, 2, 0],
    ['host', -1, 2, 0],
    ['host', 0, 0, 0],
    ['host', 0, 256, 0],
    ['pvm-safe', 0.5, 2, 0],
    ['pvm-safe', 0, 1, -1],
    ['pvm-safe', 0, 1, 1.5],
    ['bogus' as CpuTemplateName, 0, 1, 0],
  ];
  for (const [t, i, n, khz] of bad) {
    assert.throws(
      () => buildCpuid(t, PVM_AMD, { vcpuIndex: i, vcpuCount: n, tscKhz: khz }),
      (err: unknown) => isFaasnapError(err, 'INVALID_VM_CONFIG'),
    );
  }
});

test('detectCpuTemplate looks for the kvm_pvm module', () => {
  const dir = mkdtempSync(join(tmpdir(), 'faasnap-sysmod-'));
  try {
    mkdirSync(join(dir, 'kvm'));
    assert.equal(detectCpuTemplate(dir), 'host');
    mkdirSync(join(dir, 'kvm_pvm'));
    assert.equal(detectCpuTemplate(dir), 'pvm-safe');
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test('kernel parameters per template', () => {
  assert.deepEqual(pvmSafeKernelParams(), [
    'noxsave',
    'nosmap',
    'nosmep',
    'clearcpuid=smap,smep,popcnt,erms,fsrm',
    'noreplace-smp',
    'percpu_alloc=page',
    'nofsgsbase',
    'faasnap_pvm_syscall=1',
    'faasnap_tsc_jump=1',
  ]);
  assert.deepEqual(templateKernelParams('pvm-safe'), pvmSafeKernelParams());
  assert.deepEqual(templateKernelParams('host'), []);
});
