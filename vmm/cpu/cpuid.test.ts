import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  brandEntries,
  decodeVendor,
  encodeVendor,
  entry,
  fixAmdAddressSizesTopology,
  fixLeaf1Topology,
  fixLeaf4Topology,
  idBits,
  isHypervisorLeaf,
  normalizeEntries,
  x2apicTopologyLeaves,
} from './cpuid.js';

test('vendor strings encode into EBX, EDX, ECX little-endian', () => {
  assert.deepEqual(encodeVendor('GenuineIntel'), {
    ebx: 0x756e6547,
    edx: 0x49656e69,
    ecx: 0x6c65746e,
  });
  assert.equal(decodeVendor({ ebx: 0x68747541, edx: 0x69746e65, ecx: 0x444d4163 }), 'AuthenticAMD');
});

test('idBits is the APIC-id field width', () => {
  assert.deepEqual([1, 2, 3, 4, 5, 8, 9, 255].map(idBits), [0, 1, 2, 2, 3, 3, 4, 8]);
});

test('brand string fills 0x80000002..4 in EAX..EDX order', () => {
  const e = brandEntries('abcdEFGH');
  assert.deepEqual(
    e.map((x) => x.function),
    [0x80000002, 0x80000003, 0x80000004],
  );
  assert.equal(e[0]!.eax, 0x64636261);
  assert.equal(e[0]!.ebx, 0x48474645);
  assert.equal(e[0]!.ecx, 0);
  assert.equal(e[2]!.edx, 0);
});

test('leaf 1 fix-up sets APIC id, addressable ids, HTT and hypervisor, keeps the rest', () => {
  const raw = entry(1, 0, { ebx: 0xff3f0801, ecx: 0x1, edx: 0x10000001 });
  const one = fixLeaf1Topology(raw, { vcpuIndex: 0, vcpuCount: 1 });
  assert.equal(one.ebx, 0x00010801);
  assert.equal(one.edx, 0x00000001, 'HTT cleared for one vCPU');
  assert.equal(one.ecx, 0x80000001);
  const third = fixLeaf1Topology(raw, { vcpuIndex: 2, vcpuCount: 3 });
  assert.equal(third.ebx, 0x02040801);
  assert.equal(third.edx, 0x10000001);
  assert.equal(raw.ebx, 0xff3f0801, 'input untouched');
});

test('leaf 4 fix-up: per-core caches unshared, L3 shared by the package', () => {
  const l1 = entry(4, 0, { eax: 0x1c004121 });
  const l3 = entry(4, 3, { eax: 0x1c03c163 });
  const t = { vcpuIndex: 1, vcpuCount: 3 };
  assert.equal(fixLeaf4Topology(l1, t).eax, (3 << 26) | 0x121);
  assert.equal(fixLeaf4Topology(l3, t).eax, ((3 << 26) | (3 << 14) | 0x163) >>> 0);
  assert.equal(fixLeaf4Topology(entry(4, 4), t).eax, 0, 'null subleaf stays null');
});

test('x2APIC topology leaves describe SMT and core levels', () => {
  const [smt, core, end] = x2apicTopologyLeaves(0xb, { vcpuIndex: 5, vcpuCount: 6 });
  assert.deepEqual(smt, { function: 0xb, index: 0, flags: 1, eax: 0, ebx: 1, ecx: 0x100, edx: 5 });
  assert.deepEqual(core, { function: 0xb, index: 1, flags: 1, eax: 3, ebx: 6, ecx: 0x201, edx: 5 });
  assert.deepEqual(end, { function: 0xb, index: 2, flags: 1, eax: 0, ebx: 0, ecx: 2, edx: 5 });
});

test('AMD core count in 0x80000008 ECX', () => {
  const e = fixAmdAddressSizesTopology(entry(0x80000008, 0, { ecx: 0x00037001 }), {
    vcpuIndex: 0,
    vcpuCount: 4,
  });
  assert.equal(e.ecx, 0x00032003);
});

test('normalizeEntries sorts and forces u32', () => {
  const out = normalizeEntries([
    entry(0x80000000, 0),
    { function: 7, index: 1, flags: 1, eax: -1, ebx: 0, ecx: 0, edx: 0 },
    entry(7, 0),
  ]);
  assert.deepEqual(
    out.map((e) => [e.function, e.index]),
    [
      [7, 0],
      [7, 1],
      [0x80000000, 0],
    ],
  );
  assert.equal(out[1]!.eax, 0xffffffff);
  assert.ok(isHypervisorLeaf(0x40000000) && isHypervisorLeaf(0x400000ff));
  assert.ok(!isHypervisorLeaf(0x40000100) && !isHypervisorLeaf(0x3fffffff));
});
