import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FaasnapError, isFaasnapError } from '../../../common/errors.js';
import { Bus } from '../../bus.js';
import type { GuestMemory } from '../../guest-memory.js';
import type { VirtioActivation, VirtioDevice } from './device.js';
import { VirtioMmioTransport } from './mmio.js';
import { MmioDriverMock, MockVirtqueue, createTestMemory } from './queue-mock.js';
import {
  MMIO_CONFIG_GENERATION,
  MMIO_DEVICE_FEATURES,
  MMIO_DEVICE_FEATURES_SEL,
  MMIO_DEVICE_ID,
  MMIO_DRIVER_FEATURES,
  MMIO_DRIVER_FEATURES_SEL,
  MMIO_INTERRUPT_ACK,
  MMIO_INTERRUPT_STATUS,
  MMIO_MAGIC,
  MMIO_QUEUE_DESC_HIGH,
  MMIO_QUEUE_DESC_LOW,
  MMIO_QUEUE_NOTIFY,
  MMIO_QUEUE_NUM,
  MMIO_QUEUE_NUM_MAX,
  MMIO_QUEUE_READY,
  MMIO_QUEUE_SEL,
  MMIO_SHM_LEN_LOW,
  MMIO_STATUS,
  MMIO_VENDOR_ID,
  MMIO_VENDOR_ID_REG,
  MMIO_VERSION_REG,
  MMIO_WINDOW_SIZE,
  STATUS_ACKNOWLEDGE,
  STATUS_DEVICE_NEEDS_RESET,
  STATUS_DRIVER,
  STATUS_DRIVER_OK,
  STATUS_FAILED,
  STATUS_FEATURES_OK,
  VIRTIO_F_VERSION_1,
  VIRTIO_RING_F_INDIRECT_DESC,
  VIRTQ_DESC_F_NEXT,
  featureBit,
} from './constants.js';

const ACK_DRIVER = STATUS_ACKNOWLEDGE | STATUS_DRIVER;
const UP_TO_FEATURES = ACK_DRIVER | STATUS_FEATURES_OK;
const RUNNING = UP_TO_FEATURES | STATUS_DRIVER_OK;

/** Copies each chain's readable bytes into its writable buffers (a loopback device). */
class EchoDevice implements VirtioDevice {
  readonly deviceType = 0x3f;
  readonly queueMaxSizes = [16, 8];
  readonly availFeatures = featureBit(0) | featureBit(3);
  readonly config = Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
  activation: VirtioActivation | undefined;
  activations = 0;
  resets = 0;
  processed: number[] = [];
  throwOnProcess: Error | undefined;
  savedToken = 'echo';

  readConfig(offset: number, data: Uint8Array): void {
    data.fill(0);
    data.set(this.config.subarray(offset, offset + data.length));
  }
  writeConfig(offset: number, data: Uint8Array): void {
    this.config.set(data.subarray(0, Math.max(0, this.config.length - offset)), offset);
  }
  activate(a: VirtioActivation): void {
    this.activation = a;
    this.activations++;
  }
  processQueue(index: number): void {
    this.processed.push(index);
    if (this.throwOnProcess) throw this.throwOnProcess;
    const a = this.activation!;
    const q = a.queues[index]!;
    let n = 0;
    for (let c = q.popAvail(a.memory); c; c = q.popAvail(a.memory)) {
      const buf = new Uint8Array(c.readableLength);
      c.gather(buf);
      q.addUsed(a.memory, c.head, c.scatter(buf));
      n++;
    }
    if (n > 0) a.interrupt.trigger();
  }
  reset(): void {
    this.activation = undefined;
    this.resets++;
  }
  save(): unknown {
    return { token: this.savedToken };
  }
  static restore(_args: object, state: unknown): EchoDevice {
    const d = new EchoDevice();
    if ((state as { token?: unknown } | null)?.token !== d.savedToken) {
      throw new FaasnapError('STATE_INVALID', 'echo token');
    }
    return d;
  }
}

