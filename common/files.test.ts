import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { FaasnapError, isFaasnapError } from './errors.js';
import { isTempName, removeStaleTemps, tempPathFor, writeAll, writeFileAtomic } from './files.js';
import { tempDirs } from '../test/support/temp-dirs.js';

const { fresh: freshDir } = tempDirs('atomic');

test('temp files live beside the target and are recognisable', () => {
  const t = tempPathFor('/snap/a/state.bin');
  assert.equal(dirname(t), '/snap/a');
  assert.match(basename(t), /^\.state\.bin\.tmp-\d+-[0-9a-f]{12}$/);
  assert.notEqual(tempPathFor('/x/y'), tempPathFor('/x/y'));
  assert.equal(isTempName(basename(t)), true);
  assert.equal(isTempName('state.bin'), false);
  assert.equal(isTempName('.hidden'), false);
});

test('a write replaces the file; a failure half-way keeps the old one and cleans up', async () => {
  const d = freshDir();
  const p = join(d, 'f.bin');
  await writeFileAtomic(p, (fh) => writeAll(fh, Buffer.from('old'), 0));
  assert.equal(readFileSync(p, 'utf8'), 'old');
  // The writer dies after some bytes are already in the temp file.
  await assert.rejects(
    writeFileAtomic(p, async (fh) => {
      await writeAll(fh, Buffer.from('new, but only the first half'), 0);
      throw Object.assign(new Error('disk gone'), { code: 'EIO' });
    }),
    (e: unknown) => isFaasnapError(e, 'SNAPSHOT_IO') && /EIO/.test((e as Error).message),
  );
  // Typed errors from the writer pass through unchanged.
  await assert.rejects(
    writeFileAtomic(p, () => Promise.reject(new FaasnapError('STATE_INVALID', 'x'))),
    (e: unknown) => isFaasnapError(e, 'STATE_INVALID'),
  );
  assert.equal(readFileSync(p, 'utf8'), 'old');
  assert.deepEqual(readdirSync(d), ['f.bin']);
  await writeFileAtomic(p, (fh) => writeAll(fh, Buffer.from('new'), 0));
  assert.equal(readFileSync(p, 'utf8'), 'new');
  // A missing directory is an I/O error, not a crash.
  await assert.rejects(
    writeFileAtomic(join(d, 'no', 'f.bin'), async () => undefined),
    (e: unknown) => isFaasnapError(e, 'SNAPSHOT_IO') && /ENOENT/.test((e as Error).message),
  );
});

test('removeStaleTemps removes only old temp files', async () => {
  const d = freshDir();
  const old = '.memory.bin.tmp-1-aaaaaaaaaaaa';
  const young = '.memory.bin.tmp-2-bbbbbbbbbbbb';
  for (const n of [old, young, 'memory.bin', '.keep']) writeFileSync(join(d, n), 'x');
  const past = new Date(Date.now() - 3600_000);
  utimesSync(join(d, old), past, past);
  assert.deepEqual(await removeStaleTemps(d, 60_000), [old]);
  assert.deepEqual(readdirSync(d).sort(), ['.keep', young, 'memory.bin'].sort());
});
