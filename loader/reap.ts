// REAP (docs/architecture.md, "REAP"): the first restored run records the pages the guest faults on; later
// restores read that working set with one O_DIRECT read and install it with UFFDIO_COPY before
// the vCPUs resume, while a native thread serves every other fault from the memory file.
//
// On disk, next to the snapshot: `reap-<id>.pages` holds the recorded pages' bytes (taken from
// the memory file, i.e. the snapshot's contents, not what the guest later wrote) in fault
// order, so it is a whole number of 4 KiB pages and can be read with O_DIRECT; the manifest
// `reap-manifest.json` lists their memory-file page indices and is replaced atomically last,
// so a reader sees the old working set or the complete new one.

import { randomBytes } from 'node:crypto';
import { closeSync, fstatSync, openSync } from 'node:fs';
import { mkdir, open, readFile, readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';

import { FaasnapError } from '../common/errors.js';
import {
  isNativeError,
  native,
  type UffdRegion,
  type UffdServerHandle,
  type UffdServerStats,
} from '../native/index.js';
import { readFull, writeAll, writeFileAtomic } from '../common/files.js';
import type { GuestRam } from '../vmm/guest-ram.js';
import { regionFileOffsets } from './modes.js';
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

function invalid(detail: string): FaasnapError {
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
    throw invalid('manifest is not JSON');
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw invalid('manifest is not an object');
  }
  const o = raw as Record<string, unknown>;
  if (o.format !== REAP_FORMAT) throw invalid(`unknown format ${String(o.format)}`);
  if (o.version !== REAP_VERSION) throw invalid(`unsupported version ${String(o.version)}`);
  if (o.pageSize !== REAP_PAGE_SIZE) throw invalid(`page size must be ${REAP_PAGE_SIZE}`);
  if (typeof o.pagesFile !== 'string' || !PAGES_FILE.test(o.pagesFile)) {
    throw invalid('pagesFile must be a reap-<12 hex>.pages basename');
  }
  const size = o.memoryFileBytes;
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size <= 0 || size % 4096 !== 0) {
    throw invalid('memoryFileBytes must be a positive multiple of 4096');
  }
  if (o.snapshotId !== undefined && typeof o.snapshotId !== 'string') {
    throw invalid('snapshotId must be a string');
  }
  if (typeof o.createdAt !== 'string') throw invalid('createdAt must be a string');
  if (!Array.isArray(o.pages)) throw invalid('pages must be an array');
  const limit = size / REAP_PAGE_SIZE;
  const seen = new Set<number>();
  for (const p of o.pages as unknown[]) {
    if (typeof p !== 'number' || !Number.isInteger(p) || p < 0 || p >= limit) {
      throw invalid(`page ${String(p)} is not inside the ${size}-byte memory file`);
    }
    if (seen.has(p)) throw invalid(`page ${p} is listed twice`);
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
            throw invalid(
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
    if (size !== bytes) throw invalid(`${path} has ${size} bytes, the manifest says ${bytes}`);
    const t0 = performance.now();
    const n = bytes === 0 ? 0 : native.preadDirect(fd, new Uint8Array(buffer.view, 0, bytes), 0);
    const ms = performance.now() - t0;
    if (n !== bytes) throw invalid(`${path}: read ${n} of ${bytes} bytes`);
    return { buffer, bytes, direct, ms };
  } catch (e) {
    buffer.release();
    throw e;
  } finally {
    closeSync(fd);
  }
}

function pagesFileError(path: string, e: unknown): FaasnapError {
  if (isNativeError(e) && e.code === 'ENOENT') return invalid(`${path} is missing`);
  return new FaasnapError('SNAPSHOT_IO', `open ${path}: ${(e as Error).message}`);
}

/** The uffd regions of guest RAM; the memory file holds the regions back to back by default. */
export function reapRegions(ram: GuestRam, fileOffsets = regionFileOffsets(ram)): UffdRegion[] {
  return ram.regions.map((r, i) => ({
    hostAddr: r.hostAddr,
    size: r.size,
    fileOffset: fileOffsets[i]!,
  }));
}

