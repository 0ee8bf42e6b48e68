// Snapshot create and restore for a VM: a state file (everything but RAM, checksummed) and a
// memory file (raw RAM). Restore validates both completely before any vCPU exists, then brings
// memory back with the requested mode and returns a paused VM.

import { mkdirSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { FaasnapError } from '../common/errors.js';
import { PhaseTimer } from '../common/phases.js';
import { mapMemoryFileLazily, readMemoryFileEagerly, type MemoryMode } from '../loader/modes.js';
import { Prefetcher, mapFaasnapMemory } from '../loader/faasnap.js';
import { ReapSession, reapRegions } from '../loader/reap.js';
import {
  openLoadingSet,
  readLoadingSetManifest,
  type LoadingSetManifest,
} from '../loader/loading-set-file.js';
import type { FaasnapVariant } from '../loader/plan.js';
import { detectCpuTemplate } from '../vmm/cpu/template.js';
import type { Kvm } from '../vmm/kvm/system.js';
import { Vm, type VmConfig } from '../vmm/vm.js';
import { dropPageCache, loadPageCache, writeMemoryFile } from '../vmm/snapshot/memory-dump.js';
import { checkMemoryFile } from '../common/files.js';
import { readStateFile, writeStateFile } from '../vmm/snapshot/state-file.js';
import { VmConfigSchema, VmSavedStateSchema } from '../vmm/snapshot/vm-state.js';
import type { Static } from '@sinclair/typebox';

/**
 * Whether FaaSnap's prefetcher also maps each read's pages into guest RAM (MADV_POPULATE_READ),
 * so that the guest's first touches take no host fault. Off until it is measured under KVM: on
 * PVM (bench/loader-io.ts, issue #15) it removed most minor faults but gained no time, and it
 * adds work on the VMM's JS thread. FAASNAP_PREFETCH_POPULATE=1 turns it on for benchmarks.
 */
const PREFETCH_POPULATE = process.env.FAASNAP_PREFETCH_POPULATE === '1';

export const STATE_FILE = 'state.bin';
export const MEMORY_FILE = 'memory.bin';
export const LOADING_SET_FILE = 'loading-set.bin';
export const LOADING_SET_MANIFEST = 'loading-set.json';
export const REAP_DIR = 'reap';

/** Paths of every file a snapshot directory can hold. */
export function snapshotPaths(dir: string) {
  return {
    stateFile: join(dir, STATE_FILE),
    memoryFile: join(dir, MEMORY_FILE),
    loadingSetFile: join(dir, LOADING_SET_FILE),
    loadingSetManifest: join(dir, LOADING_SET_MANIFEST),
    reapDir: join(dir, REAP_DIR),
  };
}

const FAASNAP_VARIANT: Partial<Record<MemoryMode, FaasnapVariant>> = {
  faasnap: 'faasnap',
  'faasnap-no-concurrent-paging': 'no-paging',
  'faasnap-no-regions': 'no-regions',
  'faasnap-no-compact-file': 'no-compact-file',
};

export interface SnapshotInfo {
  dir: string;
  stateFile: string;
  memoryFile: string;
  memoryBytes: number;
  phases: PhaseTimer['phases'];
}

/** Writes a snapshot of a paused VM into `dir` (created if needed). The VM stays paused. */
export async function createSnapshot(vm: Vm, dir: string): Promise<SnapshotInfo> {
  if (vm.state !== 'paused')
    throw new FaasnapError('INVALID_VM_STATE', `snapshot needs a paused VM, it is ${vm.state}`);
  const timer = new PhaseTimer();
  mkdirSync(dir, { recursive: true });
  const { stateFile, memoryFile } = snapshotPaths(dir);
  let t = performance.now();
  const state = await vm.saveState();
  timer.record('save-state', t);
  t = performance.now();
  const memoryBytes = await writeMemoryFile(vm.guestRam, memoryFile);
  timer.record('write-memory', t);
  t = performance.now();
  // The state file is written last: its presence marks a complete snapshot.
  await writeStateFile(stateFile, {
    cpuTemplate: vm.config.cpuTemplate,
    config: vmConfigJson(vm.config),
    state,
    memory: { size: memoryBytes },
  });
  timer.record('write-state', t);
  return { dir, stateFile, memoryFile, memoryBytes, phases: timer.phases };
}

function vmConfigJson(c: Required<VmConfig>): Static<typeof VmConfigSchema> {
  return {
    memMiB: c.memMiB,
    vcpus: c.vcpus,
    cpuTemplate: c.cpuTemplate,
    consoleLogBytes: c.consoleLogBytes,
  };
}

export interface RestoreOptions {
  mode: MemoryMode;
  kvm?: Kvm;
  /** Page-cache preparation for vanilla/cached (drop/load); skip when the caller did it. */
  preparePageCache?: boolean;
  /**
   * Where the restored VM's agent channel listens. Required when the snapshot has one: clones
   * of one snapshot run side by side, so each needs its own socket (and the snapshot's path
   * may belong to a live VM).
   */
  agentSocket?: string;
}

/** Points the saved virtio-console (agent channel) at `socket`. */
export function relocateAgentChannel(
  state: Static<typeof VmSavedStateSchema>,
  socket?: string,
): void {
  for (const d of state.virtio) {
    if (d.spec.kind !== 'virtio-console') continue;
    if (!socket)
      throw new FaasnapError(
        'INVALID_VM_CONFIG',
        'the snapshot has an agent channel: give the restored VM its own socket path',
      );
    d.spec = { ...d.spec, socket };
  }
}

/** Restores the snapshot in `dir`; the VM is returned paused (call resume()). */
export async function restoreSnapshot(dir: string, opts: RestoreOptions): Promise<Vm> {
  const paths = snapshotPaths(dir);
  const { stateFile, memoryFile } = paths;
  const timer = new PhaseTimer();
  let t = performance.now();
  const file = await readStateFile(stateFile, {
    expectTemplate: detectCpuTemplate(),
    configSchema: VmConfigSchema,
    stateSchema: VmSavedStateSchema,
  });
  await checkMemoryFile(memoryFile, file.memory.size);
  const variant = FAASNAP_VARIANT[opts.mode];
  let manifest: LoadingSetManifest | undefined;
  let loadingSet: FileHandle | undefined;
  let handedOver = false;
  if (variant) {
    manifest = await readLoadingSetManifest(paths.loadingSetManifest);
    loadingSet = await openLoadingSet(manifest, {
      memorySize: file.memory.size,
      stateChecksum: file.checksum,
      loadingSetPath: paths.loadingSetFile,
    });
  }
  try {
    timer.record('read-state', t);
    if (opts.preparePageCache ?? true) {
      if (opts.mode === 'cached') await loadPageCache(memoryFile);
      else {
        // Every other mode is measured from disk: a cold page cache for all its files.
        dropPageCache(memoryFile);
        if (variant) dropPageCache(paths.loadingSetFile);
      }
    }
    relocateAgentChannel(file.state, opts.agentSocket);
    // REAP's working-set manifest is read (and checked) before the VM exists: attaching memory
    // happens inside Vm.restore, which cannot wait.
    const reapManifest =
      opts.mode === 'reap'
        ? await ReapSession.readManifest(paths.reapDir, memoryFile, { snapshotId: file.checksum })
        : undefined;
    let memory: { startMs: number; durationMs: number } | undefined;
    const attachMemory = (vm: Vm): void => {
      const m0 = performance.now();
      switch (opts.mode) {
        case 'eager':
          readMemoryFileEagerly(vm.guestRam, memoryFile);
          break;
        case 'vanilla':
        case 'cached':
          mapMemoryFileLazily(vm.guestRam, memoryFile);
          vm.loader = { mode: opts.mode, fileBacked: true, failure: () => undefined };
          break;
        case 'reap': {
          // Guest RAM is still untouched anonymous memory: every page the guest needs faults
          // into the userfaultfd server, except the working set installed here before resume.
          const session = ReapSession.replayManifest(reapManifest!, {
            regions: reapRegions(vm.guestRam),
            memoryFile,
            dir: paths.reapDir,
            onError: (e) => vm.fail(e),
          });
          vm.own(session);
          vm.loader = {
            mode: opts.mode,
            fileBacked: false,
            reap: session,
            failure: () => session.serveError(),
          };
          break;
        }
        default: {
          const files = { memoryFile, loadingSet: { fh: loadingSet!, path: paths.loadingSetFile } };
          const plan = mapFaasnapMemory(vm.guestRam, manifest!, files, variant!);
          // Concurrent paging starts now, while the VM's state is restored and it resumes.
          const prefetcher = Prefetcher.forVariant(manifest!, files, variant!, {
            populate: PREFETCH_POPULATE ? { ram: vm.guestRam, plan } : undefined,
          });
          // The mappings hold the file; the handle closes once the prefetcher let go of it.
          handedOver = true;
          vm.own({
            close: () => {
              prefetcher.cancel();
              void prefetcher.done.finally(() => loadingSet!.close());
            },
          });
          // A read error stops the VM: the guest's own fault on that page would fail the same way.
          let failure: FaasnapError | undefined;
          void prefetcher.done.then((s) => {
            failure = s.error;
            if (s.error) vm.fail(s.error);
          });
          vm.loader = {
            mode: opts.mode,
            fileBacked: true,
            prefetch: prefetcher.done,
            failure: () => failure,
          };
        }
      }
      memory = { startMs: m0 - timer.origin, durationMs: performance.now() - m0 };
    };
    t = performance.now();
    const vm = Vm.restore(file.config, file.state, opts.kvm, attachMemory);
    // Two phases: the VM's own restore, and the memory mode's part, which ran inside it.
    timer.phases.push(
      {
        name: 'restore-vm',
        startMs: t - timer.origin,
        durationMs: performance.now() - t - memory!.durationMs,
      },
      { name: 'memory', ...memory! },
    );
    for (const p of timer.phases) vm.phases.phases.push({ ...p, name: `restore:${p.name}` });
    return vm;
  } catch (e) {
    // Until the VM owns the handle (the FaaSnap case above), it is ours to close.
    if (!handedOver) await loadingSet?.close();
    throw e;
  }
}
