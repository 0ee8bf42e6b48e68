import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isFaasnapError } from '../../../common/errors.js';
import { GuestMemory } from '../../guest-memory.js';
import { Queue, type QueueState } from './queue.js';
import { MockVirtqueue, createTestMemory } from './queue-mock.js';
import { VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE } from './constants.js';

const MEM = 1 << 20;

function setup(size = 16): { mem: GuestMemory; mq: MockVirtqueue; q: Queue } {
  const mem = createTestMemory(MEM);
  const mq = new MockVirtqueue(mem, { size });
  const q = new Queue(size);
  mq.attach(q);
  return { mem, mq, q };
}

function rejects(fn: () => unknown, pattern?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(isFaasnapError(e, 'VIRTQUEUE_INVALID'), `expected VIRTQUEUE_INVALID, got ${e}`);
    if (pattern) assert.match(e.message, pattern);
    return true;
  });
}

const bytes = (...v: number[]): Uint8Array => Uint8Array.from(v);

test('a simple readable chain is popped, gathered and returned through the used ring', () => {
  const { mem, mq, q } = setup();
  assert.equal(q.popAvail(mem), undefined);
  assert.equal(q.hasAvail(mem), false);
  const posted = mq.addChain([{ data: bytes(1, 2, 3, 4, 5) }]);
  assert.equal(q.hasAvail(mem), true);
  const chain = q.popAvail(mem);
  assert.ok(chain);
  assert.equal(chain.head, posted.head);
  assert.deepEqual(chain.readable, posted.buffers);
  assert.deepEqual(chain.writable, []);
  assert.equal(chain.readableLength, 5);
  assert.equal(chain.writableLength, 0);
  const out = new Uint8Array(8);
  assert.equal(chain.gather(out), 5);
  assert.deepEqual(out, bytes(1, 2, 3, 4, 5, 0, 0, 0));
  const part = new Uint8Array(2);
  assert.equal(chain.gather(part, 3), 2);
  assert.deepEqual(part, bytes(4, 5));
  assert.equal(q.popAvail(mem), undefined);

  q.addUsed(mem, chain.head, 0);
  assert.equal(q.nextAvail, 1);
  assert.equal(q.nextUsed, 1);
  assert.deepEqual(mq.takeUsed(), [{ id: posted.head, len: 0 }]);
});

test('a chain mixing readable and writable buffers splits them in order', () => {
  const { mem, mq, q } = setup();
  const posted = mq.addChain([
    { data: bytes(10, 11, 12) },
    { data: bytes(13, 14) },
    { len: 4, write: true },
    { len: 3, write: true },
  ]);
  const chain = q.popAvail(mem);
  assert.ok(chain);
  assert.equal(chain.readable.length, 2);
  assert.equal(chain.writable.length, 2);
  assert.equal(chain.readableLength, 5);
  assert.equal(chain.writableLength, 7);
  // Gather across the buffer boundary.
  const mid = new Uint8Array(3);
  chain.gather(mid, 2);
  assert.deepEqual(mid, bytes(12, 13, 14));
  // Scatter across the writable boundary, clipped at the end.
  assert.equal(chain.scatter(bytes(1, 2, 3, 4, 5, 6, 7, 8, 9), 0), 7);
  const w0 = posted.buffers[2]!;
  const w1 = posted.buffers[3]!;
  assert.deepEqual(mq.read(w0.gpa, 4), bytes(1, 2, 3, 4));
  assert.deepEqual(mq.read(w1.gpa, 3), bytes(5, 6, 7));
  assert.equal(chain.scatter(bytes(99), 6), 1);
  assert.deepEqual(mq.read(w1.gpa, 3), bytes(5, 6, 99));
  assert.equal(chain.scatter(bytes(1), 7), 0);
  assert.deepEqual(
    chain.writableSlices(3, 2).map((s) => s.length),
    [1, 1],
  );
  q.addUsed(mem, chain.head, 7);
  assert.deepEqual(mq.takeUsed(), [{ id: posted.head, len: 7 }]);
});

