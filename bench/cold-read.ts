// The disk half of the physical limit (issue #15, item 3): the time to read a file (the loading
// set) alone, from a dropped page cache, with the loader's own reader and read size.

import { open, stat } from 'node:fs/promises';
import { Prefetcher } from '../loader/faasnap.js';
import { DEFAULT_PREFETCH_CHUNK } from '../loader/plan.js';
import { dropPageCache } from '../vmm/snapshot/memory-dump.js';

export interface ColdRead {
  ms: number;
  bytes: number;
}

/** Drops `path` from the page cache, then reads it front to back as the FaaSnap prefetcher does. */
export async function timeColdRead(path: string): Promise<ColdRead> {
  const { size } = await stat(path);
  dropPageCache(path);
  const reads = [];
  for (let at = 0; at < size; at += DEFAULT_PREFETCH_CHUNK) {
    reads.push({
      source: 'loadset' as const,
      fileOffset: at,
      length: Math.min(DEFAULT_PREFETCH_CHUNK, size - at),
    });
  }
  const fh = await open(path, 'r');
  try {
    const s = await new Prefetcher(reads, { loadingSet: { fh, path }, memoryFile: path }).done;
    if (s.error) throw s.error;
    return { ms: s.ms, bytes: s.bytes };
  } finally {
    await fh.close();
  }
}
