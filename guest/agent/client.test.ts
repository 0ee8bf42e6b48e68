// End to end on the host: AgentClient ⇄ the real Python agent (guest/agent/agent.py) over an
// inherited socketpair (fd 3), with the bundled functions and a few test-only ones. JS tests use
// the host's node in place of the guest's.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { isFaasnapError } from '../../common/errors.js';
import { AgentClient } from './client.js';
import { encodeFrame } from './protocol.js';
import { MemoryStorage } from './storage.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, here.includes(`${path.sep}dist${path.sep}`) ? '../../..' : '../..');
const AGENT = path.join(repo, 'guest/agent/agent.py');

const TEST_FUNCTIONS: Record<string, string> = {
  'phases/handler.py': `
import time
def handle(params, ctx):
    time.sleep(0.05)
    ctx.t1()
    time.sleep(0.1)
    ctx.t2()
    time.sleep(0.05)
    return "done"
`,
  'storage/handler.py': `
def handle(params, ctx):
    v = ctx.storage_get(params["in"])
    ctx.storage_put(params["out"], v[::-1])
    return {"len": len(v), "missing": ctx.storage_get("no-such-key") is None}
`,
  'storage-js/handler.mjs': `
export async function handle(params, ctx) {
  const v = await ctx.storageGet(params.in);
  await ctx.storagePut(params.out, Buffer.from(v).reverse());
  return { len: v.length, missing: (await ctx.storageGet('no-such-key')) === undefined };
}
`,
  'spin-js/handler.js': `exports.handle = () => { for (;;) {} };\n`,
  'boom-js/handler.js': `exports.handle = () => { throw new Error('kaboom'); };\n`,
  'nan/handler.py': `def handle(params, ctx):\n    return float("nan")\n`,
};

let dir = '';
let child: ChildProcess | undefined;
let client: AgentClient;
const storage = new MemoryStorage();
let stderr = '';

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'faasnap-agent-test-'));
  const fns = path.join(dir, 'functions');
  fs.mkdirSync(fns);
  for (const name of fs.readdirSync(path.join(repo, 'guest/functions'))) {
    fs.symlinkSync(path.join(repo, 'guest/functions', name), path.join(fns, name));
  }
  for (const [file, text] of Object.entries(TEST_FUNCTIONS)) {
    fs.mkdirSync(path.join(fns, path.dirname(file)), { recursive: true });
    fs.writeFileSync(path.join(fns, file), text);
  }
  child = spawn('python3', [AGENT, '--channel', 'fd:3', '--functions', fns], {
    stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
    env: {
      ...process.env,
      FAASNAP_AGENT_SET_CLOCK: '0',
      PYTHONDONTWRITEBYTECODE: '1',
      FAASNAP_DEFINED_DIR: path.join(dir, 'defined'),
    },
  });
  child.stdout!.resume();
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  client = new AgentClient(child.stdio[3] as Duplex, {
    storage,
    pingTimeoutMs: 10_000,
    resultGraceMs: 5_000,
  });
});

after(() => {
  client.close();
  child?.kill('SIGKILL');
  fs.rmSync(dir, { recursive: true, force: true });
});

test('the agent announces itself with ready and answers pings', async () => {
  const ready = await client.waitReady(10_000);
  assert.equal(ready.id, 0);
  assert.equal(ready.restored, false);
  for (const f of ['hello', 'exec', 'hello-js', 'phases']) assert.ok(ready.functions.includes(f));
  assert.ok(ready.runtimes.includes('python'));
  const t0 = performance.now();
  const rtt = await client.ping();
  assert.ok(rtt > 0 && rtt <= performance.now() - t0, `ping ${rtt} ms`);
});

/** The agent's own phase times fit inside the call as the host saw it (same unit, no garbage). */
function assertTimingsWithin(timings: Record<string, number>, hostMs: number): void {
  const values = Object.values(timings);
  assert.deepEqual(Object.keys(timings).sort(), ['processMs', 'readMs', 'writeMs']);
  for (const v of values) assert.ok(Number.isFinite(v) && v >= 0, JSON.stringify(timings));
  const sum = values.reduce((a, b) => a + b, 0);
  assert.ok(sum <= hostMs + 1, `guest phases ${sum} ms > the call's ${hostMs} ms`);
}

test('hello returns a greeting and the read/process/write timings', async () => {
  const t0 = performance.now();
  const r = await client.invoke('hello', { name: 'faasnap' }, { timeoutMs: 5000 });
  assertTimingsWithin(r.timings, performance.now() - t0);
  assert.deepEqual(r.result, { greeting: 'Hello, faasnap!', params: { name: 'faasnap' } });
});

test('timings follow the handler marks: read = t1 − start, process = t2 − t1, write = end − t2', async () => {
  const { timings } = await client.invoke('phases', {}, { timeoutMs: 5000 });
  assert.ok(timings.readMs >= 45 && timings.readMs < 1000, `read ${timings.readMs}`);
  assert.ok(timings.processMs >= 95 && timings.processMs < 1000, `process ${timings.processMs}`);
  assert.ok(timings.writeMs >= 45 && timings.writeMs < 1000, `write ${timings.writeMs}`);
});

