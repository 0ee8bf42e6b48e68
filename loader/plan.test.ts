import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isFaasnapError } from '../common/errors.js';
import { NO_GROUP } from './groups.js';
import {
  computeLoadingSet,
  layoutLoadingSet,
  loadingSetFileSize,
  loadingSetSize,
  type LoadingSetRegion,
} from './loading-set.js';
import {
  FAASNAP_VARIANTS,
  PrefetchTargets,
  mappingPlan,
  prefetchPlan,
  type MapOp,
} from './plan.js';
import { nonZeroPages, scanBuffer } from './regions.js';
import { P, prng } from './fixtures.js';

const MiB = 1 << 20;
/** Ops as [kind, firstPage, pages, filePage] tuples. */
const tuples = (ops: MapOp[]): [string, number, number, number][] =>
  ops.map((o) => [o.kind, o.guestOffset / P, o.length / P, o.fileOffset / P]);

// 64 pages; non-zero regions [2,10) and [40,48); loading set: [4,6) group 0, [40,42) group 1,
// and [10,12) group 1 — the last lies in a zero gap absorbed by the loading set.
const SIZE = 64 * P;
const NON_ZERO = [
  { offset: 2 * P, length: 8 * P },
  { offset: 40 * P, length: 8 * P },
];
const LS: LoadingSetRegion[] = layoutLoadingSet([
  { memOffset: 40 * P, length: 2 * P, group: 1 },
  { memOffset: 4 * P, length: 2 * P, group: 0 },
  { memOffset: 10 * P, length: 2 * P, group: 1 },
]);

test('faasnap: anonymous base, memory file per non-zero region, loading set on top', () => {
  assert.deepEqual(
    tuples(
      LS.map((r) => ({
        kind: 'loadset',
        guestOffset: r.memOffset,
        length: r.length,
        fileOffset: r.fileOffset,
      })),
    ),
    [
      ['loadset', 4, 2, 0],
      ['loadset', 10, 2, 2],
      ['loadset', 40, 2, 4],
    ],
  );
  const plan = [
    ['anon', 0, 64, 0],
    ['memfile', 2, 8, 2],
    ['memfile', 40, 8, 40],
    ['loadset', 4, 2, 0],
    ['loadset', 10, 2, 2],
    ['loadset', 40, 2, 4],
  ];
  assert.deepEqual(tuples(mappingPlan(SIZE, NON_ZERO, LS)), plan);
  assert.deepEqual(tuples(mappingPlan(SIZE, NON_ZERO, LS, 'no-paging')), plan);
});

test('no-regions maps the whole memory file instead of per region', () => {
  assert.deepEqual(tuples(mappingPlan(SIZE, NON_ZERO, LS, 'no-regions')), [
    ['anon', 0, 64, 0],
    ['memfile', 0, 64, 0],
    ['loadset', 4, 2, 0],
    ['loadset', 10, 2, 2],
    ['loadset', 40, 2, 4],
  ]);
});

test('no-compact-file maps loading-set regions from the memory file, coalesced', () => {
  // [2,10) and the absorbed [10,12) touch: one mapping [2,12); [40,42) is inside [40,48).
  assert.deepEqual(tuples(mappingPlan(SIZE, NON_ZERO, LS, 'no-compact-file')), [
    ['anon', 0, 64, 0],
    ['memfile', 2, 10, 2],
    ['memfile', 40, 8, 40],
  ]);
});

test('empty inputs: only the anonymous base (plus the whole file for no-regions)', () => {
  assert.deepEqual(tuples(mappingPlan(SIZE, [], [])), [['anon', 0, 64, 0]]);
  assert.deepEqual(tuples(mappingPlan(SIZE, [], [], 'no-regions')), [
    ['anon', 0, 64, 0],
    ['memfile', 0, 64, 0],
  ]);
});

test('boundaries split ops so none crosses a host region', () => {
  const ops = mappingPlan(SIZE, NON_ZERO, LS, 'faasnap', { boundaries: [5 * P, 44 * P, 0, SIZE] });
  assert.deepEqual(tuples(ops), [
    ['anon', 0, 5, 0],
    ['anon', 5, 39, 0],
    ['anon', 44, 20, 0],
    ['memfile', 2, 3, 2],
    ['memfile', 5, 5, 5],
    ['memfile', 40, 4, 40],
    ['memfile', 44, 4, 44],
    ['loadset', 4, 1, 0],
    ['loadset', 5, 1, 1],
    ['loadset', 10, 2, 2],
    ['loadset', 40, 2, 4],
  ]);
  assert.throws(
    () => mappingPlan(SIZE, NON_ZERO, LS, 'faasnap', { boundaries: [100] }),
    (e: unknown) => isFaasnapError(e, 'INVALID_LOADER_OPTIONS'),
  );
});

