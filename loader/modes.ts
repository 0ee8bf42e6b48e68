// Memory modes of a restore: how a snapshot's guest memory comes back (docs/architecture.md, "Memory modes"). The
// baselines live here; the FaaSnap and REAP loaders build on the same guest-RAM primitives.

import { closeSync, openSync, readSync } from 'node:fs';
import { FaasnapError } from '../common/errors.js';
import { ioError } from '../common/files.js';
import { native } from '../native/index.js';
import type { GuestRam } from '../vmm/guest-ram.js';

export const MEMORY_MODES = [
  'eager',
  'vanilla',
  'cached',
  'reap',
  'faasnap',
  'faasnap-no-concurrent-paging',
  'faasnap-no-regions',
  'faasnap-no-compact-file',
] as const;
export type MemoryMode = (typeof MEMORY_MODES)[number];

export function isMemoryMode(v: unknown): v is MemoryMode {
  return typeof v === 'string' && (MEMORY_MODES as readonly string[]).includes(v);
}

/** Where each RAM region lives in the memory file (regions are concatenated in order). */
export function regionFileOffsets(ram: GuestRam): number[] {
  let off = 0;
  return ram.regions.map((r) => {
    const at = off;
    off += r.size;
    return at;
  });
}

/**
 * Lazy mode (vanilla and cached): every region becomes a private file mapping of the memory
 * file. Guest pages fault in on first touch, from disk or from the page cache.
 */
export function mapMemoryFileLazily(ram: GuestRam, memoryFile: string): void {
  const M = native.memConstants;
  const fd = openSync(memoryFile, 'r');
  try {
    const offsets = regionFileOffsets(ram);
    ram.regions.forEach((r, i) => {
      // MAP_FIXED over the region's own address: KVM's memslot keeps pointing at it.
      native.mmap(
        r.size,
        M.PROT_READ! | M.PROT_WRITE!,
        M.MAP_PRIVATE! | M.MAP_FIXED!,
        fd,
        offsets[i]!,
        r.hostAddr,
      );
    });
  } finally {
    closeSync(fd); // the mappings keep the file referenced
  }
}

/** Eager mode: the whole memory file is read into anonymous guest RAM before resume. */
export function readMemoryFileEagerly(ram: GuestRam, memoryFile: string): number {
  const fd = openSync(memoryFile, 'r');
  let total = 0;
  try {
    const offsets = regionFileOffsets(ram);
    ram.regions.forEach((r, i) => {
      const view = new Uint8Array(r.view);
      for (let done = 0; done < r.size;) {
        const at = offsets[i]! + done;
        let n: number;
        try {
          n = readSync(fd, view, done, Math.min(64 << 20, r.size - done), at);
        } catch (e) {
          const err = ioError('read', memoryFile, e);
          err.details.offset = at;
          throw err;
        }
        if (n === 0)
          throw new FaasnapError('SNAPSHOT_MEMORY_MISMATCH', `${memoryFile} ended at ${at}`);
        done += n;
        total += n;
      }
    });
  } finally {
    closeSync(fd);
  }
  return total;
}
