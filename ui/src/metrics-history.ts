// The daemon's metrics sampled over time: /metrics is read every few seconds for as long as the
// page is open (from any view, so the charts have a history when opened), and each reading is
// kept as per-mode figures.

import { useEffect, useState } from 'preact/hooks';
import { api, asApiError, type ApiError } from './api.js';
import { figuresByMode, parsePrometheus, phaseMeans, type ModeFigures } from './prometheus.js';

export interface MetricsPoint {
  /** Unix seconds. */
  t: number;
  byMode: Map<string, ModeFigures>;
  /** Mean seconds by mode, then phase. */
  phases: Map<string, Map<string, number>>;
}

/** About 20 minutes at the default interval. */
const KEEP = 600;

export function useMetricsHistory(intervalMs = 2000): {
  points: MetricsPoint[];
  error: ApiError | undefined;
} {
  const [points, setPoints] = useState<MetricsPoint[]>([]);
  const [error, setError] = useState<ApiError>();
  useEffect(() => {
    let live = true;
    let timer: number | undefined;
    const sample = async () => {
      try {
        const samples = parsePrometheus(await api<string>('GET', '/metrics'));
        const point = {
          t: Date.now() / 1000,
          byMode: figuresByMode(samples),
          phases: phaseMeans(samples),
        };
        if (live) {
          setPoints((p) => [...p.slice(-(KEEP - 1)), point]);
          setError(undefined);
        }
      } catch (e) {
        if (live) setError(asApiError(e));
      }
      if (live) timer = window.setTimeout(() => void sample(), intervalMs);
    };
    void sample();
    return () => {
      live = false;
      window.clearTimeout(timer);
    };
  }, [intervalMs]);
  return { points, error };
}