test('several chains are consumed in avail order and descriptor indices are honoured', () => {
  const { mem, mq, q } = setup();
  const a = mq.addChain([{ data: bytes(1) }]);
  const b = mq.addChain([{ data: bytes(2) }, { len: 1, write: true }]);
  const c = mq.addChain([{ len: 2, write: true }]);
  const heads = [q.popAvail(mem)?.head, q.popAvail(mem)?.head, q.popAvail(mem)?.head];
  assert.deepEqual(heads, [a.head, b.head, c.head]);
  assert.deepEqual([a.head, b.head, c.head], [0, 1, 3]);
  assert.equal(q.popAvail(mem), undefined);
});

test('indirect descriptors are flattened into the chain', () => {
  const { mem, mq, q } = setup();
  const posted = mq.addIndirectChain([
    { data: bytes(7, 8) },
    { data: bytes(9) },
    { len: 5, write: true },
  ]);
  const chain = q.popAvail(mem);
  assert.ok(chain);
  assert.equal(chain.head, posted.head);
  assert.deepEqual(chain.readable, posted.buffers.slice(0, 2));
  assert.deepEqual(chain.writable, posted.buffers.slice(2));
  const out = new Uint8Array(3);
  chain.gather(out);
  assert.deepEqual(out, bytes(7, 8, 9));
  chain.scatter(bytes(5, 4, 3, 2, 1));
  assert.deepEqual(mq.read(posted.buffers[2]!.gpa, 5), bytes(5, 4, 3, 2, 1));
});

test('a direct descriptor may lead into an indirect table', () => {
  const { mem, mq, q } = setup();
  const d0 = mq.alloc(4);
  mem.write(d0, bytes(1, 2, 3, 4));
  const d1 = mq.alloc(2);
  const table = mq.writeIndirectTable([{ addr: d1, len: 2, flags: VIRTQ_DESC_F_WRITE }]);
  mq.writeDescriptor(5, { addr: d0, len: 4, flags: VIRTQ_DESC_F_NEXT, next: 6 });
  mq.writeDescriptor(6, { addr: table, len: 16, flags: VIRTQ_DESC_F_INDIRECT });
  mq.publish(5);
  const chain = q.popAvail(mem);
  assert.ok(chain);
  assert.equal(chain.head, 5);
  assert.deepEqual(chain.readable, [{ gpa: d0, len: 4 }]);
  assert.deepEqual(chain.writable, [{ gpa: d1, len: 2 }]);
});

test('zero-length descriptors are accepted and carry nothing', () => {
  const { mem, mq, q } = setup();
  mq.addChain([{ len: 0, gpa: 2n ** 60n }, { data: bytes(42) }]);
  const chain = q.popAvail(mem);
  assert.ok(chain);
  assert.equal(chain.readable.length, 2);
  assert.equal(chain.readableLength, 1);
  const out = new Uint8Array(1);
  chain.gather(out);
  assert.deepEqual(out, bytes(42));
});

test('buffers outside guest memory are rejected', () => {
  for (const gpa of [MEM, MEM - 2, 2n ** 53n, 2n ** 64n - 1n]) {
    const { mem, mq, q } = setup();
    mq.addChain([{ gpa, len: 4 }]);
    rejects(() => q.popAvail(mem), /outside guest RAM/);
    // Rejected again, consistently, and the ring is not consumed.
    rejects(() => q.popAvail(mem));
    assert.equal(q.nextAvail, 0);
  }
});

test('a buffer may span adjacent memory regions but not a hole', () => {
  const mem = new GuestMemory([
    { gpa: 0, bytes: Buffer.alloc(0x10000) },
    { gpa: 0x10000, bytes: Buffer.alloc(0x10000) },
    { gpa: 0x30000, bytes: Buffer.alloc(0x10000) },
  ]);
  const mq = new MockVirtqueue(mem, { size: 8, dataBase: 0x8000, dataEnd: 0x10000 });
  const q = new Queue(8);
  mq.attach(q);
  mem.write(0xfffe, bytes(1, 2));
  mem.write(0x10000, bytes(3, 4));
  mq.addChain([{ gpa: 0xfffe, len: 4 }]);
  const chain = q.popAvail(mem);
  assert.ok(chain);
  assert.deepEqual(
    chain.readableSlices(0, 4).map((s) => s.length),
    [2, 2],
  );
  const out = new Uint8Array(4);
  chain.gather(out);
  assert.deepEqual(out, bytes(1, 2, 3, 4));
  mq.addChain([{ gpa: 0x1fffe, len: 4 }]);
  rejects(() => q.popAvail(mem), /outside guest RAM/);
});

