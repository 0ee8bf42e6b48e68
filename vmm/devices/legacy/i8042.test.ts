import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isFaasnapError } from '../../../common/errors.js';
import { Bus } from '../../bus.js';
import { I8042, I8042_PORT_BASE, I8042_PORT_LEN } from './i8042.js';

const DATA = 0x60;
const CMD = 0x64;

function setup(): { bus: Bus; dev: I8042; resets: () => number; kbdIrqs: () => number } {
  let resets = 0;
  let irqs = 0;
  const dev = new I8042({
    onReset: () => {
      resets++;
    },
    kbdInterrupt: {
      trigger: () => {
        irqs++;
      },
    },
  });
  const bus = new Bus();
  bus.insert(dev, I8042_PORT_BASE, I8042_PORT_LEN);
  return { bus, dev, resets: () => resets, kbdIrqs: () => irqs };
}

const inb = (bus: Bus, port: number): number => {
  const b = new Uint8Array(1);
  bus.read(port, b);
  return b[0]!;
};
const outb = (bus: Bus, port: number, v: number): void => {
  bus.write(port, Uint8Array.of(v));
};

/** Linux's i8042_command: wait for IBF clear, write, then read answers while OBF is set. */
function command(bus: Bus, cmd: number, param?: number, answers = 0): number[] {
  assert.equal(inb(bus, CMD) & 0x02, 0, 'input buffer never full');
  outb(bus, CMD, cmd);
  if (param !== undefined) outb(bus, DATA, param);
  const out: number[] = [];
  for (let i = 0; i < answers; i++) {
    assert.equal(inb(bus, CMD) & 0x01, 1, `answer ${i} to 0x${cmd.toString(16)} is ready`);
    out.push(inb(bus, DATA));
  }
  return out;
}

test('0xFE on port 0x64 pulses reset; other commands do not', () => {
  const { bus, dev, resets } = setup();
  outb(bus, CMD, 0xff); // pulse nothing
  outb(bus, CMD, 0x20);
  assert.equal(resets(), 0);
  outb(bus, CMD, 0xfe);
  assert.equal(resets(), 1);
  outb(bus, CMD, 0xf0); // pulses all lines, reset included
  assert.equal(resets(), 2);
  assert.equal(dev.resetRequests, 2);
});

test('Linux reboot=k: kb_wait sees IBF clear, then 0xFE resets', () => {
  const { bus, resets } = setup();
  for (let i = 0; i < 10; i++) {
    assert.equal(inb(bus, CMD) & 0x02, 0);
    outb(bus, CMD, 0xfe);
  }
  assert.equal(resets(), 10);
});

test('command byte: read 0x20, write 0x60, with SYS mirrored in status', () => {
  const { bus, dev } = setup();
  assert.deepEqual(command(bus, 0x20, undefined, 1), [0x65]);
  const status = inb(bus, CMD);
  assert.equal(status & 0x01, 0, 'OBF cleared by reading data');
  assert.equal(status & 0x04, 0x04, 'SYS flag');
  assert.equal(status & 0x08, 0x08, 'last write was a command');
  assert.equal(status & 0x10, 0x10, 'not keylocked');
  command(bus, 0x60, 0x30);
  assert.equal(dev.commandByte, 0x30);
  assert.equal(inb(bus, CMD) & 0x08, 0, 'last write was data');
  assert.equal(inb(bus, CMD) & 0x04, 0, 'SYS follows the command byte');
  assert.deepEqual(command(bus, 0x20, undefined, 1), [0x30]);
});

test('output port: 0xD0 reads it, 0xD1 writes it, reset line low resets, A20 commands', () => {
  const { bus, dev, resets } = setup();
  assert.deepEqual(command(bus, 0xd0, undefined, 1), [0x03]);
  command(bus, 0xdd);
  assert.equal(dev.a20Enabled, false);
  command(bus, 0xdf);
  assert.equal(dev.a20Enabled, true);
  command(bus, 0xd1, 0xdf); // A20 on, reset high: no reset
  assert.equal(resets(), 0);
  assert.deepEqual(command(bus, 0xd0, undefined, 1), [0xdf]);
  command(bus, 0xd1, 0xfe); // reset line driven low
  assert.equal(resets(), 1);
});

