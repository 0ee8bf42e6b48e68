import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isFaasnapError } from '../common/errors.js';
import { nonZeroPages, scanBuffer, scanFile } from './regions.js';
import { P, image, prng, range } from './fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'faasnap-regions-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Regions as [firstPage, pageCount] pairs: easier to read than byte offsets. */
const pages = (img: Buffer, opts = {}): [number, number][] =>
  scanBuffer(img, opts).regions.map((r) => [r.offset / P, r.length / P]);

test('all-zero image has no regions; all-non-zero image is one region', () => {
  const zero = scanBuffer(image(64, []));
  assert.deepEqual(zero.regions, []);
  assert.equal(zero.nonZeroBlocks, 0);
  assert.equal(zero.blocks.length, 64);
  const full = scanBuffer(image(64, range(0, 64)));
  assert.deepEqual(full.regions, [{ offset: 0, length: 64 * P }]);
  assert.equal(full.nonZeroBlocks, 64);
});

test('single-page images', () => {
  assert.deepEqual(pages(image(1, [0])), [[0, 1]]);
  assert.deepEqual(pages(image(1, [])), []);
  assert.deepEqual(scanBuffer(new Uint8Array(0)).regions, []);
});

test('non-zero pages at the very start and the very end', () => {
  assert.deepEqual(pages(image(100, [0, 99])), [
    [0, 1],
    [99, 1],
  ]);
  // A byte in the last position of the last page only.
  const img = Buffer.alloc(10 * P);
  img[10 * P - 1] = 1;
  assert.deepEqual(pages(img), [[9, 1]]);
});

test('zero gaps just under the interval threshold merge, at the threshold they split', () => {
  // Default threshold 32: gap of 31 pages (pages 1..31) merges, 32 pages do not.
  assert.deepEqual(pages(image(80, [0, 32])), [[0, 33]]);
  assert.deepEqual(pages(image(80, [0, 33])), [
    [0, 1],
    [33, 1],
  ]);
  // A custom threshold.
  const img = image(40, [...range(2, 5), ...range(8, 10), ...range(14, 15), 39]);
  assert.deepEqual(pages(img, { intervalThreshold: 4 }), [
    [2, 8],
    [14, 1],
    [39, 1],
  ]);
  assert.deepEqual(pages(img, { intervalThreshold: 5 }), [
    [2, 13],
    [39, 1],
  ]);
  // Threshold 0: no merging, adjacent non-zero pages are still one run.
  assert.deepEqual(pages(image(8, [1, 2, 4]), { intervalThreshold: 0 }), [
    [1, 2],
    [4, 1],
  ]);
  assert.deepEqual(pages(image(8, [1, 2, 4]), { intervalThreshold: 1 }), [
    [1, 2],
    [4, 1],
  ]);
  assert.deepEqual(pages(image(8, [1, 2, 4]), { intervalThreshold: 2 }), [[1, 4]]);
});

test('sizeThreshold drops short regions, after merging', () => {
  const img = image(200, [...range(0, 2), ...range(100, 103), 150, 160]);
  assert.deepEqual(pages(img, { sizeThreshold: 3 }), [
    [100, 3],
    [150, 11],
  ]);
  assert.deepEqual(pages(img, { sizeThreshold: 4 }), [[150, 11]]);
  assert.deepEqual(pages(img, { sizeThreshold: 12 }), []);
  assert.deepEqual(pages(img, { sizeThreshold: 0 }).length, 3);
});

test('larger filesystem blocks: a non-zero page marks its whole block', () => {
  const s = scanBuffer(image(8, [3]), { blockSize: 2 * P, intervalThreshold: 0 });
  assert.deepEqual([...s.blocks], [0, 1, 0, 0]);
  assert.deepEqual(s.regions, [{ offset: 2 * P, length: 2 * P }]);
  assert.deepEqual([...nonZeroPages(s)], [0, 0, 1, 1, 0, 0, 0, 0]);
  // A partial last block: the region ends at the image size.
  const t = scanBuffer(image(3, [2]), { blockSize: 2 * P });
  assert.deepEqual(t.regions, [{ offset: 2 * P, length: P }]);
  assert.deepEqual([...nonZeroPages(t)], [0, 0, 1]);
});

test('scanFile matches scanBuffer across chunk boundaries', async () => {
  const rand = prng(7);
  const nz = range(0, 300).filter(() => rand() < 0.2);
  const img = image(300, nz);
  const path = join(dir, 'mem.bin');
  writeFileSync(path, img);
  for (const chunkSize of [P, 3 * P, 64 * P, 1 << 20]) {
    const f = await scanFile(path, { chunkSize, intervalThreshold: 3 });
    const b = scanBuffer(img, { intervalThreshold: 3 });
    assert.deepEqual(f.regions, b.regions, `chunk ${chunkSize}`);
    assert.deepEqual([...f.blocks], [...b.blocks]);
    assert.equal(f.nonZeroBlocks, nz.length);
    assert.equal(f.size, 300 * P);
  }
  writeFileSync(path, Buffer.alloc(0));
  assert.deepEqual((await scanFile(path)).regions, []);
  await assert.rejects(scanFile(join(dir, 'missing.bin')), (e: unknown) =>
    isFaasnapError(e, 'SNAPSHOT_MISSING'),
  );
});

/** The definition, written the slow obvious way, to cross-check the scanner. */
function reference(img: Buffer, interval: number, minSize: number): [number, number][] {
  const n = img.length / P;
  const nz = range(0, n).map((pg) => img.subarray(pg * P, (pg + 1) * P).some((x) => x !== 0));
  const runs: [number, number][] = [];
  for (let pg = 0; pg < n; pg++) {
    if (!nz[pg]) continue;
    const last = runs[runs.length - 1];
    const gap = last ? pg - (last[0] + last[1]) : -1;
    if (last && (gap === 0 || gap < interval)) last[1] = pg + 1 - last[0];
    else runs.push([pg, 1]);
  }
  return runs.filter((r) => r[1] >= minSize);
}

test('randomised images agree with the reference definition', () => {
  const rand = prng(42);
  for (let round = 0; round < 200; round++) {
    const n = 1 + Math.floor(rand() * 200);
    const density = rand();
    const clump = rand() < 0.5;
    const nz: number[] = [];
    for (let pg = 0; pg < n; pg++) {
      if (rand() < (clump ? density * density : density / 4)) nz.push(pg);
    }
    const interval = Math.floor(rand() * 40);
    const minSize = Math.floor(rand() * 5);
    const img = image(n, nz);
    assert.deepEqual(
      pages(img, { intervalThreshold: interval, sizeThreshold: minSize }),
      reference(img, interval, minSize),
      `round ${round}`,
    );
  }
});

test('invalid options are INVALID_LOADER_OPTIONS', () => {
  const bad = (e: unknown): boolean => isFaasnapError(e, 'INVALID_LOADER_OPTIONS');
  const img = image(4, [1]);
  for (const opts of [
    { blockSize: 2048 },
    { blockSize: 12288 },
    { intervalThreshold: -1 },
    { sizeThreshold: 1.5 },
    { chunkSize: P + 1 },
  ]) {
    assert.throws(() => scanBuffer(img, opts), bad, JSON.stringify(opts));
  }
});

test('scanFile refuses a directory', async () => {
  await assert.rejects(scanFile(dir), (e: unknown) =>
    isFaasnapError(e, 'SNAPSHOT_MEMORY_MISMATCH'),
  );
});
