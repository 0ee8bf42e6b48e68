// Tier 2: storage faults under snapshots of a micro-guest. Restores through a real VMM process,
// in every memory mode, with a snapshot file swapped for a delayfs copy (test/support/faultfs.ts)
// that fails reads of one page the guest needs: the run must end in SNAPSHOT_IO (never a checksum
// reported as a result) and the VMM process must stay alive and answer. Snapshots and recordings
// onto a full file system must fail with SNAPSHOT_IO and leave nothing half-written.

import { scaledMs } from '../../common/time-scale.js';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { isFaasnapError } from '../../common/errors.js';
import {
  MICRO_DATA_GPA,
  MICRO_PAGE_SIZE,
  MICRO_PARAM_GPA,
  encodeTouchParams,
  type TouchParams,
} from '../../guest/micro/index.js';
import { createMicroVm } from '../../guest/micro/launch.js';
import { readLoadingSetManifest } from '../../loader/loading-set-file.js';
import type { MemoryMode } from '../../loader/modes.js';
import { VmmProcess } from '../../process/client.js';
import type { VmmStats } from '../../process/protocol.js';
import { recordFaasnap, recordReap } from '../../restore/record.js';
import { createSnapshot, snapshotPaths } from '../../restore/snapshot.js';
import { swapInFaultyFile, type FaultyFile } from '../support/faultfs.js';
import { KVM_PRESENT, kvmTest } from './support.js';

const MEM_MIB = 32;
const input = (pages: number[]): TouchParams => ({ flags: 0, seed: 0, pages });
// A (recorded) reads data pages 0..1023; B reads 512..1535: half in A's working set, half not.
const A = input(Array.from({ length: 1024 }, (_, i) => (i * 13) % 1024));
const B = input(Array.from({ length: 1024 }, (_, i) => 512 + ((i * 29) % 1024)));
const dataPageOffset = (p: number) => MICRO_DATA_GPA + p * MICRO_PAGE_SIZE;

let dir = '';