test('bad input is refused with a typed error', () => {
  const code = (c: 'INVALID_LOADER_OPTIONS' | 'LOADING_SET_INVALID') => (e: unknown) =>
    isFaasnapError(e, c);
  assert.throws(() => mappingPlan(SIZE + 1, [], []), code('INVALID_LOADER_OPTIONS'));
  assert.throws(
    () => mappingPlan(SIZE, [{ offset: 0, length: 100 }], []),
    code('INVALID_LOADER_OPTIONS'),
  );
  assert.throws(
    () => mappingPlan(SIZE, [...NON_ZERO].reverse(), []),
    code('INVALID_LOADER_OPTIONS'),
  );
  assert.throws(
    () => mappingPlan(SIZE, [], [LS[0]!, { ...LS[1]!, fileOffset: 0 }]),
    code('LOADING_SET_INVALID'),
  );
  assert.throws(
    () => mappingPlan(SIZE, [], [], 'lazy' as 'faasnap'),
    code('INVALID_LOADER_OPTIONS'),
  );
  assert.throws(
    () => prefetchPlan(LS, 'faasnap', { chunkSize: 1000 }),
    code('INVALID_LOADER_OPTIONS'),
  );
});

/** The loading-set file's bytes for `set` (holes zero), as writeLoadingSetFile writes them. */
function loadingSetFile(mem: Buffer, set: readonly LoadingSetRegion[]): Buffer {
  const file = Buffer.alloc(loadingSetFileSize(set));
  for (const r of set) mem.copy(file, r.fileOffset, r.memOffset, r.memOffset + r.length);
  return file;
}

/** Executes a plan in JS: what each guest byte reads after the mmaps. */
function execute(ops: MapOp[], size: number, mem: Buffer, ls: Buffer): Buffer {
  const guest = Buffer.alloc(size);
  for (const o of ops) {
    const src = o.kind === 'anon' ? Buffer.alloc(o.length) : o.kind === 'memfile' ? mem : ls;
    const from = o.kind === 'anon' ? 0 : o.fileOffset;
    assert.ok(from + o.length <= src.length, `${o.kind} op reads past its file`);
    src.copy(guest, o.guestOffset, from, from + o.length);
  }
  return guest;
}

test('every variant rebuilds exactly the memory image (randomised)', () => {
  const rand = prng(99);
  let aligned = 0; // rounds whose loading-set file has a hole
  for (let round = 0; round < 100; round++) {
    // Every 4th round is large and dense enough for regions that hold whole 2 MiB blocks (laid
    // out 2 MiB-aligned in the loading-set file).
    const large = round % 4 === 0;
    const pages = large ? 512 + Math.floor(rand() * 1600) : 1 + Math.floor(rand() * 120);
    const mem = Buffer.alloc(pages * P);
    const density = large ? 0.9 + rand() / 10 : rand();
    for (let pg = 0; pg < pages; pg++) {
      // In large rounds a zero gap at pages [100, 140) splits the regions, so the one after it
      // is not congruent to its file offset by chance.
      if (large && pg >= 100 && pg < 140) continue;
      if (rand() < density)
        mem.writeUInt32LE(
          1 + Math.floor(rand() * 0xfffffffe),
          pg * P + Math.floor(rand() * 1023) * 4,
        );
    }
    const scan = scanBuffer(mem, {
      intervalThreshold: (large ? 3 : 0) + Math.floor(rand() * 8),
      sizeThreshold: 0, // dropping regions would drop data: restore correctness needs 0
    });
    const groups = new Int32Array(pages).fill(NO_GROUP);
    for (let pg = 0; pg < pages; pg++)
      if (rand() < (large ? 0.95 : 0.5)) groups[pg] = Math.floor(rand() * 4);
    const set = computeLoadingSet(groups, nonZeroPages(scan), {
      intervalThreshold: (large ? 3 : 0) + Math.floor(rand() * 8),
    });
    const lsFile = loadingSetFile(mem, set);
    if (loadingSetFileSize(set) > loadingSetSize(set)) aligned++; // the file has a hole
    const bounds = [Math.floor(rand() * pages) * P];
    for (const v of FAASNAP_VARIANTS) {
      const ops = mappingPlan(pages * P, scan.regions, set, v, { boundaries: bounds });
      assert.ok(execute(ops, pages * P, mem, lsFile).equals(mem), `round ${round} ${v}`);
    }
  }
  assert.ok(aligned >= 5, `only ${aligned} rounds had 2 MiB-aligned regions`);
});

