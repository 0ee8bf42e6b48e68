// Restore plans for faasnap mode (docs/architecture.md, "Mapping and concurrent paging"), as data: which mmaps build guest
// memory and which reads warm the page cache. The caller executes them (MAP_FIXED |
// MAP_PRIVATE on top of the RAM's anonymous mapping, reads on a loader that never blocks the
// vCPUs); keeping them pure lets every variant be checked without KVM.
//
// Variants (the ablations of §4.7 that change mapping or prefetching):
//   faasnap          anonymous base, memory file per non-zero region, loading-set file on top;
//                    the loader reads the loading-set file front to back (skipping its holes)
//   no-paging        same mappings, no concurrent reads (faults page in on demand)
//   no-regions       the whole memory file mapped instead of per-region; loading set on top
//   no-compact-file  no loading-set file: its regions are mapped from the memory file and the
//                    loader reads the memory file at their offsets, in group order

import { FaasnapError } from '../common/errors.js';
import {
  checkLoadingSetLayout,
  loadingSetFileRanges,
  type LoadingSetRegion,
} from './loading-set.js';
import { PAGE_SIZE, checkInt, checkMemorySize, checkRegions, type MemRegion } from './units.js';

export const FAASNAP_VARIANTS = ['faasnap', 'no-paging', 'no-regions', 'no-compact-file'] as const;
export type FaasnapVariant = (typeof FAASNAP_VARIANTS)[number];

export interface MapOp {
  /** anon: private anonymous memory; memfile / loadset: MAP_PRIVATE of that file. */
  kind: 'anon' | 'memfile' | 'loadset';
  /** Offset in the guest memory image (the memory file's layout), page-aligned. */
  guestOffset: number;
  length: number;
  /** Offset in the mapped file (0 for anon). */
  fileOffset: number;
}

export interface MappingPlanOptions {
  /**
   * Offsets in the memory image where the host mapping changes (e.g. the 3 GiB end of the low
   * RAM region): no op crosses one, so each op maps into exactly one host region.
   */
  boundaries?: readonly number[];
}

/**
 * The ordered mmaps that rebuild guest memory. Later ops replace earlier ones where they
 * overlap, so the order is the semantics: anonymous base, then memory-file regions, then the
 * loading set. Op 0 is always the anonymous base; a caller whose RAM is freshly anonymous (as
 * GuestRam is) may skip it.
 */
export function mappingPlan(
  memorySize: number,
  nonZero: readonly MemRegion[],
  loadingSet: readonly LoadingSetRegion[],
  variant: FaasnapVariant = 'faasnap',
  opts: MappingPlanOptions = {},
): MapOp[] {
  checkMemorySize(memorySize);
  checkRegions('non-zero region', nonZero, memorySize);
  checkLoadingSetLayout(loadingSet, memorySize);
  const byMemory = [...loadingSet].sort((a, b) => a.memOffset - b.memOffset);
  const ops: MapOp[] = [{ kind: 'anon', guestOffset: 0, length: memorySize, fileOffset: 0 }];
  const memfile = (offset: number, length: number): MapOp => ({
    kind: 'memfile',
    guestOffset: offset,
    length,
    fileOffset: offset,
  });
  switch (variant) {
    case 'faasnap':
    case 'no-paging':
    case 'no-regions':
      if (variant === 'no-regions') ops.push(memfile(0, memorySize));
      else for (const r of nonZero) ops.push(memfile(r.offset, r.length));
      for (const r of byMemory) {
        ops.push({
          kind: 'loadset',
          guestOffset: r.memOffset,
          length: r.length,
          fileOffset: r.fileOffset,
        });
      }
      break;
    case 'no-compact-file':
      // In the memory file a region's guest offset is its file offset, so the non-zero regions
      // and the loading-set regions coalesce into one set of memory-file mappings.
      for (const r of union([
        ...nonZero,
        ...byMemory.map((l) => ({ offset: l.memOffset, length: l.length })),
      ])) {
        ops.push(memfile(r.offset, r.length));
      }
      break;
    default:
      throw new FaasnapError(
        'INVALID_LOADER_OPTIONS',
        `unknown faasnap variant ${String(variant)}`,
      );
  }
  return splitAt(ops, opts.boundaries ?? [], memorySize);
}

/** Sorted union of possibly overlapping or touching ranges. */
function union(ranges: MemRegion[]): MemRegion[] {
  const sorted = ranges.sort((a, b) => a.offset - b.offset);
  const out: MemRegion[] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last && r.offset <= last.offset + last.length) {
      last.length = Math.max(last.length, r.offset + r.length - last.offset);
    } else {
      out.push({ ...r });
    }
  }
  return out;
}

