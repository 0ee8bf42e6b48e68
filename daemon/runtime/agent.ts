// The `python` and `node` runtimes: a function is a handler bundled into the Linux guest image
// (guest/functions/<name>) or uploaded code (`code`, installed with the agent's `define` at
// boot), run by the guest agent (guest/agent) and reached through the VM's agent channel, a
// Unix socket per VM. One runtime object serves both languages.
//
//   boot    boot-linux in the VMM process → agent `ready` → warm-up invocation with the record
//           input (imports the handler, as the paper's record run) → pause: the snapshot taken
//           next holds a warm handler.
//   run     after a restore: resume, connect, `restore` (the agent sets the wall clock and
//           reseeds its RNG) and invoke; a warm VM is already connected and only invokes.
//   record  the VMM process restores the snapshot with the recorder attached and returns; the
//           runtime drives the record invocation through the agent, then `record-finish`.

import { scaledMs } from '../../common/time-scale.js';
import { existsSync } from 'node:fs';
import { FaasnapError, isFaasnapError } from '../../common/errors.js';
import { AgentClient, type InvokeResult } from '../../guest/agent/client.js';
import { GUEST_INIT_PATH } from '../../guest/rootfs/index.js';
import type { VmmProcess } from '../../process/client.js';
import { UNSANITISED_PAGES_PARAMS } from '../../vmm/boot/linux-vm.js';
import type { InvokeMode, RuntimeName } from '../schemas.js';
import type {
  FunctionRuntime,
  InvokeOutcome,
  PhaseRecorder,
  RunContext,
  RuntimeVm,
} from './runtime.js';

/** The kernel and root image every agent-runtime VM boots. */
export interface GuestImage {
  kernel: string | undefined;
  rootfs: string | undefined;
  /** Boot with sanitised pages (SANITISED_PAGES_PARAMS); off only to measure what they give. */
  sanitisedPages: boolean;
}

/** Boot to a ready agent takes ~55 s on a PVM host (emulated guest kernel); leave headroom. */
export const AGENT_BOOT_TIMEOUT_MS = scaledMs(5 * 60_000);
/** A restored agent answers its first message in well under a second; allow slow disks. */
const RESTORE_TIMEOUT_MS = scaledMs(30_000);
/** The agent boots with the guest: Linux needs more than the micro-guests' few MiB. */
const MIN_MEMORY_MIB = 128;
const HANDLER_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/** Phases of a guest invocation, as the agent measured them (guest clock). */
const GUEST_PHASES = [
  ['guest-read', 'readMs'],
  ['guest-process', 'processMs'],
  ['guest-write', 'writeMs'],
] as const;

/** Function failures reported by the agent: outcomes, not API errors. */
const OUTCOME_CODES = new Set([
  'FUNCTION_ERROR',
  'FUNCTION_TIMEOUT',
  'FUNCTION_NOT_FOUND',
  'AGENT_TIMEOUT',
  'AGENT_DISCONNECTED',
]);

function missingImage(image: GuestImage): string | undefined {
  if (!image.kernel || !existsSync(image.kernel))
    return `no guest kernel${image.kernel ? ` at ${image.kernel}` : ''} (run guest/kernel/build.sh or faasnap guest build)`;
  if (!image.rootfs || !existsSync(image.rootfs))
    return `no guest root image${image.rootfs ? ` at ${image.rootfs}` : ''} (run faasnap guest build)`;
  return undefined;
}

/** How long a closed channel waits for the VM's exit event (failure paths only). */
export const EXIT_EVENT_GRACE_MS = 500;

/** Errors that mean the guest itself is in trouble: its console says why. */
const GUEST_TROUBLE = new Set(['AGENT_DISCONNECTED', 'AGENT_TIMEOUT']);

/**
 * Resolves with `p`, or rejects when the VM inside `vmm` stops first (panic, crash). When the VM
 * stopped, or its channel closed or went silent, the error carries the guest console's last
 * lines (`details.guestConsole`): every wait on a guest goes through here, boot included.
 */
export function unlessVmStops<T>(
  vmm: Pick<VmmProcess, 'onVmExit' | 'consoleTail'>,
  p: Promise<T>,
  what: string,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const previous = vmm.onVmExit;
    let settled = false;
    const done = () => {
      settled = true;
      vmm.onVmExit = previous;
    };
    const fail = (e: unknown, guestTrouble: boolean) => {
      const tail = guestTrouble ? vmm.consoleTail() : '';
      if (tail && isFaasnapError(e)) e.details.guestConsole = tail;
      reject(e);
    };
    vmm.onVmExit = (e) => {
      previous?.(e);
      if (settled) return;
      done();
      const code = (e.error?.code ?? 'GUEST_UNHANDLED_EXIT') as 'GUEST_UNHANDLED_EXIT';
      fail(
        new FaasnapError(
          code,
          `the guest stopped (${e.reason}) ${what}: ${e.error?.message ?? ''}`,
          { ...e.error?.details },
        ),
        true,
      );
    };
    p.then(
      (v) => {
        if (settled) return;
        done();
        resolve(v);
      },
      (e: unknown) => {
        if (settled) return;
        // A stopping VM closes the channel before its exit event arrives (the worker reports
        // the exit after tearing the devices down, and the two travel on different sockets):
        // give the event a moment, so the error says why the guest stopped.
        const wait = isFaasnapError(e, 'AGENT_DISCONNECTED') ? EXIT_EVENT_GRACE_MS : 0;
        setTimeout(() => {
          if (settled) return;
          done();
          fail(e, isFaasnapError(e) && GUEST_TROUBLE.has(e.code));
        }, wait);
      },
    );
  });
}

