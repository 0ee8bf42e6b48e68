// The whole host path of the agent channel, without KVM: AgentClient → the VM's console socket
// (UnixSocketConsoleBackend) → VirtioConsole behind the virtio-mmio transport → a stand-in for
// the guest's virtio-console driver (the queue mock) → the real Python agent, which the stand-in
// feeds through a socketpair as the guest kernel would through the virtio port.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { VirtioConsole } from '../../vmm/devices/virtio/console/device.js';
import { UnixSocketConsoleBackend } from '../../vmm/devices/virtio/console/unix-socket-backend.js';
import { VirtioMmioTransport } from '../../vmm/devices/virtio/mmio.js';
import {
  MmioDriverMock,
  MockVirtqueue,
  createTestMemory,
} from '../../vmm/devices/virtio/queue-mock.js';
import { AgentClient } from './client.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, here.includes(`${path.sep}dist${path.sep}`) ? '../../..' : '../..');

const PAGE = 4096;
const RX_SLOTS = 8;
const RX_BASE = 0x100000;
const TX_BASE = 0x200000;

test('AgentClient ⇄ console socket ⇄ virtio-console ⇄ Python agent', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'faasnap-channel-test-'));
  const backend = await UnixSocketConsoleBackend.listen({ path: path.join(dir, 'console.sock') });
  const agent = spawn('python3', [path.join(repo, 'guest/agent/agent.py'), '--channel', 'fd:3'], {
    stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      FAASNAP_FUNCTIONS_DIR: path.join(repo, 'guest/functions'),
      FAASNAP_AGENT_SET_CLOCK: '0',
      PYTHONDONTWRITEBYTECODE: '1',
    },
  });
  let stderr = '';
  agent.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const agentEnd = agent.stdio[3] as Duplex;
  let client: AgentClient | undefined;
  try {
    // The device and the "guest driver".
    const mem = createTestMemory(4 << 20);
    let pump = (): void => {};
    const dev = new VirtioConsole({ backend, queueSize: 16 });
    const t = new VirtioMmioTransport({
      device: dev,
      memory: mem,
      // The used-buffer interrupt: the driver looks at its receive queue.
      interrupt: { trigger: () => setImmediate(() => pump()) },
    });
    const rx = new MockVirtqueue(mem, { size: 16, base: 0 });
    const tx = new MockVirtqueue(mem, { size: 16, base: 0x4000 });
    new MmioDriverMock(t).init([rx, tx]);
    // Fixed buffers, reposted after each use, as the Linux driver does with its pages.
    const slotOf = new Map<number, number>();
    const post = (slot: number): void => {
      const c = rx.addChain([{ gpa: RX_BASE + slot * PAGE, len: PAGE, write: true }]);
      slotOf.set(c.head, slot);
    };
    for (let s = 0; s < RX_SLOTS; s++) post(s);
    rx.kick();
    pump = () => {
      for (const u of rx.takeUsed()) {
        const slot = slotOf.get(u.id)!;
        agentEnd.write(Buffer.from(mem.slice(RX_BASE + slot * PAGE, u.len)));
        post(slot);
      }
      rx.kick();
    };
    // Guest → host: what the agent writes goes out page by page through the transmit queue.
    agentEnd.on('data', (d: Buffer) => {
      for (let at = 0; at < d.length; at += PAGE) {
        const part = d.subarray(at, at + PAGE);
        mem.write(TX_BASE, part);
        tx.addChain([{ gpa: TX_BASE, len: part.length }]);
        tx.kick();
        assert.equal(tx.takeUsed().length, 1, 'transmit buffers are returned at once');
      }
    });

    client = await AgentClient.connect(backend.path, { pingTimeoutMs: 10_000 });
    const ready = await client.waitReady();
    assert.ok(ready.functions.includes('hello'));
    await client.ping();
    const r = await client.invoke('hello', { name: 'virtio' }, { timeoutMs: 10_000 });
    assert.deepEqual(r.result, { greeting: 'Hello, virtio!', params: { name: 'virtio' } });
    // A request much larger than one receive buffer.
    const big = 'x'.repeat(100_000);
    const e = await client.invoke(
      'exec',
      { script: `s = ${JSON.stringify(big)}\nresult = len(s)` },
      { timeoutMs: 10_000 },
    );
    assert.equal(e.result, big.length);
    assert.ok(dev.stats.rxChains > 20, `${dev.stats.rxChains} receive chains`);
  } finally {
    client?.close();
    agent.kill('SIGKILL');
    backend.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  assert.equal(stderr.includes('Traceback'), false, stderr);
});
