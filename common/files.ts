// File helpers shared by the VMM (state and memory files) and the loaders (loading sets, REAP
// working sets): crash-safe replacement, full reads and writes, I/O error mapping, and the checks
// a snapshot file gets before anything maps it.
//
// Crash-safe file replacement: write a temp file in the same directory, fsync it, rename it over
// the target, fsync the directory. A reader sees either the old file or the complete new one,
// never a half-written one; rename(2) is only atomic within one filesystem, hence the same dir.

import { createHash, randomBytes } from 'node:crypto';
import { open, readdir, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { FaasnapError } from './errors.js';

/** Fault-injection points (tests simulate a crash or a failing disk with them). */
export interface AtomicWriteHooks {
  /** Runs after the temp file is complete and synced, before the rename. */
  beforeRename?(tmpPath: string): void | Promise<void>;
}

const TMP_MARK = '.tmp-';

/** `.name.tmp-<pid>-<random>`: hidden, unique per writer, recognisable by removeStaleTemps. */
export function tempPathFor(path: string): string {
  const suffix = `${process.pid}-${randomBytes(6).toString('hex')}`;
  return join(dirname(path), `.${basename(path)}${TMP_MARK}${suffix}`);
}

export function isTempName(name: string): boolean {
  return name.startsWith('.') && name.includes(TMP_MARK);
}

/**
 * Maps a Node fs error to SNAPSHOT_IO naming the operation and path, keeping the original as
 * `cause`; typed errors pass.
 */
export function ioError(op: string, path: string, e: unknown): FaasnapError {
  if (e instanceof FaasnapError) return e;
  const code = (e as NodeJS.ErrnoException).code ?? String(e);
  return new FaasnapError(
    'SNAPSHOT_IO',
    `${op} ${path}: ${code}`,
    { op, path, errno: code },
    { cause: e },
  );
}

/**
 * Replaces `path` atomically with what `write` puts into the temp file. On any failure the temp
 * file is removed and the previous file (if any) is untouched.
 */
export async function writeFileAtomic(
  path: string,
  write: (fh: FileHandle) => Promise<void>,
  hooks: AtomicWriteHooks = {},
): Promise<void> {
  const tmp = tempPathFor(path);
  let fh: FileHandle | undefined;
  let renamed = false;
  try {
    fh = await open(tmp, 'wx', 0o644);
    await write(fh);
    await fh.sync();
    await fh.close();
    fh = undefined;
    await hooks.beforeRename?.(tmp);
    await rename(tmp, path);
    renamed = true;
    await syncDir(dirname(path));
  } catch (e) {
    await fh?.close().catch(() => undefined);
    if (!renamed) await unlink(tmp).catch(() => undefined);
    throw ioError('write', path, e);
  }
}

/** Writes all of `data` at `position` (FileHandle.write may write less than asked). */
export async function writeAll(fh: FileHandle, data: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await fh.write(data, done, data.length - done, position + done);
    if (bytesWritten === 0) throw new Error('EIO: zero-length write');
    done += bytesWritten;
  }
}

/** Reads exactly `length` bytes at `position` into `buf`; returns fewer only at end of file. */
export async function readFull(
  fh: FileHandle,
  buf: Uint8Array,
  length: number,
  position: number,
): Promise<number> {
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buf, done, length - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done;
}

/** Makes a rename durable: the new directory entry is only on disk after the dir is synced. */
async function syncDir(dir: string): Promise<void> {
  const dh = await open(dir, 'r');
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}

/**
 * Removes temp files that crashed writers left in `dir` (they can be GiBs for loading sets).
 * Only files older than `olderThanMs` go, so a writer that is still running is not disturbed.
 * Returns the names removed.
 */
export async function removeStaleTemps(dir: string, olderThanMs = 60_000): Promise<string[]> {
  const removed: string[] = [];
  const now = Date.now();
  for (const name of await readdir(dir)) {
    if (!isTempName(name)) continue;
    const p = join(dir, name);
    try {
      const st = await stat(p);
      if (!st.isFile() || now - st.mtimeMs < olderThanMs) continue;
      await unlink(p);
      removed.push(name);
    } catch {
      // Raced with its writer finishing or another cleaner: nothing to do.
    }
  }
  return removed;
}

// The memory file of a snapshot: the raw guest memory image, `memory.size` bytes, page for page.
// Checked against what the state file says before anything maps it: mapping a short file would
// make the guest take SIGBUS on the missing tail instead of failing the restore cleanly.

const HASH_CHUNK = 8 << 20;

export interface MemoryFileCheck {
  /** When set, the file's SHA-256 (hex) must equal it; this reads the whole file. */
  sha256?: string;
}

/** stat() that maps "not there" to SNAPSHOT_MISSING and other failures to SNAPSHOT_IO. */
export async function statSnapshotFile(path: string, what: string) {
  try {
    return await stat(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw new FaasnapError('SNAPSHOT_MISSING', `${what} ${path} does not exist`, { path });
    }
    throw new FaasnapError('SNAPSHOT_IO', `stat ${path}: ${code ?? String(e)}`, { path });
  }
}

/** Verifies that `path` is a regular file of exactly `expectedSize` bytes (and hash, if asked). */
export async function checkMemoryFile(
  path: string,
  expectedSize: number,
  opts: MemoryFileCheck = {},
): Promise<void> {
  const st = await statSnapshotFile(path, 'memory file');
  if (!st.isFile()) {
    throw new FaasnapError('SNAPSHOT_MEMORY_MISMATCH', `${path} is not a regular file`, { path });
  }
  if (st.size !== expectedSize) {
    throw new FaasnapError(
      'SNAPSHOT_MEMORY_MISMATCH',
      `${path} has ${st.size} bytes, the state file says ${expectedSize}`,
      { path, expected: expectedSize, actual: st.size },
    );
  }
  if (opts.sha256 !== undefined) {
    const actual = await hashFile(path);
    if (actual !== opts.sha256) {
      throw new FaasnapError(
        'SNAPSHOT_MEMORY_MISMATCH',
        `${path} has SHA-256 ${actual}, the state file says ${opts.sha256}`,
        { path, expected: opts.sha256, actual },
      );
    }
  }
}

/** SHA-256 (hex) of a whole file, streamed in large chunks (memory files are GiBs). */
export async function hashFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  const fh = await open(path, 'r').catch((e: NodeJS.ErrnoException) => {
    throw e.code === 'ENOENT'
      ? new FaasnapError('SNAPSHOT_MISSING', `${path} does not exist`, { path })
      : ioError('open', path, e);
  });
  try {
    const buf = Buffer.allocUnsafe(HASH_CHUNK);
    for (let pos = 0; ;) {
      const n = await readFull(fh, buf, buf.length, pos);
      if (n === 0) break;
      hash.update(buf.subarray(0, n));
      pos += n;
    }
  } catch (e) {
    throw ioError('read', path, e);
  } finally {
    await fh.close();
  }
  return hash.digest('hex');
}
