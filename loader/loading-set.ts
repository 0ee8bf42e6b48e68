// The loading set (docs/architecture.md, "Loading set"): the pages the recorded invocation touched (they have a
// group) that hold data (non-zero). Runs of them form regions; a gap shorter than
// `intervalThreshold` pages between two runs is absorbed into one region; a region takes the
// earliest group of its pages; regions are sorted by (group, offset) and laid out in that order
// in the loading-set file, so reading that file front to back fetches the working set in the
// order the guest first needed it. A region that holds a whole 2 MiB-aligned block of guest
// memory starts at a file offset congruent to its guest offset modulo 2 MiB (format version 2):
// its blocks are then 2 MiB-aligned in the file too, so the page cache can hold each as one large
// folio and the host can map it whole. The bytes skipped for that are a hole: no disk blocks,
// never read.
//
// Absorbed gap pages need NOT be non-zero, nor in a group. §4.4 absorbs "gaps", i.e. whatever
// lies between two runs, exactly as §4.2 merges zero gaps into non-zero regions. That is safe
// because the loading-set file holds the memory file's own bytes for every page of a region, so
// the guest sees identical contents whichever mapping serves a page; and it is worthwhile because
// a few extra pages in one sequential read are cheaper than another mmap (a VMA) and another
// seek. Only pages that are members (group AND non-zero) decide a region's group.

import { FaasnapError } from '../common/errors.js';
import { HUGE_PAGE_SIZE } from '../common/page.js';
import { NO_GROUP } from './groups.js';
import { DEFAULT_INTERVAL_THRESHOLD, PAGE_SIZE, checkInt, checkRegions } from './units.js';

export interface LoadingSetRegion {
  /** Offset in guest memory = in the memory file (bytes, page-aligned). */
  memOffset: number;
  length: number;
  /** Earliest working-set group among the region's member pages. */
  group: number;
  /** Offset in the loading-set file: after the regions before it (layoutLoadingSet). */
  fileOffset: number;
}

export interface LayoutOptions {
  /**
   * Start regions that hold a whole 2 MiB-aligned block at file offsets congruent to their
   * guest offsets modulo 2 MiB (default). false packs every region back to back, as format
   * version 1 did (kept to measure the difference).
   */
  alignHuge?: boolean;
}

/**
 * Computes the loading set from per-page groups (GroupRecorder.groups) and per-page non-zero
 * flags (nonZeroPages(scan)). The result is sorted by (group, memOffset) with file offsets.
 */
export function computeLoadingSet(
  groups: Int32Array,
  nonZero: Uint8Array,
  opts: { intervalThreshold?: number } & LayoutOptions = {},
): LoadingSetRegion[] {
  const interval = checkInt(
    'intervalThreshold',
    opts.intervalThreshold ?? DEFAULT_INTERVAL_THRESHOLD,
  );
  if (groups.length !== nonZero.length) {
    throw new FaasnapError(
      'INVALID_LOADER_OPTIONS',
      `groups cover ${groups.length} pages, the non-zero map ${nonZero.length}`,
    );
  }
  const runs: Omit<LoadingSetRegion, 'fileOffset'>[] = [];
  let start = -1; // first page of the open region
  let end = -1; // one past its last member page
  let group = NO_GROUP;
  const close = (): void => {
    if (start >= 0)
      runs.push({ memOffset: start * PAGE_SIZE, length: (end - start) * PAGE_SIZE, group });
  };
  for (let p = 0; p < groups.length; p++) {
    const g = groups[p]!;
    if (g === NO_GROUP || nonZero[p] === 0) continue;
    // Adjacent members (gap 0) always join, whatever the threshold.
    if (start >= 0 && (p === end || p - end < interval)) {
      end = p + 1;
      if (g < group) group = g;
      continue;
    }
    close();
    start = p;
    end = p + 1;
    group = g;
  }
  close();
  return layoutLoadingSet(runs, opts);
}

