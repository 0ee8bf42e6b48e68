import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isFaasnapError, type ErrorCode } from '../common/errors.js';
import { GroupRecorder } from './groups.js';
import {
  buildLoadingSet,
  openLoadingSet,
  readLoadingSetManifest,
  validateManifest,
  verifyLoadingSet,
  writeLoadingSetFile,
  writeLoadingSetManifest,
  type LoadingSetManifest,
} from './loading-set-file.js';
import { layoutLoadingSet } from './loading-set.js';
import { scanBuffer, scanFile } from './regions.js';
import { P, prng, range } from './fixtures.js';
import { tempDirs } from '../test/support/temp-dirs.js';

const { fresh: freshDir } = tempDirs('lsfile');

const STATE = 'c0'.repeat(32);
const is =
  (code: ErrorCode, re?: RegExp) =>
  (e: unknown): boolean => {
    assert.ok(isFaasnapError(e, code), `expected ${code}, got ${String(e)}`);
    if (re) assert.match((e as Error).message, re);
    return true;
  };

/** A memory image whose listed pages are filled with random (non-zero) bytes. */
function randomImage(pages: number, nonZero: number[], seed: number): Buffer {
  const rand = prng(seed);
  const b = Buffer.alloc(pages * P);
  for (const pg of nonZero) {
    for (let i = 0; i < P; i++) b[pg * P + i] = 1 + Math.floor(rand() * 255);
  }
  return b;
}

/** Records groups from scans given as page lists (scan i makes its pages resident). */
function record(pages: number, scans: number[][]): GroupRecorder {
  const rec = new GroupRecorder(pages);
  const vec = new Uint8Array(pages);
  for (const s of scans) {
    for (const pg of s) vec[pg] = 1;
    rec.addScan(vec);
  }
  return rec;
}

/** A snapshot dir with a memory file, a recording, and a built loading set. */
async function fixture(pages = 200) {
  const dir = freshDir();
  const nonZero = [...range(0, 10), ...range(50, 60), 100, 120, ...range(190, 200)];
  const mem = randomImage(pages, nonZero, pages);
  const memoryFilePath = join(dir, 'memory.bin');
  writeFileSync(memoryFilePath, mem);
  // Scan 0: the restore touched 0..3; scan 1: 50..55 and 120; scan 2: 4..9, 100, 199, and
  // 150 (resident but zero: not in the set).
  const rec = record(pages, [
    range(0, 4),
    [...range(50, 56), 120],
    [...range(4, 10), 100, 150, 199],
  ]);
  const scan = await scanFile(memoryFilePath, { intervalThreshold: 4 });
  const paths = { loadingSetPath: join(dir, 'ws.bin'), manifestPath: join(dir, 'ws.json') };
  const manifest = await buildLoadingSet({
    memoryFilePath,
    stateChecksum: STATE,
    groups: rec.groups,
    scans: rec.scans,
    scan,
    intervalThreshold: 4,
    ...paths,
  });
  return { dir, mem, memoryFilePath, manifest, ...paths };
}

test('the loading-set file holds the memory bytes of every region at its file offset', async () => {
  const f = await fixture();
  assert.deepEqual(
    f.manifest.regions.map((r) => [r.memOffset / P, r.length / P, r.group, r.fileOffset / P]),
    [
      [0, 10, 0, 0], // 0..3 in scan 0, 4..9 in scan 2: one region, earliest group
      [50, 6, 1, 10],
      [120, 1, 1, 16],
      [100, 1, 2, 17],
      [199, 1, 2, 18],
    ],
  );
  const file = readFileSync(f.loadingSetPath);
  assert.equal(file.length, 19 * P);
  assert.equal(f.manifest.file.size, 19 * P);
  for (const r of f.manifest.regions) {
    const want = f.mem.subarray(r.memOffset, r.memOffset + r.length);
    assert.ok(
      file.subarray(r.fileOffset, r.fileOffset + r.length).equals(want),
      `region at ${r.memOffset}`,
    );
  }
  assert.equal(f.manifest.file.sha256, createHash('sha256').update(file).digest('hex'));
  assert.equal(f.manifest.memorySize, 200 * P);
  assert.equal(f.manifest.stateChecksum, STATE);
  assert.deepEqual(f.manifest.recording, { scans: 3, intervalThreshold: 4 });
  assert.deepEqual(f.manifest.nonZero.regions, scanBuffer(f.mem, { intervalThreshold: 4 }).regions);
  assert.deepEqual(readdirSync(f.dir).sort(), ['memory.bin', 'ws.bin', 'ws.json']);
});

test('the manifest round-trips through its file and passes both checks', async () => {
  const f = await fixture();
  const read = await readLoadingSetManifest(f.manifestPath);
  assert.deepEqual(read, f.manifest);
  const fh = await openLoadingSet(read, {
    memorySize: 200 * P,
    stateChecksum: STATE,
    loadingSetPath: f.loadingSetPath,
  });
  await fh.close();
  await verifyLoadingSet(read, f);
});

