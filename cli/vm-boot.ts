// `faasnap vm boot`: boot a Linux guest directly (no daemon), stream its console and print how
// long each phase took: loading the kernel, the first console output and line, a marker the
// guest prints (e.g. from /init), and the stop.
//
// With a faasnap root image (--image, or --rootfs without --initrd) the guest boots to its
// agent instead: the boot is timed to the agent's `ready`, the invocations given with --invoke
// run, and the VM powers off, or stays up with --keep for `faasnap vm invoke --socket`.

import type { Command } from 'commander';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentClient } from '../guest/agent/client.js';
import { builtKernelPath } from '../guest/kernel/index.js';
import {
  GUEST_INIT_PATH,
  ROOTFS_VARIANTS,
  isRootfsVariant,
  rootfsPath,
} from '../guest/rootfs/index.js';
import { FaasnapError, isFaasnapError } from '../common/errors.js';
import { DEFAULT_LINUX_PARAMS, createLinuxVm } from '../vmm/boot/linux-vm.js';
import { runLinuxVm, type LinuxRunResult } from '../vmm/boot/linux-run.js';
import { formatMs, phaseTable } from './format.js';
import { durationOption, intOption } from './options.js';

interface BootOptions {
  kernel?: string;
  initrd?: string;
  rootfs?: string;
  rootfsWritable?: boolean;
  mem: number;
  vcpus: number;
  timeout: number;
  cmdline?: string;
  marker?: string;
  verbose?: boolean;
  json?: boolean;
  image?: string;
  agent: boolean;
  socket?: string;
  invoke: string[];
  params?: string;
  keep?: boolean;
}

export function registerVmBootCommand(vmCommand: Command): void {
  vmCommand
    .command('boot')
    .description('boot a Linux guest, stream its console until it stops, print phase timings')
    .option(
      '--kernel <vmlinux>',
      'uncompressed kernel (default: the one guest/kernel/build.sh built)',
    )
    .option('--initrd <file>', 'uncompressed cpio initramfs')
    .option('--rootfs <img>', 'ext4 image attached as /dev/vda and used as root')
    .option('--image <variant>', `a built faasnap root image: ${ROOTFS_VARIANTS.join(', ')}`)
    .option('--no-agent', 'with a root image: run it without waiting for the agent')
    .option('--socket <path>', 'where the agent channel listens (default: a temp path)')
    .option(
      '--invoke <function>',
      'run this bundled function once the agent is ready (repeatable)',
      (v: string, acc: string[]) => [...acc, v],
      [] as string[],
    )
    .option('--params <json>', 'params for --invoke (a JSON object)')
    .option('--keep', 'keep the VM running after the invocations (Ctrl-C stops it)')
    .option('--rootfs-writable', 'attach the root image writable (default read-only)')
    .option('--mem <MiB>', 'guest memory in MiB', intOption(32, 65536), 256)
    .option('--vcpus <n>', 'number of vCPUs', intOption(1, 8), 1)
    .option('--timeout <duration>', 'stop the guest after this long', durationOption, 600_000)
    .option('--cmdline <params>', 'extra kernel parameters (appended last)')
    .option('--marker <text>', 'console text whose first appearance is timed (e.g. from /init)')
    .option('--verbose', `boot without the default parameters (${DEFAULT_LINUX_PARAMS.join(' ')})`)
    .option('--json', 'print one JSON document instead of the console stream')
    .action((opts: BootOptions) => bootVm(opts));
}

async function bootVm(opts: BootOptions): Promise<void> {
  if (opts.image) {
    if (!isRootfsVariant(opts.image))
      throw new FaasnapError('GUEST_IMAGE_INVALID', `unknown image ${opts.image}`);
    opts.rootfs = rootfsPath(opts.image);
    if (!existsSync(opts.rootfs))
      throw new FaasnapError(
        'GUEST_IMAGE_INVALID',
        `image ${opts.image} is not built (faasnap guest build --image ${opts.image})`,
      );
  }
  if (opts.rootfs && !opts.initrd && opts.agent) return bootToAgent(opts);
  const started = performance.now();
  const kernel = opts.kernel ?? builtKernelPath();
  if (!kernel) {
    throw new FaasnapError(
      'GUEST_IMAGE_INVALID',
      'no kernel given and none built for the current sources (run guest/kernel/build.sh)',
    );
  }
  const { vm, cmdline } = createLinuxVm({
    kernel,
    initrd: opts.initrd,
    rootDisk: opts.rootfs,
    rootDiskWritable: opts.rootfsWritable,
    memMiB: opts.mem,
    vcpus: opts.vcpus,
    cmdline: opts.cmdline,
    defaultParams: opts.verbose ? [] : undefined,
  });
  if (!opts.json) {
    process.stdout.write(`kernel command line: ${cmdline}\n`);
    vm.console.onOutput((chunk) => process.stdout.write(chunk));
  }
  const result = await runLinuxVm(vm, { timeoutMs: opts.timeout, marker: opts.marker });
  const totalMs = performance.now() - started;
  if (opts.json) {
    console.log(JSON.stringify(jsonReport(opts, cmdline, result, vm, totalMs), null, 2));
  } else {
    const { exit } = result;
    process.stdout.write(
      `\n--- guest stopped: ${exit.reason}${exit.error ? ` (${exit.error.code}: ${exit.error.message})` : ''}\n`,
    );
    console.log(phaseTable(vm.phases.phases, timeline(result)));
    const from = result.startedMs ?? 0;
    const since = (ms: number | undefined): string =>
      ms === undefined ? 'never' : formatMs(ms - from);
    console.log(
      `since start: first output ${since(result.firstOutputMs)}, first line ` +
        `${since(result.firstLineMs)}` +
        (opts.marker ? `, marker ${since(result.markerMs)}` : '') +
        `; total ${formatMs(totalMs)}`,
    );
  }
  if (result.exit.reason === 'error' || result.exit.reason === 'crash') process.exitCode = 1;
}

