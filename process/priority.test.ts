import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mayRaisePriorityTo } from './priority.js';

const status = (capEff: string): string => `Name:\tnode\nCapPrm:\t${capEff}\nCapEff:\t${capEff}\n`;
const limits = (soft: string): string =>
  `Limit                     Soft Limit           Hard Limit           Units     \n` +
  `Max nice priority         ${soft.padEnd(21)}${soft.padEnd(21)}\n`;

test('CAP_SYS_NICE allows raising a priority whatever the limit', () => {
  assert.equal(mayRaisePriorityTo(0, status('000001fffeffffff'), limits('0')), true);
  assert.equal(mayRaisePriorityTo(-5, status('0000000000800000'), limits('0')), true);
});

test('without CAP_SYS_NICE, RLIMIT_NICE decides (nice values down to 20 - limit)', () => {
  const none = status('0000000000000000');
  assert.equal(mayRaisePriorityTo(0, none, limits('0')), false);
  assert.equal(mayRaisePriorityTo(0, none, limits('20')), true);
  assert.equal(mayRaisePriorityTo(10, none, limits('10')), true);
  assert.equal(mayRaisePriorityTo(9, none, limits('10')), false);
  assert.equal(mayRaisePriorityTo(0, none, limits('unlimited')), true);
  // Other capabilities do not count.
  assert.equal(mayRaisePriorityTo(0, status('000001fffe7fffff'), limits('0')), false);
});

test('unreadable status or limits mean no', () => {
  assert.equal(mayRaisePriorityTo(0, '', ''), false);
  assert.equal(mayRaisePriorityTo(0, 'CapEff:\tzz\n', 'garbage'), false);
});
