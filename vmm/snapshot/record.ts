// Recording a snapshot's working set for FaaSnap (DESIGN.md §4.3–4.4): restore the snapshot
// lazily with a cold page cache, run the function once with its record input while mincore
// scans group the pages, then write the loading-set file and its manifest beside the snapshot.

import { scanFile, type RegionScanOptions } from '../../loader/regions.js';
import { buildLoadingSet, type LoadingSetManifest } from '../../loader/loading-set-file.js';
import { MincoreRecorder, type RecorderOptions } from '../../loader/recorder.js';
import type { Kvm } from '../kvm/system.js';
import type { Vm } from '../vm.js';
import { dropPageCache } from './memory-dump.js';
import { readStateFile } from './state-file.js';
import { restoreSnapshot, snapshotPaths } from './snapshot.js';
import { ReapSession, reapRegions, type ReapStats } from '../../loader/reap.js';
import { Vm as VmClass } from '../vm.js';
import { VmConfigSchema, VmSavedStateSchema } from './vm-state.js';

export interface RecordOptions extends RecorderOptions, RegionScanOptions {
  kvm?: Kvm;
  /** Called with the restored (paused) VM before it resumes: e.g. to place the record input. */
  prepare?: (vm: Vm) => void | Promise<void>;
}

export interface RecordResult {
  manifest: LoadingSetManifest;
  /** Pages resident during the run (the working set including read-ahead). */
  workingSetPages: number;
  scans: number;
  recordMs: number;
}

/**
 * Records the working set of `run` (which drives the resumed VM until the function finished)
 * and writes `loading-set.bin` + `loading-set.json` into the snapshot directory. The VM is
 * stopped afterwards; the snapshot's own files are not modified.
 */
export async function recordFaasnap(
  dir: string,
  run: (vm: Vm) => Promise<void>,
  opts: RecordOptions = {},
): Promise<RecordResult> {
  const paths = snapshotPaths(dir);
  const state = await readStateFile(paths.stateFile);
  dropPageCache(paths.memoryFile);
  const vm = await restoreSnapshot(dir, {
    mode: 'vanilla',
    kvm: opts.kvm,
    preparePageCache: false,
  });
  const recorder = new MincoreRecorder(paths.memoryFile, state.memory.size, opts);
  const t0 = performance.now();
  let groups;
  try {
    await opts.prepare?.(vm);
    recorder.start();
    vm.resume();
    await run(vm);
  } finally {
    groups = recorder.stop();
    vm.stop();
  }
  const recordMs = performance.now() - t0;
  const scan = await scanFile(paths.memoryFile, opts);
  const manifest = await buildLoadingSet({
    memoryFilePath: paths.memoryFile,
    stateChecksum: state.checksum,
    groups: groups.groups,
    scans: groups.scans,
    scan,
    intervalThreshold: opts.intervalThreshold,
    loadingSetPath: paths.loadingSetFile,
    manifestPath: paths.loadingSetManifest,
  });
  return { manifest, workingSetPages: groups.residentPages, scans: groups.scans, recordMs };
}

export interface ReapRecordResult {
  pages: number;
  stats: ReapStats;
  recordMs: number;
}

/**
 * Records REAP's working set: the snapshot is restored with all guest memory served by
 * userfaultfd from the memory file, `run` drives the function once, and the faulted pages (in
 * fault order) are written to the snapshot's reap/ directory.
 */
export async function recordReap(
  dir: string,
  run: (vm: Vm) => Promise<void>,
  opts: { kvm?: Kvm; prepare?: (vm: Vm) => void | Promise<void> } = {},
): Promise<ReapRecordResult> {
  const paths = snapshotPaths(dir);
  const state = await readStateFile(paths.stateFile, {
    configSchema: VmConfigSchema,
    stateSchema: VmSavedStateSchema,
  });
  const vm = VmClass.restore(state.config, state.state, opts.kvm);
  let session: ReapSession;
  try {
    session = ReapSession.record({
      regions: reapRegions(vm.guestRam),
      memoryFile: paths.memoryFile,
    });
  } catch (e) {
    vm.stop();
    throw e;
  }
  vm.own(session); // closed after the vCPU threads, which may still be faulting
  const t0 = performance.now();
  try {
    await opts.prepare?.(vm);
    vm.resume();
    await run(vm);
  } finally {
    vm.stop();
  }
  const recordMs = performance.now() - t0;
  session.assertServed();
  const stats = session.stats();
  await session.saveWorkingSet(paths.reapDir, { snapshotId: state.checksum });
  return { pages: stats.recordedPages, stats, recordMs };
}
