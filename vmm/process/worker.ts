// Entry point of a VMM process (forked by VmmProcess). It loads the addon and opens /dev/kvm
// (caching the host's CPUID and MSR lists) before it reports `ready`, so a process taken from
// the pool restores without Node's start-up cost. It then serves actions for exactly one VM.

import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { FaasnapError } from '../../common/errors.js';
import { createMicroVm } from '../../guest/micro/launch.js';
import { Kvm } from '../kvm/system.js';
import { validateState } from '../persist.js';
import { recordFaasnap, recordReap } from '../snapshot/record.js';
import { createSnapshot, restoreSnapshot } from '../snapshot/snapshot.js';
import { Vm } from '../vm.js';
import { ActionSchema, type Action, type Event, type Reply, type VmmStats } from './protocol.js';

const kvm = Kvm.open();
// Warm-up before `ready`: the first VM a fresh Node process creates runs cold (unoptimised JS,
// first-touch allocations); a throw-away VM moves that cost off the restore path.
Vm.create({ memMiB: 8, vcpus: 1 }, kvm).stop();
let vm: Vm | undefined;

function send(msg: Reply | Event): void {
  process.send?.(msg);
}

function attach(v: Vm): Vm {
  if (vm) {
    v.stop();
    throw new FaasnapError('INVALID_VM_STATE', 'this VMM process already runs a VM');
  }
  vm = v;
  v.console.onOutput((chunk) => send({ event: 'console', chunk }));
  void v.wait().then((exit) =>
    send({
      event: 'exit',
      reason: exit.reason,
      error: exit.error ? { code: exit.error.code, message: exit.error.message } : undefined,
    }),
  );
  return v;
}

function stats(): VmmStats {
  const u = process.resourceUsage();
  const io = /read_bytes:\s*(\d+)/.exec(readFileSync('/proc/self/io', 'latin1'));
  return {
    majorFaults: u.majorPageFault,
    minorFaults: u.minorPageFault,
    readBytes: Number(io?.[1] ?? 0),
    prefetch: prefetchStats,
  };
}

let prefetchStats: VmmStats['prefetch'];

function current(): Vm {
  if (!vm) throw new FaasnapError('INVALID_VM_STATE', 'no VM in this VMM process');
  return vm;
}

async function dispatch(a: Action): Promise<unknown> {
  switch (a.type) {
    case 'ping':
      return { pid: process.pid };
    case 'boot-micro':
      attach(
        createMicroVm({ guest: a.guest, memMiB: a.memMiB, vcpus: a.vcpus, params: a.params, kvm }),
      );
      return { phases: current().phases.phases };
    case 'restore': {
      // The controller owns the page-cache state (it drops or loads it as the experiment says).
      const v = attach(
        await restoreSnapshot(a.snapshotDir, { mode: a.mode, kvm, preparePageCache: false }),
      );
      void v.loader?.prefetch?.then((s) => (prefetchStats = s));
      return { phases: v.phases.phases };
    }
    case 'start':
      current().start();
      return null;
    case 'pause':
      await current().pause();
      return null;
    case 'resume':
      current().resume();
      return null;
    case 'snapshot':
      return createSnapshot(current(), a.dir);
    case 'wait': {
      const exit = await current().runToCompletion(a.timeoutMs);
      return { reason: exit.reason };
    }
    case 'console':
      return current().console.text();
    case 'write-memory':
      if (current().state !== 'paused')
        throw new FaasnapError('INVALID_VM_STATE', 'write-memory needs a paused VM');
      current().memory.write(a.gpa, a.data);
      return null;
    case 'record-faasnap':
    case 'record-reap': {
      // The recording VM is private to the action; a process serves one VM, so none may exist.
      if (vm) throw new FaasnapError('INVALID_VM_STATE', 'this VMM process already runs a VM');
      const input = a.input;
      const prepare = (v: Vm): void => {
        if (input) v.memory.write(input.gpa, input.data);
      };
      const run = async (v: Vm): Promise<void> => {
        await v.runToCompletion(a.timeoutMs);
      };
      if (a.type === 'record-reap') {
        const r = await recordReap(a.snapshotDir, run, { kvm, prepare });
        return { pages: r.pages, recordMs: r.recordMs };
      }
      const r = await recordFaasnap(a.snapshotDir, run, {
        kvm,
        prepare,
        mincoreSize: a.mincoreSize,
        intervalMs: a.intervalMs,
        intervalThreshold: a.intervalThreshold,
      });
      return {
        workingSetPages: r.workingSetPages,
        scans: r.scans,
        recordMs: r.recordMs,
        loadingSetBytes: r.manifest.file.size,
        regions: r.manifest.regions.length,
      };
    }
    case 'stats':
      return stats();
    case 'stop':
      vm?.stop();
      return null;
  }
}

process.on('message', (msg: unknown) => {
  const id = typeof (msg as { id?: unknown })?.id === 'number' ? (msg as { id: number }).id : -1;
  void (async () => {
    try {
      const action = validateState('VMM action', ActionSchema, msg);
      send({ id, ok: true, value: await dispatch(action) });
    } catch (e) {
      const err =
        e instanceof FaasnapError
          ? { code: e.code, message: e.message, details: e.details }
          : { code: 'VMM_INTERNAL', message: e instanceof Error ? e.message : String(e) };
      send({ id, ok: false, error: err });
    }
  })();
});

// The controller went away: nothing may outlive it.
process.on('disconnect', () => {
  vm?.stop();
  process.exit(0);
});

send({ event: 'ready', pid: process.pid, readyMs: performance.now() });
