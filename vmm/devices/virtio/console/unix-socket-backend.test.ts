import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isFaasnapError } from '../../../../common/errors.js';
import { VirtioMmioTransport } from '../mmio.js';
import { MmioDriverMock, MockVirtqueue, createTestMemory } from '../queue-mock.js';
import { VirtioConsole } from './device.js';
import { UnixSocketConsoleBackend } from './unix-socket-backend.js';

let dir = '';
let n = 0;
const sock = (): string => path.join(dir, `c${n++}.sock`);

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'faasnap-console-test-'));
});
after(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function connect(p: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const c = net.createConnection({ path: p });
    c.once('connect', () => resolve(c));
    c.once('error', reject);
  });
}

/** Collects what a client receives. */
function collect(c: net.Socket): { bytes: () => Buffer } {
  const chunks: Buffer[] = [];
  c.on('data', (d: Buffer) => chunks.push(d));
  return { bytes: () => Buffer.concat(chunks) };
}

async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

function drain(b: UnixSocketConsoleBackend): Buffer {
  const out = Buffer.alloc(b.pendingInput);
  assert.equal(b.readInto(out), out.length);
  return out;
}

test('client bytes become pending input and wake the listener; guest bytes reach the client', async () => {
  const p = sock();
  const b = await UnixSocketConsoleBackend.listen({ path: p });
  try {
    assert.ok(fs.statSync(p).isSocket());
    let wakeups = 0;
    b.setInputListener(() => wakeups++);
    const c = await connect(p);
    const got = collect(c);
    await b.waitForClient();
    c.write('ping');
    await until(() => b.pendingInput === 4, 'input');
    assert.ok(wakeups >= 1);
    assert.equal(drain(b).toString(), 'ping');
    b.write(Buffer.from('pong'));
    await until(() => got.bytes().length === 4, 'output');
    assert.equal(got.bytes().toString(), 'pong');
    c.destroy();
  } finally {
    b.close();
  }
  assert.equal(fs.existsSync(p), false, 'close removes the socket file');
});

test('output before any client is kept (bounded) and delivered on connect', async () => {
  const p = sock();
  const b = await UnixSocketConsoleBackend.listen({ path: p, outputBacklog: 8 });
  try {
    b.write(Buffer.from('ready'));
    b.write(Buffer.from('-and-more'));
    assert.equal(b.stats.droppedOutputBytes, 6);
    const c = await connect(p);
    const got = collect(c);
    await until(() => got.bytes().length === 8, 'backlog');
    assert.equal(got.bytes().toString(), 'ready-an');
    c.destroy();
  } finally {
    b.close();
  }
});

test('one client at a time; the next is accepted after it leaves; its input survives', async () => {
  const p = sock();
  const b = await UnixSocketConsoleBackend.listen({ path: p });
  try {
    const c1 = await connect(p);
    await b.waitForClient();
    const c2 = await connect(p);
    const c2closed = new Promise<void>((resolve) => c2.once('close', () => resolve()));
    c2.on('error', () => {});
    await c2closed;
    assert.equal(b.stats.rejected, 1);

    // Sent just before disconnecting: still delivered to the guest.
    c1.end('last words');
    await until(() => !b.connected, 'disconnect');
    assert.equal(drain(b).toString(), 'last words');

    const c3 = await connect(p);
    const got = collect(c3);
    await b.waitForClient();
    b.write(Buffer.from('hi c3'));
    await until(() => got.bytes().length === 5, 'output to c3');
    assert.equal(b.stats.connections, 2);
    c3.destroy();
  } finally {
    b.close();
  }
});