test('exec keeps its namespace across invocations', async () => {
  await client.invoke('exec', { script: 'counter = 41' }, { timeoutMs: 5000 });
  const r = await client.invoke(
    'exec',
    { script: 'counter += 1\nresult = [counter, type(mmap).__name__]' },
    { timeoutMs: 5000 },
  );
  assert.deepEqual(r.result, [42, 'module']);
  // `result` does not leak into the next invocation.
  const r2 = await client.invoke('exec', { script: '' }, { timeoutMs: 5000 });
  assert.equal(r2.result, null);
});

test('an exception is an error result and the agent keeps serving', async () => {
  await assert.rejects(
    client.invoke('exec', { script: '1 / 0' }, { timeoutMs: 5000 }),
    (e) =>
      isFaasnapError(e, 'FUNCTION_ERROR') &&
      e.details.errorType === 'exception' &&
      String(e.details.traceback).includes('ZeroDivisionError'),
  );
  // SystemExit from a script must not stop the agent either.
  await assert.rejects(client.invoke('exec', { script: 'sys.exit(3)' }, { timeoutMs: 5000 }), (e) =>
    isFaasnapError(e, 'FUNCTION_ERROR'),
  );
  await assert.rejects(client.invoke('no-such-function', {}, { timeoutMs: 5000 }), (e) =>
    isFaasnapError(e, 'FUNCTION_NOT_FOUND'),
  );
  await assert.rejects(
    client.invoke('../etc', {}, { timeoutMs: 5000 }),
    (e) => isFaasnapError(e, 'FUNCTION_ERROR') && e.details.errorType === 'bad_request',
  );
  await assert.rejects(
    client.invoke('nan', {}, { timeoutMs: 5000 }),
    (e) => isFaasnapError(e, 'FUNCTION_ERROR') && /JSON/.test(e.message),
  );
  const r = await client.invoke('hello', {}, { timeoutMs: 5000 });
  assert.deepEqual(r.result, { greeting: 'Hello, world!', params: {} });
});

test('timeouts interrupt busy loops and sleeps; the agent survives', async () => {
  for (const script of ['while True: pass', 'time.sleep(30)']) {
    const t0 = Date.now();
    await assert.rejects(client.invoke('exec', { script }, { timeoutMs: 300 }), (e) =>
      isFaasnapError(e, 'FUNCTION_TIMEOUT'),
    );
    assert.ok(Date.now() - t0 < 3000, `timed out after ${Date.now() - t0} ms`);
  }
  // The interrupted handler is gone: the next invocation runs at once.
  const t0 = Date.now();
  const r = await client.invoke('exec', { script: 'result = 7' }, { timeoutMs: 5000 });
  assert.equal(r.result, 7);
  assert.ok(Date.now() - t0 < 2000);
});

test('storage get/put are relayed to the host', async () => {
  const input = Buffer.from(Array.from({ length: 100_000 }, (_, i) => (i * 31) & 0xff));
  await storage.put('input', input);
  const r = await client.invoke('storage', { in: 'input', out: 'output' }, { timeoutMs: 5000 });
  assert.deepEqual(r.result, { len: input.length, missing: true });
  assert.deepEqual(storage.map.get('output'), Buffer.from(input).reverse());
});

test('values larger than a frame move in chunks both ways', async () => {
  // 20 MiB: three 8 MiB chunks, the last one partial; base64 of the whole would not fit a frame.
  const big = Buffer.alloc(20 << 20);
  for (let i = 0; i < big.length; i += 4096) big.writeUInt32LE(i, i);
  await storage.put('big', big);
  const r = await client.invoke('storage', { in: 'big', out: 'big-out' }, { timeoutMs: 60_000 });
  assert.deepEqual(r.result, { len: big.length, missing: true });
  assert.ok(storage.map.get('big-out')?.equals(Buffer.from(big).reverse()));
  const js = await client.waitReady();
  if (!js.runtimes.includes('node')) return;
  const j = await client.invoke('storage-js', { in: 'big', out: 'big-js' }, { timeoutMs: 60_000 });
  assert.deepEqual(j.result, { len: big.length, missing: true });
  assert.ok(storage.map.get('big-js')?.equals(Buffer.from(big).reverse()));
});

test('uploaded code: define installs a function, a new definition replaces it', async () => {
  const v1 = 'def handle(params, ctx):\n    return {"v": 1, "x": params["x"]}\n';
  await client.define('uploaded', 'python', v1);
  const r1 = await client.invoke('uploaded', { x: 5 }, { timeoutMs: 5000 });
  assert.deepEqual(r1.result, { v: 1, x: 5 });
  await client.define('uploaded', 'python', v1.replace('"v": 1', '"v": 2'));
  const r2 = await client.invoke('uploaded', { x: 6 }, { timeoutMs: 5000 });
  assert.deepEqual(r2.result, { v: 2, x: 6 });
  await assert.rejects(client.define('bad name', 'python', v1), (e) =>
    isFaasnapError(e, 'FUNCTION_ERROR'),
  );
  if ((await client.waitReady()).runtimes.includes('node')) {
    await client.define('uploaded-js', 'node', 'exports.handle = (p) => ({ js: p.x * 2 });\n');
    const r3 = await client.invoke('uploaded-js', { x: 21 }, { timeoutMs: 10_000 });
    assert.deepEqual(r3.result, { js: 42 });
  }
});

