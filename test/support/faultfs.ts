// Files with injected storage faults for tests: a copy of the content behind delayfs (the FUSE
// layer of E4's slow storage, bench/experiments/slow-storage/delayfs.c) whose /faults control
// file makes reads fail with EIO at an offset or after N bytes, return short, or makes writes
// fail with ENOSPC. Reads bypass the page cache (direct_io), so every read meets the fault.

import { spawn, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { buildDelayfs } from '../../bench/experiments/slow-storage.js';
import { cacheRoot } from '../../guest/kernel/index.js';
import { tierTest } from './skip.js';

/** Why fault tests cannot run here, or undefined when they can. */
export function faultInjectionMissing(): string | undefined {
  if (process.getuid?.() !== 0) return 'FUSE mounts need root';
  if (!existsSync('/dev/fuse')) return '/dev/fuse is missing';
  if (spawnSync('sh', ['-c', 'command -v fusermount3']).status !== 0)
    return 'fusermount3 is missing (apt-get install fuse3)';
  return undefined;
}

/**
 * node:test's `test` for tests that need injected faults. Like the KVM tier, a missing piece is
 * a skip with its reason, and a failure when FAASNAP_REQUIRE_KVM=1 (CI: every tier must run).
 */
export function faultTest(
  name: string,
  fn: (t: TestContext) => Promise<void> | void,
  timeoutMs = 60_000,
): void {
  const why = (): string | undefined => {
    const m = faultInjectionMissing();
    return m && `fault injection did not run: ${m}`;
  };
  tierTest(name, why, fn, timeoutMs);
}

export interface FaultyFile {
  /** The file to hand to the code under test. */
  path: string;
  /** One /faults command: `eio <offset> <length>`, `eio-after <bytes>`, `short-reads`, … */
  inject(command: string): void;
  /** Reads and bytes the file system served (its /stats). */
  stats(): Record<string, number>;
  close(): Promise<void>;
}

/** delayfs is built once into the project's cache (rebuilt when its source changes). */
const BUILD_DIR = join(cacheRoot(), 'delayfs');

/**
 * Mounts a fresh delayfs holding `content` (no delay unless `latencyUs` per request, or a link of
 * `bytesPerS` that requests share).
 */
export async function faultyFile(
  content: Uint8Array,
  opts: { latencyUs?: number; bytesPerS?: number } = {},
): Promise<FaultyFile> {
  mkdirSync(BUILD_DIR, { recursive: true });
  const bin = buildDelayfs(BUILD_DIR);
  const dir = mkdtempSync(join(tmpdir(), 'faasnap-faultfs-'));
  const image = join(dir, 'image');
  const mnt = join(dir, 'mnt');
  mkdirSync(mnt);
  writeFileSync(image, content);
  const child = spawn(bin, [image, mnt, String(opts.latencyUs ?? 0), String(opts.bytesPerS ?? 0)], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const path = join(mnt, 'disk');
  for (let i = 0; !existsSync(path); i++) {
    if (i > 200 || child.exitCode !== null) {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`delayfs did not mount: ${stderr}`);
    }
    await sleep(25);
  }
  return {
    path,
    inject: (command) => writeFileSync(join(mnt, 'faults'), `${command}\n`),
    stats: () => {
      const text = readFileSync(join(mnt, 'stats'), 'utf8');
      return Object.fromEntries(
        text
          .trim()
          .split('\n')
          .map((l) => l.split(' '))
          .map(([k, v]) => [k!, Number(v)]),
      );
    },
    close: async () => {
      spawnSync('fusermount3', ['-u', '-z', mnt]);
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Puts a faulty copy of the file at `path` in its place (a symlink to the delayfs file) until
 * close(), which puts the original back.
 */
export async function swapInFaultyFile(
  path: string,
  opts: { latencyUs?: number; bytesPerS?: number } = {},
): Promise<FaultyFile> {
  const f = await faultyFile(readFileSync(path), opts);
  const aside = `${path}.faasnap-test-original`;
  renameSync(path, aside);
  symlinkSync(f.path, path);
  return {
    ...f,
    close: async () => {
      unlinkSync(path);
      renameSync(aside, path);
      await f.close();
    },
  };
}