test('a region larger than one copy chunk (8 MiB) is copied whole', async () => {
  const dir = freshDir();
  const pages = 2200;
  const mem = randomImage(pages, range(0, 2100), 5);
  const memoryFilePath = join(dir, 'memory.bin');
  writeFileSync(memoryFilePath, mem);
  const rec = record(pages, [range(0, pages)]);
  const manifest = await buildLoadingSet({
    memoryFilePath,
    stateChecksum: STATE,
    groups: rec.groups,
    scans: 1,
    scan: scanBuffer(mem),
    loadingSetPath: join(dir, 'ws.bin'),
    manifestPath: join(dir, 'ws.json'),
  });
  assert.deepEqual(manifest.regions, [{ memOffset: 0, length: 2100 * P, group: 0, fileOffset: 0 }]);
  assert.ok(readFileSync(join(dir, 'ws.bin')).equals(mem.subarray(0, 2100 * P)));
});

test('an empty loading set is a valid empty file', async () => {
  const dir = freshDir();
  const memoryFilePath = join(dir, 'memory.bin');
  writeFileSync(memoryFilePath, randomImage(8, [1], 1));
  const m = await buildLoadingSet({
    memoryFilePath,
    stateChecksum: STATE,
    groups: new GroupRecorder(8).groups,
    scans: 0,
    scan: await scanFile(memoryFilePath),
    loadingSetPath: join(dir, 'ws.bin'),
    manifestPath: join(dir, 'ws.json'),
  });
  assert.deepEqual(m.regions, []);
  assert.equal(readFileSync(join(dir, 'ws.bin')).length, 0);
  await verifyLoadingSet(m, { memoryFilePath, loadingSetPath: join(dir, 'ws.bin') });
});

test('stale loading sets are detected cheaply: other snapshot, memory size, file size', async () => {
  const f = await fixture();
  const cur = { memorySize: 200 * P, stateChecksum: STATE, loadingSetPath: f.loadingSetPath };
  await assert.rejects(
    openLoadingSet(f.manifest, { ...cur, stateChecksum: 'd1'.repeat(32) }),
    is('LOADING_SET_STALE', /recorded for snapshot c0c0/),
  );
  await assert.rejects(
    openLoadingSet(f.manifest, { ...cur, memorySize: 256 * P }),
    is('LOADING_SET_STALE'),
  );
  truncateSync(f.loadingSetPath, 18 * P);
  await assert.rejects(openLoadingSet(f.manifest, cur), is('LOADING_SET_STALE', /bytes/));
  rmSync(f.loadingSetPath);
  await assert.rejects(openLoadingSet(f.manifest, cur), is('SNAPSHOT_MISSING'));
});

test('a loading set is bound to its manifest by content, not size: a same-size re-record is refused', async () => {
  const f = await fixture();
  const cur = { memorySize: 200 * P, stateChecksum: STATE, loadingSetPath: f.loadingSetPath };
  const original = readFileSync(f.loadingSetPath);
  // A copy (another inode) with the same bytes is accepted on its sample hash.
  const copy = join(f.dir, 'copy.bin');
  writeFileSync(copy, original);
  await (await openLoadingSet(f.manifest, { ...cur, loadingSetPath: copy })).close();
  // The same size with other bytes, as a re-record renames into place, is refused.
  const other = Buffer.from(original);
  other[0]! ^= 0xff;
  other[other.length - 1]! ^= 0xff;
  writeFileSync(copy, other);
  await assert.rejects(
    openLoadingSet(f.manifest, { ...cur, loadingSetPath: copy }),
    is('LOADING_SET_STALE', /not the file its manifest was written for \(sample differs\)/),
  );
  // A manifest of an older build (no sample, no identity) is checked against the full hash.
  const old = structuredClone(f.manifest);
  delete old.file.sample;
  delete old.file.identity;
  other[0]! ^= 0xff;
  other[other.length - 1]! ^= 0xff;
  other[Math.floor(other.length / 2)]! ^= 0xff;
  writeFileSync(copy, other);
  await assert.rejects(
    openLoadingSet(old, { ...cur, loadingSetPath: copy }),
    is('LOADING_SET_STALE', /SHA-256 differs/),
  );
  // The file the recording wrote passes on its identity alone, without a read.
  assert.deepEqual(
    f.manifest.file.identity?.ino,
    String(statSync(f.loadingSetPath, { bigint: true }).ino),
  );
});

