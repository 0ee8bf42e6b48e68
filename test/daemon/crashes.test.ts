// VMM processes killed (SIGKILL) at spread-out points of an invocation's restore: the caller gets
// VMM_CRASHED naming the phase that failed, the invocation's row says the same, nothing leaks,
// the pool refills and the next invocation succeeds.

import { scaledMs } from '../../common/time-scale.js';
import assert from 'node:assert/strict';
import { kvmTest } from '../kvm/support.js';
import { TOUCH_FN, startDaemon, waitForState } from './support.js';

const MODES = ['eager', 'vanilla', 'cached', 'reap', 'faasnap'];

kvmTest(
  'a VMM process killed at random points of the restore gives VMM_CRASHED with the phase; the pool refills',
  async (t) => {
    const d = await startDaemon({ maxVms: 2, maxMemoryMiB: 160, poolSize: 1 });
    try {
      assert.equal((await d.call('POST', '/functions', TOUCH_FN)).status, 201);
      await d.call('POST', `/functions/${TOUCH_FN.name}/deploy`);
      const ready = await waitForState(d.call, TOUCH_FN.name, 'ready', scaledMs(60_000));
      assert.equal(ready.body.reached, true, JSON.stringify(ready.body));
      const params = { range: { count: 3000, stride: 7 } };
      const seen = new Set<string>();
      for (let round = 0; round < MODES.length; round++) {
        const mode = MODES[round]!;
        const running = d.call('POST', `/functions/${TOUCH_FN.name}/invocations`, {
          mode,
          params,
        });
        // The VM appears once its VMM process is taken from the pool; kill it 0–200 ms later
        // (spread over the rounds, jittered), to land in different phases.
        let pid: number | undefined;
        for (const end = Date.now() + scaledMs(10_000); !pid && Date.now() < end;)
          pid = ((await d.call('GET', '/vms')).body as { pid?: number }[])[0]?.pid;
        assert.ok(pid, 'the invocation VM shows up in GET /vms');
        const delay = round * 40 + Math.floor(Math.random() * 40);
        await new Promise((r) => setTimeout(r, delay));
        process.kill(pid, 'SIGKILL');
        const r = await running;
        if (r.status === 200) {
          // The kill came after the answer: a correct result, never a wrong one.
          assert.equal(r.body.status, 'succeeded', r.text);
          continue;
        }
        assert.equal(r.status, 502, r.text);
        assert.equal(r.body.code, 'VMM_CRASHED', r.text);
        const phase = r.body.details.phase as string;
        const row = await d.call('GET', `/invocations/${r.body.details.invocation}`);
        assert.equal(row.body.status, 'failed');
        assert.equal(row.body.error.code, 'VMM_CRASHED');
        assert.equal(row.body.error.details.phase, phase, 'the row names the same phase');
        const traced = (row.body.phases as { name: string }[]).map((p) => p.name);
        assert.ok(traced.includes(phase), `${phase} is traced: ${traced}`);
        seen.add(phase);
        assert.equal((await d.call('GET', '/vms')).body.length, 0, 'no VM is left');
      }
      t.diagnostic(`phases hit: ${[...seen].join(', ')}`);
      assert.ok(seen.size > 0, 'at least one kill landed before the answer');
      // The pool refills, and the next invocation is served.
      for (const end = Date.now() + scaledMs(60_000); ;) {
        const m = (await d.call('GET', '/metrics')).text;
        if (/faasnap_vmm_pool_size 1\b/.test(m)) break;
        assert.ok(Date.now() < end, 'the pool refilled');
        await new Promise((r) => setTimeout(r, 100));
      }
      const ok = await d.call('POST', `/functions/${TOUCH_FN.name}/invocations`, { params });
      assert.equal(ok.body.status, 'succeeded', ok.text);
    } finally {
      await d.stop();
    }
  },
  300_000,
);
