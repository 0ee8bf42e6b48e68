// Tier 2: the FaaSnap record/replay path end to end on a micro-guest. A snapshot is taken before
// the guest's first instruction; the record run reads pages in input A's order; restores in
// every mode then run input B (placed into guest RAM before resume) and must compute B's
// checksum over the snapshot's memory.

import { scaledMs } from '../../common/time-scale.js';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, realpathSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { isFaasnapError } from '../../common/errors.js';
import {
  MICRO_PARAM_GPA,
  encodeTouchParams,
  parseTouchOutput,
  touchExpectedChecksum,
  type TouchParams,
} from '../../guest/micro/index.js';
import { createMicroVm, dataPages } from '../../guest/micro/launch.js';
import { loadingSetSize } from '../../loader/loading-set.js';
import { validateManifest } from '../../loader/loading-set-file.js';
import type { MemoryMode } from '../../loader/modes.js';
import { recordFaasnap, recordReap } from '../../restore/record.js';
import { createSnapshot, restoreSnapshot, snapshotPaths } from '../../restore/snapshot.js';
import type { Vm } from '../../vmm/vm.js';
import { native } from '../../native/index.js';
import { residentFraction } from '../../vmm/snapshot/memory-dump.js';
import { KVM_PRESENT, kvmTest, openFds } from './support.js';

const MEM_MIB = 64;
let dir = '';
let image: Uint8Array;

/** Read-only touch of `pages` (a parameter blob of fixed size so B can overwrite A in place). */
function input(pages: number[]): TouchParams {
  return { flags: 0, seed: 0, pages };
}

// Input A reads data pages 0..2047 in a scrambled order; B reads 1024..3071: half of them A
// read, half it never did.
const n = dataPages(MEM_MIB);
const A = input(Array.from({ length: 2048 }, (_, i) => (i * 13) % 2048));
const B = input(Array.from({ length: 2048 }, (_, i) => 1024 + ((i * 29) % 2048)));

async function runWith(vm: Vm, params: TouchParams): Promise<bigint | undefined> {
  vm.memory.write(MICRO_PARAM_GPA, encodeTouchParams(params));
  vm.resume();
  await vm.runToCompletion(scaledMs(60_000));
  return parseTouchOutput(vm.console.text()).checksum;
}

