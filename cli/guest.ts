// `faasnap guest build`: the guest kernel and root images, each built once per machine and
// cached by the hash of its inputs (guest/kernel/build.sh, guest/rootfs/build.sh). Progress is
// the build scripts' own step lines, stamped with the elapsed time.

import { spawn } from 'node:child_process';
import { join } from 'node:path';
import type { Command } from 'commander';
import { FaasnapError } from '../common/errors.js';
import { builtKernelPath } from '../guest/kernel/index.js';
import {
  ROOTFS_VARIANTS,
  TEST_ROOTFS_VARIANT,
  ensureRootfs,
  isRootfsVariant,
  repoRoot,
} from '../guest/rootfs/index.js';
import { formatMs } from './format.js';

interface BuildOptions {
  image: string[];
  force?: boolean;
}

function progress(t0: number, what: string): (line: string) => void {
  return (line) =>
    process.stderr.write(`[${formatMs(performance.now() - t0).padStart(8)}] ${what}: ${line}\n`);
}

/** Runs the kernel build script, streaming its step lines; resolves with the vmlinux path. */
function buildKernel(log: (line: string) => void): Promise<string> {
  const script = join(repoRoot(), 'guest', 'kernel', 'build.sh');
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      for (const l of d.toString().split('\n')) if (l) log(l.replace(/^kernel: /, ''));
    });
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0
        ? resolve(out.trim().split('\n').at(-1) ?? '')
        : reject(new FaasnapError('GUEST_IMAGE_INVALID', `kernel build failed (exit ${code})`)),
    );
  });
}

export function registerGuestCommands(program: Command): void {
  const guest = program.command('guest').description('the Linux guest: kernel and root images');
  guest
    .command('build')
    .description('build (or find cached) the guest kernel and root images')
    .option(
      '--image <variant>',
      `root image to build: ${ROOTFS_VARIANTS.join(', ')} (repeatable)`,
      (v: string, acc: string[]) => [...acc, v],
      [] as string[],
    )
    .option('--force', 'rebuild the images even when cached (the kernel is keyed by its inputs)')
    .action(async (o: BuildOptions) => {
      const images = o.image.length > 0 ? o.image : [TEST_ROOTFS_VARIANT, 'full'];
      for (const v of images)
        if (!isRootfsVariant(v))
          throw new FaasnapError('GUEST_IMAGE_INVALID', `unknown image ${v}`, { variant: v });
      const t0 = performance.now();
      const cached = builtKernelPath();
      const kernel = cached ?? (await buildKernel(progress(t0, 'kernel')));
      console.log(`kernel   ${kernel}${cached ? ' (cached)' : ''}`);
      for (const v of images) {
        const path = await ensureRootfs(v, { force: o.force, log: progress(t0, v) });
        console.log(`${v.padEnd(8)} ${path}`);
      }
      console.log(`done in ${formatMs(performance.now() - t0)}`);
    });
}