function asOutcome(e: unknown): InvokeOutcome {
  if (isFaasnapError(e) && OUTCOME_CODES.has(e.code))
    return { ok: false, error: { code: e.code, message: e.message, details: e.details } };
  throw e;
}

export function agentRuntime(name: RuntimeName, image: GuestImage): FunctionRuntime {
  const unavailable = missingImage(image);
  /** Agent connections of running VMs (warm VMs keep theirs between invocations). */
  const clients = new Map<VmmProcess, AgentClient>();

  const connect = async (vm: RuntimeVm, ctx: RunContext): Promise<AgentClient> => {
    const client = await AgentClient.connect(vm.agentSocket, { storage: ctx.storage });
    clients.set(vm.vmm, client);
    client.once('close', () => clients.delete(vm.vmm));
    return client;
  };

  const invoke = async (
    client: AgentClient,
    fn: { handler: string },
    params: unknown,
    timeoutMs: number,
    rec?: PhaseRecorder,
  ): Promise<InvokeResult> => {
    const t0 = performance.now();
    const out = await client.invoke(fn.handler, params, { timeoutMs });
    // The guest's read/process/write, laid end to end from the start of the call (the guest
    // clock is not the host's; the durations are the agent's own).
    let at = t0;
    for (const [phase, key] of GUEST_PHASES) {
      const ms = out.timings[key];
      rec?.record(phase, at, ms);
      at += ms;
    }
    return out;
  };

  return {
    name,
    available: unavailable === undefined,
    unavailableReason: unavailable,
    warmUpInBoot: true,

    validateConfig(fn) {
      if (!HANDLER_NAME.test(fn.handler))
        throw new FaasnapError(
          'REQUEST_INVALID',
          `${name} handler must be a function name: one bundled in the guest image (guest/functions/<name>), or the name for uploaded code`,
        );
      if (fn.memoryMiB < MIN_MEMORY_MIB)
        throw new FaasnapError(
          'REQUEST_INVALID',
          `${name} functions need ${MIN_MEMORY_MIB} MiB or more`,
        );
      if (fn.stateMiB !== 0)
        throw new FaasnapError('REQUEST_INVALID', 'stateMiB is for micro functions only');
    },

    supportsMode(_mode: InvokeMode) {
      return true;
    },

    recordParams(fn) {
      return fn.recordParams ?? {};
    },

    prepareInput(_fn, params) {
      return Promise.resolve({ params });
    },

    async boot(vm, fn, warmUp, ctx) {
      if (unavailable) throw new FaasnapError('RUNTIME_UNAVAILABLE', unavailable);
      await vm.vmm.call({
        type: 'boot-linux',
        kernel: image.kernel!,
        rootfs: image.rootfs!,
        init: GUEST_INIT_PATH,
        memMiB: fn.memoryMiB,
        vcpus: fn.vcpus,
        agentSocket: vm.agentSocket,
        ...(image.sanitisedPages ? {} : { cmdline: [...UNSANITISED_PAGES_PARAMS] }),
      });
      const client = await connect(vm, ctx);
      try {
        const ready = await unlessVmStops(
          vm.vmm,
          client.waitReady(AGENT_BOOT_TIMEOUT_MS),
          'before its agent was ready',
        );
        // Uploaded code goes to the guest's tmpfs: in guest memory, so in every snapshot.
        if (fn.code !== undefined)
          await client.define(fn.handler, name === 'node' ? 'node' : 'python', fn.code);
        else if (!ready.functions.includes(fn.handler))
          throw new FaasnapError(
            'FUNCTION_NOT_FOUND',
            `the guest image has no function ${fn.handler} (it has ${ready.functions.join(', ')})`,
          );
        await unlessVmStops(
          vm.vmm,
          invoke(client, fn, warmUp.params, fn.timeoutMs),
          'during the warm-up invocation',
        );
      } finally {
        // No connection may be part of the snapshot; the agent does not need one while paused.
        client.close();
      }
      await vm.vmm.call({ type: 'pause' });
    },

    async run(vm, fn, input, timeoutMs, rec, ctx) {
      let client = clients.get(vm.vmm);
      if (!client) {
        await rec.phase('vcpu-resume', () => vm.vmm.call({ type: 'resume' }));
        // A guest that stops here (a vCPU fault after restore) is reported as such, not as a
        // closed channel.
        client = await rec.phase('channel-connect', () =>
          unlessVmStops(
            vm.vmm,
            (async () => {
              const c = await connect(vm, ctx);
              await c.restored({ timeoutMs: RESTORE_TIMEOUT_MS });
              return c;
            })(),
            'after the restore',
          ),
        );
      }
      const c = client;
      try {
        const out = await rec.phase('guest-run', () =>
          unlessVmStops(
            vm.vmm,
            invoke(c, fn, input.params, timeoutMs, rec),
            'during the invocation',
          ),
        );
        return { ok: true, result: out.result };
      } catch (e) {
        return asOutcome(e);
      }
    },

    async record(vm, fn, spec, ctx) {
      await vm.vmm.call({
        type: spec.kind === 'faasnap' ? 'record-faasnap' : 'record-reap',
        snapshotDir: spec.snapshotDir,
        timeoutMs: spec.timeoutMs,
        mincoreSize: spec.mincoreSize,
        intervalThreshold: spec.intervalThreshold,
        agentSocket: vm.agentSocket,
        drive: 'controller',
      });
      const client = await connect(vm, ctx);
      try {
        await unlessVmStops(
          vm.vmm,
          (async () => {
            await client.restored({ timeoutMs: RESTORE_TIMEOUT_MS });
            await invoke(client, fn, spec.input.params, spec.timeoutMs);
          })(),
          `during the ${spec.kind} recording`,
        );
      } finally {
        client.close();
      }
      await vm.vmm.call({ type: 'record-finish' });
    },
  };
}
