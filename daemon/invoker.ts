// One invocation: check the request, reserve a VM, restore the snapshot in the requested memory
// mode in a pooled VMM process, place the input, resume, let the function finish, tear the VM
// down. Every phase is a trace span, a phase timing and a metric sample; the history row is
// written when the invocation starts and completed when it ends.
//
// Failure semantics: a function error or timeout is an outcome (HTTP 200, error payload, VM
// discarded); a restore failure, a VMM crash or a resource limit is an API error with its
// registry code; nothing (VMM process, capacity) is leaked on any path.

import type { SpanContext } from '@opentelemetry/api';
import type { Logger } from 'pino';
import { randomBytes } from 'node:crypto';
import { FaasnapError, errorFromBody, isFaasnapError } from '../common/errors.js';
import type { PhaseTiming } from '../common/phases.js';
import type { VmmStats } from '../process/protocol.js';
import { loadPageCache } from '../vmm/snapshot/memory-dump.js';
import { snapshotPaths } from '../restore/snapshot.js';
import type { Metrics } from './metrics.js';
import type { ObjectStore } from './redis.js';
import { agentStorage, requireAvailable, runtimeFor, type Runtimes } from './runtime/index.js';
import type { InvokeOutcome } from './runtime/runtime.js';
import type { InvocationT, InvokeMode, InvokeRequestT, SnapshotT } from './schemas.js';
import { errorBody, type Snapshots } from './snapshots.js';
import type { Store } from './store/index.js';
import type { TraceRecorder, Traces } from './traces.js';
import { runtimeVm, type LiveVm, type VmManager } from './vms.js';

/** VMM-side restore phases and the trace names they get. */
const RESTORE_PHASES: Record<string, string> = {
  'restore:read-state': 'state-load',
  'restore:restore-vm': 'vm-restore',
  'restore:memory': 'memory-mapping',
};

export interface InvokerDeps {
  store: Store;
  vms: VmManager;
  snapshots: Snapshots;
  runtimes: Runtimes;
  traces: Traces;
  metrics: Metrics;
  objects: ObjectStore;
  log: Logger;
}

/** Failures of the function's own code: its result, not a platform error worth a log line. */
const FUNCTION_OUTCOMES = new Set(['FUNCTION_ERROR', 'FUNCTION_TIMEOUT', 'FUNCTION_NOT_FOUND']);

/** The phase an error is reported against: the one that threw, else the last before teardown. */
function failedPhase(rec: TraceRecorder): string {
  return rec.failedPhase ?? rec.phases.findLast((p) => p.name !== 'teardown')?.name ?? 'start';
}

export function needsRecording(mode: InvokeMode, s: SnapshotT): boolean {
  if (mode === 'reap') return !s.recorded.reap;
  if (mode.startsWith('faasnap')) return !s.recorded.faasnap;
  return false;
}

interface IdleVm {
  vm: LiveVm;
  since: number;
}

export class Invoker {
  /**
   * Idle warm VMs per function, oldest first: restored once, then kept running between
   * invocations. A hit takes the newest (its memory is the most recently touched); capacity
   * pressure stops the oldest of all functions (evictIdle).
   */
  private readonly warm = new Map<string, IdleVm[]>();

  constructor(private readonly d: InvokerDeps) {
    d.vms.setReclaimer(() => this.evictIdle());
  }

  /** Stops the function's idle warm VMs (delete, redeploy, shutdown). */
  async dropWarm(fnName: string): Promise<void> {
    const idle = this.warm.get(fnName) ?? [];
    this.warm.delete(fnName);
    await Promise.all(idle.map((v) => this.d.vms.release(v.vm.info.id)));
  }

  /** Stops the idle warm VM that has waited longest, of any function; false if none is idle. */
  async evictIdle(): Promise<boolean> {
    let oldest: { fn: string; list: IdleVm[] } | undefined;
    for (const [fn, list] of this.warm)
      if (!oldest || list[0]!.since < oldest.list[0]!.since) oldest = { fn, list };
    if (!oldest) return false;
    // Taken out before the await, so no invocation can pick the VM being stopped.
    const { vm } = oldest.list.shift()!;
    if (oldest.list.length === 0) this.warm.delete(oldest.fn);
    this.d.metrics.warmEvictions.inc({ function: oldest.fn });
    await this.d.vms.release(vm.info.id);
    return true;
  }