/** Restores a transport around the EchoDevice restored from its part of `state`. */
function restoreEcho(
  mem: GuestMemory,
  irq: { trigger(): void },
  state: unknown,
): { t: VirtioMmioTransport; dev: EchoDevice } {
  let dev: EchoDevice | undefined;
  const t = VirtioMmioTransport.restore(
    { memory: mem, interrupt: irq, restoreDevice: (s) => (dev = EchoDevice.restore({}, s)) },
    state,
  );
  assert.equal(t.device, dev);
  return { t, dev: dev! };
}

interface Rig {
  mem: GuestMemory;
  dev: EchoDevice;
  t: VirtioMmioTransport;
  drv: MmioDriverMock;
  irq: { count: number; trigger(): void };
  q0: MockVirtqueue;
  q1: MockVirtqueue;
}

function rig(): Rig {
  const mem = createTestMemory(1 << 20);
  const dev = new EchoDevice();
  const irq = {
    count: 0,
    trigger() {
      this.count++;
    },
  };
  const t = new VirtioMmioTransport({ device: dev, memory: mem, interrupt: irq });
  const drv = new MmioDriverMock(t);
  const q0 = new MockVirtqueue(mem, {
    base: 0x1000,
    size: 16,
    dataBase: 0x10000,
    dataEnd: 0x80000,
  });
  const q1 = new MockVirtqueue(mem, { base: 0x4000, size: 8, dataBase: 0x80000 });
  return { mem, dev, t, drv, irq, q0, q1 };
}

test('identification registers', () => {
  const { drv } = rig();
  assert.equal(drv.read32(MMIO_MAGIC), 0x74726976);
  assert.equal(drv.read32(MMIO_VERSION_REG), 2);
  assert.equal(drv.read32(MMIO_DEVICE_ID), 0x3f);
  assert.equal(drv.read32(MMIO_VENDOR_ID_REG), MMIO_VENDOR_ID);
  assert.equal(drv.read32(MMIO_SHM_LEN_LOW), 0xffffffff);
  assert.equal(drv.status(), 0);
});

test('device features are offered through the selector, with the transport features', () => {
  const { drv, t } = rig();
  drv.write32(MMIO_DEVICE_FEATURES_SEL, 0);
  assert.equal(
    drv.read32(MMIO_DEVICE_FEATURES),
    (1 | 8 | (1 << VIRTIO_RING_F_INDIRECT_DESC)) >>> 0,
  );
  drv.write32(MMIO_DEVICE_FEATURES_SEL, 1);
  assert.equal(drv.read32(MMIO_DEVICE_FEATURES), 1); // VERSION_1 is bit 32
  drv.write32(MMIO_DEVICE_FEATURES_SEL, 2);
  assert.equal(drv.read32(MMIO_DEVICE_FEATURES), 0);
  drv.write32(MMIO_DEVICE_FEATURES_SEL, 0xffffffff);
  assert.equal(drv.read32(MMIO_DEVICE_FEATURES), 0);
  assert.equal(
    t.offeredFeatures,
    featureBit(0) |
      featureBit(3) |
      featureBit(VIRTIO_RING_F_INDIRECT_DESC) |
      featureBit(VIRTIO_F_VERSION_1),
  );
});

test('feature negotiation accepts a subset with VERSION_1 and refuses anything else', () => {
  const version1 = featureBit(VIRTIO_F_VERSION_1);
  const attempts: [string, bigint, boolean][] = [
    ['VERSION_1 only', version1, true],
    ['subset', version1 | featureBit(3), true],
    ['everything offered', version1 | featureBit(0) | featureBit(3) | featureBit(28), true],
    ['no VERSION_1 (legacy driver)', featureBit(0), false],
    ['not offered', version1 | featureBit(5), false],
    ['not offered, high word', version1 | featureBit(40), false],
  ];
  for (const [name, features, accepted] of attempts) {
    const { drv, t } = rig();
    drv.write32(MMIO_STATUS, STATUS_ACKNOWLEDGE);
    drv.write32(MMIO_STATUS, ACK_DRIVER);
    drv.writeDriverFeatures(features);
    assert.equal(t.ackedFeatures, features, name);
    drv.write32(MMIO_STATUS, UP_TO_FEATURES);
    assert.equal((drv.status() & STATUS_FEATURES_OK) !== 0, accepted, name);
  }
});