test("Linux's probe finds the controller and no AUX port without timeouts", () => {
  const { bus, dev } = setup();
  // i8042_flush: nothing pending.
  assert.equal(inb(bus, CMD) & 0x01, 0);
  // i8042_controller_selftest.
  assert.deepEqual(command(bus, 0xaa, undefined, 1), [0x55]);
  // i8042_controller_init: two equal CTR reads, then write it back without KBDINT.
  const a = command(bus, 0x20, undefined, 1)[0]!;
  const b = command(bus, 0x20, undefined, 1)[0]!;
  assert.equal(a, b);
  command(bus, 0x60, (a | 0x10) & ~0x01);
  assert.equal(dev.commandByte, 0x74);
  // i8042_check_aux: AUX_LOOP answers but not as AUX data, so Linux runs AUX_TEST...
  outb(bus, CMD, 0xd3);
  outb(bus, DATA, 0x5a);
  const st = inb(bus, CMD);
  assert.equal(st & 0x01, 1, 'an answer, not a timeout');
  assert.equal(st & 0x20, 0, 'not flagged as AUX data');
  // ...whose answer (replacing the unread byte) says "no device".
  assert.deepEqual(command(bus, 0xa9, undefined, 1), [0x02]);
  assert.equal(inb(bus, CMD) & 0x01, 0);
  // Keyboard interface test and enable/disable bits.
  assert.deepEqual(command(bus, 0xab, undefined, 1), [0x00]);
  command(bus, 0xae);
  assert.equal(dev.commandByte & 0x10, 0);
  command(bus, 0xa7);
  assert.equal(dev.commandByte & 0x20, 0x20);
  command(bus, 0xa8);
  assert.equal(dev.commandByte & 0x20, 0);
});

test('bytes for the absent keyboard are dropped; IRQ 1 follows CTR.KBDINT', () => {
  const { bus, dev, kbdIrqs } = setup();
  outb(bus, DATA, 0xf2); // keyboard "get id"
  assert.equal(inb(bus, CMD) & 0x01, 0);
  assert.equal(dev.droppedDeviceBytes, 1);
  assert.equal(kbdIrqs(), 0);
  command(bus, 0xd2, 0x1c); // KBDINT on by default: the fake key byte raises IRQ 1
  assert.equal(kbdIrqs(), 1);
  assert.equal(inb(bus, DATA), 0x1c);
  command(bus, 0x60, 0x64); // KBDINT off
  command(bus, 0x20, undefined, 1);
  assert.equal(kbdIrqs(), 1);
});

test('ports 0x61..0x63 inside the range are not modelled', () => {
  const { bus, resets } = setup();
  assert.equal(inb(bus, 0x61), 0xff);
  outb(bus, 0x61, 0x00);
  assert.equal(resets(), 0);
});

test('save/restore round trip, including a pending parameter byte', () => {
  const { bus, dev } = setup();
  command(bus, 0x60, 0x47);
  command(bus, 0xdd);
  outb(bus, CMD, 0x20); // answer left unread
  outb(bus, CMD, 0xd1); // parameter still to come
  const state = JSON.parse(JSON.stringify(dev.save())) as unknown;
  let resets = 0;
  const copy = new Bus();
  const restored = I8042.restore(
    {
      onReset: () => {
        resets++;
      },
    },
    state,
  );
  copy.insert(restored, I8042_PORT_BASE, I8042_PORT_LEN);
  assert.deepEqual(restored.save(), dev.save());
  assert.equal(inb(copy, CMD) & 0x09, 0x09, 'OBF and CMD survive');
  outb(copy, DATA, 0x00); // completes 0xD1 with the reset line low
  assert.equal(resets, 1);
  assert.equal(inb(copy, DATA), 0x47);
});

test('restore rejects invalid state', () => {
  const { dev } = setup();
  const good = dev.save();
  for (const bad of [
    { ...good, pending: 0x42 },
    { ...good, ctr: -1 },
    { ...good, outFull: 'yes' },
    { ...good, more: true },
    'state',
  ]) {
    assert.throws(
      () => I8042.restore({ onReset: () => {} }, bad),
      (e: unknown) => isFaasnapError(e, 'STATE_INVALID'),
    );
  }
});
