// Entry point of a VMM process (forked by VmmProcess). It loads the addon and opens /dev/kvm
// (caching the host's CPUID and MSR lists) before it reports `ready`, so a process taken from
// the pool restores without Node's start-up cost. It then serves actions for exactly one VM.

import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { FaasnapError, errorBody as commonErrorBody } from '../common/errors.js';
import { Kvm } from '../vmm/kvm/system.js';
import { validateState } from '../common/state.js';
import { bootFlatImage, readFlatImage } from '../vmm/boot/flat.js';
import { createLinuxVm } from '../vmm/boot/linux-vm.js';
import { LinuxConsoleMonitor } from '../vmm/boot/linux-run.js';
import {
  startFaasnapRecording,
  startReapRecording,
  type ReapRecordResult,
  type RecordResult,
  type Recording,
} from '../restore/record.js';
import { createSnapshot, restoreSnapshot } from '../restore/snapshot.js';
import { loadingSetSize } from '../loader/loading-set.js';
import { Vm } from '../vmm/vm.js';
import { JAIL_FD_ENV } from './jail.js';
import { installVmmFilter } from './seccomp.js';
import {
  ActionSchema,
  type Action,
  type ErrorBody,
  type Event,
  type Reply,
  type VmmStats,
} from './protocol.js';

// Jailed, the process has no /dev: it inherits /dev/kvm opened by the daemon (process/jail.ts).
const inheritedKvm = process.env[JAIL_FD_ENV.kvm];
const kvm = inheritedKvm ? Kvm.fromFd(Number(inheritedKvm)) : Kvm.open();
// Warm-up before `ready`: the first VM a fresh Node process creates runs cold (unoptimised JS,
// first-touch allocations); a throw-away VM moves that cost off the restore path.
Vm.create({ memMiB: 8, vcpus: 1 }, kvm).stop();
// Set up: from here on only the system calls a VMM makes (jailed; see seccomp.ts).
installVmmFilter();
let vm: Vm | undefined;
/** A controller-driven recording in progress (see the record actions in protocol.ts). */
let recording: Recording<unknown> | undefined;

function send(msg: Reply | Event): void {
  // After the controller is gone there is no one to tell; 'disconnect' below ends the process.
  if (process.connected) process.send?.(msg);
}

function attach(v: Vm): Vm {
  if (vm || recording) {
    v.stop();
    throw new FaasnapError('INVALID_VM_STATE', 'this VMM process already runs a VM');
  }
  vm = v;
  v.console.onOutput((chunk) => send({ event: 'console', chunk }));
  // Linux guests tell a panic or a power-off only on their console.
  const linux = new LinuxConsoleMonitor(v);
  void v.wait().then((exit) => {
    linux.close();
    const error =
      linux.panic !== undefined
        ? { code: 'GUEST_KERNEL_PANIC', message: `guest kernel panic: ${linux.panic}` }
        : exit.error && errorBody(exit.error);
    const reason =
      linux.panic !== undefined
        ? 'crash'
        : linux.powerOffMs !== undefined
          ? 'shutdown'
          : exit.reason;
    send({ event: 'exit', reason, error });
  });
  return v;
}

function noVm(): void {
  if (vm || recording)
    throw new FaasnapError('INVALID_VM_STATE', 'this VMM process already runs a VM');
}

function stats(): VmmStats {
  const u = process.resourceUsage();
  const io = /read_bytes:\s*(\d+)/.exec(readFileSync('/proc/self/io', 'latin1'));
  const loaderError = vm?.loader?.failure();
  return {
    majorFaults: u.majorPageFault,
    minorFaults: u.minorPageFault,
    readBytes: Number(io?.[1] ?? 0),
    prefetch: prefetchStats,
    ...(loaderError && { loaderError: errorBody(loaderError) }),
  };
}

/** Typed errors keep their code; anything else is a bug here, reported with its stack. */
function errorBody(e: unknown): ErrorBody {
  return commonErrorBody(e, 'VMM_INTERNAL', { withStack: true });
}

let prefetchStats: VmmStats['prefetch'];

function current(): Vm {
  if (!vm) throw new FaasnapError('INVALID_VM_STATE', 'no VM in this VMM process');
  // A VM its memory loader stopped: say why, not just that it is stopped.
  const failure = vm.state === 'stopped' ? vm.loader?.failure() : undefined;
  if (failure) throw failure;
  return vm;
}