function timeline(r: LinuxRunResult): [string, number][] {
  const rows: [string, number | undefined][] = [
    ['start', r.startedMs],
    ['first console output', r.firstOutputMs],
    ['first console line', r.firstLineMs],
    ['marker', r.markerMs],
    ['power-off', r.powerOffMs],
  ];
  return rows.filter((row): row is [string, number] => row[1] !== undefined);
}

function jsonReport(
  opts: BootOptions,
  cmdline: string,
  r: LinuxRunResult,
  vm: ReturnType<typeof createLinuxVm>['vm'],
  totalMs: number,
): unknown {
  return {
    kernel: opts.kernel,
    cmdline,
    vcpus: opts.vcpus,
    memMiB: opts.mem,
    exit: { reason: r.exit.reason, error: r.exit.error?.toJSON() },
    panic: r.panic,
    phases: vm.phases.phases,
    startedMs: r.startedMs,
    firstOutputMs: r.firstOutputMs,
    firstLineMs: r.firstLineMs,
    markerMs: r.markerMs,
    powerOffMs: r.powerOffMs,
    totalMs,
    console: vm.console.text(),
    consoleDroppedBytes: vm.console.droppedBytes,
    exits: vm.vcpus.map((v) => v.exitCounts),
  };
}

function parseParams(text: string | undefined): Record<string, unknown> {
  if (text === undefined) return {};
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new FaasnapError('REQUEST_INVALID', `--params is not JSON: ${(e as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new FaasnapError('REQUEST_INVALID', '--params must be a JSON object');
  return v as Record<string, unknown>;
}

/** Boots the image to a ready agent, runs --invoke, then powers off (or stays with --keep). */
async function bootToAgent(opts: BootOptions): Promise<void> {
  const params = parseParams(opts.params);
  const kernel = opts.kernel ?? builtKernelPath();
  if (!kernel)
    throw new FaasnapError('GUEST_IMAGE_INVALID', 'no kernel built (faasnap guest build)');
  const tmp = opts.socket ? undefined : mkdtempSync(join(tmpdir(), 'faasnap-vm-'));
  const socket = opts.socket ?? join(tmp!, 'agent.sock');
  const { vm } = createLinuxVm({
    kernel,
    rootDisk: opts.rootfs,
    rootDiskWritable: opts.rootfsWritable,
    agentSocket: socket,
    memMiB: opts.mem,
    vcpus: opts.vcpus,
    cmdline: [`init=${GUEST_INIT_PATH}`, ...(opts.cmdline ? [opts.cmdline] : [])],
  });
  if (!opts.json) vm.console.onOutput((chunk) => process.stderr.write(chunk));
  const run = runLinuxVm(vm, { timeoutMs: opts.keep ? 2 ** 31 - 1 : opts.timeout });
  const report: Record<string, unknown> = { socket, memMiB: opts.mem, vcpus: opts.vcpus };
  let agent: AgentClient | undefined;
  try {
    agent = await AgentClient.connect(socket);
    const stopped = run.then((r) => {
      throw new FaasnapError(
        'AGENT_DISCONNECTED',
        `the guest stopped before its agent was ready (${r.exit.reason}${r.panic ? `: ${r.panic}` : ''})`,
      );
    });
    const ready = await Promise.race([agent.waitReady(opts.timeout), stopped]);
    report.agentReadyMs = vm.phases.elapsed();
    report.functions = ready.functions;
    report.runtimes = ready.runtimes;
    report.phases = vm.phases.phases;
    if (!opts.json) {
      console.log(phaseTable(vm.phases.phases, [['agent ready', vm.phases.elapsed()]]));
      console.log(
        `agent ready: ${ready.functions.length} functions, runtimes ${ready.runtimes.join(', ')}`,
      );
    }
    const invocations = [];
    for (const fn of opts.invoke) {
      const t0 = performance.now();
      try {
        const out = await agent.invoke(fn, params, { timeoutMs: opts.timeout });
        invocations.push({ function: fn, ms: performance.now() - t0, ...out });
      } catch (e) {
        if (!isFaasnapError(e)) throw e;
        invocations.push({ function: fn, ms: performance.now() - t0, error: e.toJSON() });
        process.exitCode = 1;
      }
      if (!opts.json) console.log(JSON.stringify(invocations.at(-1)));
    }
    report.invocations = invocations;
    if (opts.json) console.log(JSON.stringify(report, null, 2));
    if (opts.keep) {
      console.log(
        `VM running; agent at ${socket} (faasnap vm invoke --socket ${socket} <function>); Ctrl-C stops it`,
      );
      agent.close();
      agent = undefined;
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        void run.then(() => resolve());
      });
    }
  } finally {
    agent?.close();
    vm.stop();
    await run;
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  }
}

export function registerVmInvokeCommand(vmCommand: Command): void {
  vmCommand
    .command('invoke <function>')
    .description('invoke a bundled function in a VM started with `vm boot --keep`')
    .requiredOption('--socket <path>', "the VM's agent socket (printed by vm boot --keep)")
    .option('--params <json>', 'a JSON object', '{}')
    .option('--timeout <duration>', 'function timeout', durationOption, 60_000)
    .action(async (fn: string, o: { socket: string; params: string; timeout: number }) => {
      const agent = await AgentClient.connect(o.socket);
      try {
        await agent.ping();
        const t0 = performance.now();
        const out = await agent.invoke(fn, parseParams(o.params), { timeoutMs: o.timeout });
        console.log(JSON.stringify({ ms: performance.now() - t0, ...out }, null, 2));
      } finally {
        agent.close();
      }
    });
}
