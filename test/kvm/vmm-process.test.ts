// Tier 2: VMM processes from the pool run and restore VMs through typed actions; invalid
// actions get typed errors; a crashed VMM process is detected and reported.

import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { getPriority, tmpdir } from 'node:os';
import { join } from 'node:path';
import { isFaasnapError } from '../../common/errors.js';
import { childPids } from '../../common/process.js';
import {
  TOUCH_FLAG_PROGRESS,
  TOUCH_FLAG_WRITE,
  encodeTouchParams,
  helloSum,
  parseHelloOutput,
  parseTouchOutput,
  touchExpectedChecksum,
} from '../../guest/micro/index.js';
import { dataPages, microBootImage } from '../../guest/micro/launch.js';
import { VmmProcess } from '../../process/client.js';
import { VmmPool } from '../../process/pool.js';
import { BACKGROUND_NICE, canStartInBackground } from '../../process/priority.js';
import { kvmTest } from './support.js';

kvmTest('a pooled VMM process boots a micro-guest and reports its console and exit', async () => {
  const pool = new VmmPool(2);
  await pool.fill();
  assert.equal(pool.idleCount, 2);
  const vmm = await pool.take();
  try {
    let out = '';
    vmm.onConsole = (c) => (out += Buffer.from(c).toString());
    await vmm.call({ type: 'boot-micro', memMiB: 16, vcpus: 2, ...microBootImage('hello', 16) });
    await vmm.call({ type: 'start' });
    assert.deepEqual(await vmm.call({ type: 'wait', timeoutMs: 30_000 }), { reason: 'reset' });
    const text = await vmm.call<string>({ type: 'console' });
    assert.equal(parseHelloOutput(text).sum, helloSum());
    assert.equal(parseHelloOutput(text).vcpus, 2);
    assert.match(out, /hello from CPL3/);
  } finally {
    await vmm.kill();
    await pool.close();
  }
});

/** Processes this test process started (the pool's VMM processes). */

/** The nice value of every thread of a process. */
function threadNices(pid: number): number[] {
  return readdirSync(`/proc/${pid}/task`).map((tid) => getPriority(Number(tid)));
}

kvmTest(
  'pool refills start at the lowest priority; a taken process runs at the daemon priority',
  async () => {
    const pool = new VmmPool(1);
    await pool.fill();
    const vmm = await pool.take();
    try {
      // The refill that take() started is a background process until taken itself.
      await pool.fill();
      const next = await pool.take();
      try {
        assert.deepEqual(new Set(threadNices(vmm.pid)), new Set([getPriority()]));
        assert.deepEqual(new Set(threadNices(next.pid)), new Set([getPriority()]));
        await pool.fill();
        const idle = childPids().filter((pid) => pid !== vmm.pid && pid !== next.pid);
        assert.equal(idle.length, 1);
        // Without the right to raise it again (no CAP_SYS_NICE), refills run at normal priority.
        const expected = canStartInBackground() ? BACKGROUND_NICE : getPriority();
        assert.deepEqual(new Set(threadNices(idle[0]!)), new Set([expected]));
      } finally {
        await next.kill();
      }
    } finally {
      await vmm.kill();
      await pool.close();
    }
  },
);

kvmTest('a VMM process snapshots and another restores from the snapshot', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'faasnap-vmmproc-'));
  const a = await VmmProcess.spawn();
  const b = await VmmProcess.spawn();
  try {
    const n = dataPages(32);
    const params = {
      flags: TOUCH_FLAG_WRITE | TOUCH_FLAG_PROGRESS,
      seed: 3,
      pages: Array.from({ length: n }, (_, i) => n - 1 - i),
    };
    await a.call({
      type: 'boot-micro',
      memMiB: 32,
      vcpus: 1,
      ...microBootImage('touch', 32, encodeTouchParams(params)),
    });
    await a.call({ type: 'start' });
    await a.call({ type: 'pause' });
    await a.call({ type: 'snapshot', dir });
    await a.call({ type: 'stop' });
    await b.call({ type: 'restore', snapshotDir: dir, mode: 'vanilla' });
    await b.call({ type: 'resume' });
    await b.call({ type: 'wait', timeoutMs: 60_000 });
    const text = await b.call<string>({ type: 'console' });
    assert.equal(parseTouchOutput(text).checksum, touchExpectedChecksum(params));
  } finally {
    await a.kill();
    await b.kill();
    rmSync(dir, { recursive: true, force: true });
  }
});

kvmTest('invalid actions get typed errors and a crashed VMM process is reported', async () => {
  const vmm = await VmmProcess.spawn();
  try {
    await assert.rejects(
      vmm.call({ type: 'boot-micro', memMiB: 1, vcpus: 1, ...microBootImage('hello', 1) }),
      (e) => isFaasnapError(e, 'STATE_INVALID'),
    );
    await assert.rejects(vmm.call({ type: 'resume' }), (e) =>
      isFaasnapError(e, 'INVALID_VM_STATE'),
    );
    await assert.rejects(
      vmm.call({ type: 'restore', snapshotDir: '/nonexistent', mode: 'vanilla' }),
      (e) => isFaasnapError(e, 'SNAPSHOT_MISSING'),
    );
    await vmm.call({ type: 'boot-micro', memMiB: 16, vcpus: 1, ...microBootImage('hang', 16) });
    await vmm.call({ type: 'start' });
    const waiting = vmm.call({ type: 'wait', timeoutMs: 60_000 });
    process.kill(vmm.pid, 'SIGKILL');
    await assert.rejects(waiting, (e) => isFaasnapError(e, 'VMM_CRASHED'));
    assert.equal(vmm.alive, false);
  } finally {
    await vmm.kill();
  }
});