test('prefetch reads the loading-set file front to back in chunks, skipping its holes', () => {
  // Guest [8 MiB, +2 MiB+P) at file 0 (group 0); guest [0, 3 MiB) holds the block [0, 2 MiB), so
  // it starts at the next 2 MiB-aligned file offset, 4 MiB, over a hole.
  const big = layoutLoadingSet([
    { memOffset: 0, length: 3 * MiB, group: 1 },
    { memOffset: 8 * MiB, length: 2 * MiB + P, group: 0 },
  ]);
  assert.deepEqual(
    prefetchPlan(big).map((r) => [r.source, r.fileOffset, r.length]),
    [
      ['loadset', 0, 2 * MiB],
      ['loadset', 2 * MiB, P],
      ['loadset', 4 * MiB, 2 * MiB],
      ['loadset', 6 * MiB, MiB],
    ],
  );
  const packed = layoutLoadingSet(
    [
      { memOffset: 0, length: 3 * MiB, group: 1 },
      { memOffset: 8 * MiB, length: 2 * MiB + P, group: 0 },
    ],
    { alignHuge: false },
  );
  assert.deepEqual(
    prefetchPlan(packed).map((r) => [r.source, r.fileOffset, r.length]),
    [
      ['loadset', 0, 2 * MiB],
      ['loadset', 2 * MiB, 2 * MiB],
      ['loadset', 4 * MiB, MiB + P],
    ],
  );
  assert.deepEqual(prefetchPlan(big, 'no-regions'), prefetchPlan(big));
  assert.deepEqual(prefetchPlan(big, 'no-paging'), []);
  assert.deepEqual(prefetchPlan([]), []);
  // Without the compact file the loader reads the memory file at the regions, in group order.
  assert.deepEqual(
    prefetchPlan(big, 'no-compact-file').map((r) => [r.source, r.fileOffset, r.length]),
    [
      ['memfile', 8 * MiB, 2 * MiB],
      ['memfile', 10 * MiB, P],
      ['memfile', 0, 2 * MiB],
      ['memfile', 2 * MiB, MiB],
    ],
  );
  assert.deepEqual(
    prefetchPlan(LS, 'faasnap', { chunkSize: 4 * P }).map((r) => [r.fileOffset / P, r.length / P]),
    [
      [0, 4],
      [4, 2],
    ],
  );
});

test('prefetch targets: each read maps back to the guest ranges its bytes are mapped at', () => {
  // Loading set: guest [8 MiB, +2 MiB+P) at file 0 (group 0), guest [0, 3 MiB) at file 2 MiB+P
  // (packed, so one read spans both regions).
  const set = layoutLoadingSet(
    [
      { memOffset: 0, length: 3 * MiB, group: 1 },
      { memOffset: 8 * MiB, length: 2 * MiB + P, group: 0 },
    ],
    { alignHuge: false },
  );
  const nonZero = [{ offset: 0, length: 16 * MiB }];
  const plan = mappingPlan(16 * MiB, nonZero, set, 'faasnap', { boundaries: [MiB] });
  const targets = new PrefetchTargets(plan);
  const ranges = (r: ReturnType<typeof prefetchPlan>[number]): number[][] =>
    targets.of(r).map((t) => [t.guestOffset / P, t.length / P]);
  assert.deepEqual(prefetchPlan(set).map(ranges), [
    [[(8 * MiB) / P, 512]],
    // The second chunk ends region 0 (one page) and starts region 1, which the 1 MiB boundary cut.
    [
      [(10 * MiB) / P, 1],
      [0, 256],
      [MiB / P, 255],
    ],
    [[(MiB + 255 * P) / P, 257]],
  ]);
  // Every byte the loader reads is mapped somewhere, once.
  const total = (v: 'faasnap' | 'no-compact-file'): number => {
    const t = new PrefetchTargets(mappingPlan(16 * MiB, nonZero, set, v));
    return prefetchPlan(set, v)
      .flatMap((r) => t.of(r))
      .reduce((n, x) => n + x.length, 0);
  };
  assert.equal(total('faasnap'), 5 * MiB + P);
  // Without the compact file the memory file is mapped as one coalesced region: reads land at
  // their own offsets.
  const nc = mappingPlan(16 * MiB, nonZero, set, 'no-compact-file');
  assert.deepEqual(
    prefetchPlan(set, 'no-compact-file').map((r) => new PrefetchTargets(nc).of(r)),
    prefetchPlan(set, 'no-compact-file').map((r) => [
      { guestOffset: r.fileOffset, length: r.length },
    ]),
  );
  assert.equal(total('no-compact-file'), 5 * MiB + P);
  assert.deepEqual(new PrefetchTargets(plan).of({ source: 'memfile', fileOffset: 0, length: P }), [
    { guestOffset: 0, length: P },
  ]);
});
