// A daemon with jailed VMM processes (--jail), on real KVM: a function deploys (its snapshot
// written and its working sets recorded from inside jails, then handed back to the daemon's
// user) and answers correctly in every memory mode; the VMM processes run as uids of their own
// with no capabilities, no_new_privs and a seccomp filter (every mode above ran under it), in
// PID, network and mount namespaces of their own.
// A python function on the Linux guest deploys and runs in a jailed daemon too, restored and
// warm; the warm VM's VMM process, from inside its jail and as its uid, reads its snapshot
// through its own view (daemon/snapshots.ts), and the snapshot directory itself is closed to it.
// What a jailed process cannot do is tested in test/process/jail.test.ts.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { scaledMs } from '../../common/time-scale.js';
import { VMM_OVERHEAD_MIB } from '../../daemon/server.js';
import { JAIL_ID_BASE } from '../../process/jail.js';
import { MEMORY_FILE } from '../../restore/snapshot.js';
import { test } from 'node:test';
import { guestFiles } from '../guest/support.js';
import { kvmTest } from '../kvm/support.js';
import { skipOrFail } from '../support/skip.js';
import { TOUCH_FN, startDaemon, touchExpected, waitForState, walk } from './support.js';

/** Processes running as a jail uid, with what /proc tells about them. */
function jailedProcesses() {
  const out: {
    pid: string;
    uid: number;
    vmm: boolean;
    capEff: string;
    noNewPrivs: string;
    seccomp: string;
  }[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    let status: string;
    try {
      status = readFileSync(`/proc/${pid}/status`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    const uid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]);
    if (uid >= JAIL_ID_BASE)
      out.push({
        pid,
        uid,
        // Node running the VMM (not setpriv, whose arguments name it too).
        vmm: cmdline(pid).startsWith(`${process.execPath}\0`),
        capEff: /^CapEff:\s+(\S+)/m.exec(status)![1]!,
        noNewPrivs: /^NoNewPrivs:\s+(\S+)/m.exec(status)![1]!,
        seccomp: /^Seccomp:\s+(\S+)/m.exec(status)![1]!,
      });
  }
  return out;
}

function cmdline(pid: string): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return '';
  }
}

const ns = (pid: string | number, kind: string): string => readlinkSync(`/proc/${pid}/ns/${kind}`);

/** Whether the jailed process `pid`, as its own uid, inside its mount namespace, can read `file`. */
function readsInJail(pid: number, uid: number, file: string): boolean {
  const ids = ['-S', String(uid), '-G', String(uid)];
  const r = spawnSync('nsenter', [
    '-t',
    String(pid),
    '-m',
    '-r',
    ...ids,
    '--',
    'head',
    '-c1',
    file,
  ]);
  return r.status === 0;
}

kvmTest(
  'jailed VMM processes deploy and invoke in every mode, unprivileged and in namespaces of their own',
  async () => {
    const d = await startDaemon({ jail: true, poolSize: 1 });
    try {
      const health = await d.call('GET', '/healthz');
      assert.deepEqual(health.body.jail, { enabled: true, missing: [] });

      // The record input reads a quarter of the function's state.
      const fn = { ...TOUCH_FN, recordParams: { range: { first: 0, count: 256 } } };
      assert.equal((await d.call('POST', '/functions', fn)).status, 201);
      assert.equal((await d.call('POST', `/functions/${TOUCH_FN.name}/deploy`)).status, 202);
      const ready = await waitForState(d.call, TOUCH_FN.name, 'ready', scaledMs(60000));
      assert.equal(ready.body.reached, true, JSON.stringify(ready.body));
      // The jailed recorder saw the page cache fill: its loading set is what the record run
      // read (plus read-ahead), not all of the non-zero memory, as when the kernel hid the
      // cache from it (it did not own the memory file) and every page looked resident at once.
      const ins = await d.call('GET', `/snapshots/${ready.body.function.readySnapshot}/inspect`);
      assert.ok(
        ins.body.loadingSet.bytes < ins.body.nonZero.bytes * 0.75,
        JSON.stringify(ins.body),
      );
      // Written from inside jails, every file of the snapshot is the daemon's again.
      const dir = join(d.dir, 'snapshots', ready.body.function.readySnapshot as string);
      const owners = new Set(
        readdirSync(dir, { recursive: true }).map((f) => statSync(join(dir, String(f))).uid),
      );
      assert.deepEqual([...owners], [process.getuid!()]);

      for (const [i, mode] of ['faasnap', 'reap', 'vanilla', 'eager', 'cached'].entries()) {
        const pages = walk(i * 200, 900, 5 + 2 * i);
        const r = await d.call('POST', `/functions/${TOUCH_FN.name}/invocations`, {
          mode,
          params: { pages },
        });
        assert.equal(r.body.status, 'succeeded', `${mode}: ${r.text}`);
        assert.equal(r.body.result.checksum, touchExpected(pages), mode);
        const names = r.body.phases.map((p: { name: string }) => p.name);
        assert.ok(names.includes('snapshot-view'), `${mode}: a view in ${names.join(', ')}`);
      }
      // Every view went with its VM.
      assert.deepEqual(readdirSync(join(d.dir, 'snapshots', '.views')), []);

      // The pool's idle process (refilled after the last invocation) is jailed. Only processes
      // already running the VMM count: one being started passes through `setpriv`, which holds
      // the new uid a moment before it drops its capabilities and execs the VMM, and installs
      // its seccomp filter (mode 2) once set up, before it is ready.
      const vmms = () => jailedProcesses().filter((p) => p.vmm);
      let jailed = vmms();
      const deadline = Date.now() + scaledMs(60_000);
      while (!jailed.length || (Date.now() < deadline && jailed.some((p) => p.seccomp !== '2'))) {
        assert.ok(Date.now() < deadline, 'no jailed VMM process appeared');
        await new Promise((r) => setTimeout(r, 200));
        jailed = vmms();
      }
      for (const p of jailed) {
        assert.equal(p.capEff, '0000000000000000', `pid ${p.pid}`);
        assert.equal(p.noNewPrivs, '1', `pid ${p.pid}`);
        assert.equal(p.seccomp, '2', `pid ${p.pid}: seccomp filter`);
        for (const kind of ['pid', 'net', 'mnt', 'ipc', 'uts'])
          assert.notEqual(ns(p.pid, kind), ns(process.pid, kind), `pid ${p.pid}: ${kind}`);
      }
      assert.equal(new Set(jailed.map((p) => p.uid)).size, jailed.length, 'a uid per process');

      // A VM of 2 GiB and more gets its guest's memory + the overhead as its cgroup's limit (it
      // was once computed in 32 bits: negative, and every such deploy failed with EINVAL).
      const big = await d.daemon.ctx.vms.acquire({
        function: 'big',
        memoryMiB: 4096,
        vcpus: 1,
        purpose: 'invocation',
      });
      try {
        const rel = readFileSync(`/proc/${big.info.pid}/cgroup`, 'utf8').trim().slice(3);
        const max = readFileSync(join('/sys/fs/cgroup', rel, 'memory.max'), 'utf8').trim();
        assert.equal(Number(max), (4096 + VMM_OVERHEAD_MIB) * 2 ** 20);
      } finally {
        await d.daemon.ctx.vms.release(big.info.id);
      }
    } finally {
      await d.stop();
    }
    assert.deepEqual(jailedProcesses(), [], 'no jailed process outlives the daemon');
  },
  300_000,
);