  async invoke(
    fnName: string,
    req: InvokeRequestT,
    requestSpan?: SpanContext,
  ): Promise<InvocationT> {
    const { store, vms, snapshots, metrics } = this.d;
    const fn = store.functions.get(fnName);
    const runtime = runtimeFor(this.d.runtimes, fn.runtime);
    const mode = req.mode ?? fn.defaultMode;
    requireAvailable(runtime);
    // warm (a kept-alive VM) needs a guest that serves more than one invocation: agent runtimes.
    if (!runtime.supportsMode(mode))
      throw new FaasnapError(
        'MODE_UNSUPPORTED',
        `${fn.runtime} functions cannot run in ${mode} mode`,
        { mode },
      );
    const snapId = req.snapshot ?? fn.readySnapshot;
    if (!snapId)
      throw new FaasnapError('FUNCTION_NOT_READY', `${fn.name} is ${fn.state}`, {
        state: fn.state,
      });
    const snap = snapshots.complete(snapId);
    if (snap.function !== fn.name)
      throw new FaasnapError('SNAPSHOT_UNKNOWN', `${snapId} is not a snapshot of ${fn.name}`, {
        id: snapId,
      });
    if (needsRecording(mode, snap))
      throw new FaasnapError(
        'SNAPSHOT_NOT_RECORDED',
        `${snapId} has no ${mode === 'reap' ? 'REAP' : 'FaaSnap'} working set`,
        { mode },
      );
    const params = req.params ?? {};
    const input = await runtime.prepareInput(fn, params, {
      getObject: (k) => this.d.objects.get(k),
    });
    const timeoutMs = req.timeoutMs ?? fn.timeoutMs;

    const id = `inv-${randomBytes(8).toString('hex')}`;
    const rec = this.d.traces.start(
      'invocation',
      {
        'faasnap.invocation': id,
        'faasnap.function': fn.name,
        'faasnap.mode': mode,
        'faasnap.snapshot': snapId,
      },
      requestSpan,
    );
    store.invocations.start({
      id,
      function: fn.name,
      snapshot: snapId,
      mode,
      params,
      traceId: rec.traceId,
    });

    let outcome: InvokeOutcome | undefined;
    let apiError: unknown;
    try {
      await snapshots.use(snapId, async () => {
        const idle = mode === 'warm' ? this.takeIdle(fn.name) : undefined;
        const vm =
          idle ??
          (await rec.phase('pool-take', () =>
            vms.acquire({
              function: fn.name,
              memoryMiB: fn.memoryMiB,
              vcpus: fn.vcpus,
              purpose: mode === 'warm' ? 'warm' : 'invocation',
              invocation: id,
            }),
          ));
        vm.info.invocation = id;
        store.invocations.setVm(id, vm.info.id);
        rec.root.setAttribute('faasnap.warm_hit', idle !== undefined);
        let keep = false;
        try {
          // A warm invocation without an idle VM starts one from the snapshot in page cache.
          const restoreStart = idle
            ? undefined
            : await this.restore(vm, snap, mode === 'warm' ? 'cached' : mode, rec);
          vms.setState(vm.info.id, 'running');
          const run = await runtime
            .run(runtimeVm(vm), fn, input, timeoutMs, rec, {
              storage: agentStorage(this.d.objects),
            })
            .then(
              (o) => ({ ok: true as const, o }),
              (e: unknown) => ({ ok: false as const, e }),
            );
          // Before any answer counts: a loader that could not read the snapshot gave the guest
          // wrong memory, so its error replaces whatever the guest said.
          if (restoreStart !== undefined)
            await this.recordVmmStats(vm, rec, restoreStart).catch((e: unknown) => {
              // A crashed VMM already failed the run with the better error.
              if (run.ok || !vmmGone(e)) throw e;
            });
          if (!run.ok) throw run.e;
          outcome = run.o;
          // A failed instance is discarded, never reused.
          keep = mode === 'warm' && outcome.ok;
        } finally {
          if (keep) {
            vms.setState(vm.info.id, 'idle');
            vm.info.invocation = null;
            const list = this.warm.get(fn.name) ?? [];
            list.push({ vm, since: Date.now() });
            this.warm.set(fn.name, list);
          } else await rec.phase('teardown', () => vms.release(vm.info.id));
        }
      });
    } catch (e) {
      apiError = e;
      if (isFaasnapError(e)) e.details.phase = failedPhase(rec);
      if (vmmGone(e)) metrics.vmmCrashes.inc();
    }

    const durationMs = rec.elapsedMs();
    const error =
      apiError !== undefined ? errorBody(apiError) : outcome && !outcome.ok ? outcome.error : null;
    rec.end(error ?? undefined);
    if (error && !FUNCTION_OUTCOMES.has(error.code)) {
      const step = failedPhase(rec);
      this.d.log.error(
        { function: fn.name, invocation: id, mode, step, code: error.code, details: error.details },
        `invocation ${id} of ${fn.name} (${mode}) failed at ${step}: ${error.code}: ${error.message}`,
      );
    }
    const row = store.invocations.finish(id, {
      status: error ? 'failed' : 'succeeded',
      result: outcome?.ok ? outcome.result : null,
      error,
      phases: rec.phases,
      durationMs,
    });
    metrics.invocations.inc({ function: fn.name, mode, status: apiError ? 'error' : row.status });
    if (!apiError) {
      metrics.latency.observe({ mode }, durationMs / 1000);
      for (const p of rec.phases)
        metrics.phase.observe({ mode, phase: p.name }, p.durationMs / 1000);
    }
    if (apiError !== undefined) {
      if (isFaasnapError(apiError)) {
        apiError.details.invocation = id;
        apiError.details.traceId = rec.traceId;
      }
      throw apiError;
    }
    return row;
  }

