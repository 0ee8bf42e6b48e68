// `faasnap bench report <run-dir>`: markdown tables and SVG charts of an experiment run, written
// to docs/results/<run>/ (README.md + *.svg): latency per function and setting normalised to the
// baseline (cached, as the paper's figures), absolute latency, the read/process/write (or phase)
// breakdown, ratios and the issue's targets with PASS/FAIL, and CDFs of the parallel runs (E3).

import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { readRun, type RunDoc, type Sample } from '../experiments/results.js';
import { aggregate, ratios, type Cell, type RatioReport } from './ratios.js';
import {
  barChart,
  cdfPoints,
  lineChart,
  stackedBarChart,
  type BarGroup,
  type LineSeries,
} from './svg.js';

export interface RenderedReport {
  markdown: string;
  svgs: Record<string, string>;
  ratios: RatioReport;
  cells: Cell[];
}

const ms = (v: number | null | undefined): string =>
  v === null || v === undefined || !Number.isFinite(v) ? '–' : v < 10 ? v.toFixed(2) : v.toFixed(1);
const x = (v: number | null | undefined): string =>
  v === null || v === undefined || !Number.isFinite(v) ? '–' : `${v.toFixed(2)}x`;
const cell = (s: string): string => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

function mdTable(head: string[], rows: string[][]): string {
  return [
    `| ${head.join(' | ')} |`,
    `|${head.map((h, i) => (i === 0 || /^[a-z ]/.test(h) ? '---' : '---:')).join('|')}|`,
    ...rows.map((r) => `| ${r.map(cell).join(' | ')} |`),
  ].join('\n');
}

/** Breakdown segments of a cell: restore, resume, guest read/process/write (or run), other. */
export function breakdown(c: Cell): Record<string, number> {
  const p = c.phases;
  const restore = p.restore ?? 0;
  const resume = (p['input-write'] ?? 0) + (p['vcpu-resume'] ?? 0) + (p['pool-take'] ?? 0);
  const rpw = c.readMs !== null || c.processMs !== null || c.writeMs !== null;
  const guest: Record<string, number> = rpw
    ? { read: c.readMs ?? 0, process: c.processMs ?? 0, write: c.writeMs ?? 0 }
    : { 'guest run': p['guest-run'] ?? 0 };
  const sum = restore + resume + Object.values(guest).reduce((a, b) => a + b, 0);
  return {
    restore,
    'pool + input + resume': resume,
    ...guest,
    other: Math.max(0, c.e2e.median - sum),
  };
}

