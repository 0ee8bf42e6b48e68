// Tier 2: snapshot a micro-guest mid-computation and restore it in every memory mode; the
// computation finishes with the uninterrupted result, restored RAM equals the snapshot, many
// sequential and parallel restores work, and bad snapshot files fail cleanly.

import { scaledMs } from '../../common/time-scale.js';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { isFaasnapError } from '../../common/errors.js';
import {
  MICRO_DATA_GPA,
  MICRO_PAGE_SIZE,
  TOUCH_FLAG_PROGRESS,
  TOUCH_FLAG_WRITE,
  encodeTouchParams,
  parseTouchOutput,
  touchExpectedChecksum,
  type TouchParams,
} from '../../guest/micro/index.js';
import { createMicroVm, dataPages } from '../../guest/micro/launch.js';
import type { MemoryMode } from '../../loader/modes.js';
import {
  MEMORY_FILE,
  STATE_FILE,
  createSnapshot,
  restoreSnapshot,
} from '../../restore/snapshot.js';
import { startReapRecording } from '../../restore/record.js';
import { MSR } from '../../vmm/cpu/boot-state.js';
import type { Vm } from '../../vmm/vm.js';
import { KVM_PRESENT, kvmTest, openFds } from './support.js';

const MEM_MIB = 64;
/** struct pvclock_vcpu_time_info: version, pad, tsc_timestamp, system_time, mul, shift, flags. */
const PVCLOCK_FLAGS_OFFSET = 29;
const PVCLOCK_GUEST_STOPPED = 1 << 1;
let dir = '';
let params: TouchParams;

