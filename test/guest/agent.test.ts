// Tier 3: the test image boots in a VMM process (the daemon's path) to a ready agent, and one
// booted guest serves every check: Python and JS handlers, storage relayed by the host, a
// raising function, a timeout. Then the guest is snapshotted, its FaaSnap working set recorded
// through the agent, and after the snapshot has sat for a minute two clones are restored side
// by side (vanilla and faasnap): each answers, its wall clock is corrected, and the clones do
// not share randomness.

import { scaledMs } from '../../common/time-scale.js';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { isFaasnapError } from '../../common/errors.js';
import { AgentClient } from '../../guest/agent/client.js';
import { MemoryStorage } from '../../guest/agent/storage.js';
import type { MemoryMode } from '../../loader/modes.js';
import { VmmProcess } from '../../process/client.js';
import { skipOrFail } from '../support/skip.js';
import { tempDirs } from '../support/temp-dirs.js';
import { bootGuest, guestFiles, type BootedGuest } from './support.js';

const SNAPSHOT_AGE_MS = 60_000;
const CLOCK_SKEW_LIMIT_S = 0.5;
/** What the restore-time checks run in a clone. */
const PROBE = [
  'import os, random, time',
  'result = {"time": time.time(), "urandom": os.urandom(16).hex(), "random": random.random()}',
].join('\n');

const dirs = tempDirs('agent-guest');
const storage = new MemoryStorage([['greeting.json', Buffer.from('{"hello": ["world", 1, 2]}')]]);
let guest: BootedGuest | undefined;
let skipReason = '';
const extraVmms: VmmProcess[] = [];

after(async () => {
  guest?.agent.close();
  await guest?.vmm.kill();
  await Promise.all(extraVmms.map((v) => v.kill()));
});