test('a nonzero ack above bit 63 makes FEATURES_OK fail', () => {
  const { drv } = rig();
  drv.write32(MMIO_STATUS, ACK_DRIVER);
  drv.writeDriverFeatures(featureBit(VIRTIO_F_VERSION_1));
  drv.write32(MMIO_DRIVER_FEATURES_SEL, 2);
  drv.write32(MMIO_DRIVER_FEATURES, 1);
  drv.write32(MMIO_STATUS, UP_TO_FEATURES);
  assert.equal(drv.status(), ACK_DRIVER);
});

test('driver features are writable only between DRIVER and FEATURES_OK', () => {
  const { drv, t } = rig();
  drv.writeDriverFeatures(featureBit(VIRTIO_F_VERSION_1));
  assert.equal(t.ackedFeatures, 0n);
  assert.equal(t.ignoredWrites, 2);
  drv.write32(MMIO_STATUS, ACK_DRIVER);
  drv.writeDriverFeatures(featureBit(VIRTIO_F_VERSION_1));
  drv.write32(MMIO_STATUS, UP_TO_FEATURES);
  drv.writeDriverFeatures(featureBit(VIRTIO_F_VERSION_1) | featureBit(0));
  assert.equal(t.ackedFeatures, featureBit(VIRTIO_F_VERSION_1));
});

test('status must follow the init sequence and never clear bits', () => {
  const { drv, t, dev } = rig();
  drv.write32(MMIO_STATUS, STATUS_DRIVER); // DRIVER without ACKNOWLEDGE
  assert.equal(drv.status(), 0);
  drv.write32(MMIO_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER_OK); // DRIVER_OK too early
  assert.equal(drv.status(), 0);
  drv.write32(MMIO_STATUS, STATUS_ACKNOWLEDGE);
  drv.write32(MMIO_STATUS, ACK_DRIVER);
  drv.write32(MMIO_STATUS, STATUS_ACKNOWLEDGE); // clearing DRIVER
  assert.equal(drv.status(), ACK_DRIVER);
  drv.write32(MMIO_STATUS, ACK_DRIVER | STATUS_DEVICE_NEEDS_RESET); // device-only bit
  assert.equal(drv.status(), ACK_DRIVER);
  drv.write32(MMIO_STATUS, ACK_DRIVER | STATUS_DRIVER_OK); // skips FEATURES_OK
  assert.equal(drv.status(), ACK_DRIVER);
  assert.equal(dev.activations, 0);
  assert.ok(t.ignoredWrites >= 3);
});