test('descriptor indices out of range are rejected', () => {
  {
    const { mem, mq, q } = setup(8);
    mq.publish(8); // head == queue size
    rejects(() => q.popAvail(mem), /index 8 out of range/);
  }
  {
    const { mem, mq, q } = setup(8);
    const gpa = mq.alloc(4);
    mq.writeDescriptor(0, { addr: gpa, len: 4, flags: VIRTQ_DESC_F_NEXT, next: 200 });
    mq.publish(0);
    rejects(() => q.popAvail(mem), /index 200 out of range/);
  }
});

test('looping chains are rejected', () => {
  {
    const { mem, mq, q } = setup(8);
    const gpa = mq.alloc(4);
    mq.writeDescriptor(0, { addr: gpa, len: 4, flags: VIRTQ_DESC_F_NEXT, next: 1 });
    mq.writeDescriptor(1, { addr: gpa, len: 4, flags: VIRTQ_DESC_F_NEXT, next: 0 });
    mq.publish(0);
    rejects(() => q.popAvail(mem), /loops/);
  }
  {
    // A descriptor pointing at itself.
    const { mem, mq, q } = setup(8);
    const gpa = mq.alloc(4);
    mq.writeDescriptor(3, { addr: gpa, len: 4, flags: VIRTQ_DESC_F_NEXT, next: 3 });
    mq.publish(3);
    rejects(() => q.popAvail(mem), /loops/);
  }
  {
    // A loop inside an indirect table.
    const { mem, mq, q } = setup(8);
    const gpa = mq.alloc(4);
    const table = mq.writeIndirectTable([
      { addr: gpa, len: 4, flags: VIRTQ_DESC_F_NEXT, next: 1 },
      { addr: gpa, len: 4, flags: VIRTQ_DESC_F_NEXT, next: 0 },
    ]);
    mq.writeDescriptor(0, { addr: table, len: 32, flags: VIRTQ_DESC_F_INDIRECT });
    mq.publish(0);
    rejects(() => q.popAvail(mem), /loops/);
  }
});

test('a chain as long as the queue is fine; the loop check is not off by one', () => {
  const { mem, mq, q } = setup(4);
  const c = mq.addChain([
    { data: bytes(1) },
    { data: bytes(2) },
    { data: bytes(3) },
    { data: bytes(4) },
  ]);
  const chain = q.popAvail(mem);
  assert.equal(chain?.head, c.head);
  assert.equal(chain?.readableLength, 4);
});

