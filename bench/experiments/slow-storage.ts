// Slow "remote" storage for E4, emulated on this machine (root required).
//
// The snapshot's memory file is mmapped by the VMM, so it must sit on a real file system whose
// pages the host kernel reads on demand (page faults, readahead, fadvise, O_DIRECT for REAP).
// The stack, bottom to top:
//
//   image file (sparse, local disk)
//   delayfs     FUSE file system (bench/experiments/slow-storage/delayfs.c, libfuse3) exposing
//               the image as <state>/fuse/disk, every request delayed: one link of
//               `bandwidth` bytes/s shared in arrival order, plus `latency` per request
//               (requests overlap in the latency, as on a network); no page cache (direct_io)
//   loop device over <state>/fuse/disk with direct I/O (no second page cache)
//   ext4        on the loop device, mounted at the mount point: the daemon's --data-dir
//
// So a page fault on the memory file that misses the page cache becomes a block read of ext4 →
// loop → FUSE → the delay model; a dropped cache really goes back to the "remote" device.
// The device-mapper `delay` target (dmsetup) would do the same in the kernel, and an NBD
// server with a latency filter over the network stack, but this machine's kernel has neither
// device-mapper (no dm_mod/dm_delay, /dev/mapper/control missing) nor nbd, nor NFS or
// sch_netem; FUSE and loop are built in. docs/bench.md has the measurements.

import { execFileSync, spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  openSync,
  closeSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  rmSync,
  statSync,
  writeFileSync,
  ftruncateSync,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { processAlive } from '../../common/process.js';
import { EXPERIMENTS_DIR } from './config.js';

export interface SlowStorageOptions {
  /** Where the image, the FUSE mount and the state file live (default /var/tmp/faasnap-slow). */
  stateDir?: string;
  /** Where ext4 is mounted (default /mnt/faasnap-slow). */
  mountPoint?: string;
  sizeMiB?: number;
  /** Per-request latency (default 1000 µs). */
  latencyUs?: number;
  /** Link bandwidth (default 150 MiB/s). */
  bandwidthMiBps?: number;
}

export interface SlowStorageState {
  stateDir: string;
  mountPoint: string;
  fuseDir: string;
  image: string;
  loop: string;
  pid: number;
  latencyUs: number;
  bandwidthMiBps: number;
  sizeMiB: number;
  createdAt: string;
}

export const DEFAULT_STATE_DIR = '/var/tmp/faasnap-slow';
export const DEFAULT_MOUNT_POINT = '/mnt/faasnap-slow';
const SOURCE = resolve(EXPERIMENTS_DIR, 'slow-storage/delayfs.c');

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

function which(cmd: string): boolean {
  try {
    sh('sh', ['-c', `command -v ${cmd}`]);
    return true;
  } catch {
    return false;
  }
}

const statePath = (stateDir: string) => join(stateDir, 'state.json');

export function readState(stateDir = DEFAULT_STATE_DIR): SlowStorageState | undefined {
  const p = statePath(stateDir);
  return existsSync(p) ? (JSON.parse(readFileSync(p, 'utf8')) as SlowStorageState) : undefined;
}

/** Builds delayfs (cached by source mtime) and returns its path. */
export function buildDelayfs(stateDir: string): string {
  const bin = join(stateDir, 'delayfs');
  if (existsSync(bin) && statSync(bin).mtimeMs >= statSync(SOURCE).mtimeMs) return bin;
  if (!which('pkg-config') || !which('gcc'))
    throw new Error('slow storage needs gcc and pkg-config (apt-get install gcc pkg-config)');
  let flags: string[];
  try {
    flags = sh('pkg-config', ['--cflags', '--libs', 'fuse3']).split(/\s+/).filter(Boolean);
  } catch {
    throw new Error('slow storage needs libfuse3 (apt-get install libfuse3-dev fuse3)');
  }
  sh('gcc', ['-O2', '-Wall', '-o', bin, SOURCE, ...flags]);
  return bin;
}

async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function isMounted(dir: string): boolean {
  return mounts().some((m) => m.mountPoint === dir);
}

/** Sets the stack up (idempotent: an existing set-up is returned as it is). */
export async function setupSlowStorage(opts: SlowStorageOptions = {}): Promise<SlowStorageState> {
  if (process.getuid?.() !== 0) throw new Error('slow storage set-up needs root');
  const stateDir = resolve(opts.stateDir ?? DEFAULT_STATE_DIR);
  const existing = readState(stateDir);
  if (existing && isMounted(existing.mountPoint)) return existing;
  if (existing) await teardownSlowStorage(stateDir);
  if (!existsSync('/dev/fuse')) throw new Error('/dev/fuse is missing (FUSE not in this kernel)');
  const mountPoint = resolve(opts.mountPoint ?? DEFAULT_MOUNT_POINT);
  const latencyUs = opts.latencyUs ?? 1000;
  const bandwidthMiBps = opts.bandwidthMiBps ?? 150;
  const sizeMiB = opts.sizeMiB ?? 32768;
  const fuseDir = join(stateDir, 'fuse');
  const image = join(stateDir, 'image');
  mkdirSync(fuseDir, { recursive: true });
  mkdirSync(mountPoint, { recursive: true });
  const bin = buildDelayfs(stateDir);
  const fd = openSync(image, 'w');
  ftruncateSync(fd, sizeMiB * 2 ** 20); // sparse
  closeSync(fd);
  const log = openSync(join(stateDir, 'delayfs.log'), 'a');
  const child = spawn(
    bin,
    [image, fuseDir, String(latencyUs), String(Math.round(bandwidthMiBps * 2 ** 20))],
    { detached: true, stdio: ['ignore', log, log] },
  );
  closeSync(log);
  child.unref();
  const pid = child.pid!;
  let loop = '';
  try {
    await waitFor(() => existsSync(join(fuseDir, 'disk')), 10_000, 'the delayfs mount');
    loop = sh('losetup', ['--find', '--show', '--direct-io=on', join(fuseDir, 'disk')]);
    sh('mkfs.ext4', ['-q', '-F', '-E', 'nodiscard,lazy_itable_init=0', loop]);
    sh('mount', [loop, mountPoint]);
  } catch (e) {
    if (loop) execFileSync('losetup', ['-d', loop], { stdio: 'ignore' });
    try {
      execFileSync('umount', [fuseDir], { stdio: 'ignore' });
    } catch {
      process.kill(pid);
    }
    throw e;
  }
  const state: SlowStorageState = {
    stateDir,
    mountPoint,
    fuseDir,
    image,
    loop,
    pid,
    latencyUs,
    bandwidthMiBps,
    sizeMiB,
    createdAt: new Date().toISOString(),
  };
  writeFileSync(statePath(stateDir), JSON.stringify(state, null, 2) + '\n');
  return state;
}

/** Unmounts ext4, detaches the loop device, stops delayfs, deletes the image. */
export async function teardownSlowStorage(stateDir = DEFAULT_STATE_DIR): Promise<boolean> {
  const s = readState(resolve(stateDir));
  if (!s) return false;
  const problems: string[] = [];
  const tryRun = (cmd: string, args: string[]) => {
    try {
      sh(cmd, args);
    } catch (e) {
      problems.push(`${cmd} ${args.join(' ')}: ${(e as Error).message.split('\n')[0]}`);
    }
  };
  if (isMounted(s.mountPoint)) tryRun('umount', [s.mountPoint]);
  if (s.loop && existsSync(`/sys/block/${basename(s.loop)}/loop`))
    tryRun('losetup', ['-d', s.loop]);
  if (isMounted(s.fuseDir)) tryRun('umount', [s.fuseDir]);
  await waitFor(() => !alive(s.pid), 5000, 'delayfs to exit').catch(() => {
    if (alive(s.pid)) process.kill(s.pid, 'SIGTERM');
  });
  if (problems.length) throw new Error(`slow storage tear-down:\n  ${problems.join('\n  ')}`);
  rmSync(s.image, { force: true });
  rmSync(statePath(s.stateDir), { force: true });
  return true;
}

function alive(pid: number): boolean {
  if (!processAlive(pid)) return false;
  try {
    // A zombie or another process that reused the pid: check it is delayfs.
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('delayfs');
  } catch {
    return false;
  }
}

/** Counters of the delayfs device (reads, bytes) of a set-up. */
export function delayfsStats(s: SlowStorageState): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of readFileSync(join(s.fuseDir, 'stats'), 'utf8').split('\n')) {
    const [k, v] = line.split(' ');
    if (k && v) out[k] = Number(v);
  }
  return out;
}

