import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isFaasnapError } from '../common/errors.js';
import { GuestMemory } from './guest-memory.js';

const oob = (e: unknown): boolean => isFaasnapError(e, 'GUEST_MEMORY_ACCESS');

// Two regions with a hole between them, listed out of order on purpose.
function twoRegions(): { mem: GuestMemory; low: Uint8Array; high: Uint8Array } {
  const low = new Uint8Array(0x1000);
  const high = new Uint8Array(0x2000);
  const mem = new GuestMemory([
    { gpa: 0x10000, bytes: high },
    { gpa: 0, bytes: low },
  ]);
  return { mem, low, high };
}

test('regions are sorted, sized, and must not overlap', () => {
  const { mem } = twoRegions();
  assert.deepEqual(
    mem.regions.map((r) => r.gpa),
    [0, 0x10000],
  );
  assert.equal(mem.size, 0x3000);
  assert.throws(
    () =>
      new GuestMemory([
        { gpa: 0, bytes: new Uint8Array(0x1001) },
        { gpa: 0x1000, bytes: new Uint8Array(0x1000) },
      ]),
    (e: unknown) => isFaasnapError(e, 'INVALID_VM_CONFIG'),
  );
  new GuestMemory([
    { gpa: 0, bytes: new Uint8Array(0x1000) },
    { gpa: 0x1000, bytes: new Uint8Array(0x1000) },
  ]);
});

test('accesses at the edges of a region are allowed, one byte past is not', () => {
  const { mem, low, high } = twoRegions();
  mem.writeU8(0xfff, 0xab);
  assert.equal(low[0xfff], 0xab);
  mem.writeU32(0xffc, 0x01020304);
  assert.equal(mem.readU32(0xffc), 0x01020304);
  mem.writeU8(0x10000, 0x11);
  mem.writeU64(0x11ff8, 0x1122334455667788n);
  assert.equal(high[0], 0x11);
  assert.equal(high[0x1fff], 0x11);
  assert.equal(mem.contains(0, 0x1000), true);
  assert.equal(mem.contains(0x11fff, 1), true);
  assert.equal(mem.contains(0, 0x1001), false);
  assert.throws(() => mem.readU8(0x1000), oob, 'first byte of the hole');
  assert.throws(() => mem.readU32(0xffd), oob, 'runs one byte past the end');
  assert.throws(() => mem.readU64(0x11ff9), oob, 'runs past the high region');
  assert.throws(() => mem.readU8(0x12000), oob, 'just past the last region');
  assert.throws(() => mem.readU8(0xffff), oob, 'just before the high region');
  assert.throws(() => mem.slice(0, 0x1001), oob);
});

test('an access spanning two regions is rejected even when they are adjacent', () => {
  const a = new Uint8Array(0x1000);
  const b = new Uint8Array(0x1000);
  const mem = new GuestMemory([
    { gpa: 0, bytes: a },
    { gpa: 0x1000, bytes: b },
  ]);
  assert.throws(() => mem.readU16(0xfff), oob);
  assert.throws(() => mem.write(0xffe, new Uint8Array(4)), oob);
  assert.throws(() => mem.read(0xff0, new Uint8Array(0x20)), oob);
  assert.equal(a[0xfff], 0, 'nothing written by the rejected access');
  assert.equal(b[0], 0);
  assert.equal(mem.contains(0xfff, 2), false);
});

test('hostile addresses and lengths are rejected, not wrapped', () => {
  const { mem } = twoRegions();
  for (const [gpa, len] of [
    [-1, 1],
    [0, -1],
    [0.5, 1],
    [Number.NaN, 1],
    [2 ** 53, 1],
    [Number.MAX_SAFE_INTEGER, 2],
  ]) {
    assert.throws(() => mem.slice(gpa!, len!), oob, `${gpa}/${len}`);
  }
});

test('accessors are little-endian and slices alias guest memory', () => {
  const { mem, low } = twoRegions();
  mem.writeU16(0x10, 0xbeef);
  assert.deepEqual([...low.subarray(0x10, 0x12)], [0xef, 0xbe]);
  mem.writeU32(0x20, 0xdeadbeef);
  assert.deepEqual([...low.subarray(0x20, 0x24)], [0xef, 0xbe, 0xad, 0xde]);
  assert.equal(mem.readU32(0x20), 0xdeadbeef);
  mem.writeU64(0x30, 0x0102030405060708n);
  assert.deepEqual([...low.subarray(0x30, 0x38)], [8, 7, 6, 5, 4, 3, 2, 1]);
  assert.equal(mem.readU64(0x30), 0x0102030405060708n);
  assert.equal(mem.readU16(0x31), 0x0607);
  low.set([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 0x40);
  assert.equal(mem.readU64(0x40), 0xffffffffffffffffn);
  assert.equal(mem.readU32(0x40), 0xffffffff, 'unsigned');
  const s = mem.slice(0x50, 4);
  s[0] = 0x7f;
  assert.equal(low[0x50], 0x7f);
  mem.write(0x60, Uint8Array.of(1, 2, 3));
  const out = new Uint8Array(3);
  mem.read(0x60, out);
  assert.deepEqual([...out], [1, 2, 3]);
});

test('regions that are views into a larger buffer are addressed from their own start', () => {
  const backing = new Uint8Array(0x3000);
  const mem = new GuestMemory([{ gpa: 0x100000, bytes: backing.subarray(0x1000, 0x2000) }]);
  mem.writeU32(0x100000, 0xcafef00d);
  assert.equal(new DataView(backing.buffer).getUint32(0x1000, true), 0xcafef00d);
  assert.equal(mem.readU32(0x100000), 0xcafef00d);
  assert.throws(() => mem.readU8(0x101000), oob);
});
