// The object store against real redis-servers: one that refuses HELLO, as Redis before 6 does
// (RESP2 only), and a current one, on which the store's connection speaks RESP2 as chosen.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { ObjectStore } from './redis.js';

/** A throw-away redis-server on a free port; `extra` are its command-line options. */
async function redisServer(extra: string[]) {
  const dir = mkdtempSync(join(tmpdir(), 'faasnap-redis-test-'));
  const port = 20000 + Math.floor(Math.random() * 20000);
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--dir', dir, ...extra],
    { stdio: 'ignore' },
  );
  const url = `redis://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    const c = new Redis(url, { protocol: 2, lazyConnect: true, retryStrategy: () => null });
    c.on('error', () => undefined);
    try {
      await c.connect();
      c.disconnect();
      break;
    } catch {
      c.disconnect();
      assert.ok(i < 100 && child.exitCode === null, 'redis-server started');
      await sleep(50);
    }
  }
  return {
    url,
    stop: async () => {
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const external = (url: string) =>
  new ObjectStore({ url, managed: false, binary: 'redis-server' }, tmpdir());

test('--redis-url works against a Redis without RESP3 (no HELLO, as before Redis 6)', async () => {
  const server = await redisServer(['--rename-command', 'HELLO', '']);
  const store = external(server.url);
  try {
    const probe = new Redis(server.url, { protocol: 2 });
    await assert.rejects(probe.call('HELLO', '3'), /unknown command/i, 'the server has no HELLO');
    probe.disconnect();
    await store.start();
    const data = Buffer.from([0, 1, 2, 255, 254]);
    await store.put('input.bin', data);
    assert.deepEqual(await store.get('input.bin'), data);
    assert.equal(store.up, true);
  } finally {
    await store.close();
    await server.stop();
  }
});

test("the store's connection speaks RESP2 on a current Redis too", async () => {
  const server = await redisServer([]);
  const store = external(server.url);
  try {
    await store.start();
    await store.put('k', Buffer.from('v'));
    const probe = new Redis(server.url, { protocol: 2 });
    const clients = await probe.call('CLIENT', 'LIST');
    probe.disconnect();
    assert.match(String(clients), /resp=2/);
    assert.doesNotMatch(String(clients), /resp=3/, String(clients));
  } finally {
    await store.close();
    await server.stop();
  }
});
