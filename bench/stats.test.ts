import assert from 'node:assert/strict';
import { test } from 'node:test';
import { summarize } from './stats.js';

test('summarize interpolates quantiles over sorted samples', () => {
  const s = summarize([5, 1, 4, 2, 3]);
  assert.deepEqual(s, { n: 5, median: 3, p10: 1.4, p90: 4.6, min: 1, max: 5 });
  assert.equal(summarize([7]).median, 7);
  assert.ok(Number.isNaN(summarize([]).median));
});
