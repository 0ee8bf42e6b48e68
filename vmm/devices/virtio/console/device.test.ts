import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isFaasnapError } from '../../../../common/errors.js';
import { VirtioMmioTransport } from '../mmio.js';
import { MmioDriverMock, MockVirtqueue, createTestMemory } from '../queue-mock.js';
import {
  STATUS_DEVICE_NEEDS_RESET,
  VIRTIO_F_VERSION_1,
  VIRTIO_ID_CONSOLE,
  VIRTIO_RING_F_INDIRECT_DESC,
  featureBit,
} from '../constants.js';
import { type ConsoleBackend, VirtioConsole, type VirtioConsoleOptions } from './device.js';

/** A backend in memory: `feed` plays the host client, `output` collects what the guest sent. */
class MemoryBackend implements ConsoleBackend {
  output: number[] = [];
  private input = Buffer.alloc(0);
  private listener: (() => void) | undefined;

  feed(bytes: Uint8Array | string): void {
    this.input = Buffer.concat([this.input, Buffer.from(bytes)]);
    this.listener?.();
  }
  get pendingInput(): number {
    return this.input.length;
  }
  readInto(dst: Uint8Array): number {
    const n = Math.min(dst.length, this.input.length);
    dst.set(this.input.subarray(0, n));
    this.input = this.input.subarray(n);
    return n;
  }
  write(data: Uint8Array): void {
    this.output.push(...data);
  }
  setInputListener(listener: (() => void) | undefined): void {
    this.listener = listener;
  }
  get hasListener(): boolean {
    return this.listener !== undefined;
  }
}

function attach(backend = new MemoryBackend()) {
  const mem = createTestMemory(1 << 20);
  const dev = new VirtioConsole({ backend, queueSize: 16 });
  const irq = {
    count: 0,
    trigger() {
      this.count++;
    },
  };
  const t = new VirtioMmioTransport({ device: dev, memory: mem, interrupt: irq });
  const drv = new MmioDriverMock(t);
  const rx = new MockVirtqueue(mem, { size: 16, base: 0, dataBase: 0x10000, dataEnd: 0x80000 });
  const tx = new MockVirtqueue(mem, { size: 16, base: 0x1000, dataBase: 0x80000 });
  const features = drv.init([rx, tx]);
  return { mem, dev, irq, t, drv, rx, tx, features, backend };
}

test('device identity: console, two queues, no device features, zero config', () => {
  const { dev, features, drv } = attach();
  assert.equal(dev.deviceType, VIRTIO_ID_CONSOLE);
  assert.equal(dev.queueMaxSizes.length, 2);
  assert.equal(features, featureBit(VIRTIO_F_VERSION_1) | featureBit(VIRTIO_RING_F_INDIRECT_DESC));
  assert.deepEqual(drv.readConfig(0, 12), new Uint8Array(12));
  assert.deepEqual(drv.readConfig(64, 4), new Uint8Array(4));
});

test('transmit: every chain goes to the backend in order and is returned at once', () => {
  const { backend, tx, irq } = attach();
  const a = tx.addChain([{ data: Buffer.from('hello ') }, { data: Buffer.from('guest') }]);
  const b = tx.addIndirectChain([{ data: Buffer.from('!') }]);
  tx.kick();
  assert.equal(Buffer.from(backend.output).toString(), 'hello guest!');
  assert.deepEqual(tx.takeUsed(), [
    { id: a.head, len: 0 },
    { id: b.head, len: 0 },
  ]);
  assert.equal(irq.count, 1);
});

test('receive: input waits for buffers, fills them, and arrives by itself once buffers exist', () => {
  const { backend, rx, dev, irq, mem } = attach();
  backend.feed('abcdefghij');
  // No receive buffers yet: the input stays with the backend.
  assert.equal(backend.pendingInput, 10);
  assert.equal(irq.count, 0);

  const c1 = rx.addChain([{ len: 4, write: true }]);
  const c2 = rx.addChain([
    { len: 3, write: true },
    { len: 8, write: true },
  ]);
  rx.kick();
  const used = rx.takeUsed();
  assert.deepEqual(used, [
    { id: c1.head, len: 4 },
    { id: c2.head, len: 6 },
  ]);
  assert.equal(Buffer.from(mem.slice(c1.buffers[0]!.gpa, 4)).toString(), 'abcd');
  assert.equal(Buffer.from(mem.slice(c2.buffers[0]!.gpa, 3)).toString(), 'efg');
  assert.equal(Buffer.from(mem.slice(c2.buffers[1]!.gpa, 3)).toString(), 'hij');
  assert.equal(irq.count, 1);

  // A posted buffer is not consumed while there is nothing to put in it...
  const c3 = rx.addChain([{ len: 16, write: true }]);
  rx.kick();
  assert.deepEqual(rx.takeUsed(), []);
  // ...and host input goes straight in, through the transport (no guest notification).
  backend.feed('xyz');
  assert.deepEqual(rx.takeUsed(), [{ id: c3.head, len: 3 }]);
  assert.equal(irq.count, 2);
  assert.equal(dev.stats.rxBytes, 13);
});