before(async () => {
  if (!KVM_PRESENT) return;
  dir = mkdtempSync(join(tmpdir(), 'faasnap-loader-faults-'));
  const vm = createMicroVm({
    guest: 'touch',
    memMiB: MEM_MIB,
    vcpus: 1,
    params: encodeTouchParams(A),
  });
  const page = new Uint8Array(MICRO_PAGE_SIZE);
  for (let p = 0; p < 2048; p++) {
    page.fill((p % 251) + 1);
    vm.memory.write(dataPageOffset(p), page);
  }
  await vm.pause();
  await createSnapshot(vm, dir);
  vm.stop();
  const run = (v: { runToCompletion(ms: number): Promise<unknown> }) =>
    v.runToCompletion(scaledMs(60_000)).then(() => undefined);
  await recordFaasnap(dir, run);
  await recordReap(dir, run);
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A copy of the snapshot whose `file` is served by delayfs, failing reads at `offset`. */
async function faultySnapshot(
  file: 'memoryFile' | 'loadingSetFile',
  offset: number,
): Promise<{ dir: string; fs: FaultyFile; close(): Promise<void> }> {
  const copy = mkdtempSync(join(tmpdir(), 'faasnap-faulty-snap-'));
  cpSync(dir, copy, { recursive: true });
  const fs = await swapInFaultyFile(snapshotPaths(copy)[file]);
  fs.inject(`eio ${offset} ${MICRO_PAGE_SIZE}`);
  return {
    dir: copy,
    fs,
    close: async () => {
      await fs.close();
      rmSync(copy, { recursive: true, force: true });
    },
  };
}

/**
 * Open fds, threads, and the mappings a VM makes (guest RAM and anything mapped from a file under
 * the temp dir, i.e. snapshot files) of a process. Other mappings come and go with the JS heap.
 */
function footprint(pid: number): { fds: number; threads: number; vmMappings: number } {
  let vmMappings = 0;
  for (const line of readFileSync(`/proc/${pid}/maps`, 'latin1').split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (!m) continue;
    const bytes = Number(BigInt(`0x${m[2]}`) - BigInt(`0x${m[1]}`));
    if (bytes === MEM_MIB << 20 || m[3]!.startsWith(tmpdir())) vmMappings++;
  }
  return {
    fds: readdirSync(`/proc/${pid}/fd`).length,
    threads: readdirSync(`/proc/${pid}/task`).length,
    vmMappings,
  };
}

/** The footprint once it equals `want`, or after a few seconds (teardown is partly async). */
async function footprintSettles(pid: number, want: ReturnType<typeof footprint>) {
  const end = Date.now() + scaledMs(5000);
  for (;;) {
    const now = footprint(pid);
    if (JSON.stringify(now) === JSON.stringify(want) || Date.now() > end) return now;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Restores in `mode`, runs input B; returns the first error the VMM process answered. */
async function runB(vmm: VmmProcess, snapshotDir: string, mode: MemoryMode): Promise<unknown> {
  try {
    await vmm.call({ type: 'restore', snapshotDir, mode });
    await vmm.call({ type: 'write-memory', gpa: MICRO_PARAM_GPA, data: encodeTouchParams(B) });
    await vmm.call({ type: 'resume' });
    await vmm.call({ type: 'wait', timeoutMs: scaledMs(60_000) });
  } catch (e) {
    return e;
  }
  return undefined;
}

/** Where data page `p` sits in the loading-set file (it must be in the loading set). */
async function inLoadingSet(p: number): Promise<number> {
  const m = await readLoadingSetManifest(snapshotPaths(dir).loadingSetManifest);
  const at = dataPageOffset(p);
  const r = m.regions.find((x) => x.memOffset <= at && at < x.memOffset + x.length);
  assert.ok(r, `data page ${p} is in the loading set`);
  return r.fileOffset + (at - r.memOffset);
}

// Page 1300: read by B, not by A, so REAP serves it on demand. Page 700: read by A and B, so
// it is in FaaSnap's loading set.
const memoryPage = async () => dataPageOffset(1300);
const loadingSetPage = () => inLoadingSet(700);
const cases: {
  mode: MemoryMode;
  file: 'memoryFile' | 'loadingSetFile';
  offset(): Promise<number>;
}[] = [
  { mode: 'reap', file: 'memoryFile', offset: memoryPage },
  { mode: 'vanilla', file: 'memoryFile', offset: memoryPage },
  { mode: 'cached', file: 'memoryFile', offset: memoryPage },
  { mode: 'eager', file: 'memoryFile', offset: memoryPage },
  { mode: 'faasnap', file: 'loadingSetFile', offset: loadingSetPage },
  { mode: 'faasnap-no-concurrent-paging', file: 'loadingSetFile', offset: loadingSetPage },
  { mode: 'faasnap-no-regions', file: 'loadingSetFile', offset: loadingSetPage },
  { mode: 'faasnap-no-compact-file', file: 'memoryFile', offset: async () => dataPageOffset(700) },
];

for (const c of cases) {
  kvmTest(
    `${c.mode}: an unreadable snapshot page ends the run in SNAPSHOT_IO; the VMM process stays usable`,
    async () => {
      const snap = await faultySnapshot(c.file, await c.offset());
      const vmm = await VmmProcess.spawn();
      try {
        // A restore of nothing fails before any VM exists, but starts libuv's thread pool, so
        // the baseline holds every thread a restore starts on purpose.
        await vmm
          .call({ type: 'restore', snapshotDir: '/nonexistent', mode: 'eager' })
          .catch(() => undefined);
        const idle = footprint(vmm.pid);
        const e = await runB(vmm, snap.dir, c.mode);
        assert.ok(isFaasnapError(e, 'SNAPSHOT_IO'), `expected SNAPSHOT_IO, got ${String(e)}`);
        // The process survived, and still tells what went wrong.
        assert.deepEqual(await vmm.call({ type: 'ping' }), { pid: vmm.pid });
        const stats = await vmm.call<VmmStats>({ type: 'stats' });
        // REAP's server counted the fault it could not serve (FaaSnap's guest may have met the
        // bad page before the prefetcher did, which the VM's exit then reported).
        if (c.mode === 'reap') assert.equal(stats.loaderError?.code, 'SNAPSHOT_IO');
        assert.ok(vmm.alive);
        // The failed VM left nothing in the process: fds, threads and mappings as before it.
        assert.deepEqual(await footprintSettles(vmm.pid, idle), idle);
      } finally {
        await vmm.kill();
        await snap.close();
      }
    },
  );
}

/** A tmpfs of `mib` MiB: writes past it fail with ENOSPC, as on a full disk. */
function smallFileSystem(mib: number): { dir: string; close(): void } {
  const mnt = mkdtempSync(join(tmpdir(), 'faasnap-full-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${mib}m`, 'faasnap-full', mnt]);
  return {
    dir: mnt,
    close: () => {
      execFileSync('umount', ['-l', mnt]);
      rmSync(mnt, { recursive: true, force: true });
    },
  };
}

const isNoSpace = (e: unknown) => isFaasnapError(e, 'SNAPSHOT_IO') && e.details.errno === 'ENOSPC';

kvmTest(
  'a snapshot onto a full disk is SNAPSHOT_IO (ENOSPC), leaves no file and keeps the VM',
  async () => {
    const fs = smallFileSystem(8);
    const vm = createMicroVm({
      guest: 'touch',
      memMiB: MEM_MIB,
      vcpus: 1,
      params: encodeTouchParams(A),
    });
    const elsewhere = mkdtempSync(join(tmpdir(), 'faasnap-snap-ok-'));
    try {
      await vm.pause();
      const target = join(fs.dir, 'snap');
      await assert.rejects(createSnapshot(vm, target), isNoSpace);
      assert.deepEqual(readdirSync(target), [], 'no partial memory or state file');
      assert.equal(vm.state, 'paused');
      // Nothing was lost: the same VM snapshots fine where there is room.
      const info = await createSnapshot(vm, elsewhere);
      assert.equal(info.memoryBytes, MEM_MIB << 20);
    } finally {
      vm.stop();
      rmSync(elsewhere, { recursive: true, force: true });
      fs.close();
    }
  },
);

kvmTest(
  'recording onto a full disk is SNAPSHOT_IO; the snapshot stays unrecorded and usable',
  async () => {
    // Room for the snapshot (memory + state) and 1 MiB more: A's loading set (4 MiB) and REAP's
    // pages (4 MiB) do not fit.
    const fs = smallFileSystem(MEM_MIB + 1);
    try {
      const snap = join(fs.dir, 'snap');
      cpSync(snapshotPaths(dir).stateFile, join(snap, 'state.bin'));
      cpSync(snapshotPaths(dir).memoryFile, join(snap, 'memory.bin'));
      const run = (v: { runToCompletion(ms: number): Promise<unknown> }) =>
        v.runToCompletion(scaledMs(60_000)).then(() => undefined);
      await assert.rejects(recordFaasnap(snap, run), isNoSpace);
      await assert.rejects(recordReap(snap, run), isNoSpace);
      assert.deepEqual(readdirSync(snap).sort(), ['memory.bin', 'reap', 'state.bin']);
      assert.deepEqual(readdirSync(join(snap, 'reap')), [], 'no REAP manifest or pages');
      // The snapshot itself is untouched and restores.
      const vmm = await VmmProcess.spawn();
      try {
        assert.equal(await runB(vmm, snap, 'vanilla'), undefined);
      } finally {
        await vmm.kill();
      }
    } finally {
      fs.close();
    }
  },
);
