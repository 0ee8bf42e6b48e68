// The loading-set file and its manifest. The file is the loading set's bytes copied out of the
// memory file, region after region in (group, offset) order, so one sequential read fetches the
// working set (since format version 2 with holes before 2 MiB-aligned regions: loading-set.ts).
// The manifest (JSON) says where every region belongs in guest memory and binds the file to one
// snapshot: a loading set recorded against another snapshot would map wrong bytes into the
// guest, so a stale one must be detected, never used.

import { createHash } from 'node:crypto';
import type { BigIntStats } from 'node:fs';
import { open, readFile, unlink, type FileHandle } from 'node:fs/promises';
import { Type, type Static } from '@sinclair/typebox';
import { FaasnapError } from '../common/errors.js';
import { validateState } from '../common/state.js';
import {
  ioError,
  readFull,
  statSnapshotFile,
  writeAll,
  writeFileAtomic,
  type AtomicWriteHooks,
} from '../common/files.js';
import {
  checkLoadingSetLayout,
  computeLoadingSet,
  loadingSetFileRanges,
  loadingSetFileSize,
  loadingSetSize,
  type LayoutOptions,
  type LoadingSetRegion,
} from './loading-set.js';
import { nonZeroPages, type NonZeroScan } from './regions.js';
import { DEFAULT_INTERVAL_THRESHOLD, PAGE_SIZE, checkRegions } from './units.js';

export const MANIFEST_FORMAT = 'faasnap-loading-set';
/** Written by this build. Version 1 (every region packed) reads as well: its layout is valid. */
export const MANIFEST_VERSION = 2;
const READABLE_VERSIONS: readonly number[] = [1, 2];
const COPY_CHUNK = 8 << 20;
/** Bytes hashed at each end of the loading-set file for `file.sample`. */
export const SAMPLE_BYTES = 64 << 10;

const Size = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });
const Sha256 = Type.String({ pattern: '^[0-9a-f]{64}$' });
const Strict = { additionalProperties: false } as const;

export const LoadingSetManifestSchema = Type.Object(
  {
    format: Type.Literal(MANIFEST_FORMAT),
    version: Type.Union([Type.Literal(1), Type.Literal(2)]),
    pageSize: Type.Literal(PAGE_SIZE),
    /** Size of the memory file (= guest memory) the set was recorded against. */
    memorySize: Size,
    /** Checksum of the snapshot's state file: binds the set to exactly one snapshot. */
    stateChecksum: Sha256,
    recording: Type.Object({ scans: Size, intervalThreshold: Size }, Strict),
    /** Non-zero regions of the memory file (restore maps them without rescanning). */
    nonZero: Type.Object(
      {
        blockSize: Size,
        intervalThreshold: Size,
        sizeThreshold: Size,
        regions: Type.Array(Type.Object({ offset: Size, length: Size }, Strict)),
      },
      Strict,
    ),
    /**
     * The loading-set file. `sha256` is that of its regions' bytes in file order (= the memory
     * bytes it copied; holes excluded, so for version 1 the whole file's). `sample`
     * (SHA-256 of its first and last SAMPLE_BYTES) and `identity` (the file as written: device,
     * inode, mtime) bind the manifest to the file's content without reading all of it. Manifests
     * of older builds lack them and are checked against the full hash instead.
     */
    file: Type.Object(
      {
        size: Size,
        sha256: Sha256,
        sample: Type.Optional(Sha256),
        identity: Type.Optional(
          Type.Object(
            {
              dev: Type.String({ pattern: '^[0-9]+$' }),
              ino: Type.String({ pattern: '^[0-9]+$' }),
              mtimeNs: Type.String({ pattern: '^[0-9]+$' }),
            },
            Strict,
          ),
        ),
      },
      Strict,
    ),
    regions: Type.Array(
      Type.Object({ memOffset: Size, length: Size, group: Size, fileOffset: Size }, Strict),
    ),
  },
  Strict,
);
export type LoadingSetManifest = Static<typeof LoadingSetManifestSchema>;

function stale(why: string, details: Record<string, unknown> = {}): FaasnapError {
  return new FaasnapError('LOADING_SET_STALE', why, details);
}

export type LoadingSetFileInfo = LoadingSetManifest['file'];

/** SHA-256 of the first and last SAMPLE_BYTES of an open file of `size` bytes. */
async function sampleHash(fh: FileHandle, size: number): Promise<string> {
  const hash = createHash('sha256');
  const buf = Buffer.allocUnsafe(Math.min(SAMPLE_BYTES, size));
  for (const at of size > SAMPLE_BYTES ? [0, size - buf.length] : [0]) {
    const n = await readFull(fh, buf, buf.length, at);
    hash.update(buf.subarray(0, n));
  }
  return hash.digest('hex');
}

