// The deploy chain of a function, driven through the lifecycle state machine:
//   booting      a fresh VM for the function (runtime.boot), paused where the snapshot is taken
//   warm         the warm-up invocation with the record input (micro: in a separate throw-away
//                VM, because a micro function's snapshot precedes its first instruction)
//   snapshotted  the base snapshot of the booted VM (state file written last)
//   recorded     working sets recorded with the record input: FaaSnap (mincore groups,
//                loading set) and REAP (userfaultfd), each in its own pooled VMM process
//   ready        the final snapshot (base + recordings) becomes the function's ready snapshot
// Any failure moves the function to `failed` with the error; nothing half-made is served.

import type { SpanContext } from '@opentelemetry/api';
import type { Logger } from 'pino';
import { FaasnapError } from '../common/errors.js';
import { MEMORY_FILE } from '../restore/snapshot.js';
import type { Lifecycle } from './lifecycle.js';
import type { Metrics } from './metrics.js';
import type { ObjectStore } from './redis.js';
import { agentStorage, requireAvailable, runtimeFor, type Runtimes } from './runtime/index.js';
import type { PreparedInput } from './runtime/runtime.js';
import type { FunctionT, SnapshotT } from './schemas.js';
import { errorBody, type Snapshots } from './snapshots.js';
import type { Store } from './store/index.js';
import type { Traces, TraceRecorder } from './traces.js';
import { runtimeVm, type VmManager } from './vms.js';

export interface DeployDeps {
  store: Store;
  vms: VmManager;
  snapshots: Snapshots;
  runtimes: Runtimes;
  lifecycle: Lifecycle;
  traces: Traces;
  metrics: Metrics;
  objects: ObjectStore;
  log: Logger;
}

export interface RecordRequest {
  kind: 'faasnap' | 'reap' | 'both';
  params?: Record<string, unknown>;
  mincoreSize?: number;
  intervalThreshold?: number;
}

export class Deployer {
  private readonly running = new Map<string, Promise<void>>();

  constructor(private readonly d: DeployDeps) {}

  /**
   * Starts the chain and returns at once (the function is `booting`); its trace links to
   * `requestSpan`, the API request that started it.
   */
  start(name: string, requestSpan?: SpanContext): FunctionT {
    const fn = this.d.store.functions.get(name);
    requireAvailable(runtimeFor(this.d.runtimes, fn.runtime));
    if (this.running.has(name))
      throw new FaasnapError('FUNCTION_STATE', `${name} is already deploying`, { state: fn.state });
    const booting = this.d.lifecycle.transition(name, 'booting', { error: null });
    const p = this.run(name, requestSpan).finally(() => this.running.delete(name));
    this.running.set(name, p);
    return booting;
  }

  /** Resolves when the deploy of `name` has ended, at once if none is running. */
  async ended(name: string): Promise<void> {
    await this.running.get(name)?.catch(() => undefined);
  }

  /** Resolves when every running deploy has ended (shutdown, tests). */
  async settle(): Promise<void> {
    await Promise.allSettled([...this.running.values()]);
  }

