// cgroup v2 for jailed VMM processes: one cgroup per process, under one the daemon creates, with
// a memory limit (the guest's memory plus the VMM's own) and a CPU weight. A process the kernel
// killed for exceeding its limit is told apart from a crash (memory.events: oom_kill), so the
// daemon reports VMM_MEMORY_LIMIT instead of VMM_CRASHED.

import {
  mkdirSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  statfsSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';

const CGROUP2_SUPER_MAGIC = 0x63677270;
const MOUNT = '/sys/fs/cgroup';
const CONTROLLERS = ['memory', 'cpu'];

/** Why this host cannot give VMM processes cgroups of their own (undefined when it can). */
export function cgroupMissing(mount = MOUNT): string | undefined {
  try {
    if (statfsSync(mount).type !== CGROUP2_SUPER_MAGIC)
      return `cgroup v2 (${mount} is not a cgroup2 file system: a cgroup v1 or hybrid host)`;
  } catch {
    return `cgroup v2 (${mount} is missing)`;
  }
  const available = readFileSync(join(mount, ownCgroup(), 'cgroup.controllers'), 'utf8').split(
    /\s+/,
  );
  const lacking = CONTROLLERS.filter((c) => !available.includes(c));
  if (lacking.length)
    return `cgroup v2 controllers ${lacking.join(', ')} (not delegated to the daemon's cgroup)`;
  return undefined;
}

/** This process's cgroup v2 path, e.g. "/" or "/system.slice/faasnap.service". */
function ownCgroup(): string {
  const line = readFileSync('/proc/self/cgroup', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('0::'));
  return line ? line.slice(3) : '/';
}

/**
 * The daemon's parent cgroup of VMM processes: `faasnap-<pid>` beside (in the root cgroup) or
 * under (elsewhere: the daemon first moves itself into a leaf, since a cgroup with processes
 * cannot hand controllers to children) the daemon's own, with the memory and cpu controllers
 * enabled for its children.
 */
export class VmmCgroups {
  private constructor(readonly path: string) {}

  static create(mount = MOUNT): VmmCgroups {
    const own = ownCgroup();
    let parent = join(mount, own);
    if (own !== '/') {
      // Leave the cgroup we were given to a leaf of its own, then let it hand controllers down.
      const leaf = join(parent, 'daemon');
      mkdirSync(leaf, { recursive: true });
      writeFileSync(join(leaf, 'cgroup.procs'), String(process.pid));
    }
    enable(parent);
    parent = join(parent, `faasnap-${process.pid}`);
    mkdirSync(parent, { recursive: true });
    enable(parent);
    return new VmmCgroups(parent);
  }

  /** A new cgroup for one VMM process, with `cpuWeight` (1..10000, 100 is the default). */
  add(name: string, cpuWeight: number): VmmCgroup {
    const path = join(this.path, name);
    mkdirSync(path);
    writeFileSync(join(path, 'cpu.weight'), String(cpuWeight));
    return new VmmCgroup(path);
  }

  /** Removes the parent cgroup with what is left of its children (their processes gone). */
  async remove(): Promise<void> {
    for (const e of readdirSync(this.path, { withFileTypes: true }))
      if (e.isDirectory()) await new VmmCgroup(join(this.path, e.name)).remove();
    await new VmmCgroup(this.path).remove();
  }
}

export class VmmCgroup {
  constructor(readonly path: string) {}

  /** Sets memory.max; a process over it is reclaimed, then OOM-killed. */
  limitMemory(bytes: number): void {
    // The kernel answers a bad number with EINVAL, which names neither the file nor the value.
    if (!Number.isSafeInteger(bytes) || bytes <= 0)
      throw new RangeError(`memory.max of ${this.path}: not a positive byte count: ${bytes}`);
    writeFileSync(join(this.path, 'memory.max'), String(bytes));
    // No swap: a VM's memory is either in RAM or refetched from its snapshot.
    try {
      writeFileSync(join(this.path, 'memory.swap.max'), '0');
    } catch {
      // no swap accounting on this host
    }
  }

  /** How many times the kernel OOM-killed a process of this cgroup. */
  oomKills(): number {
    try {
      const events = readFileSync(join(this.path, 'memory.events'), 'utf8');
      return Number(/^oom_kill (\d+)$/m.exec(events)?.[1] ?? 0);
    } catch {
      return 0;
    }
  }

  /**
   * Removes the cgroup once its processes are gone: `unshare` may be seen to exit a moment
   * before the jailed program it ran has (both are killed at once), so an EBUSY is tried again
   * for a while. Best effort: a leftover is removed with the parent at shutdown.
   */
  async remove(): Promise<void> {
    for (let tries = 0; !removeCgroup(this.path) && tries < 50; tries++)
      await new Promise((r) => setTimeout(r, 20));
  }
}

function enable(path: string): void {
  writeFileSync(join(path, 'cgroup.subtree_control'), CONTROLLERS.map((c) => `+${c}`).join(' '));
}

/** True when `path` is gone (removed now or before); false while it is still busy. */
function removeCgroup(path: string): boolean {
  try {
    rmdirSync(path);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT';
  }
}
