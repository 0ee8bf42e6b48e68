// REAP (docs/architecture.md, "REAP"): the first restored run records the pages the guest
// faults on; later restores read that working set with one O_DIRECT read and install it with
// UFFDIO_COPY before the vCPUs resume, while a native thread serves every other fault from the
// memory file. The files it reads and writes: reap-file.ts.

import { closeSync, fstatSync, openSync } from 'node:fs';

import { FaasnapError } from '../common/errors.js';
import {
  isNativeError,
  native,
  type UffdRegion,
  type UffdServeError,
  type UffdServerHandle,
  type UffdServerStats,
} from '../native/index.js';
import type { GuestRam } from '../vmm/guest-ram.js';
import { regionFileOffsets } from './modes.js';
import {
  REAP_MANIFEST,
  REAP_PAGE_SIZE,
  invalidReapFile,
  readReapManifest,
  readReapPages,
  writeReapWorkingSet,
  type ReapExpectation,
  type ReapManifest,
} from './reap-file.js';

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
  /**
   * Called once, on the JS thread, when a fault could not be served (SNAPSHOT_IO). The server
   * gave that page zeros so no thread stays blocked: the caller must stop the VM.
   */
  onError?: (e: FaasnapError) => void;
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
    const manifest = await ReapSession.readManifest(opts.dir, opts.memoryFile, opts.expect);
    return ReapSession.replayManifest(manifest, opts);
  }

  /** The recorded working set in `dir`, checked against the memory file (and `expect`). */
  static async readManifest(
    dir: string,
    memoryFile: string,
    expect: ReapExpectation = {},
  ): Promise<ReapManifest> {
    const memoryFileBytes = fstatSizeOf(memoryFile);
    const manifest = await readReapManifest(dir, { memoryFileBytes, ...expect });
    if (!manifest)
      throw invalidReapFile(`no ${REAP_MANIFEST} in ${dir}: record a working set first`);
    return manifest;
  }

  /** replay() with the manifest already read: synchronous, for use while a VM is restored. */
  static replayManifest(manifest: ReapManifest, opts: ReapReplayOptions): ReapSession {
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
      const onError = opts.onError;
      const server = new native.UffdServer(uffd, opts.regions, memFd, {
        record: mode === 'record',
        ...(onError && {
          onError: (e: UffdServeError) => onError(serveError(mode, opts.memoryFile, 1, e)),
        }),
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
   * SNAPSHOT_IO if the server met a fault it could not serve (it zero-filled that page so no
   * vCPU hangs, but the guest then saw wrong memory: the run must not count), else undefined.
   */
  serveError(): FaasnapError | undefined {
    const s = this.server.stats();
    if (s.errors === 0 || !s.lastError) return undefined;
    return serveError(this.mode, this.memoryFile, s.errors, s.lastError);
  }

  assertServed(): void {
    const e = this.serveError();
    if (e) throw e;
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

function serveError(
  mode: string,
  memoryFile: string,
  count: number,
  e: UffdServeError,
): FaasnapError {
  return new FaasnapError(
    'SNAPSHOT_IO',
    `REAP ${mode}: ${count} fault(s) not served from ${memoryFile}, last: ${e.op}: ${e.message}`,
    {
      op: e.op,
      errno: e.errno,
      path: memoryFile,
      fileOffset: e.fileOffset,
      hostAddress: `0x${e.address.toString(16)}`,
    },
  );
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
