import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { isFaasnapError } from '../../../../common/errors.js';
import { VirtioMmioTransport } from '../mmio.js';
import { MmioDriverMock, MockVirtqueue, createTestMemory } from '../queue-mock.js';
import {
  type BlockBackend,
  FileBlockBackend,
  VirtioBlock,
  type VirtioBlockOptions,
} from './device.js';
import {
  STATUS_DEVICE_NEEDS_RESET,
  VIRTIO_BLK_F_FLUSH,
  VIRTIO_BLK_F_RO,
  VIRTIO_BLK_F_SEG_MAX,
  VIRTIO_BLK_S_IOERR,
  VIRTIO_BLK_S_OK,
  VIRTIO_BLK_S_UNSUPP,
  VIRTIO_BLK_T_DISCARD,
  VIRTIO_BLK_T_FLUSH,
  VIRTIO_BLK_T_GET_ID,
  VIRTIO_BLK_T_IN,
  VIRTIO_BLK_T_OUT,
  VIRTIO_F_VERSION_1,
  VIRTIO_ID_BLOCK,
  VIRTQ_DESC_F_NEXT,
  featureBit,
} from '../constants.js';

const SECTORS = 128;
const DISK = SECTORS * 512;
let dir = '';

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'faasnap-blk-test-'));
});
after(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

/** A disk image whose byte i is (i * 7 + i >> 9) & 0xff, so every sector differs. */
function makeImage(name: string, size = DISK): string {
  const p = path.join(dir, name);
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = (i * 7 + (i >> 9)) & 0xff;
  fs.writeFileSync(p, b);
  return p;
}

function header(type: number, sector: bigint | number): Uint8Array {
  const h = new Uint8Array(16);
  const v = new DataView(h.buffer);
  v.setUint32(0, type, true);
  v.setBigUint64(8, BigInt(sector), true);
  return h;
}

interface Disk {
  t: VirtioMmioTransport;
  dev: VirtioBlock;
  drv: MmioDriverMock;
  q: MockVirtqueue;
  irq: { count: number; trigger(): void };
  features: bigint;
}

function attach(backend: BlockBackend, opts: { readOnly?: boolean; wanted?: bigint } = {}): Disk {
  const mem = createTestMemory(1 << 20);
  const dev = new VirtioBlock({
    backend,
    readOnly: opts.readOnly ?? false,
    serial: 'faasnap-disk0',
    queueSize: 16,
  });
  const irq = {
    count: 0,
    trigger() {
      this.count++;
    },
  };
  const t = new VirtioMmioTransport({ device: dev, memory: mem, interrupt: irq });
  const drv = new MmioDriverMock(t);
  const q = new MockVirtqueue(mem, { size: 16 });
  const features = drv.init([q], opts.wanted);
  return { t, dev, drv, q, irq, features };
}

/** Posts one request, kicks, and returns the used length and the status byte. */
function run(
  d: Disk,
  h: Uint8Array,
  data: { out?: Uint8Array; inLen?: number } = {},
): { len: number; status: number; data: Uint8Array } {
  const bufs = [{ data: h }];
  if (data.out) bufs.push({ data: data.out });
  const inLen = data.inLen ?? 0;
  const chain = d.q.addChain([
    ...bufs,
    ...(inLen > 0 ? [{ len: inLen, write: true }] : []),
    { len: 1, write: true },
  ]);
  d.q.kick();
  const used = d.q.takeUsed();
  assert.equal(used.length, 1);
  assert.equal(used[0]!.id, chain.head);
  const st = chain.buffers.at(-1)!;
  const dataBuf = inLen > 0 ? chain.buffers.at(-2)! : undefined;
  return {
    len: used[0]!.len,
    status: d.q.read(st.gpa, 1)[0]!,
    data: dataBuf ? d.q.read(dataBuf.gpa, inLen) : new Uint8Array(0),
  };
}

test('config space and features of a writable disk', () => {
  const backend = new FileBlockBackend(makeImage('config.img'), { writable: true });
  try {
    const d = attach(backend);
    assert.equal(d.dev.deviceType, VIRTIO_ID_BLOCK);
    const cfg = d.drv.readConfig(0, 36);
    const v = new DataView(cfg.buffer);
    assert.equal(v.getBigUint64(0, true), BigInt(SECTORS));
    assert.equal(v.getUint32(12, true), 14); // seg_max = queue size - 2
    assert.equal(v.getUint16(34, true), 1);
    assert.deepEqual(d.drv.readConfig(200, 4), new Uint8Array(4));
    assert.equal(
      d.features,
      featureBit(VIRTIO_F_VERSION_1) |
        featureBit(28) |
        featureBit(VIRTIO_BLK_F_SEG_MAX) |
        featureBit(VIRTIO_BLK_F_FLUSH),
    );
  } finally {
    backend.close();
  }
});

test('read, write, flush and GET_ID round trip through transport and queue', () => {
  const file = makeImage('rw.img');
  const original = fs.readFileSync(file);
  const backend = new FileBlockBackend(file, { writable: true });
  try {
    const d = attach(backend);

    const rd = run(d, header(VIRTIO_BLK_T_IN, 2), { inLen: 1024 });
    assert.equal(rd.status, VIRTIO_BLK_S_OK);
    assert.equal(rd.len, 1025);
    assert.deepEqual(rd.data, new Uint8Array(original.subarray(1024, 2048)));
    assert.equal(d.irq.count, 1);

    const payload = new Uint8Array(1024).map((_, i) => (i * 13 + 1) & 0xff);
    const wr = run(d, header(VIRTIO_BLK_T_OUT, 5), { out: payload });
    assert.equal(wr.status, VIRTIO_BLK_S_OK);
    assert.equal(wr.len, 1);
    const after = fs.readFileSync(file);
    assert.deepEqual(new Uint8Array(after.subarray(5 * 512, 7 * 512)), payload);
    assert.deepEqual(after.subarray(0, 5 * 512), original.subarray(0, 5 * 512));
    assert.deepEqual(after.subarray(7 * 512), original.subarray(7 * 512));

    // Read back what was written, through the device.
    const back = run(d, header(VIRTIO_BLK_T_IN, 5), { inLen: 1024 });
    assert.deepEqual(back.data, payload);

    const fl = run(d, header(VIRTIO_BLK_T_FLUSH, 0));
    assert.equal(fl.status, VIRTIO_BLK_S_OK);
    assert.equal(fl.len, 1);

    const id = run(d, header(VIRTIO_BLK_T_GET_ID, 0), { inLen: 20 });
    assert.equal(id.status, VIRTIO_BLK_S_OK);
    assert.equal(id.len, 21);
    const expected = new Uint8Array(20);
    expected.set(Buffer.from('faasnap-disk0'));
    assert.deepEqual(id.data, expected);

    assert.deepEqual(d.dev.stats, { ok: 5, ioerr: 0, unsupp: 0 });
    assert.equal(d.irq.count, 5);
  } finally {
    backend.close();
  }
});

test('a request split over many descriptors and an indirect table', () => {
  const file = makeImage('split.img');
  const original = fs.readFileSync(file);
  const backend = new FileBlockBackend(file, { writable: true });
  try {
    const d = attach(backend);
    // Header split in two, data in three uneven writable pieces, status alone.
    const h = header(VIRTIO_BLK_T_IN, 10);
    const chain = d.q.addIndirectChain([
      { data: h.subarray(0, 5) },
      { data: h.subarray(5) },
      { len: 100, write: true },
      { len: 824, write: true },
      { len: 100, write: true },
      { len: 1, write: true },
    ]);
    d.q.kick();
    assert.deepEqual(d.q.takeUsed(), [{ id: chain.head, len: 1025 }]);
    const got = Buffer.concat(chain.buffers.slice(2, 5).map((b) => d.q.read(b.gpa, b.len)));
    assert.deepEqual(got, original.subarray(10 * 512, 12 * 512));
    assert.equal(d.q.read(chain.buffers[5]!.gpa, 1)[0], VIRTIO_BLK_S_OK);

    // A write whose data and status share the chain with odd splits.
    const payload = new Uint8Array(512).fill(0x5a);
    const w = d.q.addChain([
      { data: header(VIRTIO_BLK_T_OUT, 127) },
      { data: payload.subarray(0, 1) },
      { data: payload.subarray(1) },
      { len: 1, write: true },
    ]);
    d.q.kick();
    assert.deepEqual(d.q.takeUsed(), [{ id: w.head, len: 1 }]);
    assert.deepEqual(new Uint8Array(fs.readFileSync(file).subarray(127 * 512)), payload);
  } finally {
    backend.close();
  }
});

test('requests beyond the capacity fail with IOERR and change nothing', () => {
  const file = makeImage('range.img');
  const original = fs.readFileSync(file);
  const backend = new FileBlockBackend(file, { writable: true });
  try {
    const d = attach(backend);
    const cases: [string, Uint8Array, { out?: Uint8Array; inLen?: number }][] = [
      ['read crossing the end', header(VIRTIO_BLK_T_IN, SECTORS - 1), { inLen: 1024 }],
      ['read past the end', header(VIRTIO_BLK_T_IN, SECTORS), { inLen: 512 }],
      ['read at a huge sector', header(VIRTIO_BLK_T_IN, 2n ** 60n), { inLen: 512 }],
      ['read at the largest sector', header(VIRTIO_BLK_T_IN, 2n ** 64n - 1n), { inLen: 512 }],
      [
        'write crossing the end',
        header(VIRTIO_BLK_T_OUT, SECTORS - 1),
        { out: new Uint8Array(1024) },
      ],
      ['write at a huge sector', header(VIRTIO_BLK_T_OUT, 2n ** 55n), { out: new Uint8Array(512) }],
      ['read not a sector multiple', header(VIRTIO_BLK_T_IN, 0), { inLen: 100 }],
      ['write not a sector multiple', header(VIRTIO_BLK_T_OUT, 0), { out: new Uint8Array(700) }],
    ];
    for (const [name, h, data] of cases) {
      const r = run(d, h, data);
      assert.equal(r.status, VIRTIO_BLK_S_IOERR, name);
      assert.equal(r.len, 1, name);
      if (data.inLen) assert.deepEqual(r.data, new Uint8Array(data.inLen), name);
    }
    // A zero-length read exactly at the end is inside the disk.
    assert.equal(run(d, header(VIRTIO_BLK_T_IN, SECTORS)).status, VIRTIO_BLK_S_OK);
    assert.deepEqual(fs.readFileSync(file), original);
    assert.equal(d.dev.stats.ioerr, cases.length);
    assert.equal(d.t.status & STATUS_DEVICE_NEEDS_RESET, 0);
  } finally {
    backend.close();
  }
});

test('unsupported types, short headers and missing status buffers', () => {
  const backend = new FileBlockBackend(makeImage('odd.img'), { writable: true });
  try {
    const d = attach(backend);
    const discard = run(d, header(VIRTIO_BLK_T_DISCARD, 0), { out: new Uint8Array(16) });
    assert.equal(discard.status, VIRTIO_BLK_S_UNSUPP);
    assert.equal(run(d, header(0x1234, 0)).status, VIRTIO_BLK_S_UNSUPP);

    const short = run(d, header(VIRTIO_BLK_T_IN, 0).subarray(0, 10), { inLen: 512 });
    assert.equal(short.status, VIRTIO_BLK_S_IOERR);

    // No writable byte at all: nothing can be reported, the chain is returned with len 0.
    const c = d.q.addChain([{ data: header(VIRTIO_BLK_T_FLUSH, 0) }]);
    d.q.kick();
    assert.deepEqual(d.q.takeUsed(), [{ id: c.head, len: 0 }]);
    assert.deepEqual(d.dev.stats, { ok: 0, ioerr: 2, unsupp: 2 });
  } finally {
    backend.close();
  }
});

test('a read-only disk offers VIRTIO_BLK_F_RO and fails writes with IOERR', () => {
  const file = makeImage('ro.img');
  const original = fs.readFileSync(file);
  const backend = new FileBlockBackend(file);
  try {
    assert.equal(backend.writable, false);
    const d = attach(backend, { readOnly: true });
    assert.notEqual(d.features & featureBit(VIRTIO_BLK_F_RO), 0n);
    const w = run(d, header(VIRTIO_BLK_T_OUT, 0), { out: new Uint8Array(512).fill(1) });
    assert.equal(w.status, VIRTIO_BLK_S_IOERR);
    const r = run(d, header(VIRTIO_BLK_T_IN, 0), { inLen: 512 });
    assert.equal(r.status, VIRTIO_BLK_S_OK);
    assert.deepEqual(r.data, new Uint8Array(original.subarray(0, 512)));
    assert.equal(run(d, header(VIRTIO_BLK_T_FLUSH, 0)).status, VIRTIO_BLK_S_OK);
    assert.deepEqual(fs.readFileSync(file), original);
  } finally {
    backend.close();
  }
  // A read-only fd refuses writes even if the device was not told it is read-only.
  const ro = new FileBlockBackend(file);
  try {
    const d = attach(ro);
    assert.equal(d.features & featureBit(VIRTIO_BLK_F_RO), 0n);
    const w = run(d, header(VIRTIO_BLK_T_OUT, 0), { out: new Uint8Array(512).fill(1) });
    assert.equal(w.status, VIRTIO_BLK_S_IOERR);
    assert.deepEqual(fs.readFileSync(file), original);
  } finally {
    ro.close();
  }
});

test('backend failures become IOERR, never exceptions', () => {
  const failing: BlockBackend = {
    size: DISK,
    read() {
      throw new Error('EIO');
    },
    write() {
      throw new Error('EIO');
    },
    flush() {
      throw new Error('EIO');
    },
  };
  const d = attach(failing);
  assert.equal(run(d, header(VIRTIO_BLK_T_IN, 0), { inLen: 512 }).status, VIRTIO_BLK_S_IOERR);
  const wr = run(d, header(VIRTIO_BLK_T_OUT, 0), { out: new Uint8Array(512) });
  assert.equal(wr.status, VIRTIO_BLK_S_IOERR);
  assert.equal(run(d, header(VIRTIO_BLK_T_FLUSH, 0)).status, VIRTIO_BLK_S_IOERR);
  assert.equal(d.t.running, true);
});

test('a file that shrank under the device reads as IOERR', () => {
  const file = makeImage('shrink.img');
  const backend = new FileBlockBackend(file, { writable: true });
  try {
    const d = attach(backend);
    fs.truncateSync(file, 1024);
    assert.equal(run(d, header(VIRTIO_BLK_T_IN, 4), { inLen: 512 }).status, VIRTIO_BLK_S_IOERR);
    assert.equal(run(d, header(VIRTIO_BLK_T_IN, 0), { inLen: 512 }).status, VIRTIO_BLK_S_OK);
  } finally {
    backend.close();
  }
});

test('without a negotiated FLUSH every write is flushed (write-through)', () => {
  const calls: string[] = [];
  const mem = new Uint8Array(DISK);
  const counting: BlockBackend = {
    size: DISK,
    read: (buf, off) => buf.set(mem.subarray(off, off + buf.length)),
    write: (buf, off) => {
      calls.push('write');
      mem.set(buf, off);
    },
    flush: () => calls.push('flush'),
  };
  const noFlush = attach(counting, { wanted: ~featureBit(VIRTIO_BLK_F_FLUSH) });
  assert.equal(noFlush.features & featureBit(VIRTIO_BLK_F_FLUSH), 0n);
  run(noFlush, header(VIRTIO_BLK_T_OUT, 1), { out: new Uint8Array(512).fill(3) });
  assert.deepEqual(calls, ['write', 'flush']);
  assert.equal(mem[512], 3);

  calls.length = 0;
  const withFlush = attach(counting);
  run(withFlush, header(VIRTIO_BLK_T_OUT, 1), { out: new Uint8Array(512) });
  assert.deepEqual(calls, ['write']);
});

test('a malformed chain stops the disk with DEVICE_NEEDS_RESET and leaves the file intact', () => {
  const file = makeImage('bad.img');
  const original = fs.readFileSync(file);
  const backend = new FileBlockBackend(file, { writable: true });
  try {
    const d = attach(backend);
    const ok = d.q.addChain([{ data: header(VIRTIO_BLK_T_FLUSH, 0) }, { len: 1, write: true }]);
    const hdr = d.q.alloc(16);
    d.q.memory.write(hdr, header(VIRTIO_BLK_T_OUT, 0));
    d.q.writeDescriptor(9, { addr: hdr, len: 16, flags: VIRTQ_DESC_F_NEXT, next: 9 });
    d.q.publish(9);
    assert.doesNotThrow(() => d.q.kick());
    // The good request before the bad one completed and was signalled.
    assert.deepEqual(d.q.takeUsed(), [{ id: ok.head, len: 1 }]);
    assert.equal(d.irq.count >= 1, true);
    assert.equal(d.t.status & STATUS_DEVICE_NEEDS_RESET, STATUS_DEVICE_NEEDS_RESET);
    assert.ok(isFaasnapError(d.t.lastError, 'VIRTQUEUE_INVALID'));
    assert.deepEqual(fs.readFileSync(file), original);
  } finally {
    backend.close();
  }
});

test('save/restore checks the disk behind the device', () => {
  const file = makeImage('persist.img');
  const backend = new FileBlockBackend(file, { writable: true });
  const other = new FileBlockBackend(makeImage('other.img', DISK * 2));
  try {
    const d = attach(backend);
    const saved: unknown = JSON.parse(JSON.stringify(d.t.save()));
    const irq = { trigger() {} };
    const mem = d.q.memory;
    const restore = (opts: VirtioBlockOptions): VirtioMmioTransport =>
      VirtioMmioTransport.restore(
        { memory: mem, interrupt: irq, restoreDevice: (s) => VirtioBlock.restore(opts, s) },
        saved,
      );
    const t2 = restore({ backend, serial: 'faasnap-disk0', queueSize: 16 });
    const same = t2.device as VirtioBlock;
    assert.equal(t2.running, true);
    // The restored device serves requests posted on the same rings.
    d.q.onKick = () => t2.notify(0);
    const r = run({ ...d, t: t2, dev: same }, header(VIRTIO_BLK_T_IN, 0), { inLen: 512 });
    assert.equal(r.status, VIRTIO_BLK_S_OK);
    assert.equal(same.stats.ok, 1);

    const mismatches: VirtioBlockOptions[] = [
      { backend: other, serial: 'faasnap-disk0', queueSize: 16 },
      { backend, serial: 'other', queueSize: 16 },
      { backend, serial: 'faasnap-disk0', queueSize: 16, readOnly: true },
      { backend, serial: 'faasnap-disk0', queueSize: 32 },
    ];
    for (const opts of mismatches) {
      assert.throws(
        () => restore(opts),
        (e: unknown) => isFaasnapError(e, 'STATE_INVALID'),
      );
    }
    const good = d.dev.save();
    for (const bad of [null, {}, { ...good, capacitySectors: -1 }, { ...good, extra: 1 }]) {
      assert.throws(
        () => VirtioBlock.restore({ backend, serial: 'faasnap-disk0' }, bad),
        (e: unknown) => isFaasnapError(e, 'STATE_INVALID'),
      );
    }
  } finally {
    backend.close();
    other.close();
  }
});

test('bad configuration is refused up front', () => {
  assert.throws(
    () => new FileBlockBackend(path.join(dir, 'missing.img')),
    (e: unknown) => isFaasnapError(e, 'INVALID_VM_CONFIG'),
  );
  const backend: BlockBackend = { size: DISK, read() {}, write() {}, flush() {} };
  assert.throws(
    () => new VirtioBlock({ backend, serial: 'x'.repeat(21) }),
    (e: unknown) => isFaasnapError(e, 'INVALID_VM_CONFIG'),
  );
  assert.throws(
    () => new VirtioBlock({ backend, serial: 'naïve' }),
    (e: unknown) => isFaasnapError(e, 'INVALID_VM_CONFIG'),
  );
  assert.throws(
    () => new VirtioBlock({ backend: { ...backend, size: -1 } }),
    (e: unknown) => isFaasnapError(e, 'INVALID_VM_CONFIG'),
  );
  const closed = new FileBlockBackend(makeImage('closed.img'));
  closed.close();
  closed.close();
  assert.throws(
    () => closed.read(new Uint8Array(1), 0),
    (e: unknown) => isFaasnapError(e, 'DEVICE_IO'),
  );
});
