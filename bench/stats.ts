// Summary statistics for benchmark samples (raw samples are always kept alongside).

export interface Summary {
  n: number;
  median: number;
  p10: number;
  p90: number;
  min: number;
  max: number;
}

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

export function summarize(samples: readonly number[]): Summary {
  const s = [...samples].sort((a, b) => a - b);
  return {
    n: s.length,
    median: quantile(s, 0.5),
    p10: quantile(s, 0.1),
    p90: quantile(s, 0.9),
    min: s[0] ?? NaN,
    max: s[s.length - 1] ?? NaN,
  };
}

/** A mode's distance to the physical limit of a restore (issue #15). */
export interface LimitDistance {
  /** max(warm, read): the run cannot be faster than the guest's own work or than the disk. */
  limitMs: number;
  /** e2e − limit (ms; negative if the mode beat the estimate). */
  distanceMs: number;
  /** e2e / limit. */
  ratio: number;
}

/**
 * Each mode's distance to max(warm, read), where `readMs` is the time to read the loading set
 * alone from a dropped cache and `warmMs` the run with nothing left to load. Modes without a
 * finite median are left out; so is everything when neither bound is known.
 */
export function limitDistances(
  e2eMedians: Readonly<Record<string, number>>,
  bounds: { readMs?: number; warmMs?: number },
): Record<string, LimitDistance> {
  const known = [bounds.readMs, bounds.warmMs].filter(
    (x): x is number => x !== undefined && Number.isFinite(x) && x >= 0,
  );
  const out: Record<string, LimitDistance> = {};
  if (known.length === 0) return out;
  const limitMs = Math.max(...known);
  for (const [mode, e2e] of Object.entries(e2eMedians)) {
    if (!Number.isFinite(e2e)) continue;
    out[mode] = { limitMs, distanceMs: e2e - limitMs, ratio: limitMs > 0 ? e2e / limitMs : NaN };
  }
  return out;
}