/** Whether [memOffset, memOffset + length) holds a whole 2 MiB-aligned block. */
export function holdsHugeBlock(memOffset: number, length: number): boolean {
  const firstBlock = Math.ceil(memOffset / HUGE_PAGE_SIZE) * HUGE_PAGE_SIZE;
  return firstBlock + HUGE_PAGE_SIZE <= memOffset + length;
}

/** Sorts regions by (group, memOffset) and assigns their loading-set file offsets. */
export function layoutLoadingSet(
  regions: readonly Omit<LoadingSetRegion, 'fileOffset'>[],
  opts: LayoutOptions = {},
): LoadingSetRegion[] {
  const alignHuge = opts.alignHuge ?? true;
  const sorted = [...regions].sort((a, b) => a.group - b.group || a.memOffset - b.memOffset);
  let end = 0;
  return sorted.map((r) => {
    const skip =
      alignHuge && holdsHugeBlock(r.memOffset, r.length) ? hugeSkip(end, r.memOffset) : 0;
    const out = {
      memOffset: r.memOffset,
      length: r.length,
      group: r.group,
      fileOffset: end + skip,
    };
    end = out.fileOffset + r.length;
    return out;
  });
}

/** Bytes to skip from file offset `at` to the next offset congruent to `memOffset` mod 2 MiB. */
function hugeSkip(at: number, memOffset: number): number {
  return (((memOffset - at) % HUGE_PAGE_SIZE) + HUGE_PAGE_SIZE) % HUGE_PAGE_SIZE;
}

/** Bytes of guest memory in the loading set (the data the loader reads). */
export function loadingSetSize(regions: readonly LoadingSetRegion[]): number {
  return regions.reduce((n, r) => n + r.length, 0);
}

/** Size of the loading-set file: the end of its last region (holes included). */
export function loadingSetFileSize(regions: readonly LoadingSetRegion[]): number {
  const last = regions[regions.length - 1];
  return last ? last.fileOffset + last.length : 0;
}

/** The file ranges the regions occupy, adjacent regions merged: what a loader reads. */
export function loadingSetFileRanges(
  regions: readonly LoadingSetRegion[],
): { fileOffset: number; length: number }[] {
  const out: { fileOffset: number; length: number }[] = [];
  for (const r of regions) {
    const last = out[out.length - 1];
    if (last && last.fileOffset + last.length === r.fileOffset) last.length += r.length;
    else out.push({ fileOffset: r.fileOffset, length: r.length });
  }
  return out;
}

/**
 * Checks a loading set that came from outside (a manifest on disk): page-aligned regions inside
 * the memory, disjoint in memory, in (group, memOffset) order, at page-aligned file offsets that
 * follow the file order without overlap (packed, or with holes before 2 MiB-aligned regions).
 */
export function checkLoadingSetLayout(
  regions: readonly LoadingSetRegion[],
  memorySize: number,
  code: 'INVALID_LOADER_OPTIONS' | 'LOADING_SET_INVALID' = 'LOADING_SET_INVALID',
): void {
  const byMemory = [...regions]
    .map((r) => ({ offset: r.memOffset, length: r.length }))
    .sort((a, b) => a.offset - b.offset);
  checkRegions('loading-set region', byMemory, memorySize, code);
  let fileEnd = 0;
  regions.forEach((r, i) => {
    const prev = regions[i - 1];
    const bad = (why: string): never => {
      throw new FaasnapError(code, `loading-set region ${i} (memOffset ${r.memOffset}) ${why}`);
    };
    if (!Number.isSafeInteger(r.group) || r.group < 0) bad(`has group ${r.group}`);
    if (
      prev &&
      (prev.group > r.group || (prev.group === r.group && prev.memOffset > r.memOffset))
    ) {
      bad('is out of (group, offset) order');
    }
    if (!Number.isSafeInteger(r.fileOffset) || r.fileOffset % PAGE_SIZE !== 0)
      bad(`has file offset ${r.fileOffset}, not whole pages`);
    if (r.fileOffset < fileEnd)
      bad(`has file offset ${r.fileOffset}, inside the region before it (ends at ${fileEnd})`);
    fileEnd = r.fileOffset + r.length;
  });
}