function identityOf(st: BigIntStats): NonNullable<LoadingSetFileInfo['identity']> {
  return { dev: String(st.dev), ino: String(st.ino), mtimeNs: String(st.mtimeNs) };
}

/**
 * Copies the loading set's bytes from the memory file into `outPath` (atomically), in file
 * order; the bytes between regions are left as holes. Returns the file's size, SHA-256, sample
 * hash and identity.
 */
export async function writeLoadingSetFile(
  memoryFilePath: string,
  regions: readonly LoadingSetRegion[],
  outPath: string,
  hooks?: AtomicWriteHooks,
): Promise<LoadingSetFileInfo> {
  const st = await statSnapshotFile(memoryFilePath, 'memory file');
  checkLoadingSetLayout(regions, st.size, 'INVALID_LOADER_OPTIONS');
  const hash = createHash('sha256');
  const mem = await open(memoryFilePath, 'r').catch((e: unknown) => {
    throw ioError('open', memoryFilePath, e);
  });
  try {
    const buf = Buffer.allocUnsafe(Math.min(COPY_CHUNK, Math.max(loadingSetSize(regions), 1)));
    await writeFileAtomic(
      outPath,
      async (out) => {
        for (const r of regions) {
          for (let done = 0; done < r.length;) {
            const n = Math.min(buf.length, r.length - done);
            if ((await readFull(mem, buf, n, r.memOffset + done)) !== n) {
              throw new FaasnapError('SNAPSHOT_MEMORY_MISMATCH', `${memoryFilePath} shrank`);
            }
            const piece = buf.subarray(0, n);
            hash.update(piece);
            await writeAll(out, piece, r.fileOffset + done);
            done += n;
          }
        }
      },
      hooks,
    );
  } finally {
    await mem.close();
  }
  const size = loadingSetFileSize(regions);
  const written = await open(outPath, 'r').catch((e: unknown) => {
    throw ioError('open', outPath, e);
  });
  try {
    return {
      size,
      sha256: hash.digest('hex'),
      sample: await sampleHash(written, size),
      identity: identityOf(await written.stat({ bigint: true })),
    };
  } finally {
    await written.close();
  }
}

export interface ManifestInput {
  memorySize: number;
  stateChecksum: string;
  scans: number;
  intervalThreshold: number;
  nonZero: Pick<NonZeroScan, 'blockSize' | 'intervalThreshold' | 'sizeThreshold' | 'regions'>;
  regions: readonly LoadingSetRegion[];
  file: LoadingSetFileInfo;
}

/** Builds (and validates) the manifest of a written loading-set file. */
export function loadingSetManifest(input: ManifestInput): LoadingSetManifest {
  const m: LoadingSetManifest = {
    format: MANIFEST_FORMAT,
    version: MANIFEST_VERSION,
    pageSize: PAGE_SIZE,
    memorySize: input.memorySize,
    stateChecksum: input.stateChecksum,
    recording: { scans: input.scans, intervalThreshold: input.intervalThreshold },
    nonZero: {
      blockSize: input.nonZero.blockSize,
      intervalThreshold: input.nonZero.intervalThreshold,
      sizeThreshold: input.nonZero.sizeThreshold,
      regions: input.nonZero.regions.map((r) => ({ offset: r.offset, length: r.length })),
    },
    file: { ...input.file },
    regions: input.regions.map((r) => ({ ...r })),
  };
  return validateManifest(m, 'INVALID_LOADER_OPTIONS');
}

/** Validates an untrusted manifest: schema first, then the layout rules. */
export function validateManifest(
  value: unknown,
  code: 'INVALID_LOADER_OPTIONS' | 'LOADING_SET_INVALID' = 'LOADING_SET_INVALID',
): LoadingSetManifest {
  if (typeof value === 'object' && value !== null && 'version' in value) {
    const v = (value as { version: unknown }).version;
    // Another format version is not damage: the set just has to be recorded again.
    if (typeof v === 'number' && !READABLE_VERSIONS.includes(v))
      throw stale(
        `manifest format version ${String(v)}, this build reads ${READABLE_VERSIONS.join(' and ')}`,
      );
  }
  let m: LoadingSetManifest;
  try {
    m = validateState('loading-set manifest', LoadingSetManifestSchema, value);
  } catch (e) {
    throw new FaasnapError(code, (e as Error).message.replace(/^[^:]*: /, ''));
  }
  const bad = (why: string): never => {
    throw new FaasnapError(code, why);
  };
  if (m.memorySize === 0 || m.memorySize % PAGE_SIZE !== 0)
    bad(`memory size ${m.memorySize} is not whole pages`);
  checkRegions('non-zero region', m.nonZero.regions, m.memorySize, code);
  checkLoadingSetLayout(m.regions, m.memorySize, code);
  if (m.file.size !== loadingSetFileSize(m.regions)) {
    bad(
      `file size ${m.file.size} is not the end of its last region ${loadingSetFileSize(m.regions)}`,
    );
  }
  const late = m.regions.find((r) => r.group >= m.recording.scans);
  if (late)
    bad(`region at ${late.memOffset} has group ${late.group} but only ${m.recording.scans} scans`);
  return m;
}

