// Aggregation of raw samples into medians per (function, test input, setting, parallelism), the
// ratios the paper reports (normalised to cached, faasnap vs vanilla and REAP) and the issue's
// targets with PASS/FAIL:
//   T1  faasnap ≤ 1.10× cached on every function;
//   T2  faasnap ≥ 2× faster than vanilla (geometric mean over functions);
//   T3  faasnap faster than REAP on every function, over its test inputs that differ from the
//       record input.
// Per-function ratios over several test inputs are geometric means of the per-input ratios of
// medians. Only succeeded samples of single invocations (parallelism 1) enter the targets.

import { summarize, type Summary } from '../stats.js';
import type { Sample } from '../experiments/results.js';

export interface Cell {
  function: string;
  test: number;
  sameInput: boolean;
  setting: string;
  parallelism: number;
  snapshots: 'same' | 'separate';
  e2e: Summary;
  readMs: number | null;
  processMs: number | null;
  writeMs: number | null;
  /** Median per phase over the succeeded samples. */
  phases: Record<string, number>;
  /** Medians of the restored VMM process's counters; null where no sample has them. */
  majorFaults: number | null;
  minorFaults: number | null;
  readBytes: number | null;
  failures: number;
}

export function geomean(xs: readonly number[]): number {
  const v = xs.filter((x) => Number.isFinite(x) && x > 0);
  if (v.length === 0) return NaN;
  return Math.exp(v.reduce((a, x) => a + Math.log(x), 0) / v.length);
}

function median(xs: readonly number[]): number | null {
  return xs.length ? summarize(xs).median : null;
}

const key = (s: {
  function: string;
  test: number;
  setting: string;
  parallelism: number;
  snapshots: string;
}): string =>
  `${s.function}\u0000${s.test}\u0000${s.setting}\u0000${s.parallelism}\u0000${s.snapshots}`;

/** Cells in first-seen order of the samples. */
export function aggregate(samples: readonly Sample[]): Cell[] {
  const groups = new Map<string, Sample[]>();
  for (const s of samples) {
    const k = key(s);
    let g = groups.get(k);
    if (!g) groups.set(k, (g = []));
    g.push(s);
  }
  return [...groups.values()].map((g) => {
    const ok = g.filter((s) => s.status === 'succeeded' && s.e2eMs !== null);
    const first = g[0]!;
    const phaseNames = new Set(ok.flatMap((s) => Object.keys(s.phases)));
    const phases: Record<string, number> = {};
    for (const p of phaseNames) phases[p] = median(ok.map((s) => s.phases[p] ?? 0)) ?? 0;
    const pick = (f: (s: Sample) => number | null) =>
      median(ok.map(f).filter((v): v is number => v !== null));
    return {
      function: first.function,
      test: first.test,
      sameInput: first.sameInput,
      setting: first.setting,
      parallelism: first.parallelism,
      snapshots: first.snapshots,
      e2e: summarize(ok.map((s) => s.e2eMs!)),
      readMs: pick((s) => s.readMs),
      processMs: pick((s) => s.processMs),
      writeMs: pick((s) => s.writeMs),
      phases,
      majorFaults: pick((s) => s.vmm?.majorFaults ?? null),
      minorFaults: pick((s) => s.vmm?.minorFaults ?? null),
      readBytes: pick((s) => s.vmm?.readBytes ?? null),
      failures: g.length - ok.length,
    };
  });
}

export interface FunctionRatios {
  function: string;
  /** setting → geomean over test inputs of median(setting) / median(baseline). */
  normalised: Record<string, number>;
  faasnapVsCached: number;
  faasnapVsVanilla: number;
  faasnapVsReap: number;
  /** faasnap / reap over the test inputs that differ from the record input only. */
  faasnapVsReapDifferent: number;
  hasDifferentInput: boolean;
}

export type Verdict = 'PASS' | 'FAIL' | 'N/A';

export interface Target {
  id: string;
  text: string;
  verdict: Verdict;
  detail: string;
}

export interface RatioReport {
  baseline: string;
  functions: FunctionRatios[];
  geomean: { faasnapVsVanilla: number; faasnapVsCached: number; faasnapVsReap: number };
  targets: Target[];
}