test('a malformed receive queue found on host input marks the device for reset', () => {
  const { backend, rx, t } = attach();
  rx.setAvailIdx(100); // 100 entries "available" in a 16-entry queue
  backend.feed('x');
  assert.ok(t.status & STATUS_DEVICE_NEEDS_RESET);
  assert.ok(isFaasnapError(t.lastError, 'VIRTQUEUE_INVALID'));
  // Further input is dropped by the stopped transport, not thrown.
  backend.feed('y');
  assert.equal(backend.pendingInput, 2);
});

test('reset unregisters the input listener; input before activation just waits', () => {
  const backend = new MemoryBackend();
  backend.feed('early');
  const { drv } = attach(backend);
  assert.ok(backend.hasListener);
  assert.equal(backend.pendingInput, 5);
  drv.write32(0x070, 0); // Status = 0: device reset
  assert.equal(backend.hasListener, false);
});

test('save/restore: state is validated, and pending input reaches the restored guest on kick', () => {
  const { t, rx, backend, mem } = attach();
  const c = rx.addChain([{ len: 8, write: true }]);
  rx.kick();
  const state = JSON.parse(JSON.stringify(t.save())) as ReturnType<VirtioMmioTransport['save']>;

  const backend2 = new MemoryBackend();
  backend2.feed('restored');
  const t2 = VirtioMmioTransport.restore(
    {
      memory: mem,
      interrupt: { trigger() {} },
      restoreDevice: (s) => VirtioConsole.restore({ backend: backend2, queueSize: 16 }, s),
    },
    state,
  );
  assert.ok(t2.running);
  t2.kick();
  assert.deepEqual(rx.takeUsed(), [{ id: c.head, len: 8 }]);
  assert.equal(Buffer.from(mem.slice(c.buffers[0]!.gpa, 8)).toString(), 'restored');
  assert.equal(backend.pendingInput, 0);

  for (const bad of [{}, { multiport: true }, { multiport: false, extra: 1 }, null]) {
    assert.throws(
      () => VirtioConsole.restore({ backend: new MemoryBackend() }, bad),
      (e) => isFaasnapError(e, 'STATE_INVALID'),
    );
  }
});

test('a throwing backend does not stall the guest', () => {
  const backend = new MemoryBackend();
  backend.write = () => {
    throw new Error('boom');
  };
  const { tx, dev, t } = attach(backend);
  const c = tx.addChain([{ data: Buffer.from('x') }]);
  tx.kick();
  assert.deepEqual(tx.takeUsed(), [{ id: c.head, len: 0 }]);
  assert.equal(dev.stats.backendErrors, 1);
  assert.ok(t.running);
});

/** A driver-side control message (struct virtio_console_control [+ name]). */
function control(id: number, event: number, value: number): Buffer {
  const m = Buffer.alloc(8);
  m.writeUInt32LE(id, 0);
  m.writeUInt16LE(event, 4);
  m.writeUInt16LE(value, 6);
  return m;
}

function attachMultiport(name = 'faasnap.agent') {
  const backend = new MemoryBackend();
  const mem = createTestMemory(1 << 20);
  const dev = new VirtioConsole({ backend, queueSize: 16, portName: name });
  const t = new VirtioMmioTransport({ device: dev, memory: mem, interrupt: { trigger() {} } });
  const drv = new MmioDriverMock(t);
  const q = (base: number, dataBase: number, dataEnd: number) =>
    new MockVirtqueue(mem, { size: 16, base, dataBase, dataEnd });
  const rx = q(0x0000, 0x10000, 0x30000);
  const tx = q(0x1000, 0x30000, 0x50000);
  const crx = q(0x2000, 0x50000, 0x70000);
  const ctx = q(0x3000, 0x70000, 0x90000);
  const features = drv.init([rx, tx, crx, ctx]);
  return { backend, mem, dev, t, drv, rx, tx, crx, ctx, features };
}

