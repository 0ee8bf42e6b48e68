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
  const offsets = regionFileOffsets(ram);
  const plan = mappingPlan(ram.size, manifest.nonZero.regions, manifest.regions, variant, {
    boundaries: offsets.slice(1),
  });
  const M = native.memConstants;
  const memFd = openSync(files.memoryFile, 'r');
  const lsFd = files.loadingSet.fh.fd;
  try {
    // Op 0 is the anonymous base, which fresh GuestRam already is.
    for (const op of plan.slice(1)) {
      const i = offsets.findLastIndex((o) => o <= op.guestOffset);
      const region = ram.regions[i];
      if (!region || op.guestOffset + op.length > offsets[i]! + region.size) {
        throw new FaasnapError(
          'INVALID_LOADER_OPTIONS',
          `map op at ${op.guestOffset} is outside guest RAM`,
        );
      }
      const host = region.hostAddr + BigInt(op.guestOffset - offsets[i]!);
      const fd = op.kind === 'loadset' ? lsFd : op.kind === 'memfile' ? memFd : -1;
      const flags = M.MAP_PRIVATE! | M.MAP_FIXED! | (op.kind === 'anon' ? M.MAP_ANONYMOUS! : 0);
      native.mmap(op.length, M.PROT_READ! | M.PROT_WRITE!, flags, fd, op.fileOffset, host);
    }
  } finally {
    closeSync(memFd); // mappings keep their files referenced
  }
  return plan;
}

export interface PrefetchStats {
  bytes: number;
  reads: number;
  ms: number;
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

  constructor(reads: readonly PrefetchRead[], files: FaasnapFiles) {
    this.done = this.run(reads, files);
  }

  static forVariant(
    manifest: LoadingSetManifest,
    files: FaasnapFiles,
    variant: FaasnapVariant,
  ): Prefetcher {
    return new Prefetcher(prefetchPlan(manifest.regions, variant), files);
  }

  cancel(): void {
    this.cancelled = true;
  }

  private async run(reads: readonly PrefetchRead[], files: FaasnapFiles): Promise<PrefetchStats> {
    const t0 = performance.now();
    const stats: PrefetchStats = { bytes: 0, reads: 0, ms: 0, cancelled: false };
    if (reads.length === 0) return stats;
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
}
