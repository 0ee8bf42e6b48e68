// REAP's files (docs/architecture.md, "REAP"), next to the snapshot: `reap-<id>.pages` holds
// the recorded pages' bytes (taken from the memory file, i.e. the snapshot's contents, not what
// the guest later wrote) in fault order, so it is a whole number of 4 KiB pages and can be read
// with O_DIRECT; the manifest `reap-manifest.json` lists their memory-file page indices and is
// replaced atomically last, so a reader sees the old working set or the complete new one.

import { randomBytes } from 'node:crypto';
import { closeSync, fstatSync } from 'node:fs';
import { mkdir, open, readFile, readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';

import { FaasnapError } from '../common/errors.js';
import { isNativeError, native } from '../native/index.js';
import { readFull, writeAll, writeFileAtomic } from '../common/files.js';
import { PAGE_SIZE } from './units.js';

export const REAP_PAGE_SIZE = PAGE_SIZE;
export const REAP_MANIFEST = 'reap-manifest.json';
export const REAP_FORMAT = 'faasnap-reap-working-set';
export const REAP_VERSION = 1;
const PAGES_FILE = /^reap-[0-9a-f]{12}\.pages$/;
const EINVAL = 22;
/** Pages read from the memory file per write while saving a working set (16 MiB). */
const SAVE_CHUNK_PAGES = 4096;

export interface ReapManifest {
  format: typeof REAP_FORMAT;
  version: typeof REAP_VERSION;
  pageSize: typeof REAP_PAGE_SIZE;
  /** Basename of the pages file in the manifest's directory. */
  pagesFile: string;
  /** Memory-file page indices in fault order, each once; page i of the pages file is pages[i]. */
  pages: number[];
  /** Size of the memory file the pages were taken from (a cheap staleness check). */
  memoryFileBytes: number;
  /** Optional identity of the snapshot (checked on replay when the caller passes one). */
  snapshotId?: string;
  createdAt: string;
}

/** What a replay checks the manifest against. */
export interface ReapExpectation {
  memoryFileBytes?: number;
  snapshotId?: string;
}

export function invalidReapFile(detail: string): FaasnapError {
  return new FaasnapError('LOADING_SET_INVALID', `REAP working set: ${detail}`);
}

export function encodeReapManifest(m: ReapManifest): string {
  return `${JSON.stringify(m)}\n`;
}

/** Parses and validates a manifest field by field (it is untrusted input from disk). */
export function parseReapManifest(text: string, expect: ReapExpectation = {}): ReapManifest {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw invalidReapFile('manifest is not JSON');
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw invalidReapFile('manifest is not an object');
  }
  const o = raw as Record<string, unknown>;
  if (o.format !== REAP_FORMAT) throw invalidReapFile(`unknown format ${String(o.format)}`);
  if (o.version !== REAP_VERSION) throw invalidReapFile(`unsupported version ${String(o.version)}`);
  if (o.pageSize !== REAP_PAGE_SIZE) throw invalidReapFile(`page size must be ${REAP_PAGE_SIZE}`);
  if (typeof o.pagesFile !== 'string' || !PAGES_FILE.test(o.pagesFile)) {
    throw invalidReapFile('pagesFile must be a reap-<12 hex>.pages basename');
  }
  const size = o.memoryFileBytes;
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size <= 0 || size % 4096 !== 0) {
    throw invalidReapFile('memoryFileBytes must be a positive multiple of 4096');
  }
  if (o.snapshotId !== undefined && typeof o.snapshotId !== 'string') {
    throw invalidReapFile('snapshotId must be a string');
  }
  if (typeof o.createdAt !== 'string') throw invalidReapFile('createdAt must be a string');
  if (!Array.isArray(o.pages)) throw invalidReapFile('pages must be an array');
  const limit = size / REAP_PAGE_SIZE;
  const seen = new Set<number>();
  for (const p of o.pages as unknown[]) {
    if (typeof p !== 'number' || !Number.isInteger(p) || p < 0 || p >= limit) {
      throw invalidReapFile(`page ${String(p)} is not inside the ${size}-byte memory file`);
    }
    if (seen.has(p)) throw invalidReapFile(`page ${p} is listed twice`);
    seen.add(p);
  }
  const m: ReapManifest = {
    format: REAP_FORMAT,
    version: REAP_VERSION,
    pageSize: REAP_PAGE_SIZE,
    pagesFile: o.pagesFile,
    pages: o.pages as number[],
    memoryFileBytes: size,
    createdAt: o.createdAt,
  };
  if (o.snapshotId !== undefined) m.snapshotId = o.snapshotId as string;
  if (expect.memoryFileBytes !== undefined && expect.memoryFileBytes !== m.memoryFileBytes) {
    throw new FaasnapError(
      'LOADING_SET_STALE',
      `REAP working set was recorded on a ${m.memoryFileBytes}-byte memory file, this one has ${expect.memoryFileBytes}`,
    );
  }
  if (expect.snapshotId !== undefined && expect.snapshotId !== m.snapshotId) {
    throw new FaasnapError(
      'LOADING_SET_STALE',
      `REAP working set belongs to snapshot ${String(m.snapshotId)}, not ${expect.snapshotId}`,
    );
  }
  return m;
}

