// Live VMs of the daemon, each in its own VMM process taken from the pool. Enforces the
// resource limits (VM count, guest memory) before a process is taken, first asking the reclaimer
// (the invoker's idle warm VMs) to free capacity, and reports VMM process crashes.

import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FaasnapError } from '../common/errors.js';
import { processAlive } from '../common/process.js';
import type { VmmProcess } from '../process/client.js';
import type { VmmCgroups } from '../process/cgroup.js';
import { jailIds, vmmRuntimePaths } from '../process/jail.js';
import { VmmPool } from '../process/pool.js';
import type { RuntimeVm } from './runtime/runtime.js';
import type { VmT } from './schemas.js';

export interface LiveVm {
  info: VmT;
  vmm: VmmProcess | undefined;
  /** Where this VM's agent channel listens (if its guest has one). */
  agentSocket: string;
  /** Undone when the VM stops, after its process ended (e.g. its snapshot view removed). */
  cleanups: (() => Promise<void>)[];
}

export interface VmLimits {
  maxVms: number;
  maxMemoryMiB: number;
}

/** Where jailed VMM processes live and what they see besides their runtime (process/jail.ts). */
export interface VmJail {
  /** An empty directory to mount each jail's root on. */
  root: string;
  /** Paths VMM processes read (guest images); those that do not exist are left out. */
  readOnly: string[];
  /**
   * Paths they write in (the snapshots directory), read-write as mounts: what they may read and
   * write there is decided by ownership (daemon/snapshots.ts: a snapshot being written is lent
   * to its VMM's uid, one being restored is seen through a view only that uid may enter).
   */
  readWrite: string[];
  /** A cgroup per VMM process under these, if the host has cgroup v2 (process/cgroup.ts). */
  cgroups?: VmmCgroups | undefined;
  /** Memory a VMM process may use beyond its guest's (Node, the VMM, page tables), MiB. */
  overheadMiB: number;
}

/**
 * Frees capacity on demand by stopping one idle VM; false when nothing is idle. Idle warm VMs
 * are a cache: without this they would hold their memory until a deploy or a delete of their
 * function, and every other start would fail with RESOURCE_LIMIT.
 */
export type Reclaimer = () => Promise<boolean>;

export class VmManager {
  readonly pool: VmmPool;
  private readonly live = new Map<string, LiveVm>();
  private reclaimer: Reclaimer = async () => false;
  /** Agent sockets: short paths (sockaddr_un holds 107 bytes), removed with the daemon. */
  private readonly socketDir = makeSocketDir();
  private readonly overheadMiB: number = 0;
  private readonly cgroups: VmmCgroups | undefined;

  constructor(
    poolSize: number,
    private readonly limits: VmLimits,
    jail?: VmJail,
  ) {
    if (!jail) {
      this.pool = new VmmPool(poolSize);
      return;
    }
    mkdirSync(jail.root, { recursive: true });
    // Each VMM process has a uid of its own: the socket directory works like /tmp (anyone may
    // create an entry, only its owner may remove it).
    chmodSync(this.socketDir, 0o1733);
    const nextId = jailIds();
    const readOnly = [...vmmRuntimePaths(), ...jail.readOnly].filter((p) => existsSync(p));
    const readWrite = [this.socketDir, ...jail.readWrite];
    this.overheadMiB = jail.overheadMiB;
    this.cgroups = jail.cgroups;
    this.pool = new VmmPool(poolSize, () => {
      const id = nextId();
      // Idle, a process gets the overhead only; acquire() adds its guest's memory.
      const cgroup = jail.cgroups?.add(`vmm-${id}`, 100);
      cgroup?.limitMemory(jail.overheadMiB * 2 ** 20);
      return {
        mountPoint: jail.root,
        uid: id,
        gid: id,
        readOnly,
        readWrite,
        maxFiles: 1024,
        cgroup,
      };
    });
  }

  list(): VmT[] {
    return [...this.live.values()].map((v) => ({ ...v.info }));
  }

  get(id: string): LiveVm {
    const v = this.live.get(id);
    if (!v) throw new FaasnapError('VM_UNKNOWN', id, { id });
    return v;
  }

  get count(): number {
    return this.live.size;
  }

  setReclaimer(r: Reclaimer): void {
    this.reclaimer = r;
  }

