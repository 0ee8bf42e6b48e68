import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { writeRun, toCsv } from '../experiments/results.js';
import { bars, checkXml, handMadeRun } from './fixtures.js';
import { aggregate, geomean, ratios } from './ratios.js';
import { renderReport, writeReport } from './report.js';
import { barChart, cdfPoints, lineChart, stackedBarChart, ticks } from './svg.js';

const near = (a: number, b: number, what: string) =>
  assert.ok(Math.abs(a - b) < 1e-9, `${what}: ${a} ≠ ${b}`);

test('geomean, ticks, CDF points', () => {
  near(geomean([1, 4]), 2, 'geomean');
  near(geomean([2, 8, 4]), 4, 'geomean of 3');
  assert.ok(Number.isNaN(geomean([])));
  assert.deepEqual(ticks(9), [0, 2, 4, 6, 8, 10]);
  assert.deepEqual(ticks(1), [0, 0.2, 0.4, 0.6, 0.8, 1]);
  assert.deepEqual(ticks(0), [0, 1]);
  assert.deepEqual(cdfPoints([3, 1, 2, 4]), [
    [1, 0.25],
    [2, 0.5],
    [3, 0.75],
    [4, 1],
  ]);
});

test('ratios and targets from a hand-made run', () => {
  const doc = handMadeRun();
  const cells = aggregate(doc.samples);
  const jsonFaasnap = cells.find((c) => c.function === 'json' && c.setting === 'faasnap')!;
  assert.equal(jsonFaasnap.failures, 1);
  assert.equal(jsonFaasnap.e2e.n, 3);
  near(jsonFaasnap.e2e.median, 60, 'median');
  const r = ratios(cells);
  const m = r.functions.find((f) => f.function === 'matmul')!;
  const j = r.functions.find((f) => f.function === 'json')!;
  near(m.faasnapVsCached, 1.05, 'matmul faasnap/cached');
  near(m.faasnapVsVanilla, 105 / 400, 'matmul faasnap/vanilla');
  near(m.faasnapVsReap, 0.7, 'matmul faasnap/reap');
  near(j.faasnapVsCached, 1.2, 'json faasnap/cached');
  near(j.faasnapVsReapDifferent, 1.5, 'json faasnap/reap');
  near(m.normalised.vanilla!, 4, 'matmul vanilla normalised');
  near(r.geomean.faasnapVsVanilla, Math.sqrt((105 / 400) * (60 / 120)), 'geomean faasnap/vanilla');
  const [t1, t2, t3] = r.targets;
  assert.equal(t1!.verdict, 'FAIL');
  assert.match(t1!.detail, /json 1\.20x/);
  assert.doesNotMatch(t1!.detail, /matmul/);
  assert.equal(t2!.verdict, 'PASS'); // vanilla/faasnap = 2.76x
  assert.match(t2!.detail, /2\.76x/);
  assert.equal(t3!.verdict, 'FAIL');
  assert.match(t3!.detail, /json 1\.50x/);

  // Without the failing function every target passes; without reap T3 is N/A.
  const good = ratios(cells.filter((c) => c.function === 'matmul'));
  assert.deepEqual(
    good.targets.map((t) => t.verdict),
    ['PASS', 'PASS', 'PASS'],
  );
  const noReap = ratios(cells.filter((c) => c.setting !== 'reap'));
  assert.equal(noReap.targets[2]!.verdict, 'N/A');
  // Same input only: T3 does not apply.
  const same = ratios(aggregate(doc.samples.map((s) => ({ ...s, sameInput: true }))));
  assert.equal(same.targets[2]!.verdict, 'N/A');
});

test('SVG charts are well-formed XML with one bar per value', () => {
  const svg = barChart({
    title: 'a <b> & "c"',
    yLabel: 'ms',
    series: ['cached', 'faasnap'],
    groups: [
      { label: 'f&g', values: { cached: 1, faasnap: 2 } },
      { label: 'h', values: { cached: 3, faasnap: null } },
    ],
    refLine: 1,
  });
  checkXml(svg);
  assert.deepEqual(bars(svg), [
    { group: 'f&amp;g', series: 'cached', value: 1 },
    { group: 'f&amp;g', series: 'faasnap', value: 2 },
    { group: 'h', series: 'cached', value: 3 },
  ]);
  assert.match(svg, /class="ref"/);
  const st = stackedBarChart({
    title: 's',
    yLabel: 'ms',
    parts: ['a', 'b'],
    bars: [{ label: 'x', parts: { a: 1, b: 0 } }],
  });
  checkXml(st);
  assert.equal(bars(st).length, 1); // zero-height segments are left out
  const ln = lineChart({
    title: 'cdf',
    xLabel: 'ms',
    yLabel: 'F',
    series: [{ name: 'a', points: cdfPoints([1, 2, 3]) }],
    step: true,
    yMax: 1,
  });
  checkXml(ln);
  assert.match(ln, /<path class="line" data-series="a" data-points="3"/);
  assert.throws(() => checkXml('<svg><g></svg>'), /closes/);
  assert.throws(() => checkXml('<svg a="x & y"/>'), /entity/);
});

