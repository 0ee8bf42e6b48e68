// Working-set groups (docs/architecture.md, "Working-set groups"). While the function runs once with its record input, the
// VMM takes mincore() snapshots of the memory file's page-cache residency; a page's group is the
// index of the first snapshot in which it is resident. Groups order the loading set, so the
// pages the guest needed first are read first. Residency includes the kernel's read-ahead: that
// is intended (the paper relies on it too).
//
// Pure: the caller polls RSS and calls mincore; this file decides when and what it means.

import { FaasnapError } from '../common/errors.js';
import { checkInt } from './units.js';

/** Group of a page that was never resident during recording. */
export const NO_GROUP = -1;
/** Pages of RSS growth between two scans (the paper's `mincore_size`). */
export const DEFAULT_MINCORE_SIZE = 1024;
/** How often RSS is polled in `rss-growth` mode ("every few ms"). */
export const DEFAULT_POLL_MS = 2;

/** Accumulates mincore snapshots into per-page groups without keeping the snapshots. */
export class GroupRecorder {
  /** Per page: index of the first scan that saw it resident, or NO_GROUP. */
  readonly groups: Int32Array;
  private count = 0;
  private resident = 0;

  constructor(readonly pages: number) {
    checkInt('pages', pages);
    this.groups = new Int32Array(pages).fill(NO_GROUP);
  }

  /** Number of scans added so far (= the next group index). */
  get scans(): number {
    return this.count;
  }

  /** Pages resident in at least one scan so far. */
  get residentPages(): number {
    return this.resident;
  }

  /**
   * Adds the next mincore vector (one byte per page; bit 0 = resident, the other bits are
   * reserved by the kernel and ignored). Returns how many pages it newly made resident.
   */
  addScan(vec: Uint8Array): number {
    if (vec.length !== this.pages) {
      throw new FaasnapError(
        'INVALID_LOADER_OPTIONS',
        `mincore vector has ${vec.length} entries, the memory file has ${this.pages} pages`,
      );
    }
    const g = this.count++;
    let added = 0;
    for (let p = 0; p < vec.length; p++) {
      if ((vec[p]! & 1) !== 0 && this.groups[p] === NO_GROUP) {
        this.groups[p] = g;
        added++;
      }
    }
    this.resident += added;
    return added;
  }

  /** Pages per group, index = group. */
  groupSizes(): number[] {
    const sizes = new Array<number>(this.count).fill(0);
    for (const g of this.groups) if (g !== NO_GROUP) sizes[g]!++;
    return sizes;
  }
}

/** Groups from a complete list of mincore snapshots, taken in order. */
export function workingSetGroups(scans: readonly Uint8Array[], pages?: number): Int32Array {
  const n = pages ?? scans[0]?.length ?? 0;
  const rec = new GroupRecorder(n);
  for (const s of scans) rec.addScan(s);
  return rec.groups;
}

// --- when to scan -------------------------------------------------------------------------

/** The paper's policy: scan after the VMM's RSS has grown by `mincoreSize` pages. */
export function shouldScan(rssGrowthPages: number, mincoreSize = DEFAULT_MINCORE_SIZE): boolean {
  return rssGrowthPages >= mincoreSize;
}

/** The alternative: scan on a fixed interval. */
export function shouldScanInterval(elapsedMs: number, intervalMs: number): boolean {
  return elapsedMs >= intervalMs;
}

export type ScanPolicy =
  | { kind: 'rss-growth'; mincoreSize: number; pollMs: number }
  | { kind: 'interval'; intervalMs: number };

export const DEFAULT_SCAN_POLICY: ScanPolicy = {
  kind: 'rss-growth',
  mincoreSize: DEFAULT_MINCORE_SIZE,
  pollMs: DEFAULT_POLL_MS,
};

export interface Observation {
  /** The VMM's resident set in pages (e.g. from /proc/self/statm). */
  rssPages: number;
  nowMs: number;
}

/**
 * Decides, from successive observations, when the recorder takes a mincore scan. Usage: take a
 * scan at the start (group 0 = what the restore itself touched), then every `pollDelayMs` call
 * `due(obs)` and, when true, scan and call `scanned(obs)`; take a last scan when the invocation
 * ends so pages touched after the last threshold crossing still get a group.
 */
export class ScanScheduler {
  private last: Observation;

  constructor(
    readonly policy: ScanPolicy,
    start: Observation,
  ) {
    if (policy.kind === 'rss-growth') {
      checkInt('mincoreSize', policy.mincoreSize, 1);
      checkInt('pollMs', policy.pollMs, 1);
    } else {
      checkInt('intervalMs', policy.intervalMs, 1);
    }
    this.last = { ...start };
  }

  /** How long to wait before the next observation. */
  get pollDelayMs(): number {
    return this.policy.kind === 'rss-growth' ? this.policy.pollMs : this.policy.intervalMs;
  }

  due(obs: Observation): boolean {
    // RSS can shrink (reclaim, madvise); growth counts from the lowest point since
    // the last scan, so pages freed and faulted again still add up to a scan.
    if (obs.rssPages < this.last.rssPages) this.last.rssPages = obs.rssPages;
    return this.policy.kind === 'rss-growth'
      ? shouldScan(obs.rssPages - this.last.rssPages, this.policy.mincoreSize)
      : shouldScanInterval(obs.nowMs - this.last.nowMs, this.policy.intervalMs);
  }

  /** Records that a scan was taken at `obs`; growth and time are measured from here on. */
  scanned(obs: Observation): void {
    this.last = { ...obs };
  }
}