before(async () => {
  if (!KVM_PRESENT) return;
  dir = mkdtempSync(join(tmpdir(), 'faasnap-rec-'));
  const vm = createMicroVm({
    guest: 'touch',
    memMiB: MEM_MIB,
    vcpus: 1,
    params: encodeTouchParams(A),
  });
  // The "function state": data pages 0..12287 hold non-zero bytes, the rest of RAM is zero.
  const page = new Uint8Array(4096);
  for (let p = 0; p < Math.min(n, 12288); p++) {
    for (let i = 0; i < 4096; i += 8) page[i] = (p + i) & 0xff || 1;
    vm.memory.write(0x400000 + p * 4096, page);
  }
  await vm.pause();
  await createSnapshot(vm, dir);
  vm.stop();
  image = readFileSync(snapshotPaths(dir).memoryFile);
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

kvmTest(
  'recording writes a loading set grouped by first access, smaller than the memory file',
  async () => {
    const result = await recordFaasnap(dir, async (vm) => {
      await vm.runToCompletion(scaledMs(60_000));
      assert.equal(parseTouchOutput(vm.console.text()).checksum, touchExpectedChecksum(A, image));
    });
    const m = result.manifest;
    assert.ok(result.scans >= 2, `several mincore scans (${result.scans})`);
    assert.ok(m.regions.length > 0);
    const paths = snapshotPaths(dir);
    const lsSize = statSync(paths.loadingSetFile).size;
    assert.equal(lsSize, m.file.size);
    assert.ok(
      lsSize < image.length / 2,
      `loading set ${lsSize} B is much smaller than memory ${image.length} B`,
    );
    // Sorted by (group, offset), and each region's bytes are the memory file's bytes.
    const ls = readFileSync(paths.loadingSetFile);
    for (let i = 1; i < m.regions.length; i++) {
      const a = m.regions[i - 1]!;
      const b = m.regions[i]!;
      assert.ok(a.group < b.group || (a.group === b.group && a.memOffset < b.memOffset));
    }
    for (const r of m.regions) {
      assert.ok(
        ls
          .subarray(r.fileOffset, r.fileOffset + r.length)
          .equals(image.subarray(r.memOffset, r.memOffset + r.length)),
      );
    }
    // The pages A touched first (its first data page) are in the earliest group that has data.
    const firstPage = 0x400000 + A.pages[0]! * 4096;
    const holder = m.regions.find(
      (r) => r.memOffset <= firstPage && firstPage < r.memOffset + r.length,
    );
    assert.ok(holder, 'the first touched page is in the loading set');
    assert.equal(holder.group, Math.min(...m.regions.map((r) => r.group)));
  },
);

kvmTest('REAP recording writes the faulted pages in fault order', async () => {
  const result = await recordReap(dir, async (vm) => {
    await vm.runToCompletion(scaledMs(60_000));
    assert.equal(parseTouchOutput(vm.console.text()).checksum, touchExpectedChecksum(A, image));
  });
  // Every data page A reads faulted once (plus the few code, stack and parameter pages).
  assert.ok(
    result.pages >= A.pages.length && result.pages < A.pages.length + 64,
    `${result.pages} pages`,
  );
  assert.equal(result.stats.errors, 0);
});

const MODES: MemoryMode[] = [
  'reap',
  'faasnap',
  'faasnap-no-concurrent-paging',
  'faasnap-no-regions',
  'faasnap-no-compact-file',
  'vanilla',
  'cached',
  'eager',
];
/** Bytes of this process's mappings of each snapshot file (/proc/self/maps). */
function mappedBytes(): { memfile: number; loadset: number } {
  const paths = snapshotPaths(dir);
  const out = { memfile: 0, loadset: 0 };
  for (const line of readFileSync('/proc/self/maps', 'utf8').split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s+(.*)$/.exec(line);
    if (!m) continue;
    const bytes = Number(BigInt(`0x${m[2]}`) - BigInt(`0x${m[1]}`));
    if (m[3] === realpathSync(paths.memoryFile)) out.memfile += bytes;
    if (m[3] === realpathSync(paths.loadingSetFile)) out.loadset += bytes;
  }
  return out;
}

/** Pages of guest RAM resident in this process (mincore). */
function residentRamPages(vm: Vm): number {
  let n = 0;
  for (const r of vm.guestRam.regions) {
    const vec = Buffer.alloc(r.size / 4096);
    native.mincore(r.hostAddr, r.size, vec);
    for (const b of vec) n += b & 1;
  }
  return n;
}

/**
 * What only `mode` leaves behind in a restored, still paused VM: which snapshot files back
 * guest RAM and how much, what was read or installed. A mode that silently fell back to
 * another (a FaaSnap restore with a plain mapping, say) fails here.
 */
function assertModeEvidence(mode: MemoryMode, vm: Vm): void {
  const mapped = mappedBytes();
  const ramPages = vm.guestRam.size / 4096;
  const lsSize = loadingSetBytes();
  const say = `${mode}: ${JSON.stringify(mapped)}`;
  // 2 MiB-aligned host RAM: a 2 MiB file range mapped there can be mapped whole.
  for (const r of vm.guestRam.regions) assert.equal(r.hostAddr % BigInt(2 << 20), 0n, say);
  switch (mode) {
    case 'eager':
      assert.deepEqual(mapped, { memfile: 0, loadset: 0 }, say);
      assert.equal(residentRamPages(vm), ramPages, 'every page was read before resume');
      break;
    case 'vanilla':
    case 'cached':
      assert.deepEqual(mapped, { memfile: vm.guestRam.size, loadset: 0 }, say);
      if (mode === 'cached')
        assert.equal(residentFraction(snapshotPaths(dir).memoryFile, vm.guestRam.size), 1);
      break;
    case 'reap': {
      assert.deepEqual(mapped, { memfile: 0, loadset: 0 }, say);
      const s = vm.loader!.reap!.stats();
      assert.ok(s.pagesPrefetched > 0, 'the working set was installed before resume');
      break;
    }
    case 'faasnap-no-compact-file':
      assert.equal(mapped.loadset, 0, say);
      assert.ok(mapped.memfile > 0 && mapped.memfile < vm.guestRam.size, say);
      break;
    case 'faasnap-no-regions':
      assert.equal(mapped.loadset, lsSize, say);
      assert.equal(mapped.memfile + mapped.loadset, vm.guestRam.size, 'all RAM file-backed');
      break;
    default:
      // faasnap, faasnap-no-concurrent-paging: the loading set on top of non-zero regions only.
      assert.equal(mapped.loadset, lsSize, say);
      assert.ok(
        mapped.memfile + mapped.loadset < vm.guestRam.size,
        `zero pages stay anonymous: ${say}`,
      );
  }
}

for (const mode of MODES) {
  kvmTest(`restore in ${mode} runs input B to the correct checksum`, async () => {
    const vm = await restoreSnapshot(dir, { mode });
    assertModeEvidence(mode, vm);
    assert.equal(await runWith(vm, B), touchExpectedChecksum(B, image));
    const prefetch = await vm.loader?.prefetch;
    if (mode === 'faasnap-no-concurrent-paging') assert.equal(prefetch?.bytes, 0);
    else if (mode.startsWith('faasnap')) {
      assert.ok(prefetch, `${mode} prefetches`);
      if (!prefetch.cancelled) assert.ok(prefetch.bytes >= lsBytes(mode), `${prefetch.bytes}`);
    } else assert.equal(prefetch, undefined, `${mode} has no prefetcher`);
  });
}

/** What a completed prefetch reads at least: the whole loading set (from either file). */
function lsBytes(mode: MemoryMode): number {
  return mode === 'faasnap-no-concurrent-paging' ? 0 : loadingSetBytes();
}

/** Bytes of guest memory in the recorded loading set (the file also has holes). */
function loadingSetBytes(): number {
  const m = validateManifest(
    JSON.parse(readFileSync(snapshotPaths(dir).loadingSetManifest, 'utf8')),
  );
  return loadingSetSize(m.regions);
}

kvmTest('a stale or missing loading set is refused before anything runs', async () => {
  const paths = snapshotPaths(dir);
  const manifest = readFileSync(paths.loadingSetManifest, 'utf8');
  const fds = openFds();
  try {
    rmSync(paths.loadingSetManifest);
    await assert.rejects(restoreSnapshot(dir, { mode: 'faasnap' }), (e) =>
      isFaasnapError(e, 'SNAPSHOT_MISSING'),
    );
    const stale = JSON.parse(manifest) as { stateChecksum: string };
    stale.stateChecksum = '0'.repeat(64);
    (await import('node:fs')).writeFileSync(paths.loadingSetManifest, JSON.stringify(stale));
    await assert.rejects(restoreSnapshot(dir, { mode: 'faasnap' }), (e) =>
      isFaasnapError(e, 'LOADING_SET_STALE'),
    );
    assert.equal(openFds(), fds);
  } finally {
    (await import('node:fs')).writeFileSync(paths.loadingSetManifest, manifest);
  }
});