test('queue registers: sizes, selector, 64-bit addresses, ready', () => {
  const { drv, t, mem } = rig();
  drv.write32(MMIO_QUEUE_SEL, 0);
  assert.equal(drv.read32(MMIO_QUEUE_NUM_MAX), 16);
  drv.write32(MMIO_QUEUE_SEL, 1);
  assert.equal(drv.read32(MMIO_QUEUE_NUM_MAX), 8);
  drv.write32(MMIO_QUEUE_SEL, 2);
  assert.equal(drv.read32(MMIO_QUEUE_NUM_MAX), 0);
  assert.equal(drv.read32(MMIO_QUEUE_READY), 0);

  // Setup before FEATURES_OK is ignored.
  drv.write32(MMIO_QUEUE_SEL, 0);
  drv.write32(MMIO_QUEUE_NUM, 4);
  assert.equal(t.queues[0]!.size, 16);

  drv.write32(MMIO_STATUS, ACK_DRIVER);
  drv.writeDriverFeatures(featureBit(VIRTIO_F_VERSION_1));
  drv.write32(MMIO_STATUS, UP_TO_FEATURES);
  drv.write32(MMIO_QUEUE_SEL, 1);
  drv.write32(MMIO_QUEUE_NUM, 4);
  drv.write32(MMIO_QUEUE_DESC_LOW, 0x2345_6780);
  drv.write32(MMIO_QUEUE_DESC_HIGH, 0x1);
  const q1 = t.queues[1]!;
  assert.equal(q1.size, 4);
  assert.equal(q1.descTable, 0x1_2345_6780);
  drv.write32(MMIO_QUEUE_DESC_LOW, 0x100);
  assert.equal(q1.descTable, 0x1_0000_0100);
  drv.write32(MMIO_QUEUE_DESC_HIGH, 0);
  assert.equal(q1.descTable, 0x100);
  drv.write32(MMIO_QUEUE_DESC_HIGH, 0xffffffff);
  assert.equal(q1.descTable, Number.MAX_SAFE_INTEGER);
  drv.write32(MMIO_QUEUE_DESC_HIGH, 0);
  drv.write32(MMIO_QUEUE_DESC_LOW, 0x100);
  assert.equal(q1.descTable, 0x100);

  // A valid layout becomes ready and can no longer be changed.
  const mq = new MockVirtqueue(mem, { base: 0x8000, size: 8 });
  drv.setUpQueue(0, mq);
  assert.equal(drv.read32(MMIO_QUEUE_READY), 1);
  drv.write32(MMIO_QUEUE_NUM, 2);
  assert.equal(t.queues[0]!.size, 8);
  drv.write32(MMIO_QUEUE_READY, 0);
  assert.equal(drv.read32(MMIO_QUEUE_READY), 0);
  assert.equal(drv.status() & STATUS_DEVICE_NEEDS_RESET, 0);
});

test('a queue made ready with a bad layout sets DEVICE_NEEDS_RESET', () => {
  const { drv, t } = rig();
  drv.write32(MMIO_STATUS, ACK_DRIVER);
  drv.writeDriverFeatures(featureBit(VIRTIO_F_VERSION_1));
  drv.write32(MMIO_STATUS, UP_TO_FEATURES);
  drv.write32(MMIO_QUEUE_SEL, 0);
  drv.write32(MMIO_QUEUE_NUM, 16);
  drv.write32(MMIO_QUEUE_DESC_LOW, 0x1008); // misaligned
  assert.doesNotThrow(() => drv.write32(MMIO_QUEUE_READY, 1));
  assert.equal(drv.read32(MMIO_QUEUE_READY), 0);
  assert.equal(drv.status(), UP_TO_FEATURES | STATUS_DEVICE_NEEDS_RESET);
  assert.ok(isFaasnapError(t.lastError, 'VIRTQUEUE_INVALID'));
  // No config interrupt before DRIVER_OK; DRIVER_OK is now refused.
  drv.write32(MMIO_STATUS, RUNNING);
  assert.equal(t.running, false);
});

test('DRIVER_OK activates; notifications by MMIO write and by notify() reach the device', () => {
  const { drv, t, dev, irq, q0, q1 } = rig();
  q0.addChain([{ data: Uint8Array.of(9) }, { len: 1, write: true }]);
  t.notify(0); // before DRIVER_OK: dropped
  drv.write32(MMIO_QUEUE_NOTIFY, 0);
  assert.equal(t.droppedNotifications, 2);
  assert.deepEqual(dev.processed, []);

  const features = drv.init([q0, q1]);
  assert.equal(features, t.offeredFeatures);
  assert.equal(drv.status(), RUNNING);
  assert.equal(dev.activations, 1);
  assert.equal(dev.activation?.ackedFeatures, t.offeredFeatures);
  assert.equal(dev.activation?.queues.length, 2);
  assert.equal(t.running, true);

  const posted = q0.addChain([{ data: Uint8Array.of(1, 2, 3) }, { len: 3, write: true }]);
  q0.kick(); // QueueNotify register write through the BusDevice interface
  assert.deepEqual(dev.processed, [0]);
  assert.deepEqual(q0.takeUsed().at(-1), { id: posted.head, len: 3 });
  assert.deepEqual(q0.read(posted.buffers[1]!.gpa, 3), Uint8Array.of(1, 2, 3));
  assert.equal(irq.count, 1);
  assert.equal(drv.read32(MMIO_INTERRUPT_STATUS), 1);
  drv.write32(MMIO_INTERRUPT_ACK, 1);
  assert.equal(drv.read32(MMIO_INTERRUPT_STATUS), 0);

  q1.addChain([{ data: Uint8Array.of(7) }, { len: 1, write: true }]);
  t.notify(1); // the ioeventfd path
  assert.deepEqual(dev.processed, [0, 1]);
  assert.equal(q1.takeUsed().length, 1);
  assert.equal(irq.count, 2);

  t.notify(2);
  t.notify(-1);
  t.notify(0.5);
  assert.equal(t.droppedNotifications, 5);
});

