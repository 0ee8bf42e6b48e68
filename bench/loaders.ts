// Memory-loader benchmark on the CPL3 touch micro-guest (native speed here, so no guest-kernel
// emulation distorts it). A snapshot holds `dataMiB` of non-zero "function state" at the guest's
// first instruction; FaaSnap records with input A; every measured restore runs input B in a fresh
// VMM process from the pool, with the page cache dropped (or loaded, for `cached`), modes
// interleaved per repeat. Reports end-to-end time, restore latency, VMM faults and bytes read.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  MICRO_DATA_GPA,
  MICRO_PARAM_GPA,
  encodeTouchParams,
  parseTouchOutput,
  touchExpectedChecksum,
  type TouchParams,
} from '../guest/micro/index.js';
import { createMicroVm } from '../guest/micro/launch.js';
import type { MemoryMode } from '../loader/modes.js';
import { loadingSetSize } from '../loader/loading-set.js';
import type { VmmStats } from '../process/protocol.js';
import { VmmPool } from '../process/pool.js';
import { dropPageCache, loadPageCache } from '../vmm/snapshot/memory-dump.js';
import { recordFaasnap, recordReap } from '../restore/record.js';
import { createSnapshot, snapshotPaths } from '../restore/snapshot.js';
import { readFileSync } from 'node:fs';
import { limitDistances, summarize, type LimitDistance, type Summary } from './stats.js';
import { timeColdRead } from './cold-read.js';

export interface LoaderBenchOptions {
  modes: MemoryMode[];
  repeats: number;
  /** Non-zero function state in the snapshot, MiB. */
  dataMiB: number;
  /** Pages the function reads (its working set), per input. */
  workingSetPages: number;
  onProgress?: (what: string) => void;
}

export interface LoaderSample {
  restoreMs: number;
  e2eMs: number;
  runMs: number;
  stats: VmmStats;
}

export interface LoaderBenchResult {
  memMiB: number;
  snapshotBytes: number;
  loadingSetBytes: number;
  recordMs: number;
  samples: Record<string, LoaderSample[]>;
  summary: Record<
    string,
    { e2eMs: Summary; restoreMs: Summary; majorFaults: Summary; readMiB: Summary }
  >;
  /**
   * The physical limit (issue #15): `readMs`, the loading set read alone from a dropped cache
   * (once per repeat, interleaved with the modes); `warmMs`, the guest's run with nothing left to
   * load. The touch guest runs once per VM, so `warmMs` is the `cached` mode's run phase (resume
   * to exit, memory in the page cache: an upper estimate of warm). `distances`: each mode's
   * e2e median against max(warm, read).
   */
  limit: { readMs: Summary; warmMs?: number; distances: Record<string, LimitDistance> };
}

/** A scrambled walk over `count` pages starting at `first` (deterministic). */
function walk(first: number, count: number, stride: number): TouchParams {
  return {
    flags: 0,
    seed: 0,
    pages: Array.from({ length: count }, (_, i) => first + ((i * stride) % count)),
  };
}

export async function runLoaderBench(opts: LoaderBenchOptions): Promise<LoaderBenchResult> {
  const progress = opts.onProgress ?? (() => undefined);
  const dataPages = (opts.dataMiB * 1024 * 1024) / 4096;
  const memMiB = opts.dataMiB + 8;
  // A and B overlap by half, as record and test inputs of one function do.
  const A = walk(0, opts.workingSetPages, 13);
  const B = walk(opts.workingSetPages >> 1, opts.workingSetPages, 29);
  const dir = mkdtempSync(join(tmpdir(), 'faasnap-bench-loaders-'));
  const pool = new VmmPool(2);
  try {
    progress('building the snapshot');
    const vm = createMicroVm({ guest: 'touch', memMiB, vcpus: 1, params: encodeTouchParams(A) });
    const page = new Uint8Array(4096);
    for (let p = 0; p < dataPages; p++) {
      page.fill((p * 7 + 1) & 0xff || 1);
      vm.memory.write(MICRO_DATA_GPA + p * 4096, page);
    }
    await vm.pause();
    await createSnapshot(vm, dir);
    vm.stop();
    const paths = snapshotPaths(dir);
    const image = readFileSync(paths.memoryFile);
    const expected = touchExpectedChecksum(B, image);

    progress('recording the FaaSnap working set with input A');
    const rec = await recordFaasnap(dir, async (v) => {
      await v.runToCompletion(120_000);
    });
    if (opts.modes.includes('reap')) {
      progress('recording the REAP working set with input A');
      await recordReap(dir, async (v) => {
        await v.runToCompletion(120_000);
      });
    }
    await pool.fill();

    const samples: Record<string, LoaderSample[]> = {};
    const readMs: number[] = [];
    for (let r = 0; r < opts.repeats; r++) {
      progress(`repeat ${r + 1}/${opts.repeats}: loading-set read alone`);
      readMs.push((await timeColdRead(paths.loadingSetFile)).ms);
      for (const mode of opts.modes) {
        progress(`repeat ${r + 1}/${opts.repeats}: ${mode}`);
        if (mode === 'cached') await loadPageCache(paths.memoryFile);
        else {
          dropPageCache(paths.memoryFile);
          dropPageCache(paths.loadingSetFile);
        }
        const vmm = await pool.take();
        try {
          const t0 = performance.now();
          await vmm.call({ type: 'restore', snapshotDir: dir, mode });
          await vmm.call({
            type: 'write-memory',
            gpa: MICRO_PARAM_GPA,
            data: encodeTouchParams(B),
          });
          await vmm.call({ type: 'resume' });
          const t1 = performance.now();
          await vmm.call({ type: 'wait', timeoutMs: 120_000 });
          const t2 = performance.now();
          const out = parseTouchOutput(await vmm.call<string>({ type: 'console' }));
          if (out.checksum !== expected) throw new Error(`${mode}: wrong checksum ${out.checksum}`);
          const stats = await vmm.call<VmmStats>({ type: 'stats' });
          (samples[mode] ??= []).push({
            restoreMs: t1 - t0,
            e2eMs: t2 - t0,
            runMs: t2 - t1,
            stats,
          });
        } finally {
          await vmm.kill();
        }
      }
    }
    const summary: LoaderBenchResult['summary'] = {};
    for (const [mode, s] of Object.entries(samples)) {
      summary[mode] = {
        e2eMs: summarize(s.map((x) => x.e2eMs)),
        restoreMs: summarize(s.map((x) => x.restoreMs)),
        majorFaults: summarize(s.map((x) => x.stats.majorFaults)),
        readMiB: summarize(s.map((x) => x.stats.readBytes / 2 ** 20)),
      };
    }
    const warmMs = samples.cached
      ? summarize(samples.cached.map((x) => x.runMs)).median
      : undefined;
    const read = summarize(readMs);
    const limit = {
      readMs: read,
      warmMs,
      distances: limitDistances(
        Object.fromEntries(Object.entries(summary).map(([m, s]) => [m, s.e2eMs.median])),
        { readMs: read.median, warmMs },
      ),
    };
    return {
      limit,
      memMiB,
      snapshotBytes: image.length,
      loadingSetBytes: loadingSetSize(rec.manifest.regions),
      recordMs: rec.recordMs,
      samples,
      summary,
    };
  } finally {
    await pool.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