export async function writeLoadingSetManifest(
  path: string,
  manifest: LoadingSetManifest,
  hooks?: AtomicWriteHooks,
): Promise<void> {
  const bytes = Buffer.from(
    JSON.stringify(validateManifest(manifest, 'INVALID_LOADER_OPTIONS')) + '\n',
  );
  await writeFileAtomic(path, (fh) => writeAll(fh, bytes, 0), hooks);
}

/** Reads and validates a manifest; a missing one is SNAPSHOT_MISSING (nothing recorded yet). */
export async function readLoadingSetManifest(path: string): Promise<LoadingSetManifest> {
  await statSnapshotFile(path, 'loading-set manifest');
  let value: unknown;
  try {
    value = JSON.parse(await readFile(path, 'utf8'));
  } catch (e) {
    if (e instanceof SyntaxError)
      throw new FaasnapError('LOADING_SET_INVALID', `${path} is not JSON`);
    throw new FaasnapError(
      'SNAPSHOT_IO',
      `read ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`,
    );
  }
  return validateManifest(value);
}

/**
 * Opens the loading-set file a restore will map and prefetch, once, and checks it is the file
 * the manifest describes: same snapshot, same memory size, and the same content. The content
 * check must not read the set (that is the restore's own I/O): the file as the recording wrote
 * it (device, inode, mtime) passes at once; a copy passes if its size and sample hash match; a
 * manifest of an older build is checked against its full hash. A re-record renames a new file
 * into place, so the path may name another file a moment later: callers use only the returned
 * handle, never the path again.
 */
export async function openLoadingSet(
  manifest: LoadingSetManifest,
  current: { memorySize: number; stateChecksum: string; loadingSetPath: string },
): Promise<FileHandle> {
  if (manifest.stateChecksum !== current.stateChecksum) {
    throw stale(
      `it was recorded for snapshot ${manifest.stateChecksum.slice(0, 12)}…, this is ${current.stateChecksum.slice(0, 12)}…`,
      {
        recorded: manifest.stateChecksum,
        current: current.stateChecksum,
      },
    );
  }
  if (manifest.memorySize !== current.memorySize) {
    throw stale(
      `it was recorded for ${manifest.memorySize} bytes of memory, the snapshot has ${current.memorySize}`,
    );
  }
  const path = current.loadingSetPath;
  await statSnapshotFile(path, 'loading-set file'); // SNAPSHOT_MISSING when absent
  const fh = await open(path, 'r').catch((e: unknown) => {
    throw ioError('open', path, e);
  });
  try {
    const st = await fh.stat({ bigint: true });
    const want = manifest.file;
    if (!st.isFile() || st.size !== BigInt(want.size))
      throw stale(`${path} has ${st.size} bytes, the manifest says ${want.size}`);
    const id = identityOf(st);
    const same =
      want.identity?.dev === id.dev &&
      want.identity.ino === id.ino &&
      want.identity.mtimeNs === id.mtimeNs;
    if (!same) {
      const [kind, expected, actual] = want.sample
        ? ['sample', want.sample, await sampleHash(fh, want.size)]
        : ['SHA-256', want.sha256, await fullHash(fh, manifest.regions)];
      if (actual !== expected)
        throw stale(`${path} is not the file its manifest was written for (${kind} differs)`, {
          expected,
          actual,
        });
    }
    return fh;
  } catch (e) {
    await fh.close();
    throw ioError('read', path, e);
  }
}

/** SHA-256 of the regions' bytes in the loading-set file (what `file.sha256` covers). */
async function fullHash(fh: FileHandle, regions: readonly LoadingSetRegion[]): Promise<string> {
  const hash = createHash('sha256');
  const buf = Buffer.allocUnsafe(Math.min(COPY_CHUNK, Math.max(loadingSetSize(regions), 1)));
  for (const r of loadingSetFileRanges(regions)) {
    for (let at = r.fileOffset, end = r.fileOffset + r.length; at < end;) {
      const n = await readFull(fh, buf, Math.min(buf.length, end - at), at);
      if (n === 0) return hash.digest('hex'); // truncated: cannot match
      hash.update(buf.subarray(0, n));
      at += n;
    }
  }
  return hash.digest('hex');
}

