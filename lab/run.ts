// `faasnap lab run`: boots the lab machine (L1: Debian's kernel under QEMU with an emulated AMD
// SVM CPU, so its /dev/kvm is hardware-style KVM with nested paging), runs one command in it as
// root in the project tree with the caller's environment, streams the command's output, and
// powers L1 off. Nothing stays behind: QEMU runs under `setpriv --pdeathsig` (it dies with this
// process), a timeout or an abort kills it, and the run folder is removed.

import { execFileSync, spawn } from 'node:child_process';
import {
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { FaasnapError } from '../common/errors.js';
import { cacheRoot } from '../guest/kernel/index.js';
import { repoRoot } from '../guest/rootfs/index.js';
import { ensureLabAssets, MKFS_EXT4, type LabAssets } from './assets.js';

/**
 * QEMU 7.2's SVM emulation (Debian bookworm) does not intercept a nested guest's XSETBV, so the
 * CPU model must not offer XSAVE: qemu64 has none. +npt gives KVM nested paging.
 */
export const LAB_CPU = 'qemu64,+svm,+npt';

/** L1 runs everything under TCG, ~10x slower: fixed waits stretch by this (common/time-scale.ts). */
export const LAB_TIME_SCALE = '10';

export interface LabRunOptions {
  command: readonly string[];
  vcpus: number;
  memoryMiB: number;
  timeoutMs: number;
  /** Size of the sparse ext4 data disk mounted on /tmp in L1. */
  diskGiB: number;
  cwd: string;
  env: NodeJS.ProcessEnv;
  stdout: Writable;
  signal?: AbortSignal;
  /** What to boot instead of ensureLabAssets()'s (tests of L1's failures). */
  assets?: LabAssets;
  /** Called once QEMU runs: its pid and the run folder (both gone when runInLab settles). */
  onStart?: (run: { pid: number; runDir: string }) => void;
}

const CONSOLE_TAIL_LINES = 40;

/** '…' with every ' escaped: safe as one word in sh. */
export function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

/** The sh script L1 runs in its chroot: the caller's environment, folder and command. */
export function commandScript(
  command: readonly string[],
  cwd: string,
  env: NodeJS.ProcessEnv,
): string {
  const lines = ['# written by faasnap lab run'];
  for (const [k, v] of Object.entries(env)) {
    // Only names sh can export; PWD/OLDPWD/SHLVL/_ describe the caller's shell, not L1's.
    if (
      v === undefined ||
      !/^[A-Za-z_][A-Za-z0-9_]*$/.test(k) ||
      ['PWD', 'OLDPWD', 'SHLVL', '_'].includes(k)
    )
      continue;
    lines.push(`export ${k}=${shellQuote(v)}`);
  }
  lines.push(`cd ${shellQuote(cwd)} || exit 125`);
  lines.push(`exec ${command.map(shellQuote).join(' ')}`);
  return lines.join('\n') + '\n';
}

export function qemuArgs(
  a: LabAssets,
  o: Pick<LabRunOptions, 'vcpus' | 'memoryMiB'>,
  runDir: string,
  shares: { project: string; cache?: string },
): string[] {
  const virtfs = (path: string, tag: string, extra = ''): string[] => [
    '-virtfs',
    `local,path=${path},mount_tag=${tag},security_model=none,multidevs=remap${extra}`,
  ];
  return [
    ...['-accel', 'tcg,thread=multi', '-M', 'pc', '-cpu', LAB_CPU],
    ...['-smp', String(o.vcpus), '-m', String(o.memoryMiB)],
    ...['-nodefaults', '-display', 'none', '-no-reboot'],
    ...['-kernel', a.kernel, '-initrd', a.initramfs],
    ...['-append', 'console=ttyS0 loglevel=4 panic=-1 mitigations=off'],
    // ttyS0: L1's kernel console, kept for errors; ttyS1: the command's output.
    ...['-serial', `file:${join(runDir, 'console.log')}`, '-serial', 'stdio'],
    // A monitor for looking inside a stuck L1: registers and stacks (docs/lab.md).
    ...['-monitor', `unix:${join(runDir, 'monitor.sock')},server=on,wait=off`],
    ...['-drive', `file=${join(runDir, 'data.img')},format=raw,if=virtio,cache=none,aio=threads`],
    ...virtfs(runDir, 'run'),
    ...virtfs('/', 'hostroot', ',readonly=on'),
    ...virtfs(shares.project, 'project'),
    ...(shares.cache ? virtfs(shares.cache, 'cache') : []),
  ];
}

function consoleTail(runDir: string): string {
  try {
    const lines = readFileSync(join(runDir, 'console.log'), 'utf8').split('\n');
    return lines.slice(-CONSOLE_TAIL_LINES).join('\n');
  } catch {
    return '';
  }
}

/** Runs `command` in L1; resolves with its exit status. */
export async function runInLab(o: LabRunOptions): Promise<number> {
  const assets = o.assets ?? ensureLabAssets({ install: true });
  const runDir = mkdtempSync(join(tmpdir(), 'faasnap-lab-'));
  try {
    const project = repoRoot();
    const cache = existsSync(cacheRoot()) ? cacheRoot() : undefined;
    writeFileSync(
      join(runDir, 'lab.conf'),
      `PROJECT=${shellQuote(project)}\nCACHE=${shellQuote(cache ?? '')}\n`,
    );
    // FAASNAP_LAB tells the command it runs in L1 (the lab's own tests do not nest QEMU).
    const env = { FAASNAP_TIME_SCALE: LAB_TIME_SCALE, ...o.env, FAASNAP_LAB: '1' };
    writeFileSync(join(runDir, 'cmd.sh'), commandScript(o.command, o.cwd, env));
    const disk = join(runDir, 'data.img');
    writeFileSync(disk, '');
    truncateSync(disk, o.diskGiB * 2 ** 30); // sparse: blocks are allocated as L1 writes
    execFileSync(MKFS_EXT4, ['-q', '-F', '-E', 'lazy_itable_init=1,lazy_journal_init=1', disk]);

    const args = qemuArgs(assets, o, runDir, { project, cache });
    const qemu = spawn('setpriv', ['--pdeathsig', 'SIGKILL', '--', assets.qemu, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    if (qemu.pid !== undefined) o.onStart?.({ pid: qemu.pid, runDir });
    let qemuErr = '';
    qemu.stdout.pipe(o.stdout, { end: false });
    qemu.stderr.on('data', (d: Buffer) => (qemuErr = (qemuErr + d.toString()).slice(-4096)));
    let stopped: { code: 'LAB_TIMEOUT' | 'LAB_INTERRUPTED'; message: string } | undefined;
    const kill = (why: NonNullable<typeof stopped>): void => {
      stopped ??= why;
      qemu.kill('SIGKILL');
    };
    const timer = setTimeout(
      () =>
        kill({
          code: 'LAB_TIMEOUT',
          message: `no exit after ${o.timeoutMs / 1000} s; L1 was killed`,
        }),
      o.timeoutMs,
    );
    const onAbort = (): void =>
      kill({ code: 'LAB_INTERRUPTED', message: 'interrupted; L1 was killed' });
    o.signal?.addEventListener('abort', onAbort, { once: true });
    const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(
      (resolve, reject) => {
        qemu.on('error', reject);
        qemu.on('close', (code, signal) => resolve({ code, signal }));
      },
    ).finally(() => {
      clearTimeout(timer);
      o.signal?.removeEventListener('abort', onAbort);
    });
    if (stopped)
      throw new FaasnapError(stopped.code, stopped.message, { consoleTail: consoleTail(runDir) });
    const status = join(runDir, 'status');
    if (!existsSync(status)) {
      throw new FaasnapError(
        'LAB_BOOT_FAILED',
        `QEMU exited (${exit.signal ?? exit.code}) before the command finished${qemuErr ? `: ${qemuErr.trim()}` : ''}`,
        {
          consoleTail: consoleTail(runDir),
        },
      );
    }
    return Number(readFileSync(status, 'utf8').trim());
  } finally {
    rmSync(runDir, { recursive: true, force: true });
  }
}
