// Durability: the daemon (a child process, as users run it) is SIGKILLed mid-deploy and
// mid-invocation, then restarted on the same data dir: committed state is all there, every
// complete snapshot is found and served, half-made work is cleaned or marked failed, and
// no VMM process outlives its daemon.

import { scaledMs } from '../../common/time-scale.js';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { processAlive } from '../../common/process.js';
import { kvmTest } from '../kvm/support.js';
import { request, waitForState } from './support.js';

const CLI = resolve(fileURLToPath(import.meta.url), '../../../cli/main.js');

interface Child {
  proc: ChildProcess;
  url: string;
}

async function startChild(dir: string): Promise<Child> {
  const info = join(dir, 'daemon.json');
  rmSync(info, { force: true });
  const proc = spawn(
    process.execPath,
    // Unjailed, like the other daemon tiers (test/daemon/support.ts).
    [
      CLI,
      'daemon',
      '--data-dir',
      dir,
      '--port',
      '0',
      '--pool-size',
      '1',
      '--log-level',
      'info',
      '--no-jail',
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  // Its log says how far a start that takes too long got (recovery, Redis, the pool).
  let log = '';
  proc.stdout!.on('data', (b: Buffer) => (log = (log + b.toString()).slice(-4000)));
  // Start-up recovers the killed daemon's state and fills the pool (a warm-up VM): in the lab
  // (scale 10) 150 s were not always enough with another lab machine on the host.
  const startedAt = Date.now();
  for (const deadline = startedAt + scaledMs(30_000); Date.now() < deadline;) {
    if (existsSync(info))
      return { proc, url: (JSON.parse(readFileSync(info, 'utf8')) as { url: string }).url };
    if (proc.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  proc.kill('SIGKILL');
  throw new Error(
    `daemon did not start in ${Date.now() - startedAt} ms (exit ${proc.exitCode}); its log:\n${log}`,
  );
}

function killed(proc: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  return new Promise((res) => {
    if (proc.exitCode !== null || proc.signalCode !== null) return res();
    proc.once('exit', () => res());
    proc.kill(signal);
  });
}

async function waitGone(pids: number[]): Promise<void> {
  for (
    const deadline = Date.now() + scaledMs(5000);
    Date.now() < deadline && pids.some(processAlive);
  )
    await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(pids.filter(processAlive), [], 'VMM processes outlived their daemon');
}

kvmTest(
  'SIGKILL mid-deploy and mid-invocation: restart loses nothing complete and cleans the rest',
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'faasnap-durability-'));
    let child: Child | undefined;
    try {
      child = await startChild(dir);
      const call = (m: string, p: string, b?: unknown) => request(child!.url, m, p, b);
      await call('POST', '/functions', {
        name: 'keep',
        runtime: 'micro',
        handler: 'touch',
        memoryMiB: 32,
        stateMiB: 4,
      });
      await call('POST', '/functions/keep/deploy');
      assert.equal((await waitForState(call, 'keep', 'ready', scaledMs(60000))).body.reached, true);
      const done = await call('POST', '/functions/keep/invocations', {
        params: { range: { count: 300 } },
      });
      assert.equal(done.body.status, 'succeeded');

      // Kill during a deploy (a bigger function, so the chain takes a while).
      await call('POST', '/functions', {
        name: 'cut',
        runtime: 'micro',
        handler: 'touch',
        memoryMiB: 160,
        stateMiB: 128,
      });
      await call('POST', '/functions/cut/deploy');
      const vmmPids = new Set<number>();
      let state = 'booting';
      for (
        const deadline = Date.now() + scaledMs(10_000);
        Date.now() < deadline && ['booting', 'warm'].includes(state);
      ) {
        for (const v of (await call('GET', '/vms')).body as { pid: number | null }[])
          if (v.pid) vmmPids.add(v.pid);
        state = (await call('GET', '/functions/cut')).body.state;
        if (state === 'warm') break;
        await new Promise((r) => setTimeout(r, 10));
      }
      await killed(child.proc, 'SIGKILL');
      await waitGone([...vmmPids]);

      child = await startChild(dir);
      const keep = (await call('GET', '/functions/keep')).body;
      assert.equal(keep.state, 'ready');
      const snaps = (await call('GET', '/snapshots')).body as {
        id: string;
        status: string;
        function: string;
      }[];
      assert.ok(
        snaps.every((s) => s.status !== 'creating'),
        JSON.stringify(snaps),
      );
      const onDisk = readdirSync(join(dir, 'snapshots')).sort();
      assert.deepEqual(
        onDisk,
        snaps
          .filter((s) => s.status === 'complete')
          .map((s) => s.id)
          .sort(),
      );
      for (const id of onDisk) assert.ok(existsSync(join(dir, 'snapshots', id, 'state.bin')));
      const cut = (await call('GET', '/functions/cut')).body;
      assert.ok(
        cut.state === 'ready' || (cut.state === 'failed' && cut.error.code === 'DAEMON_RESTARTED'),
        JSON.stringify(cut),
      );
      assert.equal(
        (await call('GET', `/invocations/${done.body.id}`)).body.result.checksum,
        done.body.result.checksum,
      );
      const again = await call('POST', '/functions/keep/invocations', {
        params: { range: { count: 300 } },
      });
      assert.equal(again.body.result.checksum, done.body.result.checksum);
      await call('POST', '/functions/cut/deploy');
      assert.equal((await waitForState(call, 'cut', 'ready', scaledMs(120000))).body.reached, true);

      // Kill during an invocation.
      await call('POST', '/functions', {
        name: 'hangs',
        runtime: 'micro',
        handler: 'hang',
        memoryMiB: 16,
      });
      const vm = await call('POST', '/vms', { function: 'hangs' });
      const hs = (await call('POST', '/snapshots', { vm: vm.body.id })).body.id as string;
      void call('POST', '/functions/hangs/invocations', {
        snapshot: hs,
        mode: 'vanilla',
        timeoutMs: scaledMs(60_000),
      }).catch(() => undefined);
      // The restore may wait for the pool to start a process at background priority: 40 s were
      // not always enough in the lab (scale 10).
      let pid: number | undefined;
      for (const deadline = Date.now() + scaledMs(20_000); Date.now() < deadline && !pid;) {
        pid = ((await call('GET', '/vms')).body as { state: string; pid: number }[]).find(
          (v) => v.state === 'running',
        )?.pid;
        if (!pid) await new Promise((r) => setTimeout(r, 20));
      }
      assert.ok(pid);
      await killed(child.proc, 'SIGKILL');
      await waitGone([pid]);

      child = await startChild(dir);
      const hist = (await call('GET', '/functions/hangs/invocations')).body as {
        status: string;
        error: { code: string };
      }[];
      assert.equal(hist.length, 1);
      assert.equal(hist[0]!.status, 'failed');
      assert.equal(hist[0]!.error.code, 'DAEMON_RESTARTED');
      assert.equal((await call('GET', '/functions/keep/invocations')).body.length, 2);
      assert.equal((await call('GET', `/snapshots/${hs}`)).body.status, 'complete');
      const redisPid = Number(readFileSync(join(dir, 'redis', 'redis.pid'), 'utf8'));
      await killed(child.proc, 'SIGTERM');
      await waitGone([redisPid]);
      child = undefined;
    } finally {
      if (child) await killed(child.proc, 'SIGKILL');
      const pidFile = join(dir, 'redis', 'redis.pid');
      if (existsSync(pidFile)) {
        const p = Number(readFileSync(pidFile, 'utf8'));
        if (processAlive(p)) process.kill(p, 'SIGKILL');
      }
      rmSync(dir, { recursive: true, force: true });
    }
  },
  180_000,
);
