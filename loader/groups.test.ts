import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isFaasnapError } from '../common/errors.js';
import {
  GroupRecorder,
  NO_GROUP,
  ScanScheduler,
  shouldScan,
  shouldScanInterval,
  workingSetGroups,
} from './groups.js';

const vec = (bits: string): Uint8Array => Uint8Array.from(bits, (c) => Number(c));

test('a page belongs to the first scan in which it is resident', () => {
  const groups = workingSetGroups([
    vec('10000000'),
    vec('11000001'), // page 0 stays group 0
    vec('01100000'), // page 1 was already resident: still group 1
    vec('00000000'), // an empty scan adds nothing but still counts as an index
    vec('00011001'),
  ]);
  assert.deepEqual([...groups], [0, 1, 2, 4, 4, NO_GROUP, NO_GROUP, 1]);
});

test('only bit 0 of a mincore byte means resident', () => {
  const rec = new GroupRecorder(4);
  assert.equal(rec.addScan(Uint8Array.from([0xfe, 0x03, 0x80, 0x01])), 2);
  assert.deepEqual([...rec.groups], [NO_GROUP, 0, NO_GROUP, 0]);
});

test('the recorder counts scans, new pages and group sizes', () => {
  const rec = new GroupRecorder(6);
  assert.equal(rec.scans, 0);
  assert.equal(rec.addScan(vec('110000')), 2);
  assert.equal(rec.addScan(vec('111100')), 2);
  assert.equal(rec.addScan(vec('111100')), 0);
  assert.equal(rec.addScan(vec('000001')), 1);
  assert.equal(rec.scans, 4);
  assert.equal(rec.residentPages, 5);
  assert.deepEqual(rec.groupSizes(), [2, 2, 0, 1]);
  assert.throws(
    () => rec.addScan(vec('11')),
    (e: unknown) => isFaasnapError(e, 'INVALID_LOADER_OPTIONS'),
  );
  assert.deepEqual([...workingSetGroups([])], []);
});

test('shouldScan fires at mincoreSize pages of RSS growth, interval mode on time', () => {
  assert.equal(shouldScan(1023), false);
  assert.equal(shouldScan(1024), true);
  assert.equal(shouldScan(-5000), false);
  assert.equal(shouldScan(10, 10), true);
  assert.equal(shouldScan(9, 10), false);
  assert.equal(shouldScanInterval(9.9, 10), false);
  assert.equal(shouldScanInterval(10, 10), true);
});

test('the scheduler measures growth from the last scan and from dips in RSS', () => {
  const s = new ScanScheduler(
    { kind: 'rss-growth', mincoreSize: 100, pollMs: 3 },
    { rssPages: 1000, nowMs: 0 },
  );
  assert.equal(s.pollDelayMs, 3);
  assert.equal(s.due({ rssPages: 1099, nowMs: 3 }), false);
  assert.equal(s.due({ rssPages: 1100, nowMs: 6 }), true);
  s.scanned({ rssPages: 1100, nowMs: 6 });
  assert.equal(s.due({ rssPages: 1150, nowMs: 9 }), false);
  // RSS dropped to 1050, then grew by 100: that is 100 new pages.
  assert.equal(s.due({ rssPages: 1050, nowMs: 12 }), false);
  assert.equal(s.due({ rssPages: 1149, nowMs: 15 }), false);
  assert.equal(s.due({ rssPages: 1150, nowMs: 18 }), true);

  const t = new ScanScheduler({ kind: 'interval', intervalMs: 20 }, { rssPages: 0, nowMs: 100 });
  assert.equal(t.pollDelayMs, 20);
  assert.equal(t.due({ rssPages: 1e6, nowMs: 119 }), false);
  assert.equal(t.due({ rssPages: 0, nowMs: 120 }), true);
  t.scanned({ rssPages: 0, nowMs: 121 });
  assert.equal(t.due({ rssPages: 0, nowMs: 140 }), false);
  assert.equal(t.due({ rssPages: 0, nowMs: 141 }), true);

  assert.throws(
    () => new ScanScheduler({ kind: 'interval', intervalMs: 0 }, { rssPages: 0, nowMs: 0 }),
    (e: unknown) => isFaasnapError(e, 'INVALID_LOADER_OPTIONS'),
  );
});