interface Mount {
  mountPoint: string;
  fstype: string;
  source: string;
  majorMinor: string;
}

function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export function mounts(): Mount[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const f = line.split(' ');
      const dash = f.indexOf('-');
      return {
        mountPoint: unescape(f[4]!),
        majorMinor: f[2]!,
        fstype: f[dash + 1]!,
        source: unescape(f[dash + 2]!),
      };
    });
}

export interface StorageInfo {
  path: string;
  mountPoint: string;
  device: string;
  fstype: string;
  /** On a delayed device: a loop device over delayfs, or a device-mapper delay target. */
  delayed: boolean;
  how: string | null;
}

/** Which device and file system hold `path`, and whether that device is an emulated slow one. */
export function storageOf(path: string): StorageInfo {
  let p = path;
  while (!existsSync(p) && dirname(p) !== p) p = dirname(p);
  const real = realpathSync(p);
  let best: Mount | undefined;
  for (const m of mounts())
    if (
      (real === m.mountPoint ||
        real.startsWith(m.mountPoint.endsWith('/') ? m.mountPoint : m.mountPoint + '/')) &&
      (!best || m.mountPoint.length >= best.mountPoint.length)
    )
      best = m;
  const device = best?.source ?? 'unknown';
  let how: string | null = null;
  const loop = /^\/dev\/(loop\d+)$/.exec(device)?.[1];
  if (loop) {
    try {
      const backing = readFileSync(`/sys/block/${loop}/loop/backing_file`, 'utf8').trim();
      const under = storageOf(dirname(backing));
      if (under.fstype === 'fuse.delayfs') how = `loop over delayfs (${backing})`;
    } catch {
      // not a loop device we can read
    }
  } else if (device.startsWith('/dev/mapper/') || /^\/dev\/dm-\d+$/.test(device)) {
    try {
      const name = device.startsWith('/dev/mapper/')
        ? basename(device)
        : basename(readlinkSync(device));
      if (/\bdelay\b/.test(sh('dmsetup', ['table', name]))) how = `device-mapper delay (${name})`;
    } catch {
      // no device-mapper
    }
  }
  return {
    path,
    mountPoint: best?.mountPoint ?? '/',
    device,
    fstype: best?.fstype ?? 'unknown',
    delayed: how !== null,
    how,
  };
}