function splitAt(ops: MapOp[], boundaries: readonly number[], memorySize: number): MapOp[] {
  for (const b of boundaries) {
    checkInt('boundary', b, 0, memorySize);
    if (b % PAGE_SIZE !== 0) {
      throw new FaasnapError('INVALID_LOADER_OPTIONS', `boundary ${b} is not page-aligned`);
    }
  }
  const cuts = [...new Set(boundaries)].sort((a, b) => a - b);
  const out: MapOp[] = [];
  for (const op of ops) {
    let start = op.guestOffset;
    const end = op.guestOffset + op.length;
    for (const c of cuts) {
      if (c <= start || c >= end) continue;
      out.push(piece(op, start, c));
      start = c;
    }
    out.push(piece(op, start, end));
  }
  return out;
}

function piece(op: MapOp, start: number, end: number): MapOp {
  const delta = start - op.guestOffset;
  return {
    kind: op.kind,
    guestOffset: start,
    length: end - start,
    fileOffset: op.kind === 'anon' ? 0 : op.fileOffset + delta,
  };
}

export interface PrefetchRead {
  source: 'loadset' | 'memfile';
  fileOffset: number;
  length: number;
}

/** Default read size of the concurrent loader: large enough for full-speed sequential reads. */
export const DEFAULT_PREFETCH_CHUNK = 2 << 20;

/**
 * The reads of the concurrent loader, in the order to issue them (file order = group order).
 * Reading pulls the pages into the page cache, so the guest's faults on the MAP_PRIVATE
 * mappings become minor faults.
 */
export function prefetchPlan(
  loadingSet: readonly LoadingSetRegion[],
  variant: FaasnapVariant = 'faasnap',
  opts: { chunkSize?: number } = {},
): PrefetchRead[] {
  const chunk = checkInt('chunkSize', opts.chunkSize ?? DEFAULT_PREFETCH_CHUNK, PAGE_SIZE);
  if (chunk % PAGE_SIZE !== 0) {
    throw new FaasnapError('INVALID_LOADER_OPTIONS', `chunkSize ${chunk} is not whole pages`);
  }
  const reads: PrefetchRead[] = [];
  const chop = (source: PrefetchRead['source'], offset: number, length: number): void => {
    for (let done = 0; done < length; done += chunk) {
      reads.push({ source, fileOffset: offset + done, length: Math.min(chunk, length - done) });
    }
  };
  switch (variant) {
    case 'no-paging':
      break;
    case 'faasnap':
    case 'no-regions':
      // One sequential pass over the file; the holes before 2 MiB-aligned regions are skipped.
      for (const r of loadingSetFileRanges(loadingSet)) chop('loadset', r.fileOffset, r.length);
      break;
    case 'no-compact-file':
      for (const r of loadingSet) chop('memfile', r.memOffset, r.length);
      break;
    default:
      throw new FaasnapError(
        'INVALID_LOADER_OPTIONS',
        `unknown faasnap variant ${String(variant)}`,
      );
  }
  return reads;
}

/**
 * Where one prefetch read lands in guest memory: the parts of the mappings of `read.source`
 * that map the bytes just read, as guest ranges. The loader populates the page tables there
 * once the read is done (MADV_POPULATE_READ), so the guest's first touches of those pages take
 * no host fault at all instead of a minor one. `ops` must be one mapping plan: the ops of one
 * kind map disjoint file ranges (loading-set regions; memory-file regions, coalesced).
 */
export class PrefetchTargets {
  private readonly ops: Record<PrefetchRead['source'], MapOp[]>;

  constructor(plan: readonly MapOp[]) {
    const byFile = (kind: MapOp['kind']): MapOp[] =>
      plan.filter((o) => o.kind === kind).sort((a, b) => a.fileOffset - b.fileOffset);
    this.ops = { loadset: byFile('loadset'), memfile: byFile('memfile') };
  }

  of(read: PrefetchRead): { guestOffset: number; length: number }[] {
    const ops = this.ops[read.source];
    const start = read.fileOffset;
    const end = start + read.length;
    // First op that ends after the read starts.
    let lo = 0;
    for (let hi = ops.length; lo < hi;) {
      const mid = (lo + hi) >> 1;
      if (ops[mid]!.fileOffset + ops[mid]!.length <= start) lo = mid + 1;
      else hi = mid;
    }
    const out: { guestOffset: number; length: number }[] = [];
    for (let i = lo; i < ops.length && ops[i]!.fileOffset < end; i++) {
      const op = ops[i]!;
      const from = Math.max(start, op.fileOffset);
      const to = Math.min(end, op.fileOffset + op.length);
      out.push({ guestOffset: op.guestOffset + (from - op.fileOffset), length: to - from });
    }
    return out;
  }
}