test('a result larger than a frame becomes an error result', async () => {
  await assert.rejects(
    client.invoke('exec', { script: 'result = "x" * (17 << 20)' }, { timeoutMs: 20_000 }),
    (e) => isFaasnapError(e, 'FUNCTION_ERROR') && e.details.errorType === 'result_too_large',
  );
});

test('garbage on the channel is reported by the agent, which keeps going', async () => {
  const logs: string[] = [];
  const onLog = (m: { msg: string }): void => void logs.push(m.msg);
  client.on('log', onLog);
  const sock = child!.stdio[3] as Duplex;
  sock.write(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x41, 0x42, 0x43]));
  const h = Buffer.alloc(4);
  h.writeUInt32BE(5, 0);
  sock.write(Buffer.concat([h, Buffer.from('nope!')]));
  sock.write(encodeFrame({ id: 999_999, type: 'no-such-type' }));
  await client.ping();
  client.off('log', onLog);
  assert.ok(logs.filter((l) => l.includes('protocol error')).length >= 2, logs.join('\n'));
  assert.ok(logs.some((l) => l.includes('no-such-type')));
});

test('a restore ping is answered with ready (restored)', async () => {
  const ready = await client.restored();
  assert.equal(ready.restored, true);
  assert.ok(ready.id > 0);
});

test('JS functions run in a Node child: result, storage, errors, timeouts', async (t) => {
  if (!(await client.waitReady()).runtimes.includes('node')) {
    t.skip('node is not on PATH');
    return;
  }
  const t0 = performance.now();
  const r = await client.invoke('hello-js', { name: 'js' }, { timeoutMs: 10_000 });
  assertTimingsWithin(r.timings, performance.now() - t0);
  assert.deepEqual(r.result, { greeting: 'Hello, js!', params: { name: 'js' }, runtime: 'node' });

  await storage.put('js-in', Buffer.from('abcdef'));
  const s = await client.invoke(
    'storage-js',
    { in: 'js-in', out: 'js-out' },
    { timeoutMs: 10_000 },
  );
  assert.deepEqual(s.result, { len: 6, missing: true });
  assert.equal(storage.map.get('js-out')?.toString(), 'fedcba');

  await assert.rejects(
    client.invoke('boom-js', {}, { timeoutMs: 10_000 }),
    (e) => isFaasnapError(e, 'FUNCTION_ERROR') && String(e.details.traceback).includes('kaboom'),
  );
  await assert.rejects(client.invoke('spin-js', {}, { timeoutMs: 500 }), (e) =>
    isFaasnapError(e, 'FUNCTION_TIMEOUT'),
  );
  // The spinning runtime was killed; the next JS call starts a fresh one.
  const again = await client.invoke('hello-js', {}, { timeoutMs: 10_000 });
  assert.equal((again.result as { greeting: string }).greeting, 'Hello, world!');
});

test('invocations queue behind each other and all complete', async () => {
  const rs = await Promise.all(
    [1, 2, 3, 4, 5].map((i) =>
      client.invoke('exec', { script: `result = ${i} * 10` }, { timeoutMs: 5000 }),
    ),
  );
  assert.deepEqual(
    rs.map((r) => r.result),
    [10, 20, 30, 40, 50],
  );
});

test('closing the channel ends the agent cleanly', async () => {
  const exited = new Promise<number | null>((resolve) => child!.once('exit', (c) => resolve(c)));
  client.close();
  assert.equal(await exited, 0, stderr);
  await assert.rejects(client.ping(), (e) => isFaasnapError(e, 'AGENT_DISCONNECTED'));
});

test('a channel that closes before ready ends waitReady at once (a VMM killed mid-boot)', async () => {
  const { createServer } = await import('node:net');
  const sock = path.join(dir, 'dies.sock');
  const server = createServer((c) => setTimeout(() => c.destroy(), 50));
  await new Promise<void>((r) => server.listen(sock, r));
  try {
    const c = await AgentClient.connect(sock, { storage: new MemoryStorage() });
    const t0 = performance.now();
    await assert.rejects(c.waitReady(60_000), (e) => isFaasnapError(e, 'AGENT_DISCONNECTED'));
    assert.ok(performance.now() - t0 < 5_000, 'not held until the 60 s timeout');
    await assert.rejects(c.waitReady(60_000), (e) => isFaasnapError(e, 'AGENT_DISCONNECTED'));
  } finally {
    server.close();
  }
});
