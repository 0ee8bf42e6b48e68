// `faasnap vm …`: run VMs directly (no daemon), streaming the guest console.

import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { FaasnapError } from '../common/errors.js';
import { createMicroVm } from '../guest/micro/launch.js';
import { MICRO_GUESTS } from '../guest/micro/index.js';
import { createSnapshot } from '../restore/snapshot.js';
import type { VmExit } from '../vmm/vm.js';
import { formatMs, phaseTable } from './format.js';
import { durationOption, intOption } from './options.js';

interface RunOptions {
  guest: string;
  mem: number;
  vcpus: number;
  timeout: number;
  disk?: string;
  diskWritable?: boolean;
  params?: string;
  snapshotDir?: string;
  snapshotAt: string;
  json?: boolean;
}

export function registerVmCommands(program: Command): Command {
  const vm = program.command('vm').description('run microVMs directly');
  vm.command('run')
    .description('boot a micro-guest, stream its console until it stops, print phase timings')
    .requiredOption(
      '--guest <name|path>',
      `micro-guest (${MICRO_GUESTS.join(', ')}) or a flat image path`,
    )
    .option('--mem <MiB>', 'guest memory in MiB', intOption(8, 65536), 64)
    .option('--vcpus <n>', 'number of vCPUs', intOption(1, 8), 1)
    .option('--timeout <duration>', 'stop the guest after this long', durationOption, 30_000)
    .option('--disk <file>', 'raw disk image attached as virtio-blk')
    .option('--disk-writable', 'attach the disk writable (default read-only)')
    .option('--params <file>', 'parameter blob for the guest (default: per-guest defaults)')
    .option('--snapshot-dir <dir>', 'take a snapshot into this directory and stop')
    .option(
      '--snapshot-at <pattern>',
      "when to snapshot: 'start' (before the first instruction) or a regex the console must match",
      'start',
    )
    .option('--json', 'print one JSON document instead of the console stream')
    .action((opts: RunOptions) => runVm(opts));
  return vm;
}

async function runVm(opts: RunOptions): Promise<void> {
  const started = performance.now();
  const vm = createMicroVm({
    guest: opts.guest,
    memMiB: opts.mem,
    vcpus: opts.vcpus,
    disk: opts.disk,
    diskWritable: opts.diskWritable,
    params: opts.params ? readFileSync(opts.params) : undefined,
  });
  if (!opts.json) vm.console.onOutput((chunk) => process.stdout.write(chunk));
  if (opts.snapshotDir) {
    if (opts.snapshotAt !== 'start') {
      vm.start();
      await vm.console.waitFor(new RegExp(opts.snapshotAt), opts.timeout);
    }
    await vm.pause();
    const info = await createSnapshot(vm, opts.snapshotDir);
    vm.stop();
    console.log(
      `\n--- snapshot written to ${info.dir} (${(info.memoryBytes / 2 ** 20).toFixed(0)} MiB memory)`,
    );
    console.log(phaseTable(info.phases));
    return;
  }
  let exit: VmExit;
  try {
    exit = await vm.runToCompletion(opts.timeout);
  } catch (e) {
    exit = {
      reason: 'error',
      error: e instanceof FaasnapError ? e : new FaasnapError('GUEST_UNHANDLED_EXIT', String(e)),
    };
    vm.stop();
  }
  const totalMs = performance.now() - started;
  const runMs = vm.startedMs === undefined ? 0 : vm.phases.elapsed() - vm.startedMs;
  if (opts.json) {
    console.log(
      JSON.stringify(
        {
          guest: opts.guest,
          exit: { reason: exit.reason, error: exit.error?.toJSON() },
          console: vm.console.text(),
          consoleDroppedBytes: vm.console.droppedBytes,
          phases: vm.phases.phases,
          firstExitMs: vm.firstExitMs,
          runMs,
          totalMs,
          exits: vm.vcpus.map((v) => v.exitCounts),
        },
        null,
        2,
      ),
    );
  } else {
    const extra: [string, number][] = [];
    if (vm.startedMs !== undefined) extra.push(['start', vm.startedMs]);
    if (vm.firstExitMs !== undefined) extra.push(['first guest exit', vm.firstExitMs]);
    process.stdout.write(
      `\n--- guest stopped: ${exit.reason}${exit.error ? ` (${exit.error.code}: ${exit.error.message})` : ''}\n`,
    );
    console.log(phaseTable(vm.phases.phases, extra));
    console.log(`guest ran ${formatMs(runMs)}; total ${formatMs(totalMs)}`);
  }
  if (exit.reason === 'error') process.exitCode = 1;
}