test('malformed indirect descriptors are rejected', () => {
  const cases: { name: string; build: (mq: MockVirtqueue) => void; re: RegExp }[] = [
    {
      name: 'nested indirect',
      build: (mq) => {
        const inner = mq.writeIndirectTable([{ addr: mq.alloc(4), len: 4 }]);
        const outer = mq.writeIndirectTable([
          { addr: inner, len: 16, flags: VIRTQ_DESC_F_INDIRECT },
        ]);
        mq.writeDescriptor(0, { addr: outer, len: 16, flags: VIRTQ_DESC_F_INDIRECT });
        mq.publish(0);
      },
      re: /inside an indirect table/,
    },
    {
      name: 'length not a multiple of 16',
      build: (mq) => {
        mq.addIndirectChain([{ data: bytes(1) }], { tableLen: 24 });
      },
      re: /indirect table length 24/,
    },
    {
      name: 'zero length',
      build: (mq) => {
        mq.addIndirectChain([{ data: bytes(1) }], { tableLen: 0 });
      },
      re: /indirect table length 0/,
    },
    {
      name: 'more entries than the queue size',
      build: (mq) => {
        mq.addIndirectChain([{ data: bytes(1) }], { tableLen: 16 * 17 });
      },
      re: /exceeds queue size/,
    },
    {
      name: 'indirect with NEXT',
      build: (mq) => {
        const t = mq.writeIndirectTable([{ addr: mq.alloc(4), len: 4 }]);
        mq.writeDescriptor(0, {
          addr: t,
          len: 16,
          flags: VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT,
          next: 1,
        });
        mq.publish(0);
      },
      re: /NEXT/,
    },
    {
      name: 'table outside memory',
      build: (mq) => {
        mq.writeDescriptor(0, { addr: MEM - 16, len: 32, flags: VIRTQ_DESC_F_INDIRECT });
        mq.publish(0);
      },
      re: /outside guest RAM/,
    },
    {
      name: 'table entry index out of range',
      build: (mq) => {
        const t = mq.writeIndirectTable([
          { addr: mq.alloc(4), len: 4, flags: VIRTQ_DESC_F_NEXT, next: 2 },
          { addr: mq.alloc(4), len: 4 },
        ]);
        mq.writeDescriptor(0, { addr: t, len: 32, flags: VIRTQ_DESC_F_INDIRECT });
        mq.publish(0);
      },
      re: /index 2 out of range \(table of 2\)/,
    },
    {
      name: 'table entry with a bad buffer',
      build: (mq) => {
        mq.addIndirectChain([{ data: bytes(1) }, { gpa: MEM + 4096, len: 8, write: true }]);
      },
      re: /outside guest RAM/,
    },
  ];
  for (const c of cases) {
    const { mem, mq, q } = setup();
    c.build(mq);
    assert.throws(
      () => q.popAvail(mem),
      (e: unknown) => isFaasnapError(e, 'VIRTQUEUE_INVALID') && c.re.test(e.message),
      c.name,
    );
  }
});

test('a readable buffer after a writable one is rejected', () => {
  const { mem, mq, q } = setup();
  mq.addChain([{ len: 4, write: true }, { data: bytes(1) }]);
  rejects(() => q.popAvail(mem), /readable buffer after a writable/);
});

test('an avail index further ahead than the queue size is rejected', () => {
  const { mem, mq, q } = setup(8);
  mq.setAvailIdx(9);
  rejects(() => q.popAvail(mem), /9 entries ahead/);
  mq.setAvailIdx(8);
  // Eight pending entries all pointing at descriptor 0 (zeroed: an empty readable buffer).
  assert.equal(q.popAvail(mem)?.head, 0);
});

test('free-running indices wrap at 2^16', () => {
  const { mem, mq, q } = setup(8);
  q.nextAvail = 0xfffe;
  q.nextUsed = 0xffff;
  mq.setAvailIdx(0xfffe);
  const a = mq.addChain([{ data: bytes(1) }]);
  const b = mq.addChain([{ data: bytes(2) }]);
  const c = mq.addChain([{ data: bytes(3) }]);
  const popped = [q.popAvail(mem), q.popAvail(mem), q.popAvail(mem)];
  assert.deepEqual(
    popped.map((ch) => ch?.head),
    [a.head, b.head, c.head],
  );
  assert.equal(q.nextAvail, 1);
  assert.equal(q.popAvail(mem), undefined);
  q.addUsed(mem, a.head, 11);
  q.addUsed(mem, b.head, 22);
  assert.equal(mq.usedIdx(), 1);
  assert.deepEqual(mq.usedElem(0xffff), { id: a.head, len: 11 });
  assert.deepEqual(mq.usedElem(0), { id: b.head, len: 22 });
});

test('addUsed rejects heads out of range and queues that are not ready', () => {
  const { mem, q } = setup(8);
  rejects(() => q.addUsed(mem, 8, 0), /head 8/);
  rejects(() => q.addUsed(mem, 0, -1), /length/);
  q.disable();
  rejects(() => q.addUsed(mem, 0, 0), /not ready/);
  assert.equal(q.popAvail(mem), undefined);
});

