// What a jailed VMM process may do with snapshot directories, with real processes running as
// jail uids (setpriv): write the one lent to it, read a snapshot only through its own view, and
// nothing of another's. (A jail adds namespaces around this; test/daemon/jail.test.ts runs it.)

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { isFaasnapError } from '../common/errors.js';
import type { VmmProcess } from '../process/client.js';
import { Snapshots } from './snapshots.js';
import { Store } from './store/index.js';

const asRoot = process.getuid?.() === 0 ? false : 'needs root (uid changes, chown)';

/** A VMM process as the snapshot code sees one: only its jail uid matters here. */
const vmmOf = (uid: number | undefined) => ({ jailUid: uid }) as VmmProcess;

/** Runs `script` as `uid` (= gid, no groups); its exit status and output. */
function as(uid: number, script: string): { ok: boolean; out: string } {
  const r = spawnSync(
    'setpriv',
    ['--reuid', String(uid), '--regid', String(uid), '--clear-groups', '--', 'sh', '-c', script],
    { encoding: 'utf8' },
  );
  return { ok: r.status === 0, out: (r.stdout + r.stderr).trim() };
}

async function withSnapshots(
  fn: (s: Snapshots, root: string, store: Store) => Promise<void>,
): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'faasnap-snapshots-test-'));
  chmodSync(dir, 0o711); // a jail mounts the snapshots directory; here its parent must let uids by
  const store = Store.open(join(dir, 'db.sqlite'));
  try {
    const root = join(dir, 'snapshots');
    const snapshots = new Snapshots(store.snapshots, root);
    await snapshots.recover();
    await fn(snapshots, root, store);
  } finally {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A snapshot written by a VMM process running as `uid` (umask 077), as a deploy lends it. */
async function written(snapshots: Snapshots, id: string, uid: number): Promise<string> {
  const dir = snapshots.dirOf(id);
  const reclaim = await snapshots.lend(dir, vmmOf(uid));
  const w = as(
    uid,
    `umask 077; cd ${dir} && echo memory-of-${id} > memory && mkdir reap && echo p > reap/pages`,
  );
  assert.ok(w.ok, `the lent directory is writable by its VMM: ${w.out}`);
  await reclaim();
  return dir;
}

test('a jailed VMM process reads a snapshot only through its own view', { skip: asRoot }, () =>
  withSnapshots(async (snapshots, root) => {
    assert.equal(statSync(root).mode & 0o777, 0o711, 'the snapshots directory cannot be listed');
    const a = await written(snapshots, 'snap-a', 60_001);
    const b = await written(snapshots, 'snap-b', 60_002);
    for (const d of [a, b]) {
      assert.equal(statSync(d).mode & 0o777, 0o700, d);
      assert.equal(statSync(d).uid, 0, `${d} is the daemon's again`);
    }
    // Its writer's lend is over: not even it reads the snapshot any more.
    assert.equal(as(60_001, `cat ${a}/memory`).ok, false);

    const restorer = 60_003;
    const view = await snapshots.view(a, vmmOf(restorer), 'vm-1');
    assert.notEqual(view.dir, a);
    assert.equal(as(restorer, `cat ${view.dir}/memory`).out, 'memory-of-snap-a');
    assert.equal(as(restorer, `cat ${view.dir}/reap/pages`).out, 'p');
    assert.equal(statSync(join(view.dir, 'memory')).ino, statSync(join(a, 'memory')).ino);
    for (const [what, script] of [
      ['the snapshot directly', `cat ${a}/memory`],
      ["another function's snapshot", `cat ${b}/memory`],
      ['the list of snapshots', `ls ${root}`],
      ['a write through the view', `echo x > ${view.dir}/memory`],
      ['a new file in the view', `: > ${view.dir}/new`],
    ]) {
      const r = as(restorer, script!);
      assert.equal(r.ok, false, `${what}: ${r.out}`);
      assert.match(r.out, /Permission denied/, what);
    }
    // Another VMM process's uid gets nothing through this view.
    assert.equal(as(60_004, `cat ${view.dir}/memory`).ok, false);

    await view.remove();
    assert.equal(existsSync(view.dir), false);
    assert.equal(as(restorer, `cat ${view.dir}/memory`).ok, false);
    assert.ok(existsSync(join(a, 'memory')), 'removing the view keeps the snapshot');
  }),
);

test('an unjailed VMM process restores from the snapshot directory itself', () =>
  withSnapshots(async (snapshots) => {
    const dir = snapshots.dirOf('snap-a');
    const view = await snapshots.view(dir, vmmOf(undefined), 'vm-1');
    assert.equal(view.dir, dir);
    await view.remove();
  }));

test('a view of a missing snapshot is SNAPSHOT_IO and leaves nothing', { skip: asRoot }, () =>
  withSnapshots(async (snapshots, root) => {
    await assert.rejects(
      snapshots.view(snapshots.dirOf('snap-gone'), vmmOf(60_003), 'vm-1'),
      (e) => isFaasnapError(e, 'SNAPSHOT_IO') && /snap-gone/.test(e.message),
    );
    assert.equal(existsSync(join(root, '.views', 'vm-1')), false);
  }),
);

test(
  'recovery removes views left by a killed daemon and closes open snapshot directories',
  {
    skip: asRoot,
  },
  () =>
    withSnapshots(async (snapshots, root, store) => {
      const dir = await written(snapshots, 'snap-a', 60_001);
      store.snapshots.insert({ id: 'snap-a', function: 'f', kind: 'base', dir });
      store.snapshots.update('snap-a', { status: 'complete', memoryBytes: 1 });
      await snapshots.view(dir, vmmOf(60_003), 'vm-1');
      assert.ok(existsSync(join(root, '.views', 'vm-1')));
      // As an older daemon left them.
      chmodSync(root, 0o755);
      chmodSync(dir, 0o755);
      await snapshots.recover();
      assert.equal(existsSync(join(root, '.views')), false);
      assert.equal(statSync(root).mode & 0o777, 0o711);
      assert.equal(statSync(dir).mode & 0o777, 0o700);
      assert.equal(as(60_003, `cat ${dir}/memory`).ok, false);
    }),
);

test(
  'a recording VMM process owns the files lent to it until they are taken back',
  { skip: asRoot },
  () =>
    withSnapshots(async (snapshots) => {
      const dir = await written(snapshots, 'snap-a', 60_001);
      const recorder = 60_005;
      const reclaim = await snapshots.lend(dir, vmmOf(recorder), ['memory']);
      // Owned, not only readable: Linux answers mincore about a file only to its owner or a
      // writer (loader/recorder.test.ts); the rest of the snapshot stays the daemon's.
      assert.equal(statSync(join(dir, 'memory')).uid, recorder);
      assert.equal(statSync(join(dir, 'reap', 'pages')).uid, 0);
      assert.ok(as(recorder, `test -O ${dir}/memory && cat ${dir}/memory`).ok);
      await reclaim();
      assert.equal(statSync(join(dir, 'memory')).uid, 0);
      assert.equal(as(recorder, `cat ${dir}/memory`).ok, false);

      // A file that is not there: SNAPSHOT_IO, and nothing stays lent.
      await assert.rejects(
        snapshots.lend(dir, vmmOf(recorder), ['missing.bin']),
        (e) => isFaasnapError(e, 'SNAPSHOT_IO') && /missing\.bin/.test(e.message),
      );
      assert.equal(statSync(dir).uid, 0);
    }),
);
