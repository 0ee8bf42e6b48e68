// `faasnap lab setup | run`: the hardware-KVM lab (docs/lab.md).

import type { Command } from 'commander';
import { ensureLabAssets } from '../lab/assets.js';
import { runInLab } from '../lab/run.js';
import { durationOption, intOption } from './options.js';

interface RunOptions {
  vcpus: number;
  memory: number;
  disk: number;
  timeout: number;
}

export function registerLabCommands(program: Command): void {
  const lab = program
    .command('lab')
    .description(
      'the hardware-KVM lab: commands run in a QEMU machine whose KVM is AMD SVM with nested paging',
    );
  lab
    .command('setup')
    .description("install QEMU, fetch Debian's kernel and build the lab initramfs (cached)")
    .action(() => {
      const a = ensureLabAssets({ install: true });
      console.log(
        `lab ready: ${a.kernelPackage}\n  kernel    ${a.kernel}\n  initramfs ${a.initramfs}`,
      );
    });
  lab
    .command('run')
    .description('run a command as root in the project tree inside the lab; exits with its status')
    .option(
      '--vcpus <n>',
      'vCPUs of the lab machine (more than 1 risks L1 livelocks: docs/lab.md)',
      intOption(1, 64),
      1,
    )
    .option('--memory <MiB>', 'memory of the lab machine', intOption(512, 65536), 8192)
    .option('--disk <GiB>', 'size of the sparse ext4 data disk on /tmp', intOption(1, 1024), 32)
    .option(
      '--timeout <duration>',
      'kill the lab machine after this long',
      durationOption,
      3_600_000,
    )
    .argument('<command...>', 'the command (after --)')
    .action(async (command: string[], o: RunOptions) => {
      const abort = new AbortController();
      const onSignal = (): void => abort.abort();
      // `on`, not `once`: a second signal (Ctrl-C twice, a group signal plus a forwarding parent)
      // must not end the process before QEMU is killed and the run folder removed.
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      try {
        process.exitCode = await runInLab({
          command,
          vcpus: o.vcpus,
          memoryMiB: o.memory,
          diskGiB: o.disk,
          timeoutMs: o.timeout,
          cwd: process.cwd(),
          env: process.env,
          stdout: process.stdout,
          signal: abort.signal,
        });
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
    });
}
