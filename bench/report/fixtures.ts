// Test helpers for the report tests: a hand-made run document and an XML well-formedness check
// (no XML parser among the dependencies; SVG output only needs elements, attributes, text).

import type { RunDoc, Sample } from '../experiments/results.js';
import { validateConfig } from '../experiments/config.js';

/** Throws unless `xml` is well-formed: one root, balanced tags, quoted attributes, known entities. */
export function checkXml(xml: string): void {
  const stack: string[] = [];
  let roots = 0;
  const re =
    /<(\/?)([A-Za-z][\w:.-]*)((?:\s+[\w:.-]+="[^"<]*")*)\s*(\/?)>|<!--[\s\S]*?-->|<[^>]*>/g;
  let last = 0;
  let m: RegExpExecArray | null;
  const entities = (s: string) => {
    const bad = /&(?!(amp|lt|gt|quot|apos|#\d+|#x[0-9a-f]+);)/i.exec(s);
    if (bad) throw new Error(`bad entity at ${s.slice(bad.index, bad.index + 10)}`);
  };
  const text = (s: string) => {
    entities(s);
    if (/[<>]/.test(s)) throw new Error(`stray < or > in ${s.slice(0, 40)}`);
    if (stack.length === 0 && s.trim()) throw new Error(`text outside the root: ${s.trim()}`);
  };
  while ((m = re.exec(xml))) {
    text(xml.slice(last, m.index));
    last = re.lastIndex;
    if (m[0].startsWith('<!--')) continue;
    if (!m[2]) throw new Error(`malformed tag ${m[0].slice(0, 60)}`);
    const [, close, name, attrs, selfClose] = m;
    for (const a of (attrs ?? '').matchAll(/="([^"]*)"/g)) entities(a[1]!);
    if (close) {
      const top = stack.pop();
      if (top !== name) throw new Error(`</${name}> closes <${top}>`);
    } else if (!selfClose) {
      if (stack.length === 0) roots++;
      stack.push(name!);
    } else if (stack.length === 0) roots++;
  }
  text(xml.slice(last));
  if (stack.length) throw new Error(`unclosed <${stack.join('> <')}>`);
  if (roots !== 1) throw new Error(`${roots} root elements`);
}

/** Bars of an SVG chart: data-group/series/value of every <rect class="bar">. */
export function bars(svg: string): { group: string; series: string; value: number }[] {
  return [
    ...svg.matchAll(
      /<rect class="bar" data-group="([^"]*)" data-series="([^"]*)" data-value="([^"]*)"/g,
    ),
  ].map((m) => ({ group: m[1]!, series: m[2]!, value: Number(m[3]) }));
}

function sample(
  fn: string,
  setting: Sample['setting'],
  test: number,
  e2eMs: number,
  extra: Partial<Sample> = {},
): Sample {
  return {
    function: fn,
    setting,
    record: 0,
    test,
    sameInput: test === 0,
    repeat: 0,
    parallelism: 1,
    snapshots: 'same',
    slot: 0,
    snapshot: 'snap-00000001',
    invocation: 'inv-00000001',
    traceId: '0'.repeat(32),
    status: 'succeeded',
    error: null,
    clientMs: e2eMs + 5,
    durationMs: e2eMs + 2,
    e2eMs,
    phases: { restore: e2eMs * 0.2, 'guest-run': e2eMs * 0.6, teardown: 2 },
    readMs: null,
    processMs: null,
    writeMs: null,
    startedAt: '2026-01-01T00:00:00.000Z',
    ...extra,
  };
}

/**
 * Two functions, test input 1 (≠ record input 0):
 *   matmul   cached 100, vanilla 400, reap 150, faasnap 105 (three repeats with noise)
 *   json     cached 50,  vanilla 120, reap 40,  faasnap 60  (faasnap slower than REAP, > 1.1x)
 * plus a failed invocation and two parallel runs of matmul.
 */
export function handMadeRun(): RunDoc {
  const samples: Sample[] = [];
  const add = (fn: string, s: Sample['setting'], base: number) => {
    for (const [r, k] of [0.9, 1, 1.2].entries())
      samples.push(sample(fn, s, 1, base * k, { repeat: r }));
  };
  add('matmul', 'cached', 100);
  add('matmul', 'vanilla', 400);
  add('matmul', 'reap', 150);
  add('matmul', 'faasnap', 105);
  add('json', 'cached', 50);
  add('json', 'vanilla', 120);
  add('json', 'reap', 40);
  add('json', 'faasnap', 60);
  samples.push(
    sample('json', 'faasnap', 1, 0, {
      repeat: 3,
      status: 'failed',
      e2eMs: null,
      error: { code: 'FUNCTION_ERROR', message: 'boom | with a pipe' },
    }),
  );
  for (const slot of [0, 1])
    for (const snapshots of ['same', 'separate'] as const)
      for (const [setting, v] of [
        ['faasnap', 130],
        ['vanilla', 600],
      ] as const)
        samples.push(
          sample('matmul', setting, 1, v + slot * 10, { parallelism: 2, snapshots, slot }),
        );
  const config = validateConfig(
    {
      name: 'hand',
      experiment: 'custom',
      description: 'hand-made',
      settings: ['cached', 'vanilla', 'reap', 'faasnap'],
      repeats: 3,
      record: 0,
      tests: [1],
      parallelism: [
        { n: 1, snapshots: 'same' },
        { n: 2, snapshots: 'same' },
        { n: 2, snapshots: 'separate' },
      ],
      functions: ['matmul', 'json'].map((name) => ({
        name,
        runtime: 'python',
        handler: name,
        inputs: [{ i: '0' }, { i: '1' }],
      })),
    },
    'hand.json',
  );
  return {
    bench: 'experiment',
    format: 1,
    experiment: 'hand',
    startedAt: '2026-01-01T00:00:00.000Z',
    finishedAt: '2026-01-01T00:01:00.000Z',
    command: 'faasnap bench run hand.json',
    machine: { cpu: 'test cpu', cores: 2, memGiB: 24, kernel: '6.1', kvm: 'pvm', node: 'v20' },
    daemon: { url: 'http://127.0.0.1:1', version: '0.1.0', dataDevice: '/dev/vda' },
    config,
    functions: ['matmul', 'json'].map((name) => ({
      name,
      registeredAs: `bench-${name}`,
      runtime: 'python',
      handler: name,
      snapshot: 'snap-00000001',
      snapshotDir: '/tmp/x',
      deployMs: 1000,
      reused: false,
      recordParams: { i: '0' },
      inspect: { memoryBytes: 2 ** 31, loadingSet: { bytes: 2 ** 24 } },
      skipped: null,
    })),
    samples,
  };
}