  private async run(name: string, requestSpan?: SpanContext): Promise<void> {
    const { store, vms, snapshots, lifecycle } = this.d;
    const fn = store.functions.get(name);
    const runtime = runtimeFor(this.d.runtimes, fn.runtime);
    const rec = this.d.traces.start('deploy', { 'faasnap.function': name }, requestSpan);
    let bootVm: string | undefined;
    let snap: SnapshotT | undefined;
    // The step a failure is reported against (the daemon's error line names it).
    let step = 'prepare-input';
    try {
      const recordParams = runtime.recordParams(fn);
      const input = await runtime.prepareInput(fn, recordParams, {
        getObject: (k) => this.d.objects.get(k),
      });
      const ctx = { storage: agentStorage(this.d.objects) };
      step = 'boot';
      const vm = await rec.phase('boot', async () => {
        const v = await vms.acquire({
          function: name,
          memoryMiB: fn.memoryMiB,
          vcpus: fn.vcpus,
          purpose: 'boot',
        });
        bootVm = v.info.id;
        await runtime.boot(runtimeVm(v), fn, input, ctx);
        vms.setState(v.info.id, 'paused');
        return v;
      });

      step = 'warm-up';
      if (!runtime.warmUpInBoot)
        await rec.phase('warm-up', async () => {
          const w = await vms.acquire({
            function: name,
            memoryMiB: fn.memoryMiB,
            vcpus: fn.vcpus,
            purpose: 'warmup',
          });
          try {
            await runtime.boot(runtimeVm(w), fn, input, ctx);
            vms.setState(w.info.id, 'running');
            const out = await runtime.run(runtimeVm(w), fn, input, fn.timeoutMs, rec, ctx);
            if (!out.ok)
              throw new FaasnapError(
                out.error.code as 'FUNCTION_ERROR',
                `warm-up invocation: ${out.error.message}`,
                out.error.details,
              );
          } finally {
            await vms.release(w.info.id);
          }
        });
      lifecycle.transition(name, 'warm');

      step = 'snapshot';
      snap = await rec.phase('snapshot', () => snapshots.createFromVm(name, vm.vmm!));
      await vms.release(vm.info.id);
      bootVm = undefined;
      lifecycle.transition(name, 'snapshotted');

      await this.record(snap, { kind: 'both' }, rec, input, (s) => (step = s));
      lifecycle.transition(name, 'recorded');

      lifecycle.transition(name, 'ready', { readySnapshot: snap.id, error: null });
      this.d.metrics.deploys.inc({ status: 'ready' });
      rec.end();
    } catch (e) {
      const error = errorBody(e);
      this.d.log.error(
        { function: name, step, code: error.code, details: error.details },
        `deploy of ${name} failed at ${step}: ${error.code}: ${error.message}`,
      );
      rec.end(error);
      if (bootVm) await vms.release(bootVm).catch(() => undefined);
      this.d.metrics.deploys.inc({ status: 'failed' });
      try {
        lifecycle.transition(name, 'failed', { error });
      } catch {
        // the function was deleted meanwhile
      }
    }
  }

  /**
   * Records working sets of a complete snapshot with `input` (the record input), each kind in a
   * fresh pooled VMM process. Used by the deploy chain and by POST /snapshots/{id}/record.
   */
  async record(
    snap: SnapshotT,
    req: RecordRequest,
    rec: TraceRecorder,
    prepared?: PreparedInput,
    onStep?: (step: string) => void,
  ): Promise<SnapshotT> {
    const { vms, snapshots, store } = this.d;
    const fn = store.functions.get(snap.function);
    const runtime = runtimeFor(this.d.runtimes, fn.runtime);
    requireAvailable(runtime);
    const input =
      prepared ??
      (await runtime.prepareInput(fn, req.params ?? runtime.recordParams(fn), {
        getObject: (k) => this.d.objects.get(k),
      }));
    const ctx = { storage: agentStorage(this.d.objects) };
    const kinds = req.kind === 'both' ? (['faasnap', 'reap'] as const) : [req.kind];
    return snapshots.use(snap.id, async () => {
      for (const kind of kinds) {
        onStep?.(`record-${kind}`);
        await rec.phase(`record-${kind}`, async () => {
          const v = await vms.acquire({
            function: fn.name,
            memoryMiB: fn.memoryMiB,
            vcpus: fn.vcpus,
            purpose: 'record',
          });
          let reclaim = async (): Promise<void> => undefined;
          try {
            reclaim = await snapshots.lend(
              snap.dir,
              v.vmm!,
              kind === 'faasnap' ? [MEMORY_FILE] : [],
            );
            vms.setState(v.info.id, 'running');
            await runtime.record(
              runtimeVm(v),
              fn,
              {
                kind,
                snapshotDir: snap.dir,
                input,
                timeoutMs: fn.timeoutMs,
                mincoreSize: req.mincoreSize,
                intervalThreshold: req.intervalThreshold,
              },
              ctx,
            );
          } finally {
            await vms.release(v.info.id);
            await reclaim();
          }
        });
        store.snapshots.update(snap.id, { recorded: { [kind]: true } });
      }
      return store.snapshots.get(snap.id);
    });
  }
}
