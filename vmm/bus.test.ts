import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isFaasnapError } from '../common/errors.js';
import { Bus, type BusDevice } from './bus.js';

/** Records accesses; reads answer with the offset so routing is visible in the data. */
class Probe implements BusDevice {
  readonly reads: [number, number][] = [];
  readonly writes: [number, number[]][] = [];
  constructor(private readonly tag: number) {}
  read(offset: number, data: Uint8Array): void {
    this.reads.push([offset, data.length]);
    data.fill(this.tag + offset);
  }
  write(offset: number, data: Uint8Array): void {
    this.writes.push([offset, [...data]]);
  }
}

const conflict = (e: unknown): boolean => isFaasnapError(e, 'BUS_CONFLICT');

test('overlapping ranges are rejected, touching ones are fine', () => {
  const bus = new Bus();
  bus.insert(new Probe(0), 0x3f8, 8);
  assert.throws(() => bus.insert(new Probe(0), 0x3f8, 8), conflict, 'same range');
  assert.throws(() => bus.insert(new Probe(0), 0x3f0, 9), conflict, 'overlaps the first byte');
  assert.throws(() => bus.insert(new Probe(0), 0x3ff, 1), conflict, 'overlaps the last byte');
  assert.throws(() => bus.insert(new Probe(0), 0x3fa, 2), conflict, 'inside');
  assert.throws(() => bus.insert(new Probe(0), 0x300, 0x200), conflict, 'around');
  bus.insert(new Probe(0), 0x3f0, 8); // ends right before 0x3f8
  bus.insert(new Probe(0), 0x400, 1); // starts right after 0x3ff
});

test('invalid ranges are rejected', () => {
  const bus = new Bus();
  for (const [base, len] of [
    [0, 0],
    [-1, 4],
    [0x1000, -4],
    [0.5, 4],
    [Number.MAX_SAFE_INTEGER + 1, 1],
  ] as const) {
    assert.throws(() => bus.insert(new Probe(0), base, len), conflict, `${base}/${len}`);
  }
});

test('accesses are routed by range with offsets relative to the base', () => {
  const bus = new Bus();
  const a = new Probe(0x10);
  const b = new Probe(0x80);
  bus.insert(b, 0xd000_0000, 0x1000);
  bus.insert(a, 0x60, 5);
  const d = new Uint8Array(1);
  assert.equal(bus.read(0x64, d), true);
  assert.equal(d[0], 0x14);
  assert.equal(bus.write(0x60, Uint8Array.of(0xfe)), true);
  const w = new Uint8Array(4);
  assert.equal(bus.read(0xd000_0ffc, w), true);
  assert.deepEqual(
    [...w],
    [0x80 + 0xffc, 0x80 + 0xffc, 0x80 + 0xffc, 0x80 + 0xffc].map((x) => x & 0xff),
  );
  bus.write(0xd000_0010, Uint8Array.of(1, 2, 3, 4));
  assert.deepEqual(a.reads, [[4, 1]]);
  assert.deepEqual(a.writes, [[0, [0xfe]]]);
  assert.deepEqual(b.reads, [[0xffc, 4]]);
  assert.deepEqual(b.writes, [[0x10, [1, 2, 3, 4]]]);
});

test('unclaimed reads return all-ones, unclaimed writes are dropped; both counted', () => {
  const bus = new Bus();
  const dev = new Probe(0);
  bus.insert(dev, 0x100, 4);
  const d = new Uint8Array(4).fill(0x12);
  assert.equal(bus.read(0x200, d), false);
  assert.deepEqual([...d], [0xff, 0xff, 0xff, 0xff]);
  // An access that starts inside a range but runs past its end is not that device's.
  const straddle = new Uint8Array(2);
  assert.equal(bus.read(0x103, straddle), false);
  assert.deepEqual([...straddle], [0xff, 0xff]);
  assert.equal(bus.write(0x0ff, Uint8Array.of(1, 2)), false);
  assert.equal(bus.write(0x104, Uint8Array.of(1)), false);
  assert.equal(bus.unclaimedReads, 2);
  assert.equal(bus.unclaimedWrites, 2);
  assert.deepEqual(dev.reads, []);
  assert.deepEqual(dev.writes, []);
  assert.equal(bus.read(0x103, new Uint8Array(1)), true, 'the last byte is claimed');
});
