// Host-side loader I/O harness (issue #15): where FaaSnap's bytes and major faults come from,
// without KVM. A memory file laid out like the loader micro-bench's snapshot (guest code, then
// `dataMiB` of non-zero function state), a loading set recorded with the project's own recorder
// and builder while a worker thread touches input A's pages, then per variant: both files'
// page cache dropped, the memory mapped as a restore maps it (mapFaasnapMemory + Prefetcher over
// anonymous memory standing in for guest RAM), input B's pages touched from a worker thread (the
// vCPU's stand-in: the prefetcher's reads need the JS thread's event loop, as in the VMM), and
// the process's disk reads (/proc/self/io), faults (getrusage) and times recorded. After each run
// mincore tells which pages of each file came in: bytes beyond the loading set and B's pages
// are read-ahead; memory-file pages inside the loading set were read twice.
//
//   node dist/bench/loader-io.js [--data-mib 256] [--ws-mib 64] [--repeats 5] [--variants a,b]

import {
  closeSync,
  fsyncSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { native } from '../native/index.js';
import { Prefetcher, mapFaasnapMemory, type FaasnapFiles } from '../loader/faasnap.js';
import { anonRam } from '../loader/fixtures.js';
import { buildLoadingSet, type LoadingSetManifest } from '../loader/loading-set-file.js';
import { loadingSetSize } from '../loader/loading-set.js';
import { MincoreRecorder } from '../loader/recorder.js';
import { scanFile } from '../loader/regions.js';
import type { FaasnapVariant } from '../loader/plan.js';
import type { GuestRam } from '../vmm/guest-ram.js';
import { dropPageCache, loadPageCache } from '../vmm/snapshot/memory-dump.js';

const PAGE = 4096;
const MiB = 1 << 20;
/** Where the micro guest's data starts (MICRO_DATA_GPA): guest code and page tables below. */
const DATA_OFFSET = 4 * MiB;

interface TouchJob {
  hostAddr: bigint;
  size: number;
  pages: Int32Array;
}

// ---- worker: the vCPU's stand-in -------------------------------------------------------------
if (!isMainThread) {
  const job = workerData as TouchJob;
  const view = new Uint8Array(native.memoryView(job.hostAddr, job.size));
  parentPort!.once('message', () => {
    const f0 = threadFaults();
    const t0 = performance.now();
    let sum = 0;
    for (const p of job.pages) sum = (sum + view[p * PAGE + 8]!) | 0;
    const ms = performance.now() - t0;
    const f1 = threadFaults();
    parentPort!.postMessage({
      ms,
      sum,
      minflt: f1.minflt - f0.minflt,
      majflt: f1.majflt - f0.majflt,
    });
  });
  parentPort!.postMessage('ready');
}

/** This thread's faults (/proc/thread-self/stat: minflt is field 10, majflt field 12). */
function threadFaults(): { minflt: number; majflt: number } {
  const stat = readFileSync('/proc/thread-self/stat', 'latin1');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // f[0] is field 3
  return { minflt: Number(f[7]), majflt: Number(f[9]) };
}

/** A scrambled walk over `count` pages starting at `first`, as bench/loaders.ts's inputs. */
function walk(first: number, count: number, stride: number): number[] {
  return Array.from({ length: count }, (_, i) => first + ((i * stride) % count));
}

function readBytes(): number {
  const m = /read_bytes: (\d+)/.exec(readFileSync('/proc/self/io', 'latin1'));
  return Number(m![1]);
}

/** Resident pages of `path` (page cache), as a bitmap. */
function residency(path: string, size: number): Uint8Array {
  const M = native.memConstants;
  const fd = openSync(path, 'r');
  try {
    if (size === 0) return new Uint8Array(0);
    const addr = native.mmap(size, M.PROT_READ!, M.MAP_SHARED!, fd, 0);
    const vec = Buffer.alloc(Math.ceil(size / PAGE));
    native.mincore(addr, size, vec);
    native.munmap(addr, size);
    return vec.map((b) => b & 1);
  } finally {
    closeSync(fd);
  }
}

/** Starts the toucher thread; `go()` runs it and resolves with its time once it is done. */
async function startToucher(
  ram: GuestRam,
  pages: number[],
): Promise<{ go(): Promise<Touched>; stop(): Promise<number> }> {
  const r = ram.regions[0]!;
  const w = new Worker(fileURLToPath(import.meta.url), {
    workerData: { hostAddr: r.hostAddr, size: r.size, pages: Int32Array.from(pages) },
  });
  await new Promise<void>((res, rej) => {
    w.once('message', () => res());
    w.once('error', rej);
  });
  return {
    go: () =>
      new Promise<Touched>((res, rej) => {
        w.once('message', (m: Touched) => res(m));
        w.once('error', rej);
        w.postMessage('go');
      }),
    stop: () => w.terminate(),
  };
}

interface Touched {
  ms: number;
  /** The toucher thread's own faults: what a vCPU would take. */
  minflt: number;
  majflt: number;
}

async function touchInWorker(ram: GuestRam, pages: number[]): Promise<Touched> {
  const t = await startToucher(ram, pages);
  try {
    return await t.go();
  } finally {
    await t.stop();
  }
}

export type IoVariant = 'cached' | 'vanilla' | FaasnapVariant;

/**
 * Experiment knobs after a variant's name, `+`-separated (e.g. `faasnap+memrand`):
 *   memrand   MADV_RANDOM on the memory-file mappings (no fault read-around there)
 *   lsrand    MADV_RANDOM on the loading-set mappings
 *   lsfadv    POSIX_FADV_RANDOM on the loading-set file (its handle: mappings and prefetch reads)
 *   populate  the prefetcher populates guest page tables after each read (what restores do since
 *             #15; without it, the behaviour before)
 *   wait      the toucher starts only when prefetching is done (no race with the prefetcher:
 *             its remaining major faults are on pages outside the loading set)
 *   packed    the loading set laid out back to back (format version 1) instead of with its large
 *             regions 2 MiB-aligned (the same recording)
 */
const KNOBS = ['memrand', 'lsrand', 'lsfadv', 'populate', 'wait', 'packed'] as const;
type Knob = (typeof KNOBS)[number];

function parseVariant(name: string): { base: IoVariant; knobs: Set<Knob> } {
  const [base, ...knobs] = name.split('+');
  for (const k of knobs) {
    if (!(KNOBS as readonly string[]).includes(k)) throw new Error(`unknown knob ${k}`);
  }
  return { base: base as IoVariant, knobs: new Set(knobs as Knob[]) };
}

export interface IoSample {
  variant: string;
  ms: number;
  touchMs: number;
  prefetchMs: number;
  populateMs: number;
  readMiB: number;
  /** Faults of the whole process (loader, populate and toucher). */
  majflt: number;
  minflt: number;
  /** Faults of the toucher thread (the vCPU's). */
  touchMajflt: number;
  touchMinflt: number;
  /** Pages of each file in the page cache after the run, MiB. */
  memfileMiB: number;
  loadsetMiB: number;
  /** Memory-file pages inside loading-set regions (also in the loading-set file): read twice. */
  twiceMiB: number;
  /** Memory-file pages read that B never touched and that are not in the loading set. */
  memfileWasteMiB: number;
}

interface LoadingSetFiles {
  loadingSetFile: string;
  manifest: LoadingSetManifest;
}

interface Setup extends LoadingSetFiles {
  dir: string;
  memoryFile: string;
  /** The same loading set, packed (the `packed` knob). */
  packed: LoadingSetFiles;
  memSize: number;
  inputB: number[];
  /** Pages of B, as a bitmap over the memory file. */
  touchedB: Uint8Array;
}

async function setup(
  dataMiB: number,
  wsMiB: number,
  input: 'A' | 'B',
  codeKiB: number,
): Promise<Setup> {
  // Under the work tree's file system, not tmpfs: the page cache must be droppable.
  const dir = mkdtempSync(join(process.env.LOADER_IO_DIR ?? tmpdir(), 'faasnap-loader-io-'));
  const memSize = (dataMiB + 8) * MiB;
  const memoryFile = join(dir, 'memory');
  const fd = openSync(memoryFile, 'w');
  const code = Buffer.alloc(codeKiB << 10, 0x90); // guest code, page tables: non-zero
  writeSync(fd, code, 0, code.length, 0);
  const chunk = Buffer.alloc(MiB);
  for (let m = 0; m < dataMiB; m++) {
    for (let p = 0; p < 256; p++) chunk.fill(((m * 256 + p) * 7 + 1) & 0xff || 1, p * PAGE);
    writeSync(fd, chunk, 0, MiB, DATA_OFFSET + m * MiB);
  }
  writeSync(fd, Buffer.alloc(PAGE), 0, PAGE, memSize - PAGE); // zero tail to the full size
  fsyncSync(fd);
  closeSync(fd);

  const ws = (wsMiB * MiB) / PAGE;
  const base = DATA_OFFSET / PAGE;
  const codePages = Array.from({ length: (codeKiB << 10) / PAGE }, (_, i) => i);
  // A and B overlap by half, as record and test inputs of one function do (bench/loaders.ts).
  const inputA = [...codePages, ...walk(0, ws, 13).map((p) => base + p)];
  // `input A`: the test run replays the recorded input (every page is in the loading set).
  const inputB =
    input === 'A' ? inputA : [...codePages, ...walk(ws >> 1, ws, 29).map((p) => base + p)];

  // Record as restore/record.ts does: a lazy mapping from a cold cache, mincore scans while
  // the "guest" runs input A.
  dropPageCache(memoryFile);
  const ram = anonRam(memSize);
  const M = native.memConstants;
  const mfd = openSync(memoryFile, 'r');
  native.mmap(
    memSize,
    M.PROT_READ! | M.PROT_WRITE!,
    M.MAP_PRIVATE! | M.MAP_FIXED!,
    mfd,
    0,
    ram.regions[0]!.hostAddr,
  );
  closeSync(mfd);
  const recorder = new MincoreRecorder(memoryFile, memSize);
  recorder.start();
  await touchInWorker(ram, inputA);
  const groups = recorder.stop();
  ram.free();
  const scan = await scanFile(memoryFile);
  const build = async (name: string, alignHuge: boolean): Promise<LoadingSetFiles> => {
    const loadingSetFile = join(dir, name);
    const manifest = await buildLoadingSet({
      memoryFilePath: memoryFile,
      stateChecksum: '0'.repeat(64),
      groups: groups.groups,
      scans: groups.scans,
      scan,
      layout: { alignHuge },
      loadingSetPath: loadingSetFile,
      manifestPath: `${loadingSetFile}.json`,
    });
    return { loadingSetFile, manifest };
  };
  const aligned = await build('loading-set', true);
  const packed = await build('loading-set-packed', false);
  const touchedB = new Uint8Array(memSize / PAGE);
  for (const p of inputB) touchedB[p] = 1;
  return { dir, memoryFile, ...aligned, packed, memSize, inputB, touchedB };
}

async function runOnce(setup: Setup, name: string): Promise<IoSample> {
  const { base: variant, knobs } = parseVariant(name);
  const s = knobs.has('packed') ? { ...setup, ...setup.packed } : setup;
  if (variant === 'cached') await loadPageCache(s.memoryFile);
  else dropPageCache(s.memoryFile);
  dropPageCache(s.loadingSetFile);
  const ram = anonRam(s.memSize);
  const fh = await open(s.loadingSetFile, 'r');
  // The vCPU exists before the restore maps memory: its start-up is not measured.
  const toucher = await startToucher(ram, s.inputB);
  try {
    const io0 = readBytes();
    const ru0 = process.resourceUsage();
    const t0 = performance.now();
    let prefetch: Promise<{ ms: number; populateMs?: number }> = Promise.resolve({ ms: 0 });
    if (variant === 'cached' || variant === 'vanilla') {
      const M = native.memConstants;
      const mfd = openSync(s.memoryFile, 'r');
      native.mmap(
        s.memSize,
        M.PROT_READ! | M.PROT_WRITE!,
        M.MAP_PRIVATE! | M.MAP_FIXED!,
        mfd,
        0,
        ram.regions[0]!.hostAddr,
      );
      closeSync(mfd);
    } else {
      const files: FaasnapFiles = {
        memoryFile: s.memoryFile,
        loadingSet: { fh, path: s.loadingSetFile },
      };
      const M = native.memConstants;
      if (knobs.has('lsfadv')) native.posixFadvise(fh.fd, 0, 0, M.POSIX_FADV_RANDOM!);
      const plan = mapFaasnapMemory(ram, s.manifest, files, variant);
      const host = ram.regions[0]!.hostAddr;
      for (const op of plan.slice(1)) {
        const rand =
          (op.kind === 'memfile' && knobs.has('memrand')) ||
          (op.kind === 'loadset' && knobs.has('lsrand'));
        if (rand) native.madvise(host + BigInt(op.guestOffset), op.length, M.MADV_RANDOM!);
      }
      const populate = knobs.has('populate') ? { ram, plan } : undefined;
      prefetch = Prefetcher.forVariant(s.manifest, files, variant, { populate }).done;
    }
    if (knobs.has('wait')) await prefetch;
    const touch = await toucher.go();
    const ms = performance.now() - t0;
    const p = await prefetch;
    const ru1 = process.resourceUsage();
    const readMiB = (readBytes() - io0) / MiB;
    const mem = residency(s.memoryFile, s.memSize);
    const ls = residency(s.loadingSetFile, s.manifest.file.size);
    const inLs = new Uint8Array(s.memSize / PAGE);
    for (const r of s.manifest.regions)
      inLs.fill(1, r.memOffset / PAGE, (r.memOffset + r.length) / PAGE);
    let memPages = 0;
    let twice = 0;
    let waste = 0;
    for (let i = 0; i < mem.length; i++) {
      if (!mem[i]) continue;
      memPages++;
      if (inLs[i]) twice++;
      else if (!s.touchedB[i]) waste++;
    }
    const lsPages = ls.reduce((n, b) => n + b, 0);
    return {
      variant: name,
      ms,
      touchMs: touch.ms,
      prefetchMs: p.ms,
      populateMs: p.populateMs ?? 0,
      readMiB,
      majflt: ru1.majorPageFault - ru0.majorPageFault,
      minflt: ru1.minorPageFault - ru0.minorPageFault,
      touchMajflt: touch.majflt,
      touchMinflt: touch.minflt,
      memfileMiB: (memPages * PAGE) / MiB,
      loadsetMiB: (lsPages * PAGE) / MiB,
      // For 'cached' the whole memory file was loaded on purpose: not counted as twice/waste.
      twiceMiB: variant === 'cached' ? 0 : (twice * PAGE) / MiB,
      memfileWasteMiB: variant === 'cached' ? 0 : (waste * PAGE) / MiB,
    };
  } finally {
    await toucher.stop();
    await fh.close();
    ram.free();
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function main(): Promise<void> {
  const arg = (name: string, def: string): string => {
    const i = process.argv.indexOf(`--${name}`);
    return i >= 0 ? process.argv[i + 1]! : def;
  };
  const dataMiB = Number(arg('data-mib', '256'));
  const wsMiB = Number(arg('ws-mib', '64'));
  const repeats = Number(arg('repeats', '5'));
  const variants = arg(
    'variants',
    'cached,vanilla,faasnap,no-paging,no-regions,no-compact-file',
  ).split(',');
  const input = arg('input', 'B') === 'A' ? 'A' : 'B';
  const s = await setup(dataMiB, wsMiB, input, Number(arg('code-kib', '64')));
  try {
    const lsMiB = loadingSetSize(s.manifest.regions) / MiB;
    console.log(
      `memory ${s.memSize / MiB} MiB, loading set ${lsMiB.toFixed(1)} MiB in ${s.manifest.regions.length} regions, ` +
        `${s.manifest.recording.scans} scans; input ${input} touches ${s.inputB.length} pages (${((s.inputB.length * PAGE) / MiB).toFixed(1)} MiB)`,
    );
    for (const r of s.manifest.regions.slice(0, 8)) {
      console.log(
        `  region mem ${r.memOffset / PAGE} +${r.length / PAGE} pages, file ${r.fileOffset / PAGE}, group ${r.group}`,
      );
    }
    const samples: IoSample[] = [];
    for (let r = 0; r < repeats; r++) {
      for (const v of variants) samples.push(await runOnce(s, v));
    }
    const cols: (keyof IoSample)[] = [
      'ms',
      'touchMs',
      'prefetchMs',
      'populateMs',
      'readMiB',
      'majflt',
      'minflt',
      'touchMajflt',
      'touchMinflt',
      'memfileMiB',
      'loadsetMiB',
      'twiceMiB',
      'memfileWasteMiB',
    ];
    console.log(['variant'.padEnd(22), ...cols.map((c) => c.padStart(16))].join(''));
    for (const v of variants) {
      const mine = samples.filter((x) => x.variant === v);
      console.log(
        [
          v.padEnd(22),
          ...cols.map((c) =>
            median(mine.map((x) => x[c] as number))
              .toFixed(1)
              .padStart(16),
          ),
        ].join(''),
      );
    }
    console.log(`medians of ${repeats} interleaved repeats`);
  } finally {
    rmSync(s.dir, { recursive: true, force: true });
  }
}

if (isMainThread && process.argv[1] === fileURLToPath(import.meta.url)) await main();
