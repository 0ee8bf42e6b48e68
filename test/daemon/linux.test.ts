// Tier 3 through the daemon: a python and a node function bundled in the test image are
// deployed (boot to a ready agent, warm-up invocation, snapshot, FaaSnap and REAP recordings
// driven through the agent) and invoked in every kind of start: every snapshot memory mode (the
// FaaSnap ablations included), and warm (the second warm call reuses the VM). Inputs come from
// Redis through the agent's storage relay; a raising function is an error result; uploaded code
// runs like a bundled handler.
// The daemon may run one VM at a time, so the idle warm VM is evicted for the next deploy.
// Each deploy boots the guest once (~1 min).

import { scaledMs } from '../../common/time-scale.js';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MEMORY_MODES } from '../../loader/modes.js';
import { guestFiles } from '../guest/support.js';
import { skipOrFail } from '../support/skip.js';
import { startDaemon, waitForState, type TestDaemon } from './support.js';

const DEPLOY_TIMEOUT_MS = 10 * 60_000;
const PY = {
  name: 'py-hello',
  runtime: 'python',
  handler: 'hello',
  memoryMiB: 256,
  vcpus: 2,
  timeoutMs: 60_000,
  recordParams: { name: 'record' },
};
const JSON_FN = {
  ...PY,
  name: 'py-json',
  handler: 'json',
  recordParams: { input_object_key: 'a.json' },
};
const EXEC = { ...PY, name: 'py-exec', handler: 'exec', recordParams: { script: 'result = 1' } };
const JS = { ...PY, name: 'js-hello', runtime: 'node', handler: 'hello-js', timeoutMs: 240_000 };
/** Uploaded code, not in the image: installed at deploy, so in every snapshot. */
const UPLOADED = {
  ...PY,
  name: 'py-uploaded',
  handler: 'double',
  code: 'def handle(params, ctx):\n    return {"double": 2 * int(params["n"])}\n',
  recordParams: { n: '1' },
};

async function deploy(d: TestDaemon, fn: object & { name: string }): Promise<void> {
  assert.equal((await d.call('POST', '/functions', fn)).status, 201);
  assert.equal((await d.call('POST', `/functions/${fn.name}/deploy`)).status, 202);
  const w = await waitForState(d.call, fn.name, 'ready', scaledMs(DEPLOY_TIMEOUT_MS));
  assert.equal(w.body.reached, true, JSON.stringify(w.body));
}

async function invoke(d: TestDaemon, fn: string, body: object) {
  const r = await d.call('POST', `/functions/${fn}/invocations`, body);
  assert.equal(r.status, 200, r.text);
  return r.body as {
    status: string;
    result: unknown;
    error: { code: string; message: string } | null;
    phases: { name: string; durationMs: number }[];
    durationMs: number;
  };
}

const phaseNames = (inv: { phases: { name: string }[] }) => inv.phases.map((p) => p.name);

/** A daemon that may run one VM at a time: an idle warm VM must be evicted for the next deploy. */
async function oneVmDaemon(t: { skip(msg: string): void }): Promise<TestDaemon | undefined> {
  const files = guestFiles();
  if (typeof files === 'string') {
    skipOrFail(t, files);
    return undefined;
  }
  const d = await startDaemon({ guest: files, maxVms: 1, maxMemoryMiB: 2048, poolSize: 2 });
  assert.equal((await d.call('GET', '/healthz')).body.runtimes.python, true);
  return d;
}