test('verifyLoadingSet catches changed bytes in the memory file or the loading-set file', async () => {
  const f = await fixture();
  // A change outside the loading set does not make it stale.
  const mem = readFileSync(f.memoryFilePath);
  mem[190 * P] = mem[190 * P]! ^ 0xff;
  writeFileSync(f.memoryFilePath, mem);
  await verifyLoadingSet(f.manifest, f);
  // Inside a loaded region it does.
  mem[50 * P + 7] = mem[50 * P + 7]! ^ 0xff;
  writeFileSync(f.memoryFilePath, mem);
  await assert.rejects(
    verifyLoadingSet(f.manifest, f),
    is('LOADING_SET_STALE', /memory file changed/),
  );
  mem[50 * P + 7] = mem[50 * P + 7]! ^ 0xff;
  writeFileSync(f.memoryFilePath, mem);
  const ls = readFileSync(f.loadingSetPath);
  ls[ls.length - 1] = ls[ls.length - 1]! ^ 1;
  writeFileSync(f.loadingSetPath, ls);
  await assert.rejects(
    verifyLoadingSet(f.manifest, f),
    is('LOADING_SET_STALE', /loading-set file/),
  );
  writeFileSync(f.memoryFilePath, Buffer.concat([mem, Buffer.alloc(P)]));
  await assert.rejects(verifyLoadingSet(f.manifest, f), is('LOADING_SET_STALE', /memory file has/));
});

test('manifests from disk are validated before use', async () => {
  const f = await fixture();
  const m = f.manifest;
  const broken: [string, unknown, ErrorCode][] = [
    ['not an object', 7, 'LOADING_SET_INVALID'],
    ['format', { ...m, format: 'x' }, 'LOADING_SET_INVALID'],
    ['extra field', { ...m, extra: 1 }, 'LOADING_SET_INVALID'],
    ['bad checksum', { ...m, stateChecksum: 'zz' }, 'LOADING_SET_INVALID'],
    ['group >= scans', { ...m, recording: { ...m.recording, scans: 2 } }, 'LOADING_SET_INVALID'],
    ['file size', { ...m, file: { ...m.file, size: m.file.size + P } }, 'LOADING_SET_INVALID'],
    ['memory size', { ...m, memorySize: 100 }, 'LOADING_SET_INVALID'],
    [
      'region past memory',
      { ...m, memorySize: 150 * P, nonZero: { ...m.nonZero, regions: [] } },
      'LOADING_SET_INVALID',
    ],
    [
      'file offsets',
      {
        ...m,
        regions: m.regions.map((r, i) => (i === 1 ? { ...r, fileOffset: r.fileOffset + P } : r)),
      },
      'LOADING_SET_INVALID',
    ],
    ['order', { ...m, regions: [...m.regions].reverse() }, 'LOADING_SET_INVALID'],
    [
      'non-zero overlap',
      {
        ...m,
        nonZero: {
          ...m.nonZero,
          regions: [
            { offset: 0, length: 2 * P },
            { offset: P, length: P },
          ],
        },
      },
      'LOADING_SET_INVALID',
    ],
    ['other version', { ...m, version: 3 }, 'LOADING_SET_STALE'],
    ['version as text', { ...m, version: '1' }, 'LOADING_SET_INVALID'],
  ];
  for (const [why, value, code] of broken)
    assert.throws(() => validateManifest(value), is(code), why);

  writeFileSync(f.manifestPath, '{"format":');
  await assert.rejects(
    readLoadingSetManifest(f.manifestPath),
    is('LOADING_SET_INVALID', /not JSON/),
  );
  await assert.rejects(readLoadingSetManifest(join(f.dir, 'none.json')), is('SNAPSHOT_MISSING'));
  await assert.rejects(
    writeLoadingSetManifest(f.manifestPath, { ...m, version: 3 } as unknown as LoadingSetManifest),
  );
  // Version 1 (packed regions, written by older builds) still reads.
  assert.equal(validateManifest({ ...m, version: 1 }).version, 1);
});

