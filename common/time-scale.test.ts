import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isFaasnapError } from './errors.js';
import { parseTimeScale } from './time-scale.js';

test('the time scale is 1 unless set, and only a number in 1..1000', () => {
  assert.equal(parseTimeScale(undefined), 1);
  assert.equal(parseTimeScale(''), 1);
  assert.equal(parseTimeScale('10'), 10);
  assert.equal(parseTimeScale('2.5'), 2.5);
  for (const bad of ['0', '0.5', 'fast', '1e9', 'NaN'])
    assert.throws(
      () => parseTimeScale(bad),
      (e) => isFaasnapError(e, 'INVALID_VM_CONFIG'),
      bad,
    );
});