/**
 * Full check (tools, tests, after a crash): the loading-set file's bytes hash to the manifest's
 * value AND equal the memory file's bytes at every region. Reads both files.
 */
export async function verifyLoadingSet(
  manifest: LoadingSetManifest,
  paths: { memoryFilePath: string; loadingSetPath: string },
): Promise<void> {
  const memSt = await statSnapshotFile(paths.memoryFilePath, 'memory file');
  if (memSt.size !== manifest.memorySize) {
    throw stale(`memory file has ${memSt.size} bytes, the manifest says ${manifest.memorySize}`);
  }
  const lsSt = await statSnapshotFile(paths.loadingSetPath, 'loading-set file');
  if (lsSt.size !== manifest.file.size) {
    throw stale(`loading-set file has ${lsSt.size} bytes, the manifest says ${manifest.file.size}`);
  }
  const memHash = createHash('sha256');
  const lsHash = createHash('sha256');
  const mem = await open(paths.memoryFilePath, 'r').catch((e: unknown) => {
    throw ioError('open', paths.memoryFilePath, e);
  });
  const ls = await open(paths.loadingSetPath, 'r').catch(async (e: unknown) => {
    await mem.close();
    throw ioError('open', paths.loadingSetPath, e);
  });
  try {
    const a = Buffer.allocUnsafe(COPY_CHUNK);
    const b = Buffer.allocUnsafe(COPY_CHUNK);
    for (const r of manifest.regions) {
      for (let done = 0; done < r.length;) {
        const n = Math.min(COPY_CHUNK, r.length - done);
        await readFull(mem, a, n, r.memOffset + done);
        await readFull(ls, b, n, r.fileOffset + done);
        memHash.update(a.subarray(0, n));
        lsHash.update(b.subarray(0, n));
        done += n;
      }
    }
  } finally {
    await mem.close();
    await ls.close();
  }
  const memSha = memHash.digest('hex');
  const lsSha = lsHash.digest('hex');
  if (lsSha !== manifest.file.sha256) {
    throw stale('the loading-set file does not hash to the manifest value', { actual: lsSha });
  }
  if (memSha !== manifest.file.sha256) {
    throw stale('the memory file changed at the loading-set regions since recording', {
      actual: memSha,
    });
  }
}

export interface BuildLoadingSetInput {
  memoryFilePath: string;
  /** The snapshot's state-file checksum (readStateFile(...).checksum). */
  stateChecksum: string;
  /** GroupRecorder.groups / .scans from the recording run. */
  groups: Int32Array;
  scans: number;
  /** scanFile(memoryFilePath) of the same memory file. */
  scan: NonZeroScan;
  intervalThreshold?: number;
  /** The loading-set file's layout (default: 2 MiB-aligned large regions). */
  layout?: LayoutOptions;
  loadingSetPath: string;
  manifestPath: string;
  hooks?: AtomicWriteHooks;
}

/**
 * Computes the loading set, writes the loading-set file and then its manifest. The old manifest
 * is removed first: a crash half-way leaves no manifest (= not recorded) rather than an old
 * manifest next to a new file.
 */
export async function buildLoadingSet(input: BuildLoadingSetInput): Promise<LoadingSetManifest> {
  const intervalThreshold = input.intervalThreshold ?? DEFAULT_INTERVAL_THRESHOLD;
  const st = await statSnapshotFile(input.memoryFilePath, 'memory file');
  if (st.size !== input.scan.size) {
    throw new FaasnapError(
      'SNAPSHOT_MEMORY_MISMATCH',
      `${input.memoryFilePath} has ${st.size} bytes, its region scan covered ${input.scan.size}`,
    );
  }
  const regions = computeLoadingSet(input.groups, nonZeroPages(input.scan), {
    intervalThreshold,
    ...input.layout,
  });
  await unlink(input.manifestPath).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== 'ENOENT')
      throw new FaasnapError('SNAPSHOT_IO', `unlink ${input.manifestPath}: ${e.code}`);
  });
  const file = await writeLoadingSetFile(
    input.memoryFilePath,
    regions,
    input.loadingSetPath,
    input.hooks,
  );
  const manifest = loadingSetManifest({
    memorySize: input.scan.size,
    stateChecksum: input.stateChecksum,
    scans: input.scans,
    intervalThreshold,
    nonZero: input.scan,
    regions,
    file,
  });
  await writeLoadingSetManifest(input.manifestPath, manifest, input.hooks);
  return manifest;
}