test('large regions sit 2 MiB-aligned in the file, over a hole; the bytes read back exact', async () => {
  const dir = freshDir();
  const pages = 2048; // 8 MiB
  // A small region read first (group 0), then a 4 MiB region holding two whole 2 MiB blocks at
  // guest 3 MiB (group 1), then a small one (group 2).
  const nonZero = [...range(4, 6), ...range(768, 1792), ...range(1900, 1903)];
  const mem = randomImage(pages, nonZero, 7);
  const memoryFilePath = join(dir, 'memory.bin');
  writeFileSync(memoryFilePath, mem);
  const rec = record(pages, [range(4, 6), range(768, 1792), range(1900, 1903)]);
  const paths = {
    memoryFilePath,
    loadingSetPath: join(dir, 'loading-set.bin'),
    manifestPath: join(dir, 'loading-set.json'),
  };
  const input = {
    ...paths,
    stateChecksum: STATE,
    groups: rec.groups,
    scans: rec.scans,
    scan: await scanFile(memoryFilePath),
  };
  const m = await buildLoadingSet(input);
  const MiB = 1 << 20;
  assert.deepEqual(
    m.regions.map((r) => [r.memOffset / P, r.length / P, r.fileOffset / P]),
    [
      [4, 2, 0],
      [768, 1024, MiB / P], // 3 MiB ≡ 1 MiB (mod 2 MiB): the hole is [2 pages, 1 MiB)
      [1900, 3, MiB / P + 1024],
    ],
  );
  assert.equal(m.version, 2);
  assert.equal(m.file.size, 5 * MiB + 3 * P);
  const file = readFileSync(paths.loadingSetPath);
  assert.equal(file.length, m.file.size);
  for (const r of m.regions) {
    const want = mem.subarray(r.memOffset, r.memOffset + r.length);
    assert.ok(file.subarray(r.fileOffset, r.fileOffset + r.length).equals(want));
  }
  // The hole holds no disk blocks (st_blocks counts 512-byte units; the data is ~4 MiB).
  assert.ok(statSync(paths.loadingSetPath).blocks * 512 < m.file.size - MiB / 2);
  // sha256 covers the regions' bytes, not the hole: a copy checked by the full hash passes.
  const data = Buffer.concat(
    m.regions.map((r) => mem.subarray(r.memOffset, r.memOffset + r.length)),
  );
  assert.equal(m.file.sha256, createHash('sha256').update(data).digest('hex'));
  await verifyLoadingSet(m, paths);
  const old = structuredClone(m);
  delete old.file.sample;
  delete old.file.identity;
  const copy = join(dir, 'copy.bin');
  writeFileSync(copy, file);
  const fh = await openLoadingSet(old, {
    memorySize: mem.length,
    stateChecksum: STATE,
    loadingSetPath: copy,
  });
  await fh.close();
  // Packed (alignHuge: false): back to back, as version 1 laid it out.
  const packed = await buildLoadingSet({ ...input, layout: { alignHuge: false } });
  assert.deepEqual(
    packed.regions.map((r) => r.fileOffset / P),
    [0, 2, 1026],
  );
});

test('a failed write keeps the old loading-set file; a failed build leaves no manifest', async () => {
  const f = await fixture();
  const before = readFileSync(f.loadingSetPath);
  const fail = {
    beforeRename: () => Promise.reject(Object.assign(new Error('x'), { code: 'ENOSPC' })),
  };
  const regions = layoutLoadingSet([{ memOffset: 0, length: P, group: 0 }]);
  await assert.rejects(
    writeLoadingSetFile(f.memoryFilePath, regions, f.loadingSetPath, fail),
    is('SNAPSHOT_IO', /ENOSPC/),
  );
  assert.ok(readFileSync(f.loadingSetPath).equals(before));
  assert.deepEqual(readdirSync(f.dir).sort(), ['memory.bin', 'ws.bin', 'ws.json']);

  // Rebuild, failing at the manifest: the new file is in place but no manifest claims it.
  const rec = record(200, [[100]]);
  await assert.rejects(
    buildLoadingSet({
      memoryFilePath: f.memoryFilePath,
      stateChecksum: STATE,
      groups: rec.groups,
      scans: 1,
      scan: await scanFile(f.memoryFilePath),
      loadingSetPath: f.loadingSetPath,
      manifestPath: f.manifestPath,
      hooks: { beforeRename: (tmp) => (tmp.includes('ws.json') ? fail.beforeRename() : undefined) },
    }),
    is('SNAPSHOT_IO'),
  );
  await assert.rejects(readLoadingSetManifest(f.manifestPath), is('SNAPSHOT_MISSING'));
  assert.deepEqual(readdirSync(f.dir).sort(), ['memory.bin', 'ws.bin']);
});

test('writeLoadingSetFile refuses regions outside the memory file and a mismatched scan', async () => {
  const f = await fixture();
  const far = layoutLoadingSet([{ memOffset: 200 * P, length: P, group: 0 }]);
  await assert.rejects(
    writeLoadingSetFile(f.memoryFilePath, far, join(f.dir, 'x.bin')),
    is('INVALID_LOADER_OPTIONS', /past the memory size/),
  );
  const rec = record(100, [[1]]);
  await assert.rejects(
    buildLoadingSet({
      memoryFilePath: f.memoryFilePath,
      stateChecksum: STATE,
      groups: rec.groups,
      scans: 1,
      scan: scanBuffer(Buffer.alloc(100 * P)),
      loadingSetPath: join(f.dir, 'y.bin'),
      manifestPath: join(f.dir, 'y.json'),
    }),
    is('SNAPSHOT_MEMORY_MISMATCH'),
  );
  assert.deepEqual(readdirSync(f.dir).sort(), ['memory.bin', 'ws.bin', 'ws.json']);
});