test('wrong-width and unaligned register accesses are ignored and counted', () => {
  const { t, drv } = rig();
  const two = Uint8Array.of(0xaa, 0xbb);
  t.read(MMIO_MAGIC, two);
  assert.deepEqual(two, Uint8Array.of(0, 0));
  const eight = new Uint8Array(8).fill(0xcc);
  t.read(MMIO_MAGIC, eight);
  assert.deepEqual(eight, new Uint8Array(8));
  const four = new Uint8Array(4).fill(0xcc);
  t.read(MMIO_MAGIC + 1, four);
  assert.deepEqual(four, new Uint8Array(4));
  t.write(MMIO_STATUS, Uint8Array.of(STATUS_ACKNOWLEDGE)); // 1-byte status write
  assert.equal(drv.status(), 0);
  t.write(MMIO_STATUS + 2, Uint8Array.of(1, 0, 0, 0));
  assert.equal(drv.status(), 0);
  t.read(0x0e0, four); // undefined register
  t.write(0x0e0, four);
  assert.equal(t.invalidAccesses, 7);
});

test('config space is passed through at 0x100 with any width', () => {
  const { t, dev, drv } = rig();
  assert.deepEqual(drv.readConfig(0, 8), Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8));
  assert.deepEqual(drv.readConfig(6, 1), Uint8Array.of(7));
  assert.deepEqual(drv.readConfig(6, 4), Uint8Array.of(7, 8, 0, 0));
  t.write(0x102, Uint8Array.of(0xee, 0xff));
  assert.deepEqual(dev.config.subarray(0, 4), Uint8Array.of(1, 2, 0xee, 0xff));
  assert.equal(t.invalidAccesses, 0);
});

test('config change notifications bump ConfigGeneration and set bit 1', () => {
  const { t, drv, irq } = rig();
  assert.equal(drv.read32(MMIO_CONFIG_GENERATION), 0);
  t.signalConfigChange();
  assert.equal(drv.read32(MMIO_CONFIG_GENERATION), 1);
  assert.equal(drv.read32(MMIO_INTERRUPT_STATUS), 2);
  assert.equal(irq.count, 1);
  t.signalUsedBuffer();
  assert.equal(drv.read32(MMIO_INTERRUPT_STATUS), 3);
  drv.write32(MMIO_INTERRUPT_ACK, 2);
  assert.equal(drv.read32(MMIO_INTERRUPT_STATUS), 1);
});

