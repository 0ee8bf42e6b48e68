// `faasnap vm boot`: boot a Linux guest directly (no daemon), stream its console and print how
// long each phase took: loading the kernel, the first console output and line, a marker the
// guest prints (e.g. from /init), and the stop.

import type { Command } from 'commander';
import { builtKernelPath } from '../guest/kernel/index.js';
import { FaasnapError } from '../common/errors.js';
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
