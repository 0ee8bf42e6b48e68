// A jailed VMM process in a cgroup of its own, on real KVM: it starts (with /dev/kvm inherited,
// no device nodes) inside its cgroup; a memory limit below what it uses gets it killed by the
// kernel, which the controller reports as VMM_MEMORY_LIMIT (not a crash); its cgroup is gone
// afterwards.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isFaasnapError } from '../../common/errors.js';
import { VmmCgroups, cgroupMissing } from '../../process/cgroup.js';
import { VmmProcess } from '../../process/client.js';
import { JAIL_ID_BASE, jailMissing, vmmRuntimePaths } from '../../process/jail.js';
import { KVM_PRESENT } from '../kvm/support.js';
import { tierTest } from '../support/skip.js';

const missing = (): string | undefined => {
  const m = [
    ...(KVM_PRESENT ? [] : ['/dev/kvm']),
    ...jailMissing(),
    ...[cgroupMissing()].filter((x) => x !== undefined),
  ];
  return m.length ? `jail + cgroup tier did not run: missing ${m.join(', ')}` : undefined;
};

tierTest(
  'a jailed VMM process over its cgroup memory limit is killed and reported as VMM_MEMORY_LIMIT',
  missing,
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'faasnap-jail-vmm-'));
    const cgroups = VmmCgroups.create();
    try {
      const cgroup = cgroups.add('vmm-test', 100);
      cgroup.limitMemory(512 << 20);
      const uid = JAIL_ID_BASE + 4242;
      const vmm = await VmmProcess.spawn({
        jail: {
          mountPoint: dir,
          uid,
          gid: uid,
          readOnly: vmmRuntimePaths(),
          readWrite: [],
          maxFiles: 1024,
          cgroup,
        },
      });
      assert.equal(
        Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${vmm.pid}/status`, 'utf8'))![1]),
        uid,
      );
      const procCgroup = readFileSync(`/proc/${vmm.pid}/cgroup`, 'utf8');
      assert.ok(cgroup.path.endsWith(procCgroup.trim().slice(3)), procCgroup);

      vmm.limitMemory(4 << 20);
      for (let i = 0; vmm.alive; i++) {
        assert.ok(i < 600, 'the process outlived its limit');
        await new Promise((r) => setTimeout(r, 100));
      }
      await assert.rejects(vmm.call({ type: 'console' }), (e) =>
        isFaasnapError(e, 'VMM_MEMORY_LIMIT'),
      );
      assert.equal(existsSync(cgroup.path), false, 'its cgroup went with it');
    } finally {
      await cgroups.remove();
      rmSync(dir, { recursive: true, force: true });
    }
  },
  120_000,
);