/** Cells of single invocations, by function and test input. */
function singles(cells: readonly Cell[]): Map<string, Map<number, Map<string, Cell>>> {
  const m = new Map<string, Map<number, Map<string, Cell>>>();
  for (const c of cells) {
    if (c.parallelism !== 1 || c.e2e.n === 0) continue;
    let f = m.get(c.function);
    if (!f) m.set(c.function, (f = new Map()));
    let t = f.get(c.test);
    if (!t) f.set(c.test, (t = new Map()));
    t.set(c.setting, c);
  }
  return m;
}

function ratioOver(
  tests: Map<number, Map<string, Cell>>,
  a: string,
  b: string,
  only?: (c: Cell) => boolean,
): number {
  const rs: number[] = [];
  for (const t of tests.values()) {
    const x = t.get(a);
    const y = t.get(b);
    if (!x || !y || (only && !only(x))) continue;
    rs.push(x.e2e.median / y.e2e.median);
  }
  return geomean(rs);
}

const fmt = (x: number): string => (Number.isFinite(x) ? `${x.toFixed(2)}x` : 'n/a');

export function ratios(cells: readonly Cell[], baseline = 'cached'): RatioReport {
  const settings = [...new Set(cells.map((c) => c.setting))];
  const fns: FunctionRatios[] = [];
  for (const [fn, tests] of singles(cells)) {
    const normalised: Record<string, number> = {};
    for (const s of settings) normalised[s] = ratioOver(tests, s, baseline);
    const hasDifferentInput = [...tests.values()].some((t) =>
      [...t.values()].some((c) => !c.sameInput),
    );
    fns.push({
      function: fn,
      normalised,
      faasnapVsCached: ratioOver(tests, 'faasnap', 'cached'),
      faasnapVsVanilla: ratioOver(tests, 'faasnap', 'vanilla'),
      faasnapVsReap: ratioOver(tests, 'faasnap', 'reap'),
      faasnapVsReapDifferent: ratioOver(tests, 'faasnap', 'reap', (c) => !c.sameInput),
      hasDifferentInput,
    });
  }
  const g = {
    faasnapVsVanilla: geomean(fns.map((f) => f.faasnapVsVanilla)),
    faasnapVsCached: geomean(fns.map((f) => f.faasnapVsCached)),
    faasnapVsReap: geomean(fns.map((f) => f.faasnapVsReap)),
  };

  const targets: Target[] = [];
  const t1 = fns.filter((f) => Number.isFinite(f.faasnapVsCached));
  const t1bad = t1.filter((f) => f.faasnapVsCached > 1.1);
  targets.push({
    id: 'T1',
    text: 'faasnap ≤ 1.10x cached on every function',
    verdict: t1.length === 0 ? 'N/A' : t1bad.length ? 'FAIL' : 'PASS',
    detail:
      t1.length === 0
        ? 'needs faasnap and cached'
        : t1bad.length
          ? `over: ${t1bad.map((f) => `${f.function} ${fmt(f.faasnapVsCached)}`).join(', ')}`
          : `worst ${fmt(Math.max(...t1.map((f) => f.faasnapVsCached)))} (${t1.length} functions)`,
  });
  const speedup = 1 / g.faasnapVsVanilla;
  targets.push({
    id: 'T2',
    text: 'faasnap ≥ 2x faster than vanilla (geomean over functions)',
    verdict: Number.isFinite(speedup) ? (speedup >= 2 ? 'PASS' : 'FAIL') : 'N/A',
    detail: Number.isFinite(speedup)
      ? `vanilla/faasnap geomean ${fmt(speedup)}`
      : 'needs faasnap and vanilla',
  });
  const t3 = fns.filter((f) => f.hasDifferentInput && Number.isFinite(f.faasnapVsReapDifferent));
  const t3bad = t3.filter((f) => f.faasnapVsReapDifferent >= 1);
  targets.push({
    id: 'T3',
    text: 'faasnap faster than reap on every function with a test input ≠ record input',
    verdict: t3.length === 0 ? 'N/A' : t3bad.length ? 'FAIL' : 'PASS',
    detail:
      t3.length === 0
        ? 'needs faasnap, reap and a test input different from the record input'
        : t3bad.length
          ? `not faster: ${t3bad.map((f) => `${f.function} ${fmt(f.faasnapVsReapDifferent)}`).join(', ')}`
          : `worst faasnap/reap ${fmt(Math.max(...t3.map((f) => f.faasnapVsReapDifferent)))} (${t3.length} functions)`,
  });
  return { baseline, functions: fns, geomean: g, targets };
}
