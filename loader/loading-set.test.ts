import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isFaasnapError } from '../common/errors.js';
import { NO_GROUP } from './groups.js';
import {
  checkLoadingSetLayout,
  computeLoadingSet,
  layoutLoadingSet,
  loadingSetSize,
  loadingSetFileRanges,
  loadingSetFileSize,
  holdsHugeBlock,
  type LoadingSetRegion,
} from './loading-set.js';
import { P, prng, range } from './fixtures.js';

/** Per-page inputs from {page: group} and a list of non-zero pages. */
function inputs(pages: number, groupOf: Record<number, number>, nonZero: number[]) {
  const groups = new Int32Array(pages).fill(NO_GROUP);
  for (const [pg, g] of Object.entries(groupOf)) groups[Number(pg)] = g;
  const nz = new Uint8Array(pages);
  for (const pg of nonZero) nz[pg] = 1;
  return { groups, nz };
}

/** [firstPage, pages, group, fileOffsetInPages] tuples: easier to read than bytes. */
const tuples = (rs: LoadingSetRegion[]): number[][] =>
  rs.map((r) => [r.memOffset / P, r.length / P, r.group, r.fileOffset / P]);

test('members are pages with a group AND non-zero; gaps under the threshold are absorbed', () => {
  const { groups, nz } = inputs(
    40,
    { 2: 3, 3: 1, 5: 2, 10: 0, 12: 5, 13: 4, 20: 2, 21: 2, 39: 1 },
    [2, 3, 4, 5, 10, 13, 20, 21, 30, 39], // 4 and 30: non-zero, never resident; 12: resident, zero
  );
  const ls = computeLoadingSet(groups, nz, { intervalThreshold: 4 });
  assert.deepEqual(tuples(ls), [
    [10, 4, 0, 0], // 10 + gap 11..12 (2 pages, 12 is zero) + 13; group min(0, 4)
    [2, 4, 1, 4], // 2,3,(4 absorbed),5: spans groups 3,1,2 → earliest, 1
    [39, 1, 1, 8], // same group as [2..6): ordered by offset
    [20, 2, 2, 9], // gap 14..19 is 6 pages: not absorbed
  ]);
  assert.equal(loadingSetSize(ls), 11 * P);
});

test('a gap of exactly the threshold splits, one page shorter merges', () => {
  const { groups, nz } = inputs(100, { 0: 0, 33: 0, 70: 0 }, [0, 33, 70]);
  // Default threshold 32: gap 1..32 (32 pages) splits, 34..69 splits.
  assert.deepEqual(tuples(computeLoadingSet(groups, nz)), [
    [0, 1, 0, 0],
    [33, 1, 0, 1],
    [70, 1, 0, 2],
  ]);
  assert.deepEqual(tuples(computeLoadingSet(groups, nz, { intervalThreshold: 33 })), [
    [0, 34, 0, 0],
    [70, 1, 0, 34],
  ]);
  // Threshold 0: only directly adjacent members form one region.
  const a = inputs(6, { 1: 2, 2: 1, 4: 0 }, [1, 2, 4]);
  assert.deepEqual(tuples(computeLoadingSet(a.groups, a.nz, { intervalThreshold: 0 })), [
    [4, 1, 0, 0],
    [1, 2, 1, 1],
  ]);
});

test('edges: members at the first and last page, nothing resident, nothing non-zero', () => {
  const e = inputs(8, { 0: 1, 7: 0 }, [0, 7]);
  assert.deepEqual(tuples(computeLoadingSet(e.groups, e.nz, { intervalThreshold: 2 })), [
    [7, 1, 0, 0],
    [0, 1, 1, 1],
  ]);
  assert.deepEqual(tuples(computeLoadingSet(e.groups, e.nz, { intervalThreshold: 7 })), [
    [0, 8, 0, 0],
  ]);
  const none = inputs(8, {}, range(0, 8));
  assert.deepEqual(computeLoadingSet(none.groups, none.nz), []);
  const zero = inputs(8, { 0: 0, 1: 0, 2: 0 }, []);
  assert.deepEqual(computeLoadingSet(zero.groups, zero.nz), []);
  assert.deepEqual(computeLoadingSet(new Int32Array(0), new Uint8Array(0)), []);
  assert.throws(
    () => computeLoadingSet(new Int32Array(4), new Uint8Array(5)),
    (err: unknown) => isFaasnapError(err, 'INVALID_LOADER_OPTIONS'),
  );
});

test('layout sorts by (group, offset) and accumulates file offsets', () => {
  const laid = layoutLoadingSet([
    { memOffset: 9 * P, length: P, group: 1 },
    { memOffset: 0, length: 3 * P, group: 2 },
    { memOffset: 5 * P, length: 2 * P, group: 1 },
    { memOffset: 20 * P, length: 4 * P, group: 0 },
  ]);
  assert.deepEqual(tuples(laid), [
    [20, 4, 0, 0],
    [5, 2, 1, 4],
    [9, 1, 1, 6],
    [0, 3, 2, 7],
  ]);
  checkLoadingSetLayout(laid, 24 * P);
});