/** The control messages the device has put into the driver's posted buffers. */
function received(crx: MockVirtqueue, chains: { head: number; buffers: { gpa: number }[] }[]) {
  return crx.takeUsed().map((u) => {
    const c = chains.find((x) => x.head === u.id)!;
    const m = Buffer.from(crx.read(c.buffers[0]!.gpa, u.len));
    return {
      id: m.readUInt32LE(0),
      event: m.readUInt16LE(4),
      value: m.readUInt16LE(6),
      name: m.subarray(8).toString(),
    };
  });
}

test('named port: MULTIPORT with one port, announced through the control queues', () => {
  const { dev, drv, features, rx, tx, crx, ctx, backend, mem, t } = attachMultiport();
  assert.equal(dev.queueMaxSizes.length, 4);
  assert.ok(features & featureBit(1), 'MULTIPORT offered and accepted');
  assert.equal(Buffer.from(drv.readConfig(4, 4)).readUInt32LE(0), 1, 'max_nr_ports');
  assert.deepEqual(drv.readConfig(0, 4), new Uint8Array(4), 'no terminal size');

  // The driver posts control buffers and says DEVICE_READY: the device adds port 0.
  const bufs = Array.from({ length: 4 }, () => crx.addChain([{ len: 256, write: true }]));
  crx.kick();
  ctx.addChain([{ data: control(0xffffffff, 0, 1) }]);
  ctx.kick();
  assert.deepEqual(received(crx, bufs), [{ id: 0, event: 1, value: 1, name: '' }]);
  // PORT_READY: the device names the port and says the host side is open.
  ctx.addChain([{ data: control(0, 3, 1) }]);
  ctx.kick();
  assert.deepEqual(received(crx, bufs), [
    { id: 0, event: 7, value: 1, name: 'faasnap.agent' },
    { id: 0, event: 6, value: 1, name: '' },
  ]);
  // The guest opens the port.
  ctx.addChain([{ data: control(0, 6, 1) }]);
  ctx.kick();
  assert.equal(dev.guestOpen, true);
  assert.equal(ctx.takeUsed().length, 3, 'every control chain is returned');

  // Data uses port 0's queues, as without MULTIPORT.
  tx.addChain([{ data: Buffer.from('ping') }]);
  tx.kick();
  assert.equal(Buffer.from(backend.output).toString(), 'ping');
  const c = rx.addChain([{ len: 8, write: true }]);
  rx.kick();
  backend.feed('pong');
  assert.deepEqual(rx.takeUsed(), [{ id: c.head, len: 4 }]);

  // State round trip keeps the shape and the open port; the other shape refuses it.
  const saved = JSON.parse(JSON.stringify(t.save())) as ReturnType<VirtioMmioTransport['save']>;
  const restore = (opts: VirtioConsoleOptions): VirtioMmioTransport =>
    VirtioMmioTransport.restore(
      {
        memory: mem,
        interrupt: { trigger() {} },
        restoreDevice: (s) => VirtioConsole.restore(opts, s),
      },
      saved,
    );
  const t2 = restore({ backend: new MemoryBackend(), queueSize: 16, portName: 'faasnap.agent' });
  assert.equal((t2.device as VirtioConsole).guestOpen, true);
  assert.throws(
    () => restore({ backend: new MemoryBackend() }),
    (e) => isFaasnapError(e, 'STATE_INVALID'),
  );
});

test('named port: control messages wait for driver buffers; bad names are refused', () => {
  const { crx, ctx } = attachMultiport();
  ctx.addChain([{ data: control(0xffffffff, 0, 1) }]);
  ctx.kick();
  assert.deepEqual(crx.takeUsed(), [], 'no buffer posted yet');
  const b = crx.addChain([{ len: 64, write: true }]);
  crx.kick();
  assert.deepEqual(received(crx, [b]), [{ id: 0, event: 1, value: 1, name: '' }]);
  for (const name of ['', 'has space', 'x'.repeat(65)])
    assert.throws(
      () => new VirtioConsole({ backend: new MemoryBackend(), portName: name }),
      (e) => isFaasnapError(e, 'INVALID_VM_CONFIG'),
    );
});
