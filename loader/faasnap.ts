// The FaaSnap loader at restore time (docs/architecture.md, "Mapping and concurrent paging"): per-region mappings of the memory file
// and the compact loading-set file over anonymous guest RAM, then concurrent paging that reads
// the loading-set file in file (= group) order so the guest's faults become minor faults. The
// reads run on libuv's thread pool and never block the vCPU threads or the JS thread.

import { closeSync, openSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { FaasnapError } from '../common/errors.js';
import { ioError } from '../common/files.js';
import { native } from '../native/index.js';
import type { GuestRam } from '../vmm/guest-ram.js';
import type { LoadingSetManifest } from './loading-set-file.js';
import { regionFileOffsets } from './modes.js';
import {
  PrefetchTargets,
  mappingPlan,
  prefetchPlan,
  type FaasnapVariant,
  type MapOp,
  type PrefetchRead,
} from './plan.js';

export interface FaasnapFiles {
  memoryFile: string;
  /**
   * The loading-set file, opened and checked against its manifest once (openLoadingSet). Only
   * this handle is used: the path may name a re-recorded file by now. The caller closes it.
   */
  loadingSet: { fh: FileHandle; path: string };
}

/** Applies the mapping plan of `variant` to fresh (anonymous) guest RAM. Returns the ops applied. */
export function mapFaasnapMemory(
  ram: GuestRam,
  manifest: LoadingSetManifest,
  files: FaasnapFiles,
  variant: FaasnapVariant,
): MapOp[] {
  const plan = mappingPlan(ram.size, manifest.nonZero.regions, manifest.regions, variant, {
    boundaries: regionFileOffsets(ram).slice(1),
  });
  const host = hostAddresses(ram);
  const M = native.memConstants;
  const memFd = openSync(files.memoryFile, 'r');
  const lsFd = files.loadingSet.fh.fd;
  try {
    // Op 0 is the anonymous base, which fresh GuestRam already is.
    for (const op of plan.slice(1)) {
      const addr = host(op.guestOffset, op.length);
      const fd = op.kind === 'loadset' ? lsFd : op.kind === 'memfile' ? memFd : -1;
      const flags = M.MAP_PRIVATE! | M.MAP_FIXED! | (op.kind === 'anon' ? M.MAP_ANONYMOUS! : 0);
      native.mmap(op.length, M.PROT_READ! | M.PROT_WRITE!, flags, fd, op.fileOffset, addr);
    }
  } finally {
    closeSync(memFd); // mappings keep their files referenced
  }
  return plan;
}

/** Host address of guest range [offset, offset + length), which must lie in one RAM region. */
function hostAddresses(ram: GuestRam): (guestOffset: number, length: number) => bigint {
  const offsets = regionFileOffsets(ram);
  return (guestOffset, length) => {
    const i = offsets.findLastIndex((o) => o <= guestOffset);
    const region = ram.regions[i];
    if (!region || guestOffset + length > offsets[i]! + region.size) {
      throw new FaasnapError(
        'INVALID_LOADER_OPTIONS',
        `map op at ${guestOffset} is outside guest RAM`,
      );
    }
    return region.hostAddr + BigInt(guestOffset - offsets[i]!);
  };
}

export interface PrefetchOptions {
  /**
   * Populate the page tables of guest RAM where each read's bytes are mapped, right after the
   * read (MADV_POPULATE_READ of pages now in the page cache: no I/O, runs on the JS thread), so
   * the guest's first touches of prefetched pages take no host fault. `plan` is what
   * mapFaasnapMemory applied to `ram`. The restore turns it on; without it (the behaviour before
   * issue #15) the guest's first touch of each prefetched page is a minor fault.
   */
  populate?: { ram: GuestRam; plan: readonly MapOp[] };
}

export interface PrefetchStats {
  bytes: number;
  reads: number;
  ms: number;
  /** Bytes of guest RAM whose page tables were populated after the reads. */
  populated: number;
  /** Time spent populating (on the JS thread). */
  populateMs: number;
  /** Why populating stopped early (e.g. EINVAL before Linux 5.14); prefetching went on. */
  populateError?: string;
  cancelled: boolean;
  /** The read that failed (SNAPSHOT_IO with path, offset and errno); prefetching stopped there. */
  error?: FaasnapError;
}

/**
 * Concurrent paging: a sequential reader that can be cancelled (the VM stopped early). `done`
 * never rejects: an I/O error ends prefetching and is reported in its stats.
 */
export class Prefetcher {
  private cancelled = false;
  readonly done: Promise<PrefetchStats>;

  constructor(
    reads: readonly PrefetchRead[],
    files: FaasnapFiles,
    private readonly opts: PrefetchOptions = {},
  ) {
    this.done = this.run(reads, files);
  }

  static forVariant(
    manifest: LoadingSetManifest,
    files: FaasnapFiles,
    variant: FaasnapVariant,
    opts: PrefetchOptions = {},
  ): Prefetcher {
    return new Prefetcher(prefetchPlan(manifest.regions, variant), files, opts);
  }

  cancel(): void {
    this.cancelled = true;
  }

  private async run(reads: readonly PrefetchRead[], files: FaasnapFiles): Promise<PrefetchStats> {
    const t0 = performance.now();
    const stats: PrefetchStats = {
      bytes: 0,
      reads: 0,
      ms: 0,
      populated: 0,
      populateMs: 0,
      cancelled: false,
    };
    if (reads.length === 0) return stats;
    let populate = this.populator(stats);
    const paths = { loadset: files.loadingSet.path, memfile: files.memoryFile };
    const handles: Partial<Record<PrefetchRead['source'], FileHandle>> = {
      loadset: files.loadingSet.fh,
    };
    let at: { op: string; path: string; offset?: number } = { op: 'open', path: '' };
    try {
      if (reads.some((r) => r.source === 'memfile')) {
        at = { op: 'open', path: files.memoryFile };
        handles.memfile = await open(files.memoryFile, 'r');
      }
      // One buffer: the bytes only matter for their side effect of filling the page cache.
      const buf = Buffer.allocUnsafe(Math.max(...reads.map((r) => r.length)));
      for (const r of reads) {
        if (this.cancelled) {
          stats.cancelled = true;
          break;
        }
        // A short read (network file systems, FUSE) is continued: every planned byte counts.
        for (let done = 0, n = 1; done < r.length && n > 0; done += n) {
          at = { op: 'read', path: paths[r.source], offset: r.fileOffset + done };
          ({ bytesRead: n } = await handles[r.source]!.read(
            buf,
            0,
            r.length - done,
            r.fileOffset + done,
          ));
          stats.bytes += n;
        }
        stats.reads++;
        if (populate && !populate(r)) populate = undefined;
      }
    } catch (e) {
      stats.error = ioError(at.op, at.path, e);
      if (at.offset !== undefined) stats.error.details.offset = at.offset;
    } finally {
      await handles.memfile?.close().catch(() => undefined);
    }
    stats.ms = performance.now() - t0;
    return stats;
  }

  /** Returns a function that populates one read's guest ranges and says whether to go on. */
  private populator(stats: PrefetchStats): ((r: PrefetchRead) => boolean) | undefined {
    const p = this.opts.populate;
    const advice = native.memConstants.MADV_POPULATE_READ;
    if (!p) return undefined;
    if (advice === undefined) {
      stats.populateError = 'MADV_POPULATE_READ is not available';
      return undefined;
    }
    const targets = new PrefetchTargets(p.plan);
    const host = hostAddresses(p.ram);
    return (r) => {
      // Cancelled: the VM may be releasing its RAM; never touch it.
      if (this.cancelled) return false;
      const t = performance.now();
      try {
        for (const x of targets.of(r)) {
          native.madvise(host(x.guestOffset, x.length), x.length, advice);
          stats.populated += x.length;
        }
        return true;
      } catch (e) {
        // Only an optimisation: a page it could not map faults in as it would have anyway (and
        // a real read error then surfaces there, or at the next read).
        stats.populateError = e instanceof Error ? e.message : String(e);
        return false;
      } finally {
        stats.populateMs += performance.now() - t;
      }
    };
  }
}
