// Units and the region type shared by the FaaSnap loader. Kept free of the native addon so the
// pure parts (scans, plans, file formats) load and test without KVM.

import { FaasnapError } from '../common/errors.js';
import { PAGE_SIZE } from '../common/page.js';

export { PAGE_SIZE };
/** docs/architecture.md, "Non-zero regions", "Loading set": zero gaps shorter than this many pages are merged (absorbed). */
export const DEFAULT_INTERVAL_THRESHOLD = 32;
/** docs/architecture.md, "Non-zero regions": non-zero regions shorter than this many pages are dropped (0 = keep all). */
export const DEFAULT_SIZE_THRESHOLD = 0;

/** A byte range of the memory image (offset = guest memory offset = memory file offset). */
export interface MemRegion {
  offset: number;
  length: number;
}

/** Throws INVALID_LOADER_OPTIONS unless `v` is an integer in [min, max]. */
export function checkInt(name: string, v: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  if (!Number.isSafeInteger(v) || v < min || v > max) {
    throw new FaasnapError(
      'INVALID_LOADER_OPTIONS',
      `${name} must be an integer in [${min}, ${max}], got ${v}`,
    );
  }
  return v;
}

/** Memory sizes are whole pages (ramLayout enforces the same for guest RAM). */
export function checkMemorySize(size: number): number {
  if (!Number.isSafeInteger(size) || size <= 0 || size % PAGE_SIZE !== 0) {
    throw new FaasnapError(
      'INVALID_LOADER_OPTIONS',
      `memory size ${size} is not a positive multiple of 4 KiB`,
    );
  }
  return size;
}

/**
 * Checks that `regions` are page-aligned, non-empty, inside [0, size), sorted by offset and
 * disjoint. `code` is the error to throw (the caller knows whether the input was trusted).
 */
export function checkRegions(
  what: string,
  regions: readonly MemRegion[],
  size: number,
  code: 'INVALID_LOADER_OPTIONS' | 'LOADING_SET_INVALID' = 'INVALID_LOADER_OPTIONS',
): void {
  let prevEnd = 0;
  regions.forEach((r, i) => {
    const bad = (why: string): never => {
      throw new FaasnapError(code, `${what}[${i}] (offset ${r.offset}, length ${r.length}) ${why}`);
    };
    if (!Number.isSafeInteger(r.offset) || !Number.isSafeInteger(r.length)) bad('is not integral');
    if (r.offset % PAGE_SIZE !== 0 || r.length % PAGE_SIZE !== 0) bad('is not page-aligned');
    if (r.length <= 0) bad('is empty');
    if (r.offset < prevEnd) bad('overlaps or is out of order');
    if (r.offset + r.length > size) bad(`ends past the memory size ${size}`);
    prevEnd = r.offset + r.length;
  });
}