test('enable validates size, alignment and placement', () => {
  const mem = createTestMemory(MEM);
  const ok = (): Queue => {
    const q = new Queue(16);
    q.size = 16;
    q.descTable = 0x1000;
    q.availRing = 0x2000;
    q.usedRing = 0x3000;
    return q;
  };
  const base = ok();
  base.enable(mem);
  assert.equal(base.ready, true);

  const cases: [string, (q: Queue) => void, RegExp][] = [
    ['size not a power of two', (q) => (q.size = 12), /queue size 12/],
    ['size zero', (q) => (q.size = 0), /queue size 0/],
    ['size above max', (q) => (q.size = 32), /queue size 32/],
    ['descriptor table misaligned', (q) => (q.descTable = 0x1008), /16-aligned/],
    ['avail ring misaligned', (q) => (q.availRing = 0x2001), /2-aligned/],
    ['used ring misaligned', (q) => (q.usedRing = 0x3002), /4-aligned/],
    ['descriptor table outside', (q) => (q.descTable = MEM - 0x80), /descriptor table/],
    ['avail ring outside', (q) => (q.availRing = MEM), /avail ring/],
    ['used ring outside', (q) => (q.usedRing = 2 ** 60), /used ring/],
  ];
  for (const [name, mutate, re] of cases) {
    const q = ok();
    mutate(q);
    assert.throws(
      () => q.enable(mem),
      (e: unknown) => isFaasnapError(e, 'VIRTQUEUE_INVALID') && re.test(e.message),
      name,
    );
    assert.equal(q.ready, false, name);
  }
  assert.throws(
    () => new Queue(12),
    (e: unknown) => isFaasnapError(e, 'INVALID_VM_CONFIG'),
  );
  assert.throws(
    () => new Queue(65536),
    (e: unknown) => isFaasnapError(e, 'INVALID_VM_CONFIG'),
  );
});

test('addresses that are not exact numbers saturate and stay invalid', () => {
  const q = new Queue(8);
  q.descTable = 2 ** 64;
  assert.equal(q.descTable, Number.MAX_SAFE_INTEGER);
  q.availRing = -5;
  assert.equal(q.availRing, Number.MAX_SAFE_INTEGER);
  rejects(() => q.validate(createTestMemory(MEM)));
});

test('save and restore round-trip, and a restored queue keeps working', () => {
  const { mem, mq, q } = setup();
  mq.addChain([{ data: bytes(1) }]);
  const first = q.popAvail(mem);
  assert.ok(first);
  q.addUsed(mem, first.head, 0);
  const saved = JSON.parse(JSON.stringify(q.save())) as QueueState;
  assert.deepEqual(saved, {
    maxSize: 16,
    size: 16,
    ready: true,
    descTable: mq.descTable,
    availRing: mq.availRing,
    usedRing: mq.usedRing,
    nextAvail: 1,
    nextUsed: 1,
  });
  const r = Queue.restore({ memory: mem, maxSize: 16 }, saved);
  assert.equal(r.ready, true);
  const posted = mq.addChain([{ data: bytes(2) }]);
  const next = r.popAvail(mem);
  assert.equal(next?.head, posted.head);
  r.addUsed(mem, posted.head, 3);
  assert.deepEqual(mq.takeUsed(), [
    { id: first.head, len: 0 },
    { id: posted.head, len: 3 },
  ]);
});

test('restore rejects invalid or mismatched state', () => {
  const { mem, q } = setup();
  const good = q.save();
  const bad: [string, unknown, number][] = [
    ['not an object', 'queue', 16],
    ['extra field', { ...good, extra: 1 }, 16],
    ['missing field', { ...good, nextUsed: undefined }, 16],
    ['negative index', { ...good, nextAvail: -1 }, 16],
    ['index above u16', { ...good, nextUsed: 0x10000 }, 16],
    ['fractional address', { ...good, descTable: 0.5 }, 16],
    ['address as string', { ...good, usedRing: '4096' }, 16],
    ['max size differs', good, 32],
    ['ready but outside memory', { ...good, usedRing: MEM }, 16],
    ['ready with a bad size', { ...good, size: 3 }, 16],
  ];
  for (const [name, state, maxSize] of bad) {
    assert.throws(
      () => Queue.restore({ memory: mem, maxSize }, state),
      (e: unknown) => isFaasnapError(e, 'STATE_INVALID'),
      name,
    );
  }
  // A queue that is not ready may hold any register values the driver wrote.
  const idle = Queue.restore({ memory: mem, maxSize: 16 }, { ...good, ready: false, size: 3 });
  assert.equal(idle.ready, false);
  assert.equal(idle.size, 3);
});