  /** The limit a VM of `memoryMiB` more would break, if any. */
  private overLimit(memoryMiB: number): FaasnapError | undefined {
    if (this.live.size >= this.limits.maxVms)
      return new FaasnapError(
        'RESOURCE_LIMIT',
        `at most ${this.limits.maxVms} VMs may run at once`,
        {
          limit: 'maxVms',
          value: this.limits.maxVms,
        },
      );
    const used = [...this.live.values()].reduce((n, v) => n + v.info.memoryMiB, 0);
    if (used + memoryMiB > this.limits.maxMemoryMiB)
      return new FaasnapError(
        'RESOURCE_LIMIT',
        `${memoryMiB} MiB more would exceed the ${this.limits.maxMemoryMiB} MiB guest memory budget (${used} MiB in use)`,
        { limit: 'maxMemoryMiB', value: this.limits.maxMemoryMiB, used },
      );
    return undefined;
  }

  /**
   * Reserves capacity for a VM of `fn` and takes a VMM process for it. RESOURCE_LIMIT when the
   * VM count or the memory budget would be exceeded even after stopping every idle VM.
   */
  async acquire(req: {
    function: string;
    memoryMiB: number;
    vcpus: number;
    purpose: VmT['purpose'];
    invocation?: string;
  }): Promise<LiveVm> {
    // Re-checked after every reclaim: a concurrent acquire may have taken what was freed.
    for (let over = this.overLimit(req.memoryMiB); over; over = this.overLimit(req.memoryMiB))
      if (!(await this.reclaimer())) throw over;
    const id = `vm-${randomBytes(6).toString('hex')}`;
    const entry: LiveVm = {
      vmm: undefined,
      agentSocket: join(this.socketDir, `${id}.sock`),
      cleanups: [],
      info: {
        id,
        function: req.function,
        purpose: req.purpose,
        state: 'starting',
        pid: null,
        memoryMiB: req.memoryMiB,
        vcpus: req.vcpus,
        invocation: req.invocation ?? null,
        startedAt: new Date().toISOString(),
      },
    };
    this.live.set(id, entry);
    try {
      const vmm = await this.pool.take();
      // Not `<< 20`: 32-bit, it turned 2 GiB and more negative.
      vmm.limitMemory((req.memoryMiB + this.overheadMiB) * 2 ** 20);
      entry.vmm = vmm;
      entry.info.pid = vmm.pid;
      return entry;
    } catch (e) {
      this.live.delete(id);
      throw e;
    }
  }

  setState(id: string, state: VmT['state']): void {
    const v = this.live.get(id);
    if (v) v.info.state = state;
  }

  /** Stops the VM (its VMM process ends) and frees its capacity. */
  async release(id: string): Promise<void> {
    const v = this.live.get(id);
    if (!v) return;
    v.info.state = 'stopping';
    try {
      await v.vmm?.kill();
    } finally {
      this.live.delete(id);
      // The VMM removes its socket when it stops; not when it was killed.
      rmSync(v.agentSocket, { force: true });
      await Promise.all(v.cleanups.map((c) => c()));
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.live.keys()].map((id) => this.release(id)));
    await this.pool.close();
    await this.cgroups?.remove();
    rmSync(this.socketDir, { recursive: true, force: true });
  }
}

const SOCKET_DIR_PREFIX = 'faasnap-vms-';
const OWNER_FILE = 'owner.pid';

/**
 * A fresh socket directory, owned by this process. A daemon that was killed (SIGKILL, a crash)
 * cannot remove its own: the next one removes every directory whose owner is gone.
 */
export function makeSocketDir(parent = tmpdir()): string {
  for (const name of readdirSync(parent)) {
    if (!name.startsWith(SOCKET_DIR_PREFIX)) continue;
    const dir = join(parent, name);
    let owner: number;
    try {
      owner = Number(readFileSync(join(dir, OWNER_FILE), 'utf8'));
    } catch {
      continue; // not ours to judge (no owner file, or not readable)
    }
    if (Number.isInteger(owner) && owner > 0 && !processAlive(owner))
      rmSync(dir, { recursive: true, force: true });
  }
  const dir = mkdtempSync(join(parent, SOCKET_DIR_PREFIX));
  writeFileSync(join(dir, OWNER_FILE), String(process.pid));
  return dir;
}

/** The runtime's view of a live VM (its process must have been taken: acquire() did). */
export function runtimeVm(v: LiveVm): RuntimeVm {
  if (!v.vmm) throw new FaasnapError('INVALID_VM_STATE', `${v.info.id} has no VMM process`);
  return { id: v.info.id, vmm: v.vmm, agentSocket: v.agentSocket };
}
