// Tier 2: storage faults under a restored micro-guest, through a real VMM process. A snapshot
// file is swapped for a delayfs copy (test/support/faultfs.ts) that fails reads of one page the
// guest needs; the run must end in SNAPSHOT_IO (never a checksum reported as a result), and the
// VMM process must stay alive and answer.

import { scaledMs } from '../../common/time-scale.js';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, unlinkSync } from 'node:fs';
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
import { faultyFile, type FaultyFile } from '../support/faultfs.js';
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
  const path = snapshotPaths(copy)[file];
  const fs = await faultyFile(readFileSync(path));
  unlinkSync(path);
  symlinkSync(fs.path, path);
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

const cases: {
  mode: MemoryMode;
  file: 'memoryFile' | 'loadingSetFile';
  offset(): Promise<number>;
}[] = [
  // A page B reads that REAP's working set (A's pages) lacks: served on demand from the file.
  { mode: 'reap', file: 'memoryFile', offset: async () => dataPageOffset(1300) },
  { mode: 'vanilla', file: 'memoryFile', offset: async () => dataPageOffset(1300) },
  {
    mode: 'faasnap',
    file: 'loadingSetFile',
    // Where data page 700 (read by A and B) sits in the loading-set file.
    offset: async () => {
      const m = await readLoadingSetManifest(snapshotPaths(dir).loadingSetManifest);
      const at = dataPageOffset(700);
      const r = m.regions.find((x) => x.memOffset <= at && at < x.memOffset + x.length);
      assert.ok(r, 'data page 700 is in the loading set');
      return r.fileOffset + (at - r.memOffset);
    },
  },
];

for (const c of cases) {
  kvmTest(
    `${c.mode}: an unreadable snapshot page ends the run in SNAPSHOT_IO; the VMM process stays usable`,
    async () => {
      const snap = await faultySnapshot(c.file, await c.offset());
      const vmm = await VmmProcess.spawn();
      try {
        const e = await runB(vmm, snap.dir, c.mode);
        assert.ok(isFaasnapError(e, 'SNAPSHOT_IO'), `expected SNAPSHOT_IO, got ${String(e)}`);
        // The process survived, and still tells what went wrong.
        assert.deepEqual(await vmm.call({ type: 'ping' }), { pid: vmm.pid });
        const stats = await vmm.call<VmmStats>({ type: 'stats' });
        // REAP's server counted the fault it could not serve (FaaSnap's guest may have met the
        // bad page before the prefetcher did, which the VM's exit then reported).
        if (c.mode === 'reap') assert.equal(stats.loaderError?.code, 'SNAPSHOT_IO');
        assert.ok(vmm.alive);
      } finally {
        await vmm.kill();
        await snap.close();
      }
    },
  );
}
