// The working-set recorder of FaaSnap (docs/architecture.md, "Working-set groups"): while the function runs once on a VM
// restored lazily from a memory file with a cold page cache, take mincore() scans of the memory
// file each time this process's resident set has grown by `mincoreSize` pages (or every
// `intervalMs`). A page's group is the first scan that finds it resident; read-ahead is
// included on purpose. Polling runs on the JS thread, never on the vCPU threads.

import { accessSync, closeSync, constants, openSync, readFileSync, statSync } from 'node:fs';
import { FaasnapError } from '../common/errors.js';
import { native } from '../native/index.js';
import {
  DEFAULT_MINCORE_SIZE,
  DEFAULT_POLL_MS,
  GroupRecorder,
  ScanScheduler,
  type Observation,
  type ScanPolicy,
} from './groups.js';

export interface RecorderOptions {
  /** Scan after the resident set grew by this many pages (default 1024). */
  mincoreSize?: number;
  /** Scan on a fixed interval instead of by RSS growth. */
  intervalMs?: number;
  /** How often RSS is polled in growth mode (default 2 ms). */
  pollMs?: number;
}

/** Resident pages of this process (second field of /proc/self/statm). */
export function residentPages(): number {
  return Number(readFileSync('/proc/self/statm', 'latin1').split(' ')[1]);
}

/**
 * Refuses a file whose page cache Linux hides from this process. Since 5.0 mincore() reports a
 * file's cached pages only to a process that owns the file or may write it (or holds
 * CAP_FOWNER, as root is taken to); to any other it reports every page resident. A recording
 * made blind would put the whole file in its first group, a loading set of all the memory, and
 * look like success (a jailed recorder did, until the daemon lent it the memory file).
 */
function assertPageCacheVisible(path: string): void {
  const uid = process.geteuid!();
  const owner = statSync(path).uid;
  if (uid === 0 || owner === uid) return;
  try {
    accessSync(path, constants.W_OK);
    return;
  } catch {
    throw new FaasnapError(
      'WORKING_SET_UNOBSERVABLE',
      `${path} belongs to uid ${owner}, and uid ${uid} may not write it`,
      { path, owner, uid },
    );
  }
}

export class MincoreRecorder {
  readonly groups: GroupRecorder;
  private readonly addr: bigint;
  private readonly pages: number;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    memoryFile: string,
    private readonly size: number,
    private readonly opts: RecorderOptions = {},
  ) {
    assertPageCacheVisible(memoryFile);
    const M = native.memConstants;
    const fd = openSync(memoryFile, 'r');
    try {
      // A read-only shared mapping only to ask mincore about the file's page cache; never touched.
      this.addr = native.mmap(size, M.PROT_READ!, M.MAP_SHARED!, fd, 0);
    } finally {
      closeSync(fd);
    }
    this.pages = Math.ceil(size / 4096);
    this.groups = new GroupRecorder(this.pages);
  }

  /** Takes scan 0 (what the restore itself touched), then scans whenever the policy says so. */
  start(): void {
    const policy: ScanPolicy =
      this.opts.intervalMs !== undefined
        ? { kind: 'interval', intervalMs: this.opts.intervalMs }
        : {
            kind: 'rss-growth',
            mincoreSize: this.opts.mincoreSize ?? DEFAULT_MINCORE_SIZE,
            pollMs: this.opts.pollMs ?? DEFAULT_POLL_MS,
          };
    const observe = (): Observation => ({ rssPages: residentPages(), nowMs: performance.now() });
    const scheduler = new ScanScheduler(policy, observe());
    this.scan();
    this.timer = setInterval(() => {
      const obs = observe();
      if (!scheduler.due(obs)) return;
      this.scan();
      scheduler.scanned(obs);
    }, scheduler.pollDelayMs);
  }

  /** Takes the final scan and releases the mapping; returns the groups. */
  stop(): GroupRecorder {
    if (this.closed) return this.groups;
    clearInterval(this.timer);
    this.scan();
    this.closed = true;
    native.munmap(this.addr, this.size);
    return this.groups;
  }

  scan(): void {
    if (this.closed) return;
    const vec = Buffer.alloc(this.pages);
    native.mincore(this.addr, this.size, vec);
    this.groups.addScan(vec);
  }
}
