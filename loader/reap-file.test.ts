// Tier 1: the REAP working-set files (pages file + manifest) without KVM or userfaultfd.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

import { isFaasnapError } from '../common/errors.js';
import {
  REAP_MANIFEST,
  REAP_PAGE_SIZE,
  encodeReapManifest,
  parseReapManifest,
  readReapManifest,
  readReapPages,
  writeReapWorkingSet,
  type ReapManifest,
} from './reap-file.js';

const PAGE = REAP_PAGE_SIZE;

function page(p: number): Buffer {
  const b = Buffer.alloc(PAGE, p & 0xff);
  b.writeUInt32LE((p * 2654435761) >>> 0, 8);
  return b;
}

function withDir(fn: (dir: string) => Promise<void>): () => Promise<void> {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), 'faasnap-reap-t1-'));
    try {
      await fn(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

function memoryFile(dir: string, pages: number): string {
  const path = join(dir, 'memory');
  writeFileSync(path, Buffer.concat(Array.from({ length: pages }, (_, p) => page(p))));
  return path;
}

const valid: ReapManifest = {
  format: 'faasnap-reap-working-set',
  version: 1,
  pageSize: 4096,
  pagesFile: 'reap-0123456789ab.pages',
  pages: [9, 1, 2, 3, 0],
  memoryFileBytes: 16 * PAGE,
  snapshotId: 'snap',
  createdAt: '2025-01-01T00:00:00.000Z',
};

test('a manifest round-trips through encode/parse', () => {
  assert.deepEqual(parseReapManifest(encodeReapManifest(valid)), valid);
  const noId: ReapManifest = { ...valid };
  delete noId.snapshotId;
  assert.deepEqual(parseReapManifest(encodeReapManifest(noId)), noId);
});

test('an invalid manifest is rejected field by field', () => {
  const bad: [string, unknown][] = [
    ['not json', '{'],
    ['not an object', '[1]'],
    ['format', { ...valid, format: 'x' }],
    ['version', { ...valid, version: 2 }],
    ['page size', { ...valid, pageSize: 2048 }],
    ['pagesFile path', { ...valid, pagesFile: '../etc/passwd' }],
    ['pagesFile name', { ...valid, pagesFile: 'reap-zz.pages' }],
    ['memory size', { ...valid, memoryFileBytes: 100 }],
    ['pages type', { ...valid, pages: 'all' }],
    ['page beyond the memory file', { ...valid, pages: [16] }],
    ['negative page', { ...valid, pages: [-1] }],
    ['fractional page', { ...valid, pages: [1.5] }],
    ['duplicate page', { ...valid, pages: [3, 4, 3] }],
    ['snapshotId', { ...valid, snapshotId: 7 }],
    ['createdAt', { ...valid, createdAt: undefined }],
  ];
  for (const [what, m] of bad) {
    const text = typeof m === 'string' ? m : JSON.stringify(m);
    assert.throws(
      () => parseReapManifest(text),
      (e) => isFaasnapError(e, 'LOADING_SET_INVALID'),
      what,
    );
  }
});

test('a manifest for another memory file or snapshot is stale', () => {
  const text = encodeReapManifest(valid);
  assert.throws(
    () => parseReapManifest(text, { memoryFileBytes: 32 * PAGE }),
    (e) => isFaasnapError(e, 'LOADING_SET_STALE'),
  );
  assert.throws(
    () => parseReapManifest(text, { snapshotId: 'other' }),
    (e) => isFaasnapError(e, 'LOADING_SET_STALE'),
  );
  assert.equal(
    parseReapManifest(text, { memoryFileBytes: 16 * PAGE, snapshotId: 'snap' }).version,
    1,
  );
});

test(
  'the pages file holds the snapshot bytes of the recorded pages in fault order',
  withDir(async (dir) => {
    const mem = memoryFile(dir, 64);
    const pages = [40, 41, 42, 3, 63, 0, 10, 11];
    const m = await writeReapWorkingSet(dir, { memoryFile: mem, pages, snapshotId: 's1' });
    assert.deepEqual(m.pages, pages);
    assert.equal(m.memoryFileBytes, 64 * PAGE);
    assert.equal(m.snapshotId, 's1');
    const bytes = readFileSync(join(dir, m.pagesFile));
    assert.equal(bytes.length, pages.length * PAGE, 'whole 4 KiB pages: readable with O_DIRECT');
    assert.deepEqual(bytes, Buffer.concat(pages.map(page)));
    assert.deepEqual(await readReapManifest(dir, { memoryFileBytes: 64 * PAGE }), m);
    // No temp files are left behind.
    assert.deepEqual(readdirSync(dir).sort(), [REAP_MANIFEST, 'memory', m.pagesFile].sort());
  }),
);

test(
  'recording again replaces the working set atomically and removes the old pages file',
  withDir(async (dir) => {
    const mem = memoryFile(dir, 16);
    const first = await writeReapWorkingSet(dir, { memoryFile: mem, pages: [1, 2] });
    const second = await writeReapWorkingSet(dir, { memoryFile: mem, pages: [5] });
    assert.notEqual(first.pagesFile, second.pagesFile);
    assert.deepEqual((await readReapManifest(dir))?.pages, [5]);
    assert.deepEqual(readdirSync(dir).sort(), [REAP_MANIFEST, 'memory', second.pagesFile].sort());
  }),
);

test(
  'a page outside the memory file is refused before anything is written',
  withDir(async (dir) => {
    const mem = memoryFile(dir, 4);
    await assert.rejects(writeReapWorkingSet(dir, { memoryFile: mem, pages: [1, 4] }), (e) =>
      isFaasnapError(e, 'LOADING_SET_INVALID'),
    );
    assert.deepEqual(readdirSync(dir), ['memory']);
    assert.equal(await readReapManifest(dir), undefined);
    assert.equal(await readReapManifest(join(dir, 'nowhere')), undefined);
  }),
);

test(
  'readReapPages reads the whole pages file into page-aligned memory with one O_DIRECT read',
  withDir(async (dir) => {
    const mem = memoryFile(dir, 32);
    const pages = [31, 0, 7];
    const m = await writeReapWorkingSet(dir, { memoryFile: mem, pages });
    const read = readReapPages(dir, m);
    try {
      assert.equal(read.bytes, pages.length * PAGE);
      assert.equal(read.buffer.addr % BigInt(PAGE), 0n);
      assert.equal(read.direct, true);
      assert.deepEqual(
        Buffer.from(read.buffer.view, 0, read.bytes),
        Buffer.concat(pages.map(page)),
      );
    } finally {
      read.buffer.release();
    }
    assert.equal(read.buffer.view.byteLength, 0, 'released memory is detached');

    // An empty working set is valid (nothing faulted) and reads as nothing.
    const empty = await writeReapWorkingSet(dir, { memoryFile: mem, pages: [] });
    const none = readReapPages(dir, empty);
    assert.equal(none.bytes, 0);
    none.buffer.release();
  }),
);

test(
  'a truncated or missing pages file is reported, not installed',
  withDir(async (dir) => {
    const mem = memoryFile(dir, 8);
    const m = await writeReapWorkingSet(dir, { memoryFile: mem, pages: [1, 2, 3] });
    const path = join(dir, m.pagesFile);
    writeFileSync(path, readFileSync(path).subarray(0, 2 * PAGE));
    assert.equal(statSync(path).size, 2 * PAGE);
    assert.throws(
      () => readReapPages(dir, m),
      (e) => isFaasnapError(e, 'LOADING_SET_INVALID') && /manifest says/.test(e.message),
    );
    rmSync(path);
    assert.throws(
      () => readReapPages(dir, m),
      (e) => isFaasnapError(e, 'LOADING_SET_INVALID') && /missing/.test(e.message),
    );
  }),
);