test('report: markdown rows, targets, charts, parallel CDFs, failures', () => {
  const doc = handMadeRun();
  const r = renderReport(doc, 'hand-2026');
  const md = r.markdown;
  assert.match(md, /^# hand: hand-made/);
  assert.match(
    md,
    /\| T1 \| faasnap ≤ 1\.10x cached on every function \| \*\*FAIL\*\* \| over: json 1\.20x \|/,
  );
  assert.match(md, /\| T2 \| .* \| \*\*PASS\*\* \|/);
  assert.match(md, /\| T3 \| .* \| \*\*FAIL\*\* \|/);
  assert.match(md, /\| matmul \| 1\.05x \| 0\.26x \| 0\.70x \| 0\.70x \|/);
  assert.match(
    md,
    /\| matmul \| 1 \| no \| cached \| 100\.0 \| 92\.0 \| 116\.0 \| 3 \| 1\.00x \| 0 \|/,
  );
  assert.match(md, /\| matmul \| 1 \| no \| vanilla \| 400\.0 \| .* \| 4\.00x \| 0 \|/);
  assert.match(md, /\| json \| 1 \| no \| faasnap \| 60\.0 \| .* \| 1\.20x \| 1 \|/);
  assert.match(md, /\| json \| faasnap \| FUNCTION_ERROR \| 1 \| boom \\\| with a pipe \|/);
  assert.match(md, /\| matmul \| 1 \| 2 \| separate \| faasnap \| 135\.0 \|/);
  assert.deepEqual(Object.keys(r.svgs).sort(), [
    'breakdown.svg',
    'cdf-matmul-2.svg',
    'latency.svg',
    'normalised.svg',
  ]);
  for (const [name, svg] of Object.entries(r.svgs)) {
    try {
      checkXml(svg);
    } catch (e) {
      assert.fail(`${name}: ${(e as Error).message}`);
    }
    assert.ok(md.includes(`](${name})`), `${name} is linked from the markdown`);
  }
  const norm = bars(r.svgs['normalised.svg']!);
  assert.equal(norm.length, 8); // 2 functions × 4 settings
  assert.deepEqual(
    norm.filter((b) => b.group === 'matmul').map((b) => [b.series, b.value]),
    [
      ['cached', 1],
      ['vanilla', 4],
      ['reap', 1.5],
      ['faasnap', 1.05],
    ],
  );
  const abs = bars(r.svgs['latency.svg']!);
  assert.equal(abs.find((b) => b.group === 'json' && b.series === 'reap')?.value, 40);
  const cdf = r.svgs['cdf-matmul-2.svg']!;
  assert.equal([...cdf.matchAll(/<path class="line"/g)].length, 4); // 2 settings × same/separate
  assert.match(cdf, /data-series="faasnap \(separate\)" data-points="2"/);
  const bd = bars(r.svgs['breakdown.svg']!);
  assert.ok(bd.some((b) => b.group === 'matmul faasnap' && b.series === 'guest run'));
});

test('writeRun + writeReport round trip on disk, CSV has one row per sample', () => {
  const dir = mkdtempSync(join(tmpdir(), 'faasnap-bench-report-'));
  try {
    const doc = handMadeRun();
    const run = join(dir, 'results', 'hand-2026');
    writeRun(run, doc);
    const csv = readFileSync(join(run, 'results.csv'), 'utf8').trim().split('\n');
    assert.equal(csv.length, doc.samples.length + 1);
    assert.match(csv[0]!, /^function,setting,record,test,/);
    assert.equal(toCsv(doc.samples).trim().split('\n').length, csv.length);
    assert.ok(
      csv.some((l) => l.includes('"boom | with a pipe"') || l.includes('boom | with a pipe')),
    );
    const out = writeReport(run, join(dir, 'docs'));
    assert.equal(out.dir, join(dir, 'docs', 'hand-2026'));
    assert.ok(existsSync(join(out.dir, 'README.md')));
    assert.ok(existsSync(join(out.dir, 'normalised.svg')));
    assert.equal(out.files.length, 5);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('report: memory-loading table of VMM counters, medians per cell, only when recorded', () => {
  const doc = handMadeRun();
  assert.doesNotMatch(renderReport(doc, 'hand').markdown, /## Memory loading/);
  // matmul vanilla repeats 0, 1, 2 → major faults 100, 200, 300, read 1, 2, 3 MiB.
  for (const s of doc.samples)
    if (s.function === 'matmul' && s.setting === 'vanilla' && s.parallelism === 1)
      s.vmm = {
        majorFaults: 100 * (s.repeat + 1),
        minorFaults: 7,
        readBytes: (s.repeat + 1) * 2 ** 20,
      };
  const md = renderReport(doc, 'hand').markdown;
  assert.match(md, /## Memory loading/);
  assert.match(md, /\| matmul \| 1 \| vanilla \| 200 \| 7 \| 2\.0 \|/);
  assert.doesNotMatch(
    md,
    /\| matmul \| 1 \| cached \| \d+ \| \d+ \| [\d.]+ \|/,
    'no counters, no row',
  );
});

test('report: a partial run says so', () => {
  const doc = handMadeRun();
  assert.doesNotMatch(renderReport(doc, 'hand').markdown, /partial/);
  doc.partial = true;
  assert.match(renderReport(doc, 'hand').markdown, /\(\*\*partial\*\*: the run stopped/);
});
