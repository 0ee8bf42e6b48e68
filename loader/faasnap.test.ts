// The FaaSnap loader on real files and anonymous memory standing in for guest RAM (no KVM):
// mapping, prefetching, and populating the page tables of what each read brought in.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Prefetcher, mapFaasnapMemory } from './faasnap.js';
import { P, anonRam } from './fixtures.js';
import { NO_GROUP } from './groups.js';
import { buildLoadingSet } from './loading-set-file.js';
import { scanFile } from './regions.js';
import type { FaasnapVariant } from './plan.js';

const PAGES = 64;

/** Whether each page of [addr, addr + pages * P) has a present page-table entry (pagemap bit 63). */
function present(addr: bigint, pages: number): boolean[] {
  const fd = openSync('/proc/self/pagemap', 'r');
  try {
    const buf = Buffer.alloc(pages * 8);
    readSync(fd, buf, 0, buf.length, Number(addr / BigInt(P)) * 8);
    return Array.from({ length: pages }, (_, i) => buf.readBigUInt64LE(i * 8) >> 63n === 1n);
  } finally {
    closeSync(fd);
  }
}

async function fixture(dir: string) {
  // Pages 0..47 non-zero, the rest zero; the working set: pages 8..15 (group 0), 30..33 (group 1).
  const mem = Buffer.alloc(PAGES * P);
  for (let p = 0; p < 48; p++) mem.fill((p * 7 + 1) & 0xff || 1, p * P, (p + 1) * P);
  const memoryFile = join(dir, 'memory');
  writeFileSync(memoryFile, mem);
  const groups = new Int32Array(PAGES).fill(NO_GROUP);
  groups.fill(0, 8, 16);
  groups.fill(1, 30, 34);
  const manifest = await buildLoadingSet({
    memoryFilePath: memoryFile,
    stateChecksum: '0'.repeat(64),
    groups,
    scans: 2,
    scan: await scanFile(memoryFile),
    intervalThreshold: 1,
    loadingSetPath: join(dir, 'ls'),
    manifestPath: join(dir, 'ls.json'),
  });
  return { mem, memoryFile, manifest, loadingSetPath: join(dir, 'ls') };
}

for (const variant of ['faasnap', 'no-compact-file'] as FaasnapVariant[]) {
  test(`${variant}: the prefetcher populates exactly the loading set's pages, only when asked`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'faasnap-loader-'));
    try {
      const f = await fixture(dir);
      assert.deepEqual(
        f.manifest.regions.map((r) => [r.memOffset / P, r.length / P]),
        [
          [8, 8],
          [30, 4],
        ],
      );
      const inSet = (p: number): boolean => (p >= 8 && p < 16) || (p >= 30 && p < 34);
      for (const populate of [false, true]) {
        const ram = anonRam(PAGES * P);
        const fh = await open(f.loadingSetPath, 'r');
        try {
          const files = { memoryFile: f.memoryFile, loadingSet: { fh, path: f.loadingSetPath } };
          const plan = mapFaasnapMemory(ram, f.manifest, files, variant);
          const addr = ram.regions[0]!.hostAddr;
          assert.ok(
            present(addr, PAGES).every((x) => !x),
            'mapping alone populates nothing',
          );
          const stats = await Prefetcher.forVariant(f.manifest, files, variant, {
            populate: populate ? { ram, plan } : undefined,
          }).done;
          assert.equal(stats.error, undefined);
          assert.equal(stats.populateError, undefined);
          assert.equal(stats.bytes, 12 * P);
          assert.equal(stats.populated, populate ? 12 * P : 0);
          const got = present(addr, PAGES);
          for (let p = 0; p < PAGES; p++) {
            // The kernel's fault-around may map cached neighbours in the same mapping: in
            // no-compact-file the memory file is one mapping, in faasnap each region is its own.
            if (populate && !inSet(p) && variant === 'no-compact-file') continue;
            assert.equal(got[p], populate && inSet(p), `page ${p} (populate ${populate})`);
          }
          // Populated or not, guest memory reads back as the memory file.
          assert.ok(Buffer.from(ram.regions[0]!.view).equals(f.mem));
        } finally {
          await fh.close();
          ram.free();
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('a cancelled prefetcher populates nothing more', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'faasnap-loader-'));
  try {
    const f = await fixture(dir);
    const ram = anonRam(PAGES * P);
    const fh = await open(f.loadingSetPath, 'r');
    try {
      const files = { memoryFile: f.memoryFile, loadingSet: { fh, path: f.loadingSetPath } };
      const plan = mapFaasnapMemory(ram, f.manifest, files, 'faasnap');
      // One read per page: cancelling right after the start stops before the second populate.
      const reads = Array.from({ length: 12 }, (_, i) => ({
        source: 'loadset' as const,
        fileOffset: i * P,
        length: P,
      }));
      const p = new Prefetcher(reads, files, { populate: { ram, plan } });
      p.cancel();
      const stats = await p.done;
      assert.equal(stats.cancelled, true);
      assert.ok(stats.populated <= P, `populated ${stats.populated} bytes after cancel`);
      assert.ok(present(ram.regions[0]!.hostAddr, PAGES).filter((x) => x).length <= 1);
    } finally {
      await fh.close();
      ram.free();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
