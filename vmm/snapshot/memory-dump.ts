// Writing the snapshot memory file (raw guest RAM, regions concatenated in guest-physical
// order) and page-cache control for the vanilla (dropped) and cached (loaded) restore modes.

import { closeSync, openSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { native } from '../../native/index.js';
import type { GuestRam } from '../guest-ram.js';
import { ioError, writeFileAtomic } from '../../common/files.js';

/** Writes every RAM region to `path` atomically (temp file, fsync, rename). */
export async function writeMemoryFile(ram: GuestRam, path: string): Promise<number> {
  await writeFileAtomic(path, async (fh) => {
    let offset = 0;
    for (const r of ram.regions) {
      const bytes = new Uint8Array(r.view);
      // 64 MiB slices: bounded syscalls, no copy of guest memory.
      for (let done = 0; done < bytes.length;) {
        const len = Math.min(64 << 20, bytes.length - done);
        const { bytesWritten } = await fh.write(bytes, done, len, offset);
        done += bytesWritten;
        offset += bytesWritten;
      }
    }
  });
  return ram.size;
}

/** Drops the file's pages from the page cache (it must be fsynced: dirty pages stay). */
export function dropPageCache(path: string): void {
  const fd = openSync(path, 'r');
  try {
    native.posixFadvise(fd, 0, 0, native.memConstants.POSIX_FADV_DONTNEED!);
  } finally {
    closeSync(fd);
  }
}

/**
 * Reads the file once so that it sits in the page cache, unless all of it already does. The
 * reads run on libuv's thread pool: loading a multi-GiB snapshot never stalls the caller's event
 * loop (the daemon's API and every other invocation's agent traffic run on it).
 */
export async function loadPageCache(path: string): Promise<{ bytesRead: number }> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    throw ioError('open', path, e);
  }
  let pos = 0;
  try {
    const { size } = await fh.stat();
    if (residentFractionOf(fh.fd, size) === 1) return { bytesRead: 0 };
    const buf = Buffer.allocUnsafe(8 << 20);
    for (let n = 1; n > 0; pos += n) ({ bytesRead: n } = await fh.read(buf, 0, buf.length, pos));
    return { bytesRead: pos };
  } catch (e) {
    const err = ioError('read', path, e);
    err.details.offset = pos;
    throw err;
  } finally {
    await fh.close();
  }
}

/** Fraction of the file's pages resident in the page cache (mincore over a mapping of it). */
export function residentFraction(path: string, size: number): number {
  const fd = openSync(path, 'r');
  try {
    return residentFractionOf(fd, size);
  } finally {
    closeSync(fd);
  }
}

function residentFractionOf(fd: number, size: number): number {
  if (size === 0) return 0;
  const M = native.memConstants;
  // Private: mincore tells page-cache residency just the same, and FUSE direct_io files (E4's
  // slow storage, fault-injection tests) refuse shared mappings.
  const addr = native.mmap(size, M.PROT_READ!, M.MAP_PRIVATE!, fd, 0);
  try {
    const pages = Math.ceil(size / 4096);
    const vec = Buffer.alloc(pages);
    native.mincore(addr, size, vec);
    let resident = 0;
    for (let i = 0; i < pages; i++) resident += vec[i]! & 1;
    return resident / pages;
  } finally {
    native.munmap(addr, size);
  }
}