  private takeIdle(fnName: string): LiveVm | undefined {
    const list = this.warm.get(fnName);
    const idle = list?.pop();
    if (list?.length === 0) this.warm.delete(fnName);
    return idle?.vm;
  }

  /** Restores `snap` into the VMM process of `vm` in `mode`, recording the VMM's own phases. */
  private async restore(
    vm: LiveVm,
    snap: SnapshotT,
    mode: Exclude<InvokeMode, 'warm'>,
    rec: TraceRecorder,
  ): Promise<number> {
    const vmm = vm.vmm!;
    if (mode === 'cached')
      await rec.phase('page-cache-load', async () =>
        loadPageCache(snapshotPaths(snap.dir).memoryFile),
      );
    const restoreStart = performance.now();
    let viewMs = 0;
    let restored: { phases: PhaseTiming[] };
    try {
      restored = await rec.phase('restore', async () => {
        // Jailed, the process reads this snapshot through a view of its own, kept while it runs.
        const view = await this.d.snapshots.view(snap.dir, vmm, vm.info.id);
        vm.cleanups.push(view.remove);
        if (view.dir !== snap.dir) viewMs = performance.now() - restoreStart;
        return vmm.call<{ phases: PhaseTiming[] }>({
          type: 'restore',
          snapshotDir: view.dir,
          mode,
          agentSocket: vm.agentSocket,
        });
      });
    } catch (e) {
      this.d.metrics.restoreFailures.inc({
        mode,
        code: isFaasnapError(e) ? e.code : 'DAEMON_INTERNAL',
      });
      throw e;
    }
    if (viewMs) rec.record('snapshot-view', restoreStart, viewMs);
    // The VMM's own restore phases, placed on the daemon's clock at the restore call.
    const base = restored.phases.find((p) => p.name in RESTORE_PHASES)?.startMs ?? 0;
    for (const p of restored.phases) {
      const name = RESTORE_PHASES[p.name];
      if (name) rec.record(name, restoreStart + viewMs + (p.startMs - base), p.durationMs);
    }
    return restoreStart;
  }

  /**
   * Loader progress and fault counts of a freshly restored VMM process, on the trace. Throws
   * the loader's SNAPSHOT_IO if it failed, and VMM_CRASHED if the process is gone.
   */
  private async recordVmmStats(
    vm: LiveVm,
    rec: TraceRecorder,
    restoreStart: number,
  ): Promise<void> {
    const stats = await vm.vmm!.call<VmmStats>({ type: 'stats' });
    if (stats.loaderError) throw errorFromBody(stats.loaderError, 'SNAPSHOT_IO');
    if (stats.prefetch)
      rec.record('loader-progress', restoreStart, stats.prefetch.ms, {
        bytes: stats.prefetch.bytes,
        cancelled: stats.prefetch.cancelled,
      });
    rec.root.setAttribute('faasnap.vmm.major_faults', stats.majorFaults);
    rec.root.setAttribute('faasnap.vmm.minor_faults', stats.minorFaults);
    rec.root.setAttribute('faasnap.vmm.read_bytes', stats.readBytes);
  }
}

/** The VMM process died: it crashed, or the kernel killed it at its cgroup memory limit. */
function vmmGone(e: unknown): boolean {
  return isFaasnapError(e, 'VMM_CRASHED') || isFaasnapError(e, 'VMM_MEMORY_LIMIT');
}