export function renderReport(doc: RunDoc, runName: string): RenderedReport {
  const cells = aggregate(doc.samples);
  const baseline = doc.config.baseline ?? 'cached';
  const r = ratios(cells, baseline);
  const settings: string[] = doc.config.settings.filter((s) => cells.some((c) => c.setting === s));
  const singles = cells.filter((c) => c.parallelism === 1 && c.snapshots === 'same');
  const fnOrder = [...new Set(cells.map((c) => c.function))];
  const testsOf = (fn: string) => [
    ...new Set(singles.filter((c) => c.function === fn).map((c) => c.test)),
  ];
  const multiTest = fnOrder.some((fn) => testsOf(fn).length > 1);
  const label = (fn: string, test: number) => (multiTest ? `${fn} in${test}` : fn);
  const find = (fn: string, test: number, setting: string) =>
    singles.find((c) => c.function === fn && c.test === test && c.setting === setting);

  const svgs: Record<string, string> = {};
  const md: string[] = [];
  const m = doc.machine;
  md.push(
    `# ${doc.experiment}: ${doc.config.description}`,
    '',
    `Run \`${runName}\`, ${doc.startedAt} → ${doc.finishedAt}${doc.partial ? ' (**partial**: the run stopped before its end; these are the samples saved so far)' : ''}. Command: \`${doc.command}\`.`,
    '',
    `Machine: ${m.cpu}, ${m.cores} cores, ${m.memGiB} GiB, kernel ${m.kernel}, KVM ${m.kvm}, Node ${m.node}. ` +
      `Daemon ${doc.daemon.version ?? '?'}${doc.daemon.dataDevice ? `, snapshots on ${doc.daemon.dataDevice}` : ''}${doc.daemon.guest?.rootfs ? `, guest image \`${basename(doc.daemon.guest.rootfs)}\`` : ''}.`,
    '',
    `Settings: ${doc.config.settings.join(', ')}; ${doc.config.repeats} repeat(s); record input ${doc.config.record}, test inputs ${doc.config.tests.join(', ')}` +
      (doc.config.recording ? `; recording ${JSON.stringify(doc.config.recording)}` : '') +
      (doc.config.storage ? `; storage ${doc.config.storage.kind}` : '') +
      '.',
    '',
    "Latency = the daemon's invocation duration without `page-cache-load` (the cached setting's preparation) and `teardown` (after the answer); medians over repeats.",
    '',
  );

  md.push('## Functions', '');
  md.push(
    mdTable(
      [
        'function',
        'runtime/handler',
        'snapshot',
        'deploy s',
        'memory MiB',
        'loading set MiB',
        'status',
      ],
      doc.functions.map((f) => {
        const ins = (f.inspect ?? {}) as {
          memoryBytes?: number;
          loadingSet?: { bytes: number } | null;
        };
        return [
          f.name,
          `${f.runtime}/${f.handler}`,
          f.snapshot ?? '–',
          f.deployMs === null ? (f.reused ? 'reused' : '–') : (f.deployMs / 1000).toFixed(1),
          ins.memoryBytes ? (ins.memoryBytes / 2 ** 20).toFixed(0) : '–',
          ins.loadingSet ? (ins.loadingSet.bytes / 2 ** 20).toFixed(2) : '–',
          f.skipped ? `skipped: ${f.skipped}` : 'ran',
        ];
      }),
    ),
    '',
  );

  md.push('## Targets', '');
  md.push(
    mdTable(
      ['target', 'goal', 'verdict', 'detail'],
      r.targets.map((t) => [
        t.id,
        t.text,
        t.verdict === 'PASS' ? '**PASS**' : t.verdict === 'FAIL' ? '**FAIL**' : 'N/A',
        t.detail,
      ]),
    ),
    '',
  );

  md.push(
    '## Ratios',
    '',
    'Per function: geometric mean over its test inputs of the ratio of medians.',
    '',
  );
  md.push(
    mdTable(
      [
        'function',
        'faasnap/cached',
        'faasnap/vanilla',
        'faasnap/reap',
        'faasnap/reap (test ≠ record)',
      ],
      [
        ...r.functions.map((f) => [
          f.function,
          x(f.faasnapVsCached),
          x(f.faasnapVsVanilla),
          x(f.faasnapVsReap),
          f.hasDifferentInput ? x(f.faasnapVsReapDifferent) : 'same input',
        ]),
        [
          '**geomean**',
          x(r.geomean.faasnapVsCached),
          x(r.geomean.faasnapVsVanilla),
          x(r.geomean.faasnapVsReap),
          '',
        ],
      ],
    ),
    '',
  );

  if (singles.length) {
    const groups: BarGroup[] = [];
    const abs: BarGroup[] = [];
    const rows: string[][] = [];
    for (const fn of fnOrder)
      for (const test of testsOf(fn)) {
        const base = find(fn, test, baseline);
        const g: BarGroup = { label: label(fn, test), values: {} };
        const a: BarGroup = { label: label(fn, test), values: {} };
        for (const s of settings) {
          const c = find(fn, test, s);
          if (!c) continue;
          const norm = base && c.e2e.n && base.e2e.n ? c.e2e.median / base.e2e.median : null;
          if (c.e2e.n) {
            g.values[s] = norm;
            a.values[s] = c.e2e.median;
          }
          rows.push([
            fn,
            String(test),
            c.sameInput ? 'yes' : 'no',
            s,
            ms(c.e2e.median),
            ms(c.e2e.p10),
            ms(c.e2e.p90),
            String(c.e2e.n),
            x(norm),
            String(c.failures),
          ]);
        }
        groups.push(g);
        abs.push(a);
      }
    svgs['normalised.svg'] = barChart({
      title: `${doc.experiment}: latency normalised to ${baseline}`,
      yLabel: `latency / ${baseline}`,
      series: settings,
      groups,
      refLine: 1,
    });
    svgs['latency.svg'] = barChart({
      title: `${doc.experiment}: median latency`,
      yLabel: 'ms',
      series: settings,
      groups: abs,
    });
    md.push(
      '## Latency',
      '',
      `![latency normalised to ${baseline}](normalised.svg)`,
      '',
      '![median latency](latency.svg)',
      '',
      mdTable(
        [
          'function',
          'test input',
          'same as record',
          'setting',
          'median ms',
          'p10 ms',
          'p90 ms',
          'n',
          `vs ${baseline}`,
          'failures',
        ],
        rows,
      ),
      '',
    );

    const parts = new Set<string>();
    const bars = singles
      .filter((c) => c.e2e.n)
      .sort(
        (a, b) =>
          fnOrder.indexOf(a.function) - fnOrder.indexOf(b.function) ||
          a.test - b.test ||
          settings.indexOf(a.setting) - settings.indexOf(b.setting),
      )
      .map((c) => {
        const b = breakdown(c);
        for (const k of Object.keys(b)) parts.add(k);
        return { c, b };
      });
    const partList = [
      'restore',
      'pool + input + resume',
      'read',
      'process',
      'write',
      'guest run',
      'other',
    ].filter((p) => parts.has(p));
    svgs['breakdown.svg'] = stackedBarChart({
      title: `${doc.experiment}: where the time goes (medians)`,
      yLabel: 'ms',
      parts: partList,
      bars: bars.map(({ c, b }) => ({
        label: `${label(c.function, c.test)} ${c.setting}`,
        parts: b,
      })),
    });
    md.push(
      '## Breakdown',
      '',
      'Guest read/process/write come from the agent runtimes (`guest-read/process/write` phases); micro-guests report one `guest run`.',
      '',
      '![breakdown](breakdown.svg)',
      '',
      mdTable(
        ['function', 'test input', 'setting', ...partList.map((p) => `${p} ms`)],
        bars.map(({ c, b }) => [
          c.function,
          String(c.test),
          c.setting,
          ...partList.map((p) => ms(b[p])),
        ]),
      ),
      '',
    );

    const loading = bars.filter(({ c }) => c.majorFaults !== null);
    if (loading.length)
      md.push(
        '## Memory loading',
        '',
        "The restored VMM process's page faults and the bytes it read from storage, from restore to the function's answer (medians; `/proc/self/stat` and `/proc/self/io` of the VMM process; warm hits have none).",
        '',
        mdTable(
          ['function', 'test input', 'setting', 'major faults', 'minor faults', 'read MiB'],
          loading.map(({ c }) => [
            c.function,
            String(c.test),
            c.setting,
            String(c.majorFaults),
            String(c.minorFaults ?? '–'),
            c.readBytes === null ? '–' : (c.readBytes / 2 ** 20).toFixed(1),
          ]),
        ),
        '',
      );
  }

  const parallel = cells.filter((c) => c.parallelism > 1 || c.snapshots === 'separate');
  if (parallel.length) {
    md.push('## Parallel invocations', '');
    const ok = (s: Sample) => s.status === 'succeeded' && s.e2eMs !== null;
    const rows: string[][] = [];
    const sorted = [...cells].sort(
      (a, b) =>
        fnOrder.indexOf(a.function) - fnOrder.indexOf(b.function) ||
        a.parallelism - b.parallelism ||
        a.snapshots.localeCompare(b.snapshots) ||
        settings.indexOf(a.setting) - settings.indexOf(b.setting),
    );
    for (const c of sorted)
      rows.push([
        c.function,
        String(c.test),
        String(c.parallelism),
        c.snapshots,
        c.setting,
        ms(c.e2e.median),
        ms(c.e2e.p90),
        ms(c.e2e.max),
        String(c.e2e.n),
        String(c.failures),
      ]);
    for (const fn of fnOrder) {
      const ns = [
        ...new Set(cells.filter((c) => c.function === fn).map((c) => c.parallelism)),
      ].sort((a, b) => a - b);
      for (const nPar of ns) {
        if (nPar === 1) continue;
        const series: LineSeries[] = [];
        for (const snaps of ['same', 'separate'] as const)
          for (const s of settings) {
            const xs = doc.samples
              .filter(
                (v) =>
                  v.function === fn &&
                  v.parallelism === nPar &&
                  v.snapshots === snaps &&
                  v.setting === s &&
                  ok(v),
              )
              .map((v) => v.e2eMs!);
            if (xs.length)
              series.push({
                name: `${s} (${snaps})`,
                points: cdfPoints(xs),
                dashed: snaps === 'separate',
                colorIndex: settings.indexOf(s),
              });
          }
        if (!series.length) continue;
        const file = `cdf-${fn}-${nPar}.svg`;
        svgs[file] = lineChart({
          title: `${fn}: ${nPar} concurrent invocations, CDF of latency`,
          xLabel: 'latency ms',
          yLabel: 'fraction of invocations',
          series,
          step: true,
          yMax: 1,
        });
        md.push(`![${fn} ×${nPar}](${file})`, '');
      }
    }
    md.push(
      mdTable(
        [
          'function',
          'test input',
          'N',
          'snapshots',
          'setting',
          'median ms',
          'p90 ms',
          'max ms',
          'n',
          'failures',
        ],
        rows,
      ),
      '',
    );
  }

  const failed = doc.samples.filter((s) => s.status !== 'succeeded');
  md.push('## Failures', '');
  if (failed.length === 0) md.push('None.', '');
  else {
    const by = new Map<string, Sample[]>();
    for (const s of failed) {
      const k = `${s.function} ${s.setting} ${s.error?.code ?? s.status}`;
      by.set(k, [...(by.get(k) ?? []), s]);
    }
    md.push(
      mdTable(
        ['function', 'setting', 'code', 'count', 'first message', 'trace'],
        [...by.values()].map((g) => [
          g[0]!.function,
          g[0]!.setting,
          g[0]!.error?.code ?? g[0]!.status,
          String(g.length),
          (g[0]!.error?.message ?? '').slice(0, 160),
          g[0]!.traceId ?? '–',
        ]),
      ),
      '',
    );
  }
  md.push(`Raw samples: \`bench/results/${runName}/results.json\` and \`results.csv\`.`, '');
  return { markdown: md.join('\n'), svgs, ratios: r, cells };
}

/** Reads a run directory and writes its report into `<outRoot>/<run>/`. */
export function writeReport(
  runDir: string,
  outRoot = 'docs/results',
): RenderedReport & { dir: string; files: string[] } {
  const doc = readRun(runDir);
  const runName = basename(resolve(runDir));
  const rendered = renderReport(doc, runName);
  const dir = resolve(outRoot, runName);
  mkdirSync(dir, { recursive: true });
  const files = [join(dir, 'README.md')];
  writeFileSync(files[0]!, rendered.markdown);
  for (const [name, svg] of Object.entries(rendered.svgs)) {
    writeFileSync(join(dir, name), svg);
    files.push(join(dir, name));
  }
  return { ...rendered, dir, files };
}
