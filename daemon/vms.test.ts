// Resource limits of the VM manager and capacity reclaim (idle warm VMs are stopped before a
// start is refused), and the clean-up of socket directories that killed daemons left. Real VMM
// processes (no guest is started in them, but each opens /dev/kvm: a KVM tier).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { isFaasnapError } from '../common/errors.js';
import { kvmTest } from '../test/kvm/support.js';
import { makeSocketDir, VmManager } from './vms.js';

const vm = (memoryMiB = 256) => ({
  function: 'f',
  memoryMiB,
  vcpus: 1,
  purpose: 'invocation' as const,
});

kvmTest('limits refuse a VM with RESOURCE_LIMIT when nothing can be reclaimed', async () => {
  const vms = new VmManager(0, { maxVms: 1, maxMemoryMiB: 4096 });
  try {
    await vms.acquire(vm());
    await assert.rejects(
      vms.acquire(vm()),
      (e) => isFaasnapError(e, 'RESOURCE_LIMIT') && e.details.limit === 'maxVms',
    );
    assert.equal(vms.count, 1, 'the refused VM left nothing behind');
  } finally {
    await vms.close();
  }
});

kvmTest(
  'the reclaimer is asked until the new VM fits, and refusal follows when it runs dry',
  async () => {
    const vms = new VmManager(0, { maxVms: 8, maxMemoryMiB: 768 });
    const idle: string[] = [];
    let asked = 0;
    vms.setReclaimer(async () => {
      asked++;
      const id = idle.shift();
      if (!id) return false;
      await vms.release(id);
      return true;
    });
    try {
      idle.push((await vms.acquire(vm())).info.id, (await vms.acquire(vm())).info.id);
      assert.equal(asked, 0, 'no reclaim while the budget has room');
      // 512 MiB in use; the whole budget needs both idle VMs stopped.
      const big = await vms.acquire(vm(768));
      assert.equal(asked, 2);
      assert.deepEqual(
        vms.list().map((v) => v.id),
        [big.info.id],
      );
      await assert.rejects(
        vms.acquire(vm(256)),
        (e) => isFaasnapError(e, 'RESOURCE_LIMIT') && e.details.limit === 'maxMemoryMiB',
      );
      assert.equal(asked, 3, 'asked once more, found nothing idle');
      assert.equal(vms.count, 1);
    } finally {
      await vms.close();
    }
  },
);

test('a new socket directory removes those whose owner process is gone, and only those', async () => {
  const parent = mkdtempSync(join(tmpdir(), 'faasnap-socket-dirs-test-'));
  try {
    const dead = spawnSync(process.execPath, ['-e', '']).pid!;
    const stale = join(parent, 'faasnap-vms-stale');
    const live = join(parent, 'faasnap-vms-live');
    const foreign = join(parent, 'faasnap-vms-foreign');
    for (const d of [stale, live, foreign]) mkdirSync(d);
    writeFileSync(join(stale, 'owner.pid'), String(dead));
    writeFileSync(join(stale, 'vm-1.sock'), '');
    writeFileSync(join(live, 'owner.pid'), String(process.pid));
    const mine = makeSocketDir(parent);
    assert.equal(existsSync(stale), false, 'a dead owner: removed');
    assert.equal(existsSync(live), true, 'a live owner: kept');
    assert.equal(existsSync(foreign), true, 'no owner file: kept');
    assert.equal(readFileSync(join(mine, 'owner.pid'), 'utf8'), String(process.pid));
  } finally {
    rmSync(parent, { recursive: true, force: true });
  }
});
