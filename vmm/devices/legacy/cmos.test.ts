import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isFaasnapError } from '../../../common/errors.js';
import { Cmos } from './cmos.js';

// 2024-02-29 13:05:09 UTC, a Thursday.
const T = Date.UTC(2024, 1, 29, 13, 5, 9);

function reg(dev: Cmos, index: number): number {
  dev.write(0, Uint8Array.of(index));
  const b = new Uint8Array(1);
  dev.read(1, b);
  return b[0]!;
}

function set(dev: Cmos, index: number, value: number): void {
  dev.write(0, Uint8Array.of(index));
  dev.write(1, Uint8Array.of(value));
}

test('reads the host time in BCD, 24-hour, as PC firmware sets it up', () => {
  const dev = new Cmos({ now: () => T });
  assert.equal(reg(dev, 0x0a) & 0x80, 0, 'never update-in-progress');
  assert.equal(reg(dev, 0x0b), 0x02);
  assert.equal(reg(dev, 0x0d), 0x80, 'valid RAM and time');
  assert.deepEqual(
    [0x00, 0x02, 0x04, 0x06, 0x07, 0x08, 0x09, 0x32].map((r) => reg(dev, r)),
    [0x09, 0x05, 0x13, 0x05, 0x29, 0x02, 0x24, 0x20],
  );
});

test('binary and 12-hour modes follow register B', () => {
  const dev = new Cmos({ now: () => T });
  set(dev, 0x0b, 0x06); // binary, 24-hour
  assert.deepEqual([reg(dev, 0x00), reg(dev, 0x04), reg(dev, 0x09)], [9, 13, 24]);
  set(dev, 0x0b, 0x04); // binary, 12-hour: 1 PM
  assert.equal(reg(dev, 0x04), 0x80 | 1);
  set(dev, 0x0b, 0x00); // BCD, 12-hour
  assert.equal(reg(dev, 0x04), 0x81);
});

test('the NMI bit of the index port is ignored; RAM is storage; clock writes are ignored', () => {
  const dev = new Cmos({ now: () => T });
  set(dev, 0x80 | 0x40, 0xab);
  assert.equal(reg(dev, 0x40), 0xab);
  set(dev, 0x00, 0x59);
  assert.equal(reg(dev, 0x00), 0x09, 'the guest cannot move the clock');
  set(dev, 0x0a, 0xa6);
  assert.equal(reg(dev, 0x0a), 0x26, 'UIP stays clear');
  const port = new Uint8Array(1);
  dev.read(0, port);
  assert.equal(port[0], 0xff, 'the index port reads as open bus');
});

test('save/restore keeps RAM and index; bad state is refused', () => {
  const dev = new Cmos({ now: () => T });
  set(dev, 0x40, 0x12);
  dev.write(0, Uint8Array.of(0x41));
  const copy = Cmos.restore({ now: () => T }, JSON.parse(JSON.stringify(dev.save())));
  assert.deepEqual(copy.save(), dev.save());
  assert.equal(reg(copy, 0x40), 0x12);
  assert.throws(
    () => Cmos.restore({}, { index: 0, ram: [1, 2] }),
    (e) => isFaasnapError(e, 'STATE_INVALID'),
  );
});