test('a malformed chain sets DEVICE_NEEDS_RESET instead of throwing; reset recovers', () => {
  const { t, drv, dev, irq, q0, q1, mem } = rig();
  drv.init([q0, q1]);
  const gpa = q0.alloc(4);
  q0.writeDescriptor(0, { addr: gpa, len: 4, flags: VIRTQ_DESC_F_NEXT, next: 0 });
  q0.publish(0);
  assert.doesNotThrow(() => q0.kick());
  assert.equal(drv.status(), RUNNING | STATUS_DEVICE_NEEDS_RESET);
  assert.ok(isFaasnapError(t.lastError, 'VIRTQUEUE_INVALID'));
  assert.equal(t.running, false);
  // The driver is told through a config change interrupt.
  assert.equal(drv.read32(MMIO_INTERRUPT_STATUS) & 2, 2);
  assert.equal(irq.count, 1);
  // Processing has stopped.
  q0.kick();
  t.notify(1);
  assert.deepEqual(dev.processed, [0]);
  // Further status writes other than reset are ignored.
  drv.write32(MMIO_STATUS, RUNNING);
  assert.equal(drv.status(), RUNNING | STATUS_DEVICE_NEEDS_RESET);

  drv.write32(MMIO_STATUS, 0);
  assert.equal(drv.status(), 0);
  assert.equal(drv.read32(MMIO_INTERRUPT_STATUS), 0);
  assert.equal(dev.resets, 2); // init() starts with a reset too
  assert.equal(t.queues[0]!.ready, false);
  assert.equal(t.ackedFeatures, 0n);

  // A fresh start with fresh rings works again.

  const r0 = new MockVirtqueue(mem, {
    base: 0x20000,
    size: 16,
    dataBase: 0x30000,
    dataEnd: 0x40000,
  });
  const r1 = new MockVirtqueue(mem, {
    base: 0x40000,
    size: 8,
    dataBase: 0x50000,
    dataEnd: 0x60000,
  });
  drv.init([r0, r1]);
  r0.addChain([{ data: Uint8Array.of(5) }, { len: 1, write: true }]);
  r0.kick();
  assert.equal(r0.takeUsed().length, 1);
  assert.equal(dev.activations, 2);
});

test('any exception from the device is contained the same way', () => {
  const { t, drv, dev, q0, q1 } = rig();
  drv.init([q0, q1]);
  dev.throwOnProcess = new Error('backend bug');
  assert.doesNotThrow(() => drv.write32(MMIO_QUEUE_NOTIFY, 1));
  assert.equal(drv.status() & STATUS_DEVICE_NEEDS_RESET, STATUS_DEVICE_NEEDS_RESET);
  assert.equal((t.lastError as Error).message, 'backend bug');
});

test('FAILED from the driver stops the device', () => {
  const { t, drv, dev, q0, q1 } = rig();
  drv.init([q0, q1]);
  drv.write32(MMIO_STATUS, RUNNING | STATUS_FAILED);
  assert.equal(drv.status(), RUNNING | STATUS_FAILED | STATUS_DEVICE_NEEDS_RESET);
  q0.addChain([{ data: Uint8Array.of(1) }]);
  q0.kick();
  assert.deepEqual(dev.processed, []);
  assert.equal(t.running, false);
});

test('the transport works behind a Bus at its MMIO window', () => {
  const { t } = rig();
  const bus = new Bus();
  const base = 0xd000_0000;
  bus.insert(t, base, MMIO_WINDOW_SIZE);
  const b = new Uint8Array(4);
  bus.read(base + MMIO_MAGIC, b);
  assert.equal(new DataView(b.buffer).getUint32(0, true), 0x74726976);
  bus.write(base + MMIO_STATUS, Uint8Array.of(STATUS_ACKNOWLEDGE, 0, 0, 0));
  assert.equal(t.status, STATUS_ACKNOWLEDGE);
});

