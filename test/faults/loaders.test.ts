// Storage faults under the memory loaders, injected with delayfs (test/support/faultfs.ts): each
// loader turns a failed read into SNAPSHOT_IO naming the file, the offset and the errno, never
// into data the guest would run on, and never into a crash. No KVM: the loaders run on plain
// files and anonymous memory (userfaultfd for REAP).

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { open } from 'node:fs/promises';
import { join } from 'node:path';

import { isFaasnapError, type FaasnapError } from '../../common/errors.js';
import { Prefetcher } from '../../loader/faasnap.js';
import { ReapSession } from '../../loader/reap.js';
import { AlignedBuffer, REAP_MANIFEST } from '../../loader/reap-file.js';
import { loadPageCache } from '../../vmm/snapshot/memory-dump.js';
import { faultTest, faultyFile } from '../support/faultfs.js';

const PAGE = 4096;
const EIO = 5;

/** Page p: its index in the first word, then a byte pattern (never all zeros). */
function pages(n: number): Buffer {
  return Buffer.concat(
    Array.from({ length: n }, (_, p) => {
      const b = Buffer.alloc(PAGE, (p * 7 + 1) & 0xff);
      b.writeUInt32LE(p, 0);
      return b;
    }),
  );
}

faultTest(
  'a FaaSnap prefetch read error ends prefetching with SNAPSHOT_IO, never a rejection',
  async () => {
    const f = await faultyFile(pages(64));
    try {
      f.inject(`eio ${40 * PAGE} ${PAGE}`);
      const chunk = 16 * PAGE;
      const reads = [0, 1, 2, 3].map((i) => ({
        source: 'loadset' as const,
        fileOffset: i * chunk,
        length: chunk,
      }));
      const fh = await open(f.path, 'r');
      const p = new Prefetcher(reads, { loadingSet: { fh, path: f.path }, memoryFile: '/none' });
      const stats = await p.done; // a rejection here would be an unhandled one in the VMM process
      await fh.close();
      assert.ok(isFaasnapError(stats.error, 'SNAPSHOT_IO'), String(stats.error));
      assert.equal(stats.error.details.path, f.path);
      assert.equal(stats.error.details.offset, 2 * chunk, 'the read that covers page 40');
      assert.equal(stats.error.details.errno, 'EIO');
      assert.equal(stats.reads, 2, 'prefetching stopped at the failed read');
      assert.equal(stats.bytes, 2 * chunk);
    } finally {
      await f.close();
    }
  },
);

faultTest(
  'REAP: a page the server cannot read stops the run with SNAPSHOT_IO, and nothing is saved',
  async () => {
    const n = 8;
    const f = await faultyFile(pages(n));
    const size = n * PAGE;
    const ram = AlignedBuffer.allocate(size); // fresh anonymous memory, as guest RAM is
    const { addr, view: ab } = ram;
    const dir = mkdtempSync(join(tmpdir(), 'faasnap-reap-fault-'));
    let reported: FaasnapError[] = [];
    let onReport!: () => void;
    const first = new Promise<void>((r) => (onReport = r));
    const session = ReapSession.record({
      regions: [{ hostAddr: addr, size, fileOffset: 0 }],
      memoryFile: f.path,
      onError: (e) => {
        reported.push(e);
        onReport();
      },
    });
    try {
      const view = new DataView(ab);
      assert.equal(view.getUint32(1 * PAGE, true), 1, 'a readable page is served from the file');
      f.inject(`eio ${5 * PAGE} ${PAGE}`);
      // This thread faults; the server cannot read page 5, so it maps zeros to let it go on…
      assert.equal(view.getUint32(5 * PAGE, true), 0);
      // …and reports the failure on the JS thread, once, for the caller to stop the VM.
      await first;
      assert.equal(view.getUint32(6 * PAGE, true), 6);
      f.inject(`eio ${7 * PAGE} ${PAGE}`);
      view.getUint32(7 * PAGE, true);
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(reported.length, 1, 'onError runs once, for the first failure');
      const e = reported[0]!;
      assert.equal(e.code, 'SNAPSHOT_IO');
      assert.equal(e.details.fileOffset, 5 * PAGE);
      assert.equal(e.details.errno, EIO);
      assert.equal(e.details.path, f.path);
      // The counts stay with the session: whatever the guest computed must not count.
      assert.match(session.serveError()?.message ?? '', /2 fault\(s\) not served/);
      await assert.rejects(session.saveWorkingSet(dir), (x) => isFaasnapError(x, 'SNAPSHOT_IO'));
      assert.equal(existsSync(join(dir, REAP_MANIFEST)), false, 'no working set is written');
    } finally {
      session.close();
      ram.release();
      rmSync(dir, { recursive: true, force: true });
      reported = [];
      await f.close();
    }
  },
);

faultTest(
  'cached mode: a page-cache load that meets EIO is SNAPSHOT_IO with the offset',
  async () => {
    const f = await faultyFile(Buffer.alloc(20 << 20, 1));
    try {
      f.inject(`eio ${12 << 20} ${PAGE}`);
      await assert.rejects(loadPageCache(f.path), (e) => {
        assert.ok(isFaasnapError(e, 'SNAPSHOT_IO'));
        assert.equal(e.details.path, f.path);
        // Reads return what came before the bad block; the failing one starts at most there.
        const at = e.details.offset as number;
        assert.ok(at >= 8 << 20 && at <= 12 << 20, `failed read at ${at}`);
        assert.equal((e.cause as NodeJS.ErrnoException).code, 'EIO', 'the cause is kept');
        return true;
      });
    } finally {
      await f.close();
    }
  },
);

faultTest(
  'cached mode: the page-cache load runs off the event loop, even from slow storage',
  async () => {
    // 8 MiB at 3 ms per FUSE request (128 KiB): ~0.2 s of reads.
    const f = await faultyFile(Buffer.alloc(8 << 20, 2), { latencyUs: 3000 });
    try {
      let ticks = 0;
      const timer = setInterval(() => ticks++, 5);
      const { bytesRead } = await loadPageCache(f.path);
      clearInterval(timer);
      assert.equal(bytesRead, 8 << 20);
      // A synchronous load would have let no timer fire until it returned.
      assert.ok(ticks >= 5, `only ${ticks} timer ticks during the load`);
    } finally {
      await f.close();
    }
  },
);

faultTest('short reads: the page-cache load and the prefetcher still read every byte', async () => {
  const f = await faultyFile(pages(256));
  try {
    f.inject('short-reads');
    const before = f.stats().read_bytes!;
    assert.equal((await loadPageCache(f.path)).bytesRead, 256 * PAGE);
    assert.equal(f.stats().read_bytes! - before, 256 * PAGE);
    const fh = await open(f.path, 'r');
    const p = new Prefetcher(
      [
        { source: 'memfile', fileOffset: 0, length: 64 * PAGE },
        { source: 'loadset', fileOffset: 64 * PAGE, length: 64 * PAGE },
      ],
      { loadingSet: { fh, path: f.path }, memoryFile: f.path },
    );
    const s = await p.done;
    await fh.close();
    assert.equal(s.error, undefined);
    assert.equal(s.bytes, 128 * PAGE);
  } finally {
    await f.close();
  }
});

faultTest('a page-cache load of a file already in the page cache reads nothing', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'faasnap-pc-'));
  try {
    const file = join(dir, 'm');
    writeFileSync(file, Buffer.alloc(4 << 20, 3));
    await loadPageCache(file);
    assert.equal((await loadPageCache(file)).bytesRead, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