test('a client sending faster than the guest reads is paused, and nothing is lost', async () => {
  const p = sock();
  const high = 64 * 1024;
  const b = await UnixSocketConsoleBackend.listen({ path: p, inputHighWater: high });
  try {
    const c = await connect(p);
    const total = 4 << 20;
    const data = Buffer.from(Array.from({ length: total }, (_, i) => (i * 7 + (i >> 12)) & 0xff));
    c.write(data);
    // The guest is not reading: pending input stops near the mark, the rest waits upstream.
    await until(() => b.pendingInput >= high, 'high water');
    await sleep(100);
    assert.ok(b.pendingInput < high + 256 * 1024, `pending ${b.pendingInput}`);
    assert.ok(b.pendingInput < total);
    // Now the "guest" reads in 4 KiB buffers until everything has arrived, in order.
    const got: Buffer[] = [];
    let size = 0;
    while (size < total) {
      if (b.pendingInput === 0) {
        await sleep(1);
        continue;
      }
      const buf = Buffer.alloc(4096);
      const k = b.readInto(buf);
      got.push(buf.subarray(0, k));
      size += k;
    }
    assert.ok(Buffer.concat(got).equals(data));
    c.destroy();
  } finally {
    b.close();
  }
});

test('output to a client that does not read is bounded and counted', async () => {
  const p = sock();
  const b = await UnixSocketConsoleBackend.listen({ path: p, outputHighWater: 1 << 20 });
  try {
    const c = await connect(p);
    c.pause();
    await b.waitForClient();
    const chunk = Buffer.alloc(64 * 1024, 1);
    for (let i = 0; i < 256; i++) b.write(chunk); // 16 MiB
    assert.ok(b.stats.droppedOutputBytes > 0);
    assert.ok(b.stats.outputBytes < 8 << 20, `${b.stats.outputBytes}`);
    c.destroy();
  } finally {
    b.close();
  }
});

test('socket paths: too long, taken, not a socket, or stale', async () => {
  await assert.rejects(
    UnixSocketConsoleBackend.listen({ path: path.join(dir, 'x'.repeat(120)) }),
    (e) => isFaasnapError(e, 'INVALID_VM_CONFIG'),
  );
  const file = path.join(dir, 'regular');
  fs.writeFileSync(file, '');
  await assert.rejects(UnixSocketConsoleBackend.listen({ path: file }), /not a socket/);

  const p = sock();
  const live = await UnixSocketConsoleBackend.listen({ path: p });
  await assert.rejects(UnixSocketConsoleBackend.listen({ path: p }), /in use/);
  live.close();

  // A socket file nobody listens on (its VMM was killed) is replaced.
  const stale = sock();
  const dead = spawn(process.execPath, [
    '-e',
    `require('net').createServer().listen(${JSON.stringify(stale)})`,
  ]);
  await until(() => fs.existsSync(stale), 'the doomed listener');
  dead.kill('SIGKILL');
  await new Promise((resolve) => dead.once('exit', resolve));
  assert.ok(fs.existsSync(stale));
  const b = await UnixSocketConsoleBackend.listen({ path: stale });
  b.close();
  assert.equal(fs.existsSync(stale), false);
});

test('end to end: socket client ⇄ backend ⇄ virtio-console ⇄ guest queues', async () => {
  const p = sock();
  const backend = await UnixSocketConsoleBackend.listen({ path: p });
  try {
    const mem = createTestMemory(1 << 20);
    const dev = new VirtioConsole({ backend, queueSize: 16 });
    const t = new VirtioMmioTransport({ device: dev, memory: mem, interrupt: { trigger() {} } });
    const rx = new MockVirtqueue(mem, { size: 16, base: 0, dataBase: 0x10000, dataEnd: 0x80000 });
    const tx = new MockVirtqueue(mem, { size: 16, base: 0x1000, dataBase: 0x80000 });
    new MmioDriverMock(t).init([rx, tx]);
    const chains = [0, 1, 2].map(() => rx.addChain([{ len: 64, write: true }]));
    rx.kick();

    const c = await connect(p);
    const got = collect(c);
    c.write('to the guest');
    await until(() => rx.usedIdx() === 1, 'guest receive');
    const used = rx.takeUsed();
    assert.equal(used[0]!.len, 12);
    assert.equal(Buffer.from(mem.slice(chains[0]!.buffers[0]!.gpa, 12)).toString(), 'to the guest');

    tx.addChain([{ data: Buffer.from('to the host') }]);
    tx.kick();
    await until(() => got.bytes().length === 11, 'host receive');
    assert.equal(got.bytes().toString(), 'to the host');
    c.destroy();
  } finally {
    backend.close();
  }
});