describe('Linux guest with the agent (tier 3)', { timeout: scaledMs(15 * 60_000) }, () => {
  before(async () => {
    const files = guestFiles();
    if (typeof files === 'string') skipReason = files;
    else guest = await bootGuest(files, { agentSocket: join(dirs.root, 'boot.sock'), storage });
  });

  const withGuest =
    (fn: (g: BootedGuest, t: TestContext) => Promise<void>) => async (t: TestContext) => {
      if (!guest) return skipOrFail(t, skipReason);
      await fn(guest, t);
    };

  test('the image boots to a ready agent with both runtimes', (t) => {
    if (!guest) return skipOrFail(t, skipReason);
    t.diagnostic(`boot request → agent ready: ${(guest.bootMs / 1000).toFixed(1)} s`);
    assert.equal(guest.ready.restored, false);
    assert.ok(guest.ready.runtimes.includes('python'));
    assert.ok(guest.ready.runtimes.includes('node'), `runtimes: ${guest.ready.runtimes}`);
    for (const f of ['hello', 'hello-js', 'exec', 'json'])
      assert.ok(guest.ready.functions.includes(f), `${f} in ${guest.ready.functions}`);
  });

  test(
    'hello answers in Python and in JS',
    withGuest(async (g) => {
      const t0 = performance.now();
      const py = await g.agent.invoke('hello', { name: 'py' }, { timeoutMs: 30_000 });
      const hostMs = performance.now() - t0;
      assert.deepEqual((py.result as { greeting: string }).greeting, 'Hello, py!');
      // The guest's own phase times: real numbers that fit inside the call as the host saw it.
      const phases = [py.timings.readMs, py.timings.processMs, py.timings.writeMs];
      assert.ok(
        phases.every((v) => Number.isFinite(v) && v >= 0),
        JSON.stringify(py.timings),
      );
      assert.ok(phases.reduce((a, b) => a + b) <= hostMs + 1, `${phases} vs ${hostMs} ms`);
      // The first JS call starts Node in the guest: 45–70 s of emulated kernel work here.
      const js = await g.agent.invoke('hello-js', { name: 'js' }, { timeoutMs: 240_000 });
      assert.deepEqual(js.result, {
        greeting: 'Hello, js!',
        params: { name: 'js' },
        runtime: 'node',
      });
    }),
  );

  test(
    'a function reads its input through the host-relayed object store',
    withGuest(async (g) => {
      const out = await g.agent.invoke(
        'json',
        { input_object_key: 'greeting.json' },
        { timeoutMs: 30_000 },
      );
      assert.ok(out.result !== null && typeof out.result === 'object', JSON.stringify(out));
      assert.ok(out.timings.readMs > 0);
    }),
  );

  test(
    'a raising function returns an error and the next invocation works',
    withGuest(async (g) => {
      await assert.rejects(
        g.agent.invoke('exec', { script: 'raise ValueError("boom")' }, { timeoutMs: 30_000 }),
        (e) => isFaasnapError(e, 'FUNCTION_ERROR') && /boom/.test(e.message),
      );
      const ok = await g.agent.invoke('exec', { script: 'result = 6 * 7' }, { timeoutMs: 30_000 });
      assert.equal(ok.result, 42);
    }),
  );

  test(
    'a function past its timeout is reported as such and the agent survives',
    withGuest(async (g) => {
      await assert.rejects(
        g.agent.invoke('exec', { script: 'time.sleep(2)' }, { timeoutMs: 300 }),
        (e) => isFaasnapError(e, 'FUNCTION_TIMEOUT'),
      );
      const ok = await g.agent.invoke('hello', { name: 'after' }, { timeoutMs: 30_000 });
      assert.equal((ok.result as { greeting: string }).greeting, 'Hello, after!');
    }),
  );

  test(
    'snapshot, record through the agent, restore two clones: clock corrected, randomness apart',
    withGuest(async (g, t) => {
      // Warm the probe's imports into the snapshot, then snapshot the paused guest.
      await g.agent.invoke('exec', { script: PROBE }, { timeoutMs: 30_000 });
      g.agent.close();
      await g.vmm.call({ type: 'pause' });
      const snap = dirs.fresh();
      await g.vmm.call({ type: 'snapshot', dir: snap });
      const takenAt = Date.now();
      await g.vmm.kill();

      // FaaSnap recording driven through the restored guest's agent, as the daemon does it.
      const recorder = await VmmProcess.spawn();
      extraVmms.push(recorder);
      const recSock = join(dirs.root, 'record.sock');
      await recorder.call({
        type: 'record-faasnap',
        snapshotDir: snap,
        timeoutMs: 60_000,
        agentSocket: recSock,
        drive: 'controller',
      });
      const recAgent = await AgentClient.connect(recSock, { storage });
      await recAgent.restored({ timeoutMs: 30_000 });
      await recAgent.invoke('hello', { name: 'record' }, { timeoutMs: 30_000 });
      recAgent.close();
      const recorded = await recorder.call<{ regions: number; loadingSetBytes: number }>({
        type: 'record-finish',
      });
      assert.ok(recorded.regions > 0 && recorded.loadingSetBytes > 0, JSON.stringify(recorded));

      const wait = takenAt + SNAPSHOT_AGE_MS - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));

      const clone = async (mode: MemoryMode) => {
        const vmm = await VmmProcess.spawn();
        extraVmms.push(vmm);
        const sock = join(dirs.root, `${mode}.sock`);
        const t0 = performance.now();
        await vmm.call({ type: 'restore', snapshotDir: snap, mode, agentSocket: sock });
        await vmm.call({ type: 'resume' });
        const agent = await AgentClient.connect(sock, { storage });
        const ready = await agent.restored({ timeoutMs: 30_000 });
        const readyMs = performance.now() - t0;
        const hello = await agent.invoke('hello', { name: mode }, { timeoutMs: 30_000 });
        const hostBefore = Date.now() / 1000;
        const probe = await agent.invoke('exec', { script: PROBE }, { timeoutMs: 30_000 });
        const hostAfter = Date.now() / 1000;
        agent.close();
        const p = probe.result as Record<string, number>;
        return { ready, readyMs, hello, probe: p, hostBefore, hostAfter };
      };
      const [vanilla, faasnap] = await Promise.all([clone('vanilla'), clone('faasnap')]);
      for (const [mode, c] of [
        ['vanilla', vanilla],
        ['faasnap', faasnap],
      ] as const) {
        t.diagnostic(`${mode}: restore request → agent ready ${c.readyMs.toFixed(0)} ms`);
        assert.equal(c.ready.restored, true);
        assert.equal((c.hello.result as { greeting: string }).greeting, `Hello, ${mode}!`);
        // The guest read its clock between the host's two readings.
        const guest = c.probe.time!;
        const skew = Math.max(c.hostBefore - guest, guest - c.hostAfter, 0);
        assert.ok(skew < CLOCK_SKEW_LIMIT_S, `${mode}: guest clock off by ${skew.toFixed(3)} s`);
      }
      assert.notEqual(vanilla.probe.urandom, faasnap.probe.urandom, 'clones share /dev/urandom');
      assert.notEqual(vanilla.probe.random, faasnap.probe.random, 'clones share random.random()');
    }),
  );
});