export interface ReapSessionOptions {
  /** Guest RAM to serve; must still be untouched (missing) where the snapshot has data. */
  regions: UffdRegion[];
  memoryFile: string;
}

export interface ReapReplayOptions extends ReapSessionOptions {
  /** Directory holding the manifest and pages file. */
  dir: string;
  expect?: ReapExpectation;
}

export interface ReapStats {
  mode: 'record' | 'replay';
  /** Replay: working-set pages installed before the vCPUs resume. */
  pagesPrefetched: number;
  /** Replay: bytes read from the pages file, whether with O_DIRECT, and how long it took. */
  prefetchBytes: number;
  prefetchDirect: boolean;
  prefetchReadMs: number;
  prefetchInstallMs: number;
  /** Faults read from the userfaultfd and faults served from the memory file on demand. */
  faults: number;
  faultsServed: number;
  bytesReadOnDemand: number;
  /** Everything read from disk: pages file + memory file. */
  bytesRead: number;
  /** Mean time to serve one on-demand fault (read + copy), microseconds. */
  meanServeUs: number;
  recordedPages: number;
  errors: number;
  lastError?: UffdServerStats['lastError'];
}

/**
 * One guest RAM served by userfaultfd. Close it after the vCPUs have stopped (Vm.own() does:
 * the VM closes vCPU threads before owned resources), then the RAM may be unmapped.
 */
export class ReapSession {
  private closed = false;
  private prefetch = { pages: 0, bytes: 0, direct: false, readMs: 0, installMs: 0 };

  private constructor(
    readonly mode: 'record' | 'replay',
    private readonly memoryFile: string,
    private readonly uffd: number,
    private readonly memFd: number,
    private readonly server: UffdServerHandle,
  ) {}

  /** Record mode: every fault is served from the memory file and its page recorded. */
  static record(opts: ReapSessionOptions): ReapSession {
    return ReapSession.open('record', opts);
  }

  /**
   * Replay mode: reads the working set from `dir` and installs it, then serves the rest on
   * demand. Returns when the working set is in guest RAM: resume the vCPUs after this.
   */
  static async replay(opts: ReapReplayOptions): Promise<ReapSession> {
    const memoryFileBytes = fstatSizeOf(opts.memoryFile);
    const manifest = await readReapManifest(opts.dir, { memoryFileBytes, ...opts.expect });
    if (!manifest) throw invalid(`no ${REAP_MANIFEST} in ${opts.dir}: record a working set first`);
    checkPagesInRegions(manifest.pages, opts.regions);
    const session = ReapSession.open('replay', opts);
    try {
      const read = readReapPages(opts.dir, manifest);
      try {
        const t0 = performance.now();
        const { installed } = session.server.installPages(
          Uint32Array.from(manifest.pages),
          new Uint8Array(read.buffer.view, 0, read.bytes),
        );
        session.prefetch = {
          pages: installed,
          bytes: read.bytes,
          direct: read.direct,
          readMs: read.ms,
          installMs: performance.now() - t0,
        };
      } finally {
        read.buffer.release();
      }
    } catch (e) {
      session.close();
      throw e;
    }
    return session;
  }