test('save/restore brings back a running device that keeps processing', () => {
  const { t, drv, dev, irq, mem, q0, q1 } = rig();
  drv.init([q0, q1]);
  q0.addChain([{ data: Uint8Array.of(1) }, { len: 1, write: true }]);
  q0.kick();
  drv.write32(MMIO_QUEUE_SEL, 1);
  const saved: unknown = JSON.parse(JSON.stringify(t.save()));

  const { t: t2, dev: dev2 } = restoreEcho(mem, irq, saved);
  assert.equal(t2.status, RUNNING);
  assert.equal(t2.running, true);
  assert.equal(dev2.activations, 1);
  assert.equal(t2.ackedFeatures, t.ackedFeatures);
  assert.equal(t2.interruptStatus, 1);
  assert.equal(t2.queues[0]!.nextAvail, 1);
  const drv2 = new MmioDriverMock(t2);
  assert.equal(drv2.read32(MMIO_QUEUE_NUM_MAX), 8); // QueueSel survived
  assert.equal(drv2.read32(MMIO_QUEUE_READY), 1);
  assert.deepEqual(t2.save(), saved);

  // A request posted "during" the snapshot is picked up by kick().
  const posted = q0.addChain([{ data: Uint8Array.of(4, 2) }, { len: 2, write: true }]);
  t2.kick();
  assert.deepEqual(dev2.processed, [0, 1]);
  assert.deepEqual(q0.takeUsed(), [
    { id: 0, len: 1 },
    { id: posted.head, len: 2 },
  ]);
  assert.equal(dev.processed.length, 1);
});

test('restore refuses mismatched or inconsistent state', () => {
  const { t, drv, mem, irq, q0, q1 } = rig();
  drv.init([q0, q1]);
  const good = t.save();
  const cases: [string, unknown][] = [
    ['not an object', null],
    ['wrong device type', { ...good, deviceType: 2 }],
    ['offered features differ', { ...good, offeredFeatures: '1' }],
    ['features not a decimal', { ...good, driverFeatures: '0x10' }],
    ['features above 64 bits', { ...good, driverFeatures: '99999999999999999999' }],
    ['unknown status bits', { ...good, status: RUNNING | 0x20 }],
    ['status skips a step', { ...good, status: STATUS_ACKNOWLEDGE | STATUS_FEATURES_OK }],
    ['unoffered feature accepted', { ...good, driverFeatures: String(1n << 50n) }],
    ['interrupt status bit 2', { ...good, interruptStatus: 4 }],
    ['queue count', { ...good, queues: good.queues.slice(0, 1) }],
    ['bad queue', { ...good, queues: [good.queues[0], { bogus: true }] }],
    ['device state', { ...good, device: { token: 'other' } }],
    ['extra field', { ...good, extra: 1 }],
  ];
  for (const [name, state] of cases) {
    assert.throws(
      () => restoreEcho(mem, irq, state),
      (e: unknown) => isFaasnapError(e, 'STATE_INVALID'),
      name,
    );
  }
});

test('restore validates the transport state before it restores the device', () => {
  const { t, drv, mem, irq, q0, q1 } = rig();
  drv.init([q0, q1]);
  const good = t.save();
  // None of these needs the device to be refused: its backend is never opened.
  const cases: unknown[] = [
    null,
    { ...good, driverFeatures: '0x10' },
    { ...good, driverFeatures: '99999999999999999999' },
    { ...good, status: RUNNING | 0x20 },
    { ...good, status: STATUS_ACKNOWLEDGE | STATUS_FEATURES_OK },
    { ...good, interruptStatus: 4 },
    { ...good, extra: 1 },
  ];
  for (const state of cases) {
    let restored = 0;
    assert.throws(
      () =>
        VirtioMmioTransport.restore(
          {
            memory: mem,
            interrupt: irq,
            restoreDevice: (s) => {
              restored++;
              return EchoDevice.restore({}, s);
            },
          },
          state,
        ),
      (e: unknown) => isFaasnapError(e, 'STATE_INVALID'),
    );
    assert.equal(restored, 0, JSON.stringify(state));
  }
});

test('a device marked for reset is restored stopped', () => {
  const { t, drv, mem, irq, q0, q1 } = rig();
  drv.init([q0, q1]);
  drv.write32(MMIO_STATUS, RUNNING | STATUS_FAILED);
  const { t: t2, dev: dev2 } = restoreEcho(mem, irq, t.save());
  assert.equal(t2.running, false);
  assert.equal(dev2.activations, 0);
  assert.equal(t2.status, RUNNING | STATUS_FAILED | STATUS_DEVICE_NEEDS_RESET);
});
