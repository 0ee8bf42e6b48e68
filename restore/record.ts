// Recording a snapshot's working set for FaaSnap (docs/architecture.md, "Working-set groups", "Loading set"): restore the snapshot
// lazily with a cold page cache, run the function once with its record input while mincore
// scans group the pages, then write the loading-set file and its manifest beside the snapshot.

import { scanFile, type RegionScanOptions } from '../loader/regions.js';
import { buildLoadingSet, type LoadingSetManifest } from '../loader/loading-set-file.js';
import { MincoreRecorder, type RecorderOptions } from '../loader/recorder.js';
import type { Kvm } from '../vmm/kvm/system.js';
import type { Vm } from '../vmm/vm.js';
import { dropPageCache } from '../vmm/snapshot/memory-dump.js';
import { readStateFile } from '../vmm/snapshot/state-file.js';
import { relocateAgentChannel, restoreSnapshot, snapshotPaths } from './snapshot.js';
import { ReapSession, reapRegions, type ReapStats } from '../loader/reap.js';
import { Vm as VmClass } from '../vmm/vm.js';
import { VmConfigSchema, VmSavedStateSchema } from '../vmm/snapshot/vm-state.js';

export interface RecordOptions extends RecorderOptions, RegionScanOptions {
  kvm?: Kvm;
  /** Called with the restored (paused) VM before it resumes: e.g. to place the record input. */
  prepare?: (vm: Vm) => void | Promise<void>;
  /** The restored VM's agent channel (see RestoreOptions.agentSocket). */
  agentSocket?: string;
}

export interface RecordResult {
  manifest: LoadingSetManifest;
  /** Pages resident during the run (the working set including read-ahead). */
  workingSetPages: number;
  scans: number;
  recordMs: number;
}

/**
 * A recording in progress: the snapshot is restored and running with the recorder attached.
 * Whoever drives the function (a callback, or a controller talking to the guest agent) calls
 * finish() once it has returned: the VM is stopped and the working set written. abort() stops
 * without writing anything.
 */
export interface Recording<R> {
  vm: Vm;
  finish(): Promise<R>;
  abort(): void;
}

/**
 * Starts recording the working set of the snapshot in `dir` for FaaSnap: a lazy restore with a
 * cold page cache, mincore scans while the function runs; finish() writes `loading-set.bin` +
 * `loading-set.json` beside the snapshot (whose own files are not modified).
 */
export async function startFaasnapRecording(
  dir: string,
  opts: RecordOptions = {},
): Promise<Recording<RecordResult>> {
  const paths = snapshotPaths(dir);
  const state = await readStateFile(paths.stateFile);
  dropPageCache(paths.memoryFile);
  const vm = await restoreSnapshot(dir, {
    mode: 'vanilla',
    kvm: opts.kvm,
    preparePageCache: false,
    agentSocket: opts.agentSocket,
  });
  const recorder = new MincoreRecorder(paths.memoryFile, state.memory.size, opts);
  const t0 = performance.now();
  try {
    await opts.prepare?.(vm);
    recorder.start();
    vm.resume();
  } catch (e) {
    recorder.stop();
    vm.stop();
    throw e;
  }
  const abort = (): void => {
    recorder.stop();
    vm.stop();
  };
  const finish = async (): Promise<RecordResult> => {
    const groups = recorder.stop();
    vm.stop();
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
  };
  return { vm, finish, abort };
}

/** Records with `run` driving the resumed VM until the function finished. */
export function recordFaasnap(
  dir: string,
  run: (vm: Vm) => Promise<void>,
  opts: RecordOptions = {},
): Promise<RecordResult> {
  return drive(startFaasnapRecording(dir, opts), run);
}

async function drive<R>(
  started: Promise<Recording<R>>,
  run: (vm: Vm) => Promise<void>,
): Promise<R> {
  const r = await started;
  try {
    await run(r.vm);
  } catch (e) {
    r.abort();
    throw e;
  }
  return r.finish();
}

export interface ReapRecordResult {
  pages: number;
  stats: ReapStats;
  recordMs: number;
}

export interface ReapRecordOptions {
  kvm?: Kvm;
  prepare?: (vm: Vm) => void | Promise<void>;
  agentSocket?: string;
}

/**
 * Starts recording REAP's working set: the snapshot is restored with all guest memory served by
 * userfaultfd from the memory file; finish() writes the faulted pages (in fault order) to the
 * snapshot's reap/ directory.
 */
export async function startReapRecording(
  dir: string,
  opts: ReapRecordOptions = {},
): Promise<Recording<ReapRecordResult>> {
  const paths = snapshotPaths(dir);
  const state = await readStateFile(paths.stateFile, {
    configSchema: VmConfigSchema,
    stateSchema: VmSavedStateSchema,
  });
  relocateAgentChannel(state.state, opts.agentSocket);
  let session: ReapSession | undefined;
  // The userfaultfd is registered before the vCPU state is restored (see Vm.restore).
  const vm = VmClass.restore(state.config, state.state, opts.kvm, (v) => {
    session = ReapSession.record({
      regions: reapRegions(v.guestRam),
      memoryFile: paths.memoryFile,
      onError: (e) => v.fail(e),
    });
    v.own(session); // closed after the vCPU threads, which may still be faulting
  });
  const t0 = performance.now();
  try {
    await opts.prepare?.(vm);
    vm.resume();
  } catch (e) {
    vm.stop();
    throw e;
  }
  const finish = async (): Promise<ReapRecordResult> => {
    vm.stop();
    const recordMs = performance.now() - t0;
    session!.assertServed();
    const stats = session!.stats();
    await session!.saveWorkingSet(paths.reapDir, { snapshotId: state.checksum });
    return { pages: stats.recordedPages, stats, recordMs };
  };
  return { vm, finish, abort: () => vm.stop() };
}

/** Records REAP's working set with `run` driving the resumed VM. */
export function recordReap(
  dir: string,
  run: (vm: Vm) => Promise<void>,
  opts: ReapRecordOptions = {},
): Promise<ReapRecordResult> {
  return drive(startReapRecording(dir, opts), run);
}
