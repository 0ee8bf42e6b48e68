// Invocations on a real daemon: parallel invocations of one function from one snapshot and from
// separate copies return correct results in every memory mode; function timeouts, VMM crashes,
// corrupt or missing snapshots and resource limits answer as documented and leak no VM.

import { scaledMs } from '../../common/time-scale.js';
import assert from 'node:assert/strict';
import { truncateSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { kvmTest } from '../kvm/support.js';
import {
  TOUCH_FN,
  startDaemon,
  touchExpected as expected,
  waitForState,
  walk,
  type TestDaemon,
} from './support.js';

async function invoke(d: TestDaemon, body: object, fn = TOUCH_FN.name) {
  return d.call('POST', `/functions/${fn}/invocations`, body);
}

kvmTest(
  'parallel invocations from one snapshot and from copies, all modes, failures and limits',
  async () => {
    const d = await startDaemon({
      maxVms: 4,
      maxMemoryMiB: 160,
      clientLimits: { invocations: 4, deploys: 1 },
    });
    try {
      assert.equal((await d.call('POST', '/functions', TOUCH_FN)).status, 201);
      assert.equal((await d.call('POST', `/functions/${TOUCH_FN.name}/deploy`)).status, 202);
      // While that deploy runs, this client may start no other (deploys: 1).
      const other = { ...TOUCH_FN, name: 'touch-other' };
      assert.equal((await d.call('POST', '/functions', other)).status, 201);
      const second = await d.call('POST', `/functions/${other.name}/deploy`);
      assert.equal(second.status, 429, second.text);
      assert.equal(second.body.code, 'CLIENT_LIMIT');
      assert.deepEqual([second.body.details.kind, second.body.details.limit], ['deploys', 1]);
      assert.equal((await d.call('DELETE', `/functions/${other.name}`)).status, 204);
      const ready = await waitForState(d.call, TOUCH_FN.name, 'ready', scaledMs(60000));
      assert.equal(ready.body.reached, true, JSON.stringify(ready.body));
      const snap = ready.body.function.readySnapshot as string;

      // One snapshot, four concurrent restores in different modes with different inputs.
      const modes = ['faasnap', 'reap', 'vanilla', 'eager'];
      const inputs = modes.map((_, i) => walk(i * 300, 1200, 7 + 2 * i));
      const same = await Promise.all(
        modes.map((mode, i) => invoke(d, { mode, params: { pages: inputs[i] } })),
      );
      same.forEach((r, i) => {
        assert.equal(r.status, 200, r.text);
        assert.equal(r.body.status, 'succeeded', r.text);
        assert.equal(r.body.result.checksum, expected(inputs[i]!), `${modes[i]}`);
      });

      // A fifth concurrent invocation of this client is over its limit (invocations: 4): it is
      // refused at once, the four others run; the deploy's slot was given back when it ended.
      const five = await Promise.all(
        [...modes, 'faasnap'].map((mode) => invoke(d, { mode, params: { pages: inputs[0] } })),
      );
      const refused = five.filter((r) => r.status === 429);
      assert.equal(refused.length, 1, five.map((r) => r.text).join('\n'));
      assert.equal(refused[0]!.body.code, 'CLIENT_LIMIT');
      assert.equal(refused[0]!.body.details.kind, 'invocations');
      for (const r of five.filter((r) => r.status !== 429))
        assert.equal(r.body.result.checksum, expected(inputs[0]!), r.text);
      assert.equal(d.daemon.ctx.clientLimits.clients, 0, 'every slot is given back');

      // Separate copies (recordings copied along), concurrently.
      const copies = [
        (await d.call('POST', `/snapshots/${snap}/copy`)).body.id,
        (await d.call('POST', `/snapshots/${snap}/copy`)).body.id,
      ];
      const ids = [snap, ...copies, copies[0]];
      const cm = ['faasnap', 'faasnap', 'reap', 'cached'];
      const fromCopies = await Promise.all(
        ids.map((s, i) =>
          invoke(d, {
            snapshot: s,
            mode: cm[i],
            params: { range: { first: 100 * i, count: 900, stride: 11 } },
          }),
        ),
      );
      fromCopies.forEach((r, i) => {
        assert.equal(r.body.status, 'succeeded', r.text);
        assert.equal(r.body.snapshot, ids[i]);
        assert.equal(r.body.result.checksum, expected(walk(100 * i, 900, 11)));
      });

      // A write-mode input: the result is independent of the snapshot's contents.
      const wr = await invoke(d, { params: { range: { count: 16 }, write: true, seed: 9 } });
      assert.equal(wr.body.status, 'succeeded');

      // Function timeout: HTTP 200, error payload, VM gone.
      const to = await invoke(d, {
        mode: 'vanilla',
        timeoutMs: 1,
        params: { range: { count: 7000 }, write: true },
      });
      assert.equal(to.status, 200);
      assert.equal(to.body.status, 'failed');
      assert.equal(to.body.error.code, 'FUNCTION_TIMEOUT');
      assert.equal((await d.call('GET', '/vms')).body.length, 0);

      // A corrupt (truncated) and a missing snapshot: registry 4xx, nothing leaked.
      const [bad, gone] = copies as [string, string];
      truncateSync(join(d.dir, 'snapshots', bad, 'memory.bin'), 4096);
      const r1 = await invoke(d, { snapshot: bad, mode: 'vanilla' });
      assert.equal(r1.status, 422, r1.text);
      assert.match(r1.body.code, /^SNAPSHOT_/);
      unlinkSync(join(d.dir, 'snapshots', gone, 'state.bin'));
      const r2 = await invoke(d, { snapshot: gone, mode: 'eager' });
      assert.equal(r2.status, 404, r2.text);
      assert.equal(r2.body.code, 'SNAPSHOT_MISSING');
      assert.equal((await d.call('GET', '/vms')).body.length, 0);
      const failedRow = await d.call('GET', `/invocations/${r2.body.details.invocation}`);
      assert.equal(failedRow.body.error.code, 'SNAPSHOT_MISSING');

      // A never-ending function: timeout, then a VMM process killed mid-invocation.
      const hang = { name: 'hangs', runtime: 'micro', handler: 'hang', memoryMiB: 16 };
      assert.equal((await d.call('POST', '/functions', hang)).status, 201);
      const vm = await d.call('POST', '/vms', { function: 'hangs' });
      const hs = await d.call('POST', '/snapshots', { vm: vm.body.id });
      assert.equal(hs.status, 201);
      const ht = await invoke(d, { snapshot: hs.body.id, mode: 'eager', timeoutMs: 300 }, 'hangs');
      assert.equal(ht.body.error.code, 'FUNCTION_TIMEOUT');
      const running = invoke(
        d,
        { snapshot: hs.body.id, mode: 'eager', timeoutMs: 60_000 },
        'hangs',
      );
      // Its VMM process may have to start first (the pool refills at background priority).
      let pid: number | undefined;
      for (const deadline = Date.now() + scaledMs(20_000); Date.now() < deadline && !pid;) {
        const v = (await d.call('GET', '/vms')).body.find(
          (x: { state: string }) => x.state === 'running',
        );
        pid = v?.pid;
        if (!pid) await new Promise((r) => setTimeout(r, 20));
      }
      assert.ok(pid, 'the invocation VM shows up in GET /vms');
      process.kill(pid, 'SIGKILL');
      const crashed = await running;
      assert.equal(crashed.status, 502, crashed.text);
      assert.equal(crashed.body.code, 'VMM_CRASHED');
      assert.equal((await d.call('GET', '/vms')).body.length, 0);

      // Resource limits: VM count, then guest memory.
      const booted = [];
      for (let i = 0; i < 4; i++)
        booted.push((await d.call('POST', '/vms', { function: 'hangs' })).body.id);
      const over = await d.call('POST', '/vms', { function: 'hangs' });
      assert.equal(over.status, 429);
      assert.equal(over.body.details.limit, 'maxVms');
      for (const id of booted) await d.call('DELETE', `/vms/${id}`);
      await d.call('POST', '/functions', { ...hang, name: 'big', memoryMiB: 512 });
      const mem = await d.call('POST', '/vms', { function: 'big' });
      assert.equal(mem.status, 429);
      assert.equal(mem.body.details.limit, 'maxMemoryMiB');

      const m = (await d.call('GET', '/metrics')).text;
      assert.match(m, /faasnap_restore_failures_total\{mode="vanilla",code="SNAPSHOT_/);
      assert.match(m, /faasnap_vmm_crashes_total 1/);
      assert.equal((await d.call('GET', '/vms')).body.length, 0);
    } finally {
      await d.stop();
    }
  },
  180_000,
);