  private static open(mode: 'record' | 'replay', opts: ReapSessionOptions): ReapSession {
    if (opts.regions.length === 0) {
      throw new FaasnapError('INVALID_LOADER_OPTIONS', 'REAP needs at least one RAM region');
    }
    const fds: number[] = [];
    try {
      const memFd = native.open(opts.memoryFile, native.fdConstants.O_RDONLY!);
      fds.push(memFd);
      const size = fstatSync(memFd).size;
      const need = Math.max(...opts.regions.map((r) => r.fileOffset + r.size));
      if (size < need) {
        throw new FaasnapError(
          'SNAPSHOT_MEMORY_MISMATCH',
          `${opts.memoryFile} has ${size} bytes, guest RAM needs ${need}`,
        );
      }
      // Not UFFD_USER_MODE_ONLY: vCPU faults come from KVM's get_user_pages, in the kernel.
      const uffd = native.userfaultfd(native.fdConstants.UFFD_NONBLOCK!);
      fds.push(uffd);
      native.uffdApi(uffd, 0);
      const U = native.uffdConstants;
      for (const r of opts.regions) {
        const ioctls = native.uffdRegister(
          uffd,
          r.hostAddr,
          r.size,
          U.UFFDIO_REGISTER_MODE_MISSING!,
        );
        if (!(ioctls & (1n << BigInt(U._UFFDIO_COPY!)))) {
          throw new FaasnapError('NATIVE_SYSCALL', 'UFFDIO_COPY is not available on guest RAM');
        }
      }
      const server = new native.UffdServer(uffd, opts.regions, memFd, {
        record: mode === 'record',
      });
      return new ReapSession(mode, opts.memoryFile, uffd, memFd, server);
    } catch (e) {
      // Closing the uffd also unregisters whatever was registered.
      for (const fd of fds.reverse()) native.close(fd);
      if (isNativeError(e)) {
        throw new FaasnapError('NATIVE_SYSCALL', `REAP ${mode}: ${e.message}`, {
          op: e.op,
          errno: e.errno,
        });
      }
      throw e;
    }
  }

  /** Memory-file page indices the guest faulted on, in fault order (record mode). */
  recorded(): Uint32Array {
    return this.server.recorded();
  }

  stats(): ReapStats {
    const s = this.server.stats();
    const out: ReapStats = {
      mode: this.mode,
      pagesPrefetched: this.prefetch.pages,
      prefetchBytes: this.prefetch.bytes,
      prefetchDirect: this.prefetch.direct,
      prefetchReadMs: this.prefetch.readMs,
      prefetchInstallMs: this.prefetch.installMs,
      faults: s.faults,
      faultsServed: s.faultsServed,
      bytesReadOnDemand: s.bytesRead,
      bytesRead: this.prefetch.bytes + s.bytesRead,
      meanServeUs: s.faultsServed > 0 ? s.serveNs / s.faultsServed / 1000 : 0,
      recordedPages: s.recorded,
      errors: s.errors,
    };
    if (s.lastError) out.lastError = s.lastError;
    return out;
  }

  /**
   * Throws if the server met a fault it could not serve (it zero-filled that page so no vCPU
   * hangs, but the guest then saw wrong memory: the run must not count).
   */
  assertServed(): void {
    const s = this.server.stats();
    if (s.errors === 0) return;
    const e = s.lastError;
    throw new FaasnapError(
      'SNAPSHOT_IO',
      `REAP ${this.mode}: ${s.errors} fault(s) not served, last: ${e?.op}: ${e?.message}`,
      { op: e?.op, errno: e?.errno, address: e?.address.toString(16) },
    );
  }

  /** Writes what record mode saw as the working set in `dir` (works after close()). */
  async saveWorkingSet(dir: string, opts: { snapshotId?: string } = {}): Promise<ReapManifest> {
    if (this.mode !== 'record') {
      throw new FaasnapError(
        'INVALID_LOADER_OPTIONS',
        'only a recording session has a working set',
      );
    }
    this.assertServed();
    return writeReapWorkingSet(dir, {
      memoryFile: this.memoryFile,
      pages: this.recorded(),
      ...opts,
    });
  }

  /**
   * Stops the fault server, then closes the uffd (which unregisters guest RAM and wakes any
   * faulting thread left) and the memory file. Idempotent; stats and recorded() stay readable.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.server.close();
    native.close(this.uffd);
    native.close(this.memFd);
  }
}

function fstatSizeOf(path: string): number {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw new FaasnapError(
      'SNAPSHOT_MISSING',
      `memory file ${path}: ${(e as NodeJS.ErrnoException).code}`,
    );
  }
  try {
    return fstatSync(fd).size;
  } finally {
    closeSync(fd);
  }
}

function checkPagesInRegions(pages: readonly number[], regions: readonly UffdRegion[]): void {
  for (const p of pages) {
    const off = p * REAP_PAGE_SIZE;
    if (!regions.some((r) => off >= r.fileOffset && off < r.fileOffset + r.size)) {
      throw new FaasnapError(
        'LOADING_SET_STALE',
        `REAP working-set page ${p} is outside guest RAM`,
      );
    }
  }
}