function sha256(data: Uint8Array | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function ramDigest(vm: Vm): string {
  const h = createHash('sha256');
  for (const r of vm.guestRam.regions) h.update(new Uint8Array(r.view));
  return h.digest('hex');
}

/** Runs a restored VM to completion and returns the guest's checksum line. */
async function finish(vm: Vm): Promise<bigint | undefined> {
  vm.resume();
  await vm.runToCompletion(scaledMs(60_000));
  return parseTouchOutput(vm.console.text()).checksum;
}

before(async () => {
  if (!KVM_PRESENT) return;
  dir = mkdtempSync(join(tmpdir(), 'faasnap-snap-'));
  // Touch pages in a scattered order so the restored run depends on memory contents and order.
  const n = dataPages(MEM_MIB);
  params = {
    flags: TOUCH_FLAG_WRITE | TOUCH_FLAG_PROGRESS,
    seed: 42,
    pages: Array.from({ length: n }, (_, i) => (i * 7919) % n),
  };
  const vm = createMicroVm({
    guest: 'touch',
    memMiB: MEM_MIB,
    vcpus: 1,
    params: encodeTouchParams(params),
  });
  vm.start();
  await vm.console.waitFor(/progress 0000000000001[0-9a-f]00/, scaledMs(30_000));
  await vm.pause();
  await createSnapshot(vm, join(dir, 'base'));
  vm.stop();
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

for (const mode of ['eager', 'vanilla', 'cached'] as MemoryMode[]) {
  kvmTest(
    `restore in ${mode} mode: RAM equals the snapshot and the computation finishes correctly`,
    async () => {
      const snap = join(dir, 'base');
      const memoryDigest = sha256(readFileSync(join(snap, MEMORY_FILE)));
      const vm = await restoreSnapshot(snap, { mode });
      assert.equal(vm.state, 'paused');
      assert.equal(ramDigest(vm), memoryDigest);
      const checksum = await finish(vm);
      assert.equal(checksum, touchExpectedChecksum(params));
      // The restored console continues from the snapshot: earlier progress lines are not replayed.
      assert.doesNotMatch(vm.console.text(), /progress 0000000000000000/);
    },
  );
}

kvmTest(
  '10 sequential and 4 parallel restores from one snapshot all finish correctly',
  async () => {
    const snap = join(dir, 'base');
    const expected = touchExpectedChecksum(params);
    for (let i = 0; i < 10; i++) {
      assert.equal(
        await finish(await restoreSnapshot(snap, { mode: 'cached' })),
        expected,
        `restore ${i}`,
      );
    }
    const vms = await Promise.all(
      Array.from({ length: 4 }, () => restoreSnapshot(snap, { mode: 'cached' })),
    );
    const results = await Promise.all(vms.map(finish));
    assert.deepEqual(results, [expected, expected, expected, expected]);
  },
);

kvmTest('a snapshot of a restored VM (a chain) restores and finishes correctly', async () => {
  const vm = await restoreSnapshot(join(dir, 'base'), { mode: 'vanilla' });
  vm.resume();
  await vm.console.waitFor(/progress 0000000000002[0-9a-f]00/, scaledMs(30_000));
  await vm.pause();
  await createSnapshot(vm, join(dir, 'chain'));
  vm.stop();
  const again = await restoreSnapshot(join(dir, 'chain'), { mode: 'eager' });
  assert.equal(await finish(again), touchExpectedChecksum(params));
});

kvmTest(
  'bad snapshot files fail with typed errors, leak nothing and are never modified',
  async () => {
    const src = join(dir, 'base');
    const bad = join(dir, 'bad');
    const state = readFileSync(join(src, STATE_FILE));
    const memSize = statSync(join(src, MEMORY_FILE)).size;
    const cases: [string, () => void, string][] = [
      [
        'truncated state',
        () => writeFileSync(join(bad, STATE_FILE), state.subarray(0, state.length >> 1)),
        'SNAPSHOT_TRUNCATED',
      ],
      [
        'corrupted state',
        () => {
          const c = Buffer.from(state);
          c[c.length - 100] = c[c.length - 100]! ^ 0xff;
          writeFileSync(join(bad, STATE_FILE), c);
        },
        'SNAPSHOT_CORRUPT',
      ],
      [
        'short memory file',
        () => truncateSync(join(bad, MEMORY_FILE), memSize - 4096),
        'SNAPSHOT_MEMORY_MISMATCH',
      ],
      ['missing memory file', () => rmSync(join(bad, MEMORY_FILE)), 'SNAPSHOT_MISSING'],
    ];
    for (const [name, corrupt, code] of cases) {
      rmSync(bad, { recursive: true, force: true });
      (await import('node:fs')).cpSync(src, bad, { recursive: true });
      corrupt();
      const digests = [STATE_FILE, MEMORY_FILE].map((f) => {
        try {
          return sha256(readFileSync(join(bad, f)));
        } catch {
          return 'absent';
        }
      });
      const fds = openFds();
      await assert.rejects(
        restoreSnapshot(bad, { mode: 'vanilla' }),
        (e) => isFaasnapError(e) && e.code === code,
        name,
      );
      assert.equal(openFds(), fds, `${name}: no fd leaked`);
      const after = [STATE_FILE, MEMORY_FILE].map((f) => {
        try {
          return sha256(readFileSync(join(bad, f)));
        } catch {
          return 'absent';
        }
      });
      assert.deepEqual(after, digests, `${name}: files untouched`);
    }
  },
);

kvmTest(
  'saved vCPU state that pins guest memory (a kvmclock page) is applied after memory is attached, in every mode',
  async () => {
    const snap = mkdtempSync(join(tmpdir(), 'faasnap-snap-pvclock-'));
    try {
      const vm = createMicroVm({ guest: 'hang', memMiB: 16, vcpus: 1 });
      // A page the guest never touches, with a pattern; vCPU 0's kvmclock points into it, as a
      // Linux guest's does on hardware KVM. KVM pins that page when the MSR is restored.
      const gpa = MICRO_DATA_GPA + 7 * MICRO_PAGE_SIZE;
      vm.memory.write(gpa, Buffer.alloc(MICRO_PAGE_SIZE, 0xa5));
      vm.vcpus[0]!.setMsrs([{ index: MSR.KVM_SYSTEM_TIME_NEW, data: BigInt(gpa) | 1n }]);
      await vm.pause();
      await createSnapshot(vm, snap);
      vm.stop();

      // Past KVM's own 32-byte pvclock record the page must hold the snapshot's bytes.
      const tail = (v: Vm): Buffer => {
        const out = Buffer.alloc(MICRO_PAGE_SIZE - 64);
        v.memory.read(gpa + 64, out);
        return out;
      };
      const want = Buffer.alloc(MICRO_PAGE_SIZE - 64, 0xa5);

      // REAP's recording restores over userfaultfd: the page must come from the memory file.
      let recorded: Buffer | undefined;
      const rec = await startReapRecording(snap, { prepare: (v) => void (recorded = tail(v)) });
      await rec.vm.console.waitFor('hanging', scaledMs(30_000));
      await rec.finish();
      assert.deepEqual(recorded, want, 'reap recording');

      for (const mode of ['eager', 'vanilla', 'cached', 'reap'] as MemoryMode[]) {
        const v = await restoreSnapshot(snap, { mode });
        try {
          assert.deepEqual(tail(v), want, mode);
          // The restore told the guest's kvmclock that it was stopped (KVM_KVMCLOCK_CTRL): KVM
          // sets PVCLOCK_GUEST_STOPPED in the record's flags when the vCPU next enters.
          v.resume();
          await v.console.waitFor('hanging', scaledMs(30_000));
          await v.pause();
          assert.equal(
            v.memory.readU8(gpa + PVCLOCK_FLAGS_OFFSET) & PVCLOCK_GUEST_STOPPED,
            PVCLOCK_GUEST_STOPPED,
            mode,
          );
        } finally {
          v.stop();
        }
      }
    } finally {
      rmSync(snap, { recursive: true, force: true });
    }
  },
);
