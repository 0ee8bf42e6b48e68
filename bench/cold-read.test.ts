import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isFaasnapError } from '../common/errors.js';
import { residentFraction } from '../vmm/snapshot/memory-dump.js';
import { timeColdRead } from './cold-read.js';

test('timeColdRead reads the whole file with the loader and leaves it in the page cache', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'faasnap-cold-read-'));
  try {
    const file = join(dir, 'ls');
    const size = (5 << 20) + 4096; // not a whole number of 2 MiB reads
    writeFileSync(file, Buffer.alloc(size, 7));
    const r = await timeColdRead(file);
    assert.equal(r.bytes, size);
    assert.ok(r.ms >= 0);
    assert.equal(residentFraction(file, size), 1);
    writeFileSync(join(dir, 'empty'), '');
    assert.deepEqual((await timeColdRead(join(dir, 'empty'))).bytes, 0);
    await assert.rejects(timeColdRead(join(dir, 'missing')), (e: NodeJS.ErrnoException) => {
      return e.code === 'ENOENT' || isFaasnapError(e);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