/** The definition, the slow obvious way. */
function reference(groups: Int32Array, nz: Uint8Array, interval: number): number[][] {
  const member = (p: number): boolean => groups[p] !== NO_GROUP && nz[p] === 1;
  const runs: { first: number; last: number; group: number }[] = [];
  for (let p = 0; p < groups.length; p++) {
    if (!member(p)) continue;
    const cur = runs[runs.length - 1];
    const gap = cur ? p - cur.last - 1 : -1;
    if (cur && (gap === 0 || gap < interval)) {
      cur.last = p;
      cur.group = Math.min(cur.group, groups[p]!);
    } else runs.push({ first: p, last: p, group: groups[p]! });
  }
  runs.sort((a, b) => a.group - b.group || a.first - b.first);
  let file = 0;
  return runs.map((r) => {
    const n = r.last - r.first + 1;
    file += n;
    return [r.first, n, r.group, file - n];
  });
}

test('randomised inputs agree with the reference definition', () => {
  const rand = prng(1234);
  for (let round = 0; round < 300; round++) {
    const n = Math.floor(rand() * 150);
    const groups = new Int32Array(n).fill(NO_GROUP);
    const nz = new Uint8Array(n);
    const pResident = rand();
    for (let p = 0; p < n; p++) {
      if (rand() < pResident) groups[p] = Math.floor(rand() * 6);
      if (rand() < 0.7) nz[p] = 1;
    }
    const interval = Math.floor(rand() * 10);
    const ls = computeLoadingSet(groups, nz, { intervalThreshold: interval });
    assert.deepEqual(tuples(ls), reference(groups, nz, interval), `round ${round}`);
    checkLoadingSetLayout(ls, Math.max(n, 1) * P);
  }
});

test('regions holding a whole 2 MiB block start at file offsets congruent mod 2 MiB', () => {
  const MiB = 1 << 20;
  const regions = [
    { memOffset: 4 * P, length: P, group: 0 },
    { memOffset: 3 * MiB, length: 3 * MiB, group: 1 }, // holds [4 MiB, 6 MiB)
    { memOffset: 9 * MiB + P, length: 2 * MiB, group: 1 }, // no whole aligned block: packed
    { memOffset: 16 * MiB - P, length: 2 * MiB + P, group: 2 }, // holds [16 MiB, 18 MiB)
  ];
  const set = layoutLoadingSet(regions);
  assert.deepEqual(
    set.map((r) => r.fileOffset),
    [0, MiB, 4 * MiB, 8 * MiB - P],
  );
  for (const r of set) {
    if (holdsHugeBlock(r.memOffset, r.length))
      assert.equal((r.memOffset - r.fileOffset) % (2 * MiB), 0);
  }
  checkLoadingSetLayout(set, 32 * MiB);
  assert.equal(loadingSetSize(set), P + 7 * MiB + P);
  assert.equal(loadingSetFileSize(set), 10 * MiB);
  assert.deepEqual(loadingSetFileRanges(set), [
    { fileOffset: 0, length: P },
    { fileOffset: MiB, length: 5 * MiB },
    { fileOffset: 8 * MiB - P, length: 2 * MiB + P },
  ]);
  assert.equal(holdsHugeBlock(2 * MiB, 2 * MiB), true);
  assert.equal(holdsHugeBlock(2 * MiB + P, 2 * MiB), false);
  assert.equal(holdsHugeBlock(2 * MiB - P, 2 * MiB), false);
  const packed = layoutLoadingSet(regions, { alignHuge: false });
  assert.deepEqual(
    packed.map((r) => r.fileOffset),
    [0, P, 3 * MiB + P, 5 * MiB + P],
  );
  assert.equal(loadingSetFileSize(packed), loadingSetSize(packed));
});

test('checkLoadingSetLayout refuses every broken layout', () => {
  const good: LoadingSetRegion[] = [
    { memOffset: 4 * P, length: P, group: 0, fileOffset: 0 },
    { memOffset: 0, length: 2 * P, group: 1, fileOffset: P },
  ];
  checkLoadingSetLayout(good, 8 * P);
  const broken: [string, LoadingSetRegion[], number][] = [
    ['misaligned', [{ ...good[0]!, memOffset: 100 }], 8 * P],
    ['empty', [{ ...good[0]!, length: 0 }], 8 * P],
    ['past the end', good, 4 * P],
    ['overlap', [good[0]!, { ...good[1]!, memOffset: 4 * P }], 8 * P],
    ['order', [good[1]!, good[0]!], 8 * P],
    ['file overlap', [good[0]!, { ...good[1]!, fileOffset: 0 }], 8 * P],
    ['file offset not whole pages', [{ ...good[0]!, fileOffset: 100 }], 8 * P],
    ['negative group', [{ ...good[0]!, group: -1 }], 8 * P],
  ];
  for (const [why, rs, size] of broken) {
    assert.throws(
      () => checkLoadingSetLayout(rs, size),
      (e: unknown) => isFaasnapError(e, 'LOADING_SET_INVALID'),
      why,
    );
  }
});
