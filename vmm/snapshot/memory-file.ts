// The memory file of a snapshot: the raw guest memory image, `memory.size` bytes, page for page.
// Checked against what the state file says before anything maps it: mapping a short file would
// make the guest take SIGBUS on the missing tail instead of failing the restore cleanly.

import { createHash } from 'node:crypto';
import { open, stat } from 'node:fs/promises';
import { FaasnapError } from '../../common/errors.js';
import { ioError, readFull } from './atomic-file.js';

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