/** The manifest in `dir`, or undefined if none was ever recorded there. */
export async function readReapManifest(
  dir: string,
  expect: ReapExpectation = {},
): Promise<ReapManifest | undefined> {
  let text: string;
  try {
    text = await readFile(join(dir, REAP_MANIFEST), 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw new FaasnapError('SNAPSHOT_IO', `read ${join(dir, REAP_MANIFEST)}: ${code ?? String(e)}`);
  }
  return parseReapManifest(text, expect);
}

export interface SaveWorkingSetOptions {
  /** The snapshot memory file the pages were recorded against. */
  memoryFile: string;
  /** Memory-file page indices in fault order (UffdServer.recorded()). */
  pages: ArrayLike<number>;
  snapshotId?: string;
}

/**
 * Writes the working set into `dir`: the pages file (bytes copied from the memory file, in
 * `pages` order), then the manifest, each atomically; older pages files are removed after.
 */
export async function writeReapWorkingSet(
  dir: string,
  opts: SaveWorkingSetOptions,
): Promise<ReapManifest> {
  const pages = Array.from(opts.pages);
  const mem = await open(opts.memoryFile, 'r').catch((e: NodeJS.ErrnoException) => {
    throw new FaasnapError('SNAPSHOT_MISSING', `memory file ${opts.memoryFile}: ${e.code}`);
  });
  let manifest: ReapManifest;
  try {
    const memoryFileBytes = (await mem.stat()).size;
    manifest = {
      format: REAP_FORMAT,
      version: REAP_VERSION,
      pageSize: REAP_PAGE_SIZE,
      pagesFile: `reap-${randomBytes(6).toString('hex')}.pages`,
      pages,
      memoryFileBytes,
      createdAt: new Date().toISOString(),
    };
    if (opts.snapshotId !== undefined) manifest.snapshotId = opts.snapshotId;
    // Validates the page list against the memory file before anything is written.
    parseReapManifest(encodeReapManifest(manifest));
    await mkdir(dir, { recursive: true });
    await writeFileAtomic(join(dir, manifest.pagesFile), async (out) => {
      const buf = Buffer.alloc(Math.min(pages.length, SAVE_CHUNK_PAGES) * REAP_PAGE_SIZE);
      for (let start = 0; start < pages.length; start += SAVE_CHUNK_PAGES) {
        const end = Math.min(pages.length, start + SAVE_CHUNK_PAGES);
        // One read per run of consecutive pages: fault order is often sequential.
        for (let i = start; i < end;) {
          let j = i + 1;
          while (j < end && pages[j] === pages[j - 1]! + 1) j++;
          const len = (j - i) * REAP_PAGE_SIZE;
          const at = (i - start) * REAP_PAGE_SIZE;
          const n = await readFull(
            mem,
            buf.subarray(at, at + len),
            len,
            pages[i]! * REAP_PAGE_SIZE,
          );
          if (n !== len)
            throw invalidReapFile(
              `memory file ends inside page ${pages[i]! + Math.floor(n / REAP_PAGE_SIZE)}`,
            );
          i = j;
        }
        await writeAll(
          out,
          buf.subarray(0, (end - start) * REAP_PAGE_SIZE),
          start * REAP_PAGE_SIZE,
        );
      }
    });
  } finally {
    await mem.close();
  }
  await writeFileAtomic(join(dir, REAP_MANIFEST), async (fh) => {
    await writeAll(fh, Buffer.from(encodeReapManifest(manifest)), 0);
  });
  for (const name of await readdir(dir)) {
    if (PAGES_FILE.test(name) && name !== manifest.pagesFile) {
      await unlink(join(dir, name)).catch(() => undefined);
    }
  }
  return manifest;
}

/** Page-aligned anonymous memory (O_DIRECT needs it; Node Buffers are not aligned). */
export class AlignedBuffer {
  readonly view: ArrayBuffer;
  private released = false;

  constructor(
    readonly addr: bigint,
    readonly size: number,
  ) {
    this.view = native.memoryView(addr, size);
  }

  static allocate(size: number): AlignedBuffer {
    const M = native.memConstants;
    const addr = native.mmap(
      size,
      M.PROT_READ! | M.PROT_WRITE!,
      M.MAP_PRIVATE! | M.MAP_ANONYMOUS!,
      -1,
      0,
    );
    try {
      return new AlignedBuffer(addr, size);
    } catch (e) {
      native.munmap(addr, size);
      throw e;
    }
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    native.detachView(this.view);
    native.munmap(this.addr, this.size);
  }
}

export interface WorkingSetRead {
  buffer: AlignedBuffer;
  bytes: number;
  /** False when the filesystem refused O_DIRECT and the read went through the page cache. */
  direct: boolean;
  ms: number;
}

/** Reads the whole pages file of `manifest` with one O_DIRECT read into aligned memory. */
export function readReapPages(dir: string, manifest: ReapManifest): WorkingSetRead {
  const path = join(dir, manifest.pagesFile);
  const bytes = manifest.pages.length * REAP_PAGE_SIZE;
  const F = native.fdConstants;
  let direct = true;
  let fd: number;
  try {
    fd = native.open(path, F.O_RDONLY! | F.O_DIRECT!);
  } catch (e) {
    if (!isNativeError(e) || e.errno !== EINVAL) throw pagesFileError(path, e);
    direct = false; // e.g. an old tmpfs: correct, only slower and cached
    fd = native.open(path, F.O_RDONLY!);
  }
  const buffer = AlignedBuffer.allocate(Math.max(bytes, REAP_PAGE_SIZE));
  try {
    const size = fstatSync(fd).size;
    if (size !== bytes)
      throw invalidReapFile(`${path} has ${size} bytes, the manifest says ${bytes}`);
    const t0 = performance.now();
    const n = bytes === 0 ? 0 : native.preadDirect(fd, new Uint8Array(buffer.view, 0, bytes), 0);
    const ms = performance.now() - t0;
    if (n !== bytes) throw invalidReapFile(`${path}: read ${n} of ${bytes} bytes`);
    return { buffer, bytes, direct, ms };
  } catch (e) {
    buffer.release();
    throw e;
  } finally {
    closeSync(fd);
  }
}

function pagesFileError(path: string, e: unknown): FaasnapError {
  if (isNativeError(e) && e.code === 'ENOENT') return invalidReapFile(`${path} is missing`);
  return new FaasnapError('SNAPSHOT_IO', `open ${path}: ${(e as Error).message}`);
}
