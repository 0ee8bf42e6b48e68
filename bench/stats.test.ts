import assert from 'node:assert/strict';
import { test } from 'node:test';
import { limitDistances, summarize } from './stats.js';

test('summarize interpolates quantiles over sorted samples', () => {
  const s = summarize([5, 1, 4, 2, 3]);
  assert.deepEqual(s, { n: 5, median: 3, p10: 1.4, p90: 4.6, min: 1, max: 5 });
  assert.equal(summarize([7]).median, 7);
  assert.ok(Number.isNaN(summarize([]).median));
});

test('limitDistances: each mode against max(warm, read)', () => {
  const d = limitDistances({ cached: 120, faasnap: 150, broken: NaN }, { readMs: 100, warmMs: 80 });
  assert.deepEqual(d, {
    cached: { limitMs: 100, distanceMs: 20, ratio: 1.2 },
    faasnap: { limitMs: 100, distanceMs: 50, ratio: 1.5 },
  });
  // The larger bound wins, whichever it is; a missing one is ignored.
  assert.equal(limitDistances({ a: 90 }, { readMs: 30, warmMs: 60 }).a!.distanceMs, 30);
  assert.equal(limitDistances({ a: 90 }, { readMs: 30 }).a!.limitMs, 30);
  assert.equal(limitDistances({ a: 90 }, { warmMs: NaN, readMs: 45 }).a!.ratio, 2);
  assert.deepEqual(limitDistances({ a: 90 }, {}), {});
});
