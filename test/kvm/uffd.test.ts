// Tier 2, no guest: the native userfaultfd server on plain anonymous memory. Pages are touched
// from the JS thread (it blocks in the fault until the server thread installs the page, which
// is fine: the server is its own native thread) or from worker threads for concurrent faults.

import assert from 'node:assert/strict';
import { mkdtempSync, openSync, closeSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';

import { ReapSession } from '../../loader/reap.js';
import { readReapManifest } from '../../loader/reap-file.js';
import { isNativeError, native, type UffdServerHandle } from '../../native/index.js';
import { kvmTest, openFdsOfKind, threads, threadsSettled } from './support.js';

const PAGE = 4096;
const M = native.memConstants;
const U = native.uffdConstants;
const ADDON = resolve(
  dirname(fileURLToPath(import.meta.url)),
  '../../../native/build/Release/faasnap_native.node',
);

/** Page p of the fake memory file: its index in the first word, then a byte pattern. */
function pageContent(p: number): Buffer {
  const b = Buffer.alloc(PAGE, (p * 7 + 1) & 0xff);
  b.writeUInt32LE(p, 0);
  b.writeUInt32LE(0xfeedf00d, PAGE - 4);
  return b;
}

interface Fixture {
  dir: string;
  memoryFile: string;
  memFd: number;
  addr: bigint;
  size: number;
  view: Uint8Array;
  uffd: number;
  close(): void;
}

/** A memory file of `pages` pages and fresh anonymous memory of the same size, registered. */
function fixture(pages: number, register = true): Fixture {
  const dir = mkdtempSync(join(tmpdir(), 'faasnap-uffd-'));
  const memoryFile = join(dir, 'memory');
  writeFileSync(memoryFile, Buffer.concat(Array.from({ length: pages }, (_, p) => pageContent(p))));
  const size = pages * PAGE;
  const memFd = openSync(memoryFile, 'r');
  const addr = native.mmap(
    size,
    M.PROT_READ! | M.PROT_WRITE!,
    M.MAP_PRIVATE! | M.MAP_ANONYMOUS!,
    -1,
    0,
  );
  const ab = native.memoryView(addr, size);
  const uffd = native.userfaultfd(native.fdConstants.UFFD_NONBLOCK!);
  native.uffdApi(uffd, 0);
  if (register) native.uffdRegister(uffd, addr, size, U.UFFDIO_REGISTER_MODE_MISSING!);
  let closed = false;
  return {
    dir,
    memoryFile,
    memFd,
    addr,
    size,
    view: new Uint8Array(ab),
    uffd,
    close() {
      if (closed) return;
      closed = true;
      native.close(uffd);
      native.detachView(ab);
      native.munmap(addr, size);
      closeSync(memFd);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function readPage(f: Fixture, p: number): Buffer {
  return Buffer.from(f.view.subarray(p * PAGE, (p + 1) * PAGE));
}

/** Counters are bumped right after the faulting thread is woken: wait until they settle. */
async function settled(server: UffdServerHandle) {
  for (let i = 0; i < 200; i++) {
    const s = server.stats();
    if (s.faults === s.faultsServed + s.faultsExisting + s.errors) return s;
    await sleep(5);
  }
  return server.stats();
}

kvmTest('the ioctl wrappers: API handshake, register, unregister, wake', () => {
  const f = fixture(8, false);
  try {
    const again = native.userfaultfd(native.fdConstants.UFFD_NONBLOCK!);
    try {
      const api = native.uffdApi(again, 0);
      assert.equal(api.api, U.UFFD_API);
      assert.ok(api.ioctls & (1n << BigInt(U._UFFDIO_REGISTER!)));
      // The handshake happens once per userfaultfd.
      assert.throws(
        () => native.uffdApi(again, 0),
        (e) => isNativeError(e) && e.op === 'UFFDIO_API',
      );
    } finally {
      native.close(again);
    }
    const ioctls = native.uffdRegister(f.uffd, f.addr, f.size, U.UFFDIO_REGISTER_MODE_MISSING!);
    for (const op of ['_UFFDIO_COPY', '_UFFDIO_ZEROPAGE', '_UFFDIO_WAKE']) {
      assert.ok(ioctls & (1n << BigInt(U[op]!)), op);
    }
    assert.throws(
      () => native.uffdRegister(f.uffd, f.addr + 1n, PAGE, U.UFFDIO_REGISTER_MODE_MISSING!),
      (e) => isNativeError(e) && e.code === 'EINVAL',
    );
    native.uffdWake(f.uffd, f.addr, f.size); // nobody waits: a no-op
    // Unregistered memory is plain anonymous memory again: zero pages, no server needed.
    native.uffdUnregister(f.uffd, f.addr, f.size);
    assert.deepEqual(readPage(f, 3), Buffer.alloc(PAGE));
  } finally {
    f.close();
  }
});

kvmTest(
  'the server serves missing pages from the memory file and records fault order',
  async () => {
    const f = fixture(256);
    const server = new native.UffdServer(
      f.uffd,
      [{ hostAddr: f.addr, size: f.size, fileOffset: 0 }],
      f.memFd,
      {
        record: true,
      },
    );
    try {
      const order = [17, 3, 200, 3, 255, 0, 17, 128];
      for (const p of order) assert.deepEqual(readPage(f, p), pageContent(p), `page ${p}`);
      // A write to a missing page also faults first: the file's bytes arrive under the write.
      f.view[100 * PAGE + 8] = 0xaa;
      assert.equal(f.view[100 * PAGE + 9], pageContent(100)[9]);
      const unique = [17, 3, 200, 255, 0, 128, 100];
      assert.deepEqual(Array.from(server.recorded()), unique);
      const s = await settled(server);
      assert.equal(s.faults, unique.length);
      assert.equal(s.faultsServed, unique.length);
      assert.equal(s.bytesRead, unique.length * PAGE);
      assert.equal(s.bytesCopied, unique.length * PAGE);
      assert.equal(s.errors, 0);
    } finally {
      server.close();
      f.close();
    }
  },
);

kvmTest(
  'regions map host addresses to file offsets; a fault outside them is an error',
  async () => {
    // Two "RAM regions" of 16 pages each whose bytes live at file pages 40.. and 8.. .
    const f = fixture(64);
    const half = 16 * PAGE;
    const regions = [
      { hostAddr: f.addr, size: half, fileOffset: 40 * PAGE },
      { hostAddr: f.addr + BigInt(half), size: half, fileOffset: 8 * PAGE },
    ];
    const server = new native.UffdServer(f.uffd, regions, f.memFd, { record: true });
    try {
      assert.deepEqual(readPage(f, 2), pageContent(42));
      assert.deepEqual(readPage(f, 16 + 5), pageContent(13));
      assert.deepEqual(Array.from(server.recorded()), [42, 13]);
      // installPages speaks memory-file page indices too.
      const data = Buffer.concat([pageContent(50), pageContent(9)]);
      assert.deepEqual(server.installPages(Float64Array.from([50, 9]), data), {
        installed: 2,
        existing: 0,
      });
      assert.deepEqual(readPage(f, 10), pageContent(50));
      assert.deepEqual(readPage(f, 17), pageContent(9));
      assert.throws(
        () => server.installPages(Uint32Array.from([0]), pageContent(0)),
        /outside the regions/,
      );
      assert.throws(
        () =>
          new native.UffdServer(f.uffd, [regions[0]!, { ...regions[0]!, fileOffset: 0 }], f.memFd),
        /overlap/,
      );
      // Registered but not described: the fault is an error, and the page is zero-filled so the
      // faulting thread is not left blocked.
      assert.deepEqual(readPage(f, 40), Buffer.alloc(PAGE));
      const s = await settled(server);
      assert.equal(s.errors, 1);
      assert.equal(s.lastError?.op, 'fault outside the served regions');
      assert.equal(s.lastError?.address, f.addr + BigInt(40 * PAGE));
      assert.equal(s.lastError?.fileOffset, -1, 'no file read was involved');
    } finally {
      server.close();
      f.close();
    }
  },
);

kvmTest(
  'installPages installs a working set; other pages are served on demand; EEXIST is handled',
  async () => {
    const f = fixture(128);
    const server = new native.UffdServer(
      f.uffd,
      [{ hostAddr: f.addr, size: f.size, fileOffset: 0 }],
      f.memFd,
    );
    try {
      // A working set in "fault order" with a consecutive run (one UFFDIO_COPY for 10..13).
      const ws = [90, 10, 11, 12, 13, 5, 127];
      const data = Buffer.concat(ws.map(pageContent));
      assert.deepEqual(server.installPages(Uint32Array.from(ws), data), {
        installed: ws.length,
        existing: 0,
      });
      for (const p of ws) assert.deepEqual(readPage(f, p), pageContent(p));
      assert.equal(server.stats().faults, 0, 'installed pages do not fault');
      assert.deepEqual(readPage(f, 64), pageContent(64));
      assert.equal((await settled(server)).faultsServed, 1);

      // Installing over present pages: EEXIST per page, skipped, the rest still installed.
      const again = [11, 12, 14, 64];
      const r = server.installPages(Uint32Array.from(again), Buffer.concat(again.map(pageContent)));
      assert.deepEqual(r, { installed: 1, existing: 3 });
      assert.deepEqual(readPage(f, 14), pageContent(14));
      const s = server.stats();
      assert.equal(s.pagesInstalled, ws.length + 1);
      assert.equal(s.pagesInstallExisting, 3);
      assert.equal(s.faults, 1);

      // The raw ioctl reports EEXIST as an error with its code.
      assert.throws(
        () => native.uffdCopy(f.uffd, f.addr + BigInt(10 * PAGE), pageContent(10), 0, PAGE),
        (e) => isNativeError(e) && e.code === 'EEXIST' && e.op === 'UFFDIO_COPY',
      );
      // uffdZeropage / uffdCopy on missing pages, then they read as installed.
      assert.equal(native.uffdZeropage(f.uffd, f.addr + BigInt(100 * PAGE), PAGE), PAGE);
      assert.equal(native.uffdCopy(f.uffd, f.addr + BigInt(101 * PAGE), data, PAGE, PAGE), PAGE);
      assert.deepEqual(readPage(f, 100), Buffer.alloc(PAGE));
      assert.deepEqual(readPage(f, 101), pageContent(10));
      assert.equal(server.stats().faults, 1);
    } finally {
      server.close();
      f.close();
    }
  },
);

kvmTest(
  'a memory-file read error is reported and the faulting thread still continues',
  async () => {
    const f = fixture(4);
    // A directory fd: pread fails with EISDIR.
    const dirFd = openSync(f.dir, 'r');
    const server = new native.UffdServer(
      f.uffd,
      [{ hostAddr: f.addr, size: f.size, fileOffset: 0 }],
      dirFd,
    );
    try {
      assert.deepEqual(readPage(f, 1), Buffer.alloc(PAGE));
      const s = await settled(server);
      assert.equal(s.errors, 1);
      assert.equal(s.faultsServed, 0);
      assert.equal(s.lastError?.op, 'pread(memory file)');
      assert.equal(s.lastError?.errno, 21); // EISDIR
      assert.equal(s.lastError?.fileOffset, PAGE, 'where page 1 was to be read from');
    } finally {
      server.close();
      closeSync(dirFd);
      f.close();
    }
  },
);

/** A worker that reads one u32 of page `page` through its own view of the mapping. */
function faultingWorker(
  addr: bigint,
  size: number,
  page: number,
): { ready: Promise<void>; value: Promise<number> } {
  const code = `
    const { workerData, parentPort } = require('node:worker_threads');
    const addon = require(workerData.addon);
    const view = new DataView(addon.memoryView(workerData.addr, workerData.size));
    parentPort.postMessage('ready');
    parentPort.postMessage(view.getUint32(workerData.page * 4096, true));
  `;
  const w = new Worker(code, { eval: true, workerData: { addon: ADDON, addr, size, page } });
  let onReady!: () => void;
  const ready = new Promise<void>((r) => (onReady = r));
  const value = new Promise<number>((resolveValue, reject) => {
    w.on('message', (m: unknown) => (m === 'ready' ? onReady() : resolveValue(m as number)));
    w.on('error', reject);
  });
  return { ready, value: value.finally(() => w.terminate()) };
}

kvmTest('two threads faulting on one page: one copy, the other EEXIST and woken', async () => {
  const f = fixture(8);
  // Both faults are queued before a server exists, so it reads both messages for one page.
  const a = faultingWorker(f.addr, f.size, 3);
  const b = faultingWorker(f.addr, f.size, 3);
  await Promise.all([a.ready, b.ready]);
  await sleep(200);
  const server = new native.UffdServer(
    f.uffd,
    [{ hostAddr: f.addr, size: f.size, fileOffset: 0 }],
    f.memFd,
    {
      record: true,
    },
  );
  try {
    assert.deepEqual(await Promise.all([a.value, b.value]), [3, 3]);
    const s = await settled(server);
    assert.equal(s.faults, 2);
    assert.equal(s.faultsServed, 1);
    assert.equal(s.faultsExisting, 1);
    assert.deepEqual(Array.from(server.recorded()), [3], 'recorded once');
  } finally {
    server.close();
    f.close();
  }
});

kvmTest(
  'concurrent faults from workers racing installPages all see the file contents',
  async () => {
    const pages = 2048;
    const f = fixture(pages);
    const server = new native.UffdServer(
      f.uffd,
      [{ hostAddr: f.addr, size: f.size, fileOffset: 0 }],
      f.memFd,
    );
    try {
      const targets = Array.from({ length: 8 }, (_, i) => (i * 251) % pages);
      const workers = targets.map((p) => faultingWorker(f.addr, f.size, p));
      const all = Array.from({ length: pages }, (_, p) => p);
      server.installPages(Uint32Array.from(all), Buffer.concat(all.map(pageContent)));
      assert.deepEqual(await Promise.all(workers.map((w) => w.value)), targets);
      const s = await settled(server);
      assert.equal(s.pagesInstalled + s.faultsServed, pages, 'each page installed exactly once');
      assert.equal(s.errors, 0);
      for (let p = 0; p < pages; p += 97) assert.deepEqual(readPage(f, p), pageContent(p));
    } finally {
      server.close();
      f.close();
    }
  },
);

kvmTest('preadDirect reads O_DIRECT into mmap-aligned memory and rejects unaligned targets', () => {
  const f = fixture(16, false);
  const F = native.fdConstants;
  const fd = native.open(f.memoryFile, F.O_RDONLY! | F.O_DIRECT!);
  try {
    assert.equal(native.preadDirect(fd, f.view.subarray(0, 8 * PAGE), 4 * PAGE), 8 * PAGE);
    assert.deepEqual(readPage(f, 0), pageContent(4));
    assert.deepEqual(readPage(f, 7), pageContent(11));
    // Short at EOF: 16 pages in the file, 4 left from page 12.
    assert.equal(native.preadDirect(fd, f.view.subarray(0, 8 * PAGE), 12 * PAGE), 4 * PAGE);
    assert.throws(() => native.preadDirect(fd, f.view.subarray(1, PAGE + 1), 0), /aligned/);
    assert.throws(() => native.preadDirect(fd, f.view.subarray(0, 100), 0), /aligned/);
    assert.throws(() => native.preadDirect(fd, f.view.subarray(0, PAGE), 512), /aligned/);
  } finally {
    native.close(fd);
    f.close();
  }
});

kvmTest('close stops and joins the thread and leaves no fd behind; it is idempotent', async () => {
  // Warm-up: lets Node start its lazily created threads before we count.
  const warm = fixture(4);
  new native.UffdServer(
    warm.uffd,
    [{ hostAddr: warm.addr, size: warm.size, fileOffset: 0 }],
    warm.memFd,
  ).close();
  warm.close();
  await sleep(50);

  const serverFds = () => openFdsOfKind(/userfaultfd|eventfd|faasnap-uffd-/);
  const before = { fds: serverFds(), threads: threads() };
  const f = fixture(64);
  const server = new native.UffdServer(
    f.uffd,
    [{ hostAddr: f.addr, size: f.size, fileOffset: 0 }],
    f.memFd,
    {
      record: true,
    },
  );
  assert.equal(threads(), before.threads + 1, 'one server thread');
  for (let p = 0; p < 64; p += 3) readPage(f, p);
  server.close();
  assert.equal(await threadsSettled(before.threads), before.threads);
  server.close();
  // recorded() and stats() stay readable after close; installPages does not.
  assert.equal(server.recorded().length, 22);
  assert.equal(server.stats().recorded, 22);
  assert.throws(() => server.installPages(Uint32Array.from([1]), pageContent(1)), /closed/);
  f.close();
  assert.deepEqual({ fds: serverFds(), threads: await threadsSettled(before.threads) }, before);
});

kvmTest(
  'REAP session without a guest: record, save, replay with the working set installed',
  async () => {
    const pages = 512;
    const rec = fixture(pages, false);
    const wsDir = join(rec.dir, 'ws');
    const regions = [{ hostAddr: rec.addr, size: rec.size, fileOffset: 0 }];
    const touched = [400, 7, 8, 9, 300, 7, 511, 0];
    const record = ReapSession.record({ regions, memoryFile: rec.memoryFile });
    try {
      for (const p of touched) assert.deepEqual(readPage(rec, p), pageContent(p));
      rec.view[42 * PAGE] = 0x55; // the working set keeps the snapshot's bytes, not the guest's
    } finally {
      record.close();
    }
    const manifest = await record.saveWorkingSet(wsDir, { snapshotId: 'snap-1' });
    assert.deepEqual(manifest.pages, [400, 7, 8, 9, 300, 511, 0, 42]);
    assert.deepEqual((await readReapManifest(wsDir))?.pages, manifest.pages);

    // Replay into fresh memory of another fixture (same memory file contents).
    const rep = fixture(pages, false);
    const replay = await ReapSession.replay({
      regions: [{ hostAddr: rep.addr, size: rep.size, fileOffset: 0 }],
      memoryFile: rec.memoryFile,
      dir: wsDir,
      expect: { snapshotId: 'snap-1' },
    });
    try {
      for (const p of manifest.pages) assert.deepEqual(readPage(rep, p), pageContent(p));
      let s = replay.stats();
      assert.equal(s.mode, 'replay');
      assert.equal(s.pagesPrefetched, manifest.pages.length);
      assert.equal(s.prefetchBytes, manifest.pages.length * PAGE);
      assert.equal(s.faults, 0, 'working-set pages never fault');
      assert.deepEqual(readPage(rep, 100), pageContent(100));
      await sleep(10);
      s = replay.stats();
      assert.equal(s.faultsServed, 1);
      assert.equal(s.bytesRead, (manifest.pages.length + 1) * PAGE);
    } finally {
      replay.close();
      rep.close();
      rec.close();
    }
  },
);