async function dispatch(a: Action): Promise<unknown> {
  switch (a.type) {
    case 'ping':
      return { pid: process.pid };
    case 'boot-micro': {
      const image = readFlatImage(a.image);
      const v = Vm.create({ memMiB: a.memMiB, vcpus: a.vcpus }, kvm);
      try {
        bootFlatImage(v, image, a.params);
      } catch (e) {
        v.stop();
        throw e;
      }
      attach(v);
      return { phases: v.phases.phases };
    }
    case 'boot-linux': {
      const { vm: v, cmdline } = createLinuxVm({
        kernel: a.kernel,
        rootDisk: a.rootfs,
        agentSocket: a.agentSocket,
        memMiB: a.memMiB,
        vcpus: a.vcpus,
        cmdline: [`init=${a.init}`, ...(a.cmdline ?? [])],
        kvm,
      });
      attach(v).start();
      return { phases: v.phases.phases, cmdline };
    }
    case 'restore': {
      // The controller owns the page-cache state (it drops or loads it as the experiment says).
      const v = attach(
        await restoreSnapshot(a.snapshotDir, {
          mode: a.mode,
          kvm,
          preparePageCache: false,
          agentSocket: a.agentSocket,
        }),
      );
      void v.loader?.prefetch?.then(({ bytes, ms, cancelled, populated, populateMs }) => {
        prefetchStats = { bytes, ms, cancelled, populated, populateMs };
      });
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
      noVm();
      const input = a.input;
      const common = {
        kvm,
        agentSocket: a.agentSocket,
        prepare: (v: Vm): void => {
          if (input) v.memory.write(input.gpa, input.data);
        },
      };
      const started: Recording<unknown> =
        a.type === 'record-reap'
          ? await startReapRecording(a.snapshotDir, common)
          : await startFaasnapRecording(a.snapshotDir, {
              ...common,
              mincoreSize: a.mincoreSize,
              intervalMs: a.intervalMs,
              intervalThreshold: a.intervalThreshold,
            });
      recording = started;
      if (a.drive === 'controller') {
        started.vm.console.onOutput((chunk) => send({ event: 'console', chunk }));
        return { started: true };
      }
      try {
        await started.vm.runToCompletion(a.timeoutMs);
      } catch (e) {
        recording = undefined;
        started.abort();
        throw e;
      }
      return finishRecording();
    }
    case 'record-finish':
      return finishRecording();
    case 'stats':
      return stats();
    case 'stop':
      vm?.stop();
      recording?.abort();
      recording = undefined;
      return null;
  }
}

/** Ends the recording in progress and summarises what it wrote. */
async function finishRecording(): Promise<unknown> {
  const r = recording;
  if (!r) throw new FaasnapError('INVALID_VM_STATE', 'no recording in progress');
  recording = undefined;
  const result = (await r.finish()) as RecordResult | ReapRecordResult;
  if ('manifest' in result)
    return {
      workingSetPages: result.workingSetPages,
      scans: result.scans,
      recordMs: result.recordMs,
      loadingSetBytes: loadingSetSize(result.manifest.regions),
      regions: result.manifest.regions.length,
    };
  return { pages: result.pages, recordMs: result.recordMs };
}

process.on('message', (msg: unknown) => {
  const id = typeof (msg as { id?: unknown })?.id === 'number' ? (msg as { id: number }).id : -1;
  void (async () => {
    try {
      const action = validateState('VMM action', ActionSchema, msg);
      send({ id, ok: true, value: await dispatch(action) });
    } catch (e) {
      send({ id, ok: false, error: errorBody(e) });
    }
  })();
});

// A throw nothing caught is a bug: tell the controller what and where (its VMM_CRASHED carries
// it), then exit; the VM cannot be trusted to be in any known state.
const crash = (e: unknown): void => {
  const body = errorBody(e);
  send({ event: 'crash', error: { ...body, code: 'VMM_CRASHED' } });
  vm?.stop();
  process.exit(70);
};
process.on('uncaughtException', crash);
process.on('unhandledRejection', crash);

// The controller went away: nothing may outlive it.
process.on('disconnect', () => {
  vm?.stop();
  recording?.abort();
  process.exit(0);
});

// A controller killed while this process was still loading (a pool refill of a daemon that
// died) disconnected before the handler above existed.
if (!process.connected) process.exit(0);
send({ event: 'ready', pid: process.pid, readyMs: performance.now() });