test(
  'a jailed daemon deploys a python function on the Linux guest and runs it restored and warm (tier 3)',
  { timeout: scaledMs(20 * 60_000) },
  async (t) => {
    const files = guestFiles();
    if (typeof files === 'string') return skipOrFail(t, files);
    const d = await startDaemon({ jail: true, guest: files, poolSize: 1 });
    try {
      const fn = {
        name: 'jailed-py',
        runtime: 'python',
        handler: 'hello',
        memoryMiB: 256,
        vcpus: 1,
        timeoutMs: 60_000,
        recordParams: { name: 'record' },
      };
      assert.equal((await d.call('POST', '/functions', fn)).status, 201);
      assert.equal((await d.call('POST', `/functions/${fn.name}/deploy`)).status, 202);
      const ready = await waitForState(d.call, fn.name, 'ready', scaledMs(10 * 60_000));
      assert.equal(ready.body.reached, true, JSON.stringify(ready.body));
      // Recorded in groups as the guest ran, not the whole non-zero memory in the first scan.
      const ins = await d.call('GET', `/snapshots/${ready.body.function.readySnapshot}/inspect`);
      const { loadingSet, nonZero } = ins.body;
      assert.ok(loadingSet.bytes < nonZero.bytes, JSON.stringify(ins.body));
      assert.ok(loadingSet.groups.length > 1, JSON.stringify(loadingSet.groups));
      for (const mode of ['faasnap', 'reap', 'warm']) {
        const r = await d.call('POST', `/functions/${fn.name}/invocations`, {
          mode,
          params: { name: mode },
        });
        assert.equal(r.body.status, 'succeeded', `${mode}: ${r.text}`);
        assert.equal(r.body.result.greeting, `Hello, ${mode}!`, mode);
      }
      // The warm VM stays: its VMM process reads its snapshot's memory through its view only.
      const vm = (await d.call('GET', '/vms')).body.find(
        (v: { state: string }) => v.state === 'idle',
      );
      assert.ok(vm, 'the warm VM idles');
      const uid = statSync(`/proc/${vm.pid}`).uid;
      assert.ok(uid >= JAIL_ID_BASE, `pid ${vm.pid} runs as a jail uid (${uid})`);
      const views = join(d.dir, 'snapshots', '.views');
      assert.deepEqual(readdirSync(views), [vm.id]);
      const snapshot = join(d.dir, 'snapshots', ready.body.function.readySnapshot as string);
      assert.equal(readsInJail(vm.pid, uid, join(views, vm.id, MEMORY_FILE)), true, 'its view');
      assert.equal(readsInJail(vm.pid, uid, join(snapshot, MEMORY_FILE)), false, 'the snapshot');
    } finally {
      await d.stop();
    }
    assert.deepEqual(jailedProcesses(), [], 'no jailed process outlives the daemon');
  },
);