test(
  'a python function deploys and runs restored in every memory mode and warm (tier 3)',
  { timeout: scaledMs(20 * 60_000) },
  async (t) => {
    const d = await oneVmDaemon(t);
    if (!d) return;
    try {
      await deploy(d, PY);
      for (const mode of MEMORY_MODES) {
        const inv = await invoke(d, PY.name, { mode, params: { name: mode } });
        assert.equal(inv.status, 'succeeded', JSON.stringify(inv));
        assert.equal((inv.result as { greeting: string }).greeting, `Hello, ${mode}!`);
        for (const p of [
          'restore',
          'vcpu-resume',
          'channel-connect',
          'guest-read',
          'guest-process',
        ])
          assert.ok(phaseNames(inv).includes(p), `${mode}: ${phaseNames(inv)}`);
        t.diagnostic(`${mode}: ${inv.durationMs.toFixed(0)} ms end to end`);
      }
      const warm1 = await invoke(d, PY.name, { mode: 'warm', params: { name: 'w1' } });
      const warm2 = await invoke(d, PY.name, { mode: 'warm', params: { name: 'w2' } });
      assert.equal((warm2.result as { greeting: string }).greeting, 'Hello, w2!');
      assert.ok(phaseNames(warm1).includes('restore'), 'the first warm call starts the VM');
      assert.ok(!phaseNames(warm2).includes('restore'), `warm hit: ${phaseNames(warm2)}`);
      t.diagnostic(`warm hit: ${warm2.durationMs.toFixed(0)} ms end to end`);
      assert.equal((await d.call('GET', '/vms')).body.length, 1, 'one idle warm VM is kept');
    } finally {
      await d.stop();
    }
    // Every VM (warm ones too) is gone with the daemon.
  },
);

test(
  'an idle warm VM is evicted for the next deploy; input comes from Redis (tier 3)',
  { timeout: scaledMs(20 * 60_000) },
  async (t) => {
    const d = await oneVmDaemon(t);
    if (!d) return;
    try {
      const put = await d.call('PUT', '/objects/a.json', Buffer.from('{"a": [1, 2, 3]}'));
      assert.ok(put.status < 300, put.text);
      await d.call('PUT', '/objects/b.json', Buffer.from('{"b": 1, "c": {"d": [true, null]}}'));
      await deploy(d, PY);
      await invoke(d, PY.name, { mode: 'warm', params: { name: 'w' } });
      assert.equal((await d.call('GET', '/vms')).body.length, 1, 'one idle warm VM is kept');

      // Input from Redis through the agent; recorded with a.json, tested with b.json.
      await deploy(d, JSON_FN);
      assert.match(
        (await d.call('GET', '/metrics')).text,
        /faasnap_warm_evictions_total\{function="py-hello"\} 1/,
        'the deploy stopped the idle warm VM instead of failing with RESOURCE_LIMIT',
      );
      const j = await invoke(d, JSON_FN.name, {
        mode: 'faasnap',
        params: { input_object_key: 'b.json' },
      });
      assert.equal(j.status, 'succeeded', JSON.stringify(j));
      const missing = await invoke(d, JSON_FN.name, {
        mode: 'vanilla',
        params: { input_object_key: 'nope.json' },
      });
      assert.equal(missing.status, 'failed');
      assert.equal(missing.error?.code, 'FUNCTION_ERROR');
    } finally {
      await d.stop();
    }
  },
);

test(
  'raising, uploaded and node functions deploy and run (tier 3)',
  { timeout: scaledMs(20 * 60_000) },
  async (t) => {
    const d = await oneVmDaemon(t);
    if (!d) return;
    try {
      // A raising function: an error result, and the VM is discarded.
      await deploy(d, EXEC);
      const boom = await invoke(d, EXEC.name, {
        mode: 'faasnap',
        params: { script: 'raise RuntimeError("boom")' },
      });
      assert.equal(boom.status, 'failed');
      assert.equal(boom.error?.code, 'FUNCTION_ERROR');
      assert.match(boom.error!.message, /boom/);
      const fine = await invoke(d, EXEC.name, {
        mode: 'faasnap',
        params: { script: 'result = 7' },
      });
      assert.equal(fine.result, 7);

      await deploy(d, UPLOADED);
      const up = await invoke(d, UPLOADED.name, { mode: 'faasnap', params: { n: '21' } });
      assert.deepEqual(up.result, { double: 42 }, JSON.stringify(up));

      await deploy(d, JS);
      const js = await invoke(d, JS.name, { mode: 'faasnap', params: { name: 'node' } });
      assert.equal(js.status, 'succeeded', JSON.stringify(js));
      assert.deepEqual(js.result, {
        greeting: 'Hello, node!',
        params: { name: 'node' },
        runtime: 'node',
      });
      t.diagnostic(`node faasnap: ${js.durationMs.toFixed(0)} ms end to end`);
    } finally {
      await d.stop();
    }
    // Every VM (warm ones too) is gone with the daemon.
  },
);
