import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IOAPIC_ADDR, LAPIC_ADDR, MPTABLE_ADDR, buildMpTable } from './mptable.js';

const sum = (b: Uint8Array): number => b.reduce((s, x) => (s + x) & 0xff, 0);

/** Reads the table back as Linux's mpparse.c would. */
function parse(b: Uint8Array, addr = MPTABLE_ADDR) {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  assert.equal(Buffer.from(b.subarray(0, 4)).toString('ascii'), '_MP_');
  assert.equal(sum(b.subarray(0, 16)), 0, 'floating pointer checksum');
  assert.equal(v.getUint8(8), 1);
  assert.equal(v.getUint8(9), 4);
  assert.equal(v.getUint8(11), 0, 'feature 1: a config table is present');
  const off = v.getUint32(4, true) - addr;
  assert.equal(off, 16);
  assert.equal(Buffer.from(b.subarray(off, off + 4)).toString('ascii'), 'PCMP');
  const len = v.getUint16(off + 4, true);
  assert.equal(off + len, b.length);
  assert.equal(sum(b.subarray(off, off + len)), 0, 'config table checksum');
  assert.equal(v.getUint32(off + 36, true), LAPIC_ADDR);
  const count = v.getUint16(off + 34, true);
  const cpus: { id: number; flags: number }[] = [];
  const ioapics: { id: number; addr: number }[] = [];
  const irqs: { type: number; irq: number; apic: number; pin: number }[] = [];
  const lints: { type: number; apic: number; pin: number }[] = [];
  let buses = 0;
  let p = off + 44;
  for (let i = 0; i < count; i++) {
    const type = v.getUint8(p);
    if (type === 0) {
      assert.ok(v.getUint8(p + 2) !== 0, 'LAPIC version set');
      cpus.push({ id: v.getUint8(p + 1), flags: v.getUint8(p + 3) });
      p += 20;
      continue;
    }
    if (type === 1) {
      assert.equal(Buffer.from(b.subarray(p + 2, p + 8)).toString('ascii'), 'ISA   ');
      buses++;
    } else if (type === 2) ioapics.push({ id: v.getUint8(p + 1), addr: v.getUint32(p + 4, true) });
    else if (type === 3)
      irqs.push({
        type: v.getUint8(p + 1),
        irq: v.getUint8(p + 5),
        apic: v.getUint8(p + 6),
        pin: v.getUint8(p + 7),
      });
    else if (type === 4)
      lints.push({ type: v.getUint8(p + 1), apic: v.getUint8(p + 6), pin: v.getUint8(p + 7) });
    else assert.fail(`unknown entry type ${type}`);
    p += 8;
  }
  assert.equal(p, b.length, 'entry count matches the table length');
  return { cpus, ioapics, irqs, lints, buses };
}

test('one enabled processor per vCPU, the first one bootstrap, ids = vCPU index', () => {
  for (const n of [1, 2, 8]) {
    const t = parse(buildMpTable({ vcpus: n }));
    assert.deepEqual(
      t.cpus,
      Array.from({ length: n }, (_, i) => ({ id: i, flags: i === 0 ? 3 : 1 })),
    );
  }
});

test('one I/O APIC after the CPUs; ISA IRQ n on pin n as KVM routes it; LINT0/1', () => {
  const t = parse(buildMpTable({ vcpus: 2 }));
  assert.equal(t.buses, 1);
  assert.deepEqual(t.ioapics, [{ id: 2, addr: IOAPIC_ADDR }]);
  const expected = [0, 1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
  assert.deepEqual(
    t.irqs,
    expected.map((irq) => ({ type: 0, irq, apic: 2, pin: irq })),
  );
  assert.deepEqual(t.lints, [
    { type: 3, apic: 0xff, pin: 0 },
    { type: 1, apic: 0xff, pin: 1 },
  ]);
});

test('the table fits the reserved KiB; bad vCPU counts are rejected', () => {
  assert.ok(buildMpTable({ vcpus: 8 }).length <= 0x400);
  assert.throws(() => buildMpTable({ vcpus: 0 }));
  assert.throws(() => buildMpTable({ vcpus: 1.5 }));
});
