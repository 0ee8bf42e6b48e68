// The recorder against the kernel's rule for mincore() on files, with a real process running as
// another uid (setpriv): Linux shows a file's page cache only to its owner or a writer and tells
// anyone else that every page is resident. The process keeps CAP_DAC_READ_SEARCH, so it can load
// node and this tree wherever the checkout lives; that capability grants no write, so the
// kernel's answer depends on the file's owner alone.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

const asRoot = process.getuid?.() === 0 ? false : 'needs root (uid changes, chown)';
const UID = 60_011;
const PAGES = 2048; // 8 MiB

/**
 * As UID: drops the file's page cache, asks mincore what is resident, then records while it
 * reads the first 256 pages. Prints the resident fraction and what the recorder saw (or its
 * error code).
 */
const SCRIPT = `
const [file, size] = [process.argv[1], Number(process.argv[2])];
const { dropPageCache, residentFraction } = await import(${JSON.stringify(new URL('../vmm/snapshot/memory-dump.js', import.meta.url).href)});
const { MincoreRecorder } = await import(${JSON.stringify(new URL('./recorder.js', import.meta.url).href)});
const fs = await import('node:fs');
dropPageCache(file);
const out = { resident: residentFraction(file, size) };
try {
  const rec = new MincoreRecorder(file, size, { intervalMs: 60000 });
  rec.start();
  const fd = fs.openSync(file, 'r');
  fs.readSync(fd, Buffer.alloc(256 * 4096), 0, 256 * 4096, 0);
  out.recorded = rec.stop().residentPages;
} catch (e) {
  out.error = e.code ?? String(e);
}
console.log(JSON.stringify(out));
`;

interface Seen {
  resident: number;
  recorded?: number;
  error?: string;
}

function recordAs(file: string): Seen {
  const r = spawnSync(
    'setpriv',
    [
      ...['--reuid', String(UID), '--regid', String(UID), '--clear-groups'],
      ...['--inh-caps', '+dac_read_search', '--ambient-caps', '+dac_read_search', '--'],
      ...[process.execPath, '--input-type=module', '-e', SCRIPT, file, String(PAGES * 4096)],
    ],
    { encoding: 'utf8' },
  );
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim()) as Seen;
}

test(
  "the recorder refuses a memory file whose page cache the kernel hides from it, and records its owner's",
  { skip: asRoot },
  () => {
    const dir = mkdtempSync(join(tmpdir(), 'faasnap-recorder-test-'));
    try {
      const file = join(dir, 'memory.bin');
      writeFileSync(file, Buffer.alloc(PAGES * 4096, 7));
      chmodSync(file, 0o644);

      // Someone else's file: mincore calls every page resident, however cold; the recorder
      // refuses instead of recording all of it as the first group.
      const blind = recordAs(file);
      assert.equal(blind.resident, 1, 'the kernel hides the page cache from a non-owner');
      assert.equal(blind.error, 'WORKING_SET_UNOBSERVABLE');

      // Its own file (as the daemon lends a recording VMM the memory file): the dropped cache
      // is empty, and the recording holds the 256 pages read, plus the kernel's read-ahead.
      chownSync(file, UID, UID);
      const owner = recordAs(file);
      assert.equal(owner.resident, 0);
      assert.equal(owner.error, undefined);
      assert.ok(owner.recorded! >= 256 && owner.recorded! < PAGES, `${owner.recorded} pages`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
