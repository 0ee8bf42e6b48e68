// The Prometheus text exposition format of /metrics, parsed into samples, and the per-mode
// figures the charts show (invocations, latency).

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parsePrometheus(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = LINE.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(LABEL))
      labels[l[1]!] = l[2]!.replace(/\\n/g, '\n').replace(/\\(["\\])/g, '$1');
    out.push({ name: m[1]!, labels, value: parseValue(m[3]!) });
  }
  return out;
}

function parseValue(s: string): number {
  if (s === '+Inf') return Infinity;
  if (s === '-Inf') return -Infinity;
  return Number(s);
}

export interface ModeFigures {
  /** Invocations of every function and outcome. */
  invocations: number;
  /** Observations and total seconds of the end-to-end latency histogram. */
  latencyCount: number;
  latencySum: number;
  /** Cumulative bucket counts by upper bound (seconds), ascending. */
  buckets: { le: number; count: number }[];
}

export function figuresByMode(samples: Sample[]): Map<string, ModeFigures> {
  const byMode = new Map<string, ModeFigures>();
  const of = (mode: string): ModeFigures => {
    let f = byMode.get(mode);
    if (!f) {
      f = { invocations: 0, latencyCount: 0, latencySum: 0, buckets: [] };
      byMode.set(mode, f);
    }
    return f;
  };
  for (const s of samples) {
    const mode = s.labels['mode'];
    if (mode === undefined) continue;
    if (s.name === 'faasnap_invocations_total') of(mode).invocations += s.value;
    else if (s.name === 'faasnap_invocation_duration_seconds_count')
      of(mode).latencyCount = s.value;
    else if (s.name === 'faasnap_invocation_duration_seconds_sum') of(mode).latencySum = s.value;
    else if (s.name === 'faasnap_invocation_duration_seconds_bucket')
      of(mode).buckets.push({ le: parseValue(s.labels['le'] ?? '+Inf'), count: s.value });
  }
  for (const f of byMode.values()) f.buckets.sort((a, b) => a.le - b.le);
  return byMode;
}

/**
 * The q-quantile of a histogram as Prometheus' histogram_quantile estimates it: linear within
 * the bucket that holds it. Undefined without observations.
 */
export function quantile(q: number, buckets: { le: number; count: number }[]): number | undefined {
  const total = buckets[buckets.length - 1]?.count ?? 0;
  if (total === 0) return undefined;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const b of buckets) {
    if (b.count >= rank) {
      if (b.le === Infinity) return lower; // past the last finite bound: its bound is the answer
      const inBucket = b.count - below;
      return inBucket === 0 ? b.le : lower + ((b.le - lower) * (rank - below)) / inBucket;
    }
    lower = b.le;
    below = b.count;
  }
  return lower;
}

/** Mean seconds of each phase by mode, from faasnap_invocation_phase_seconds. */
export function phaseMeans(samples: Sample[]): Map<string, Map<string, number>> {
  const sums = new Map<string, { sum: number; count: number }>();
  for (const s of samples) {
    const { mode, phase } = s.labels;
    if (mode === undefined || phase === undefined) continue;
    const key = `${mode}\u0000${phase}`;
    const e = sums.get(key) ?? { sum: 0, count: 0 };
    if (s.name === 'faasnap_invocation_phase_seconds_sum') e.sum = s.value;
    else if (s.name === 'faasnap_invocation_phase_seconds_count') e.count = s.value;
    else continue;
    sums.set(key, e);
  }
  const out = new Map<string, Map<string, number>>();
  for (const [key, { sum, count }] of sums) {
    if (count === 0) continue;
    const [mode, phase] = key.split('\u0000') as [string, string];
    if (!out.has(mode)) out.set(mode, new Map());
    out.get(mode)!.set(phase, sum / count);
  }
  return out;
}
