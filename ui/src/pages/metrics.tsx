// Charts of invocations and latency per mode, from the daemon's Prometheus metrics, with the
// latency quantiles and mean phase times of each mode.

import { useMemo } from 'preact/hooks';
import type { ApiError } from '../api.js';
import { ErrorBox } from '../components/error-box.js';
import { LineChart, type Series } from '../components/line-chart.js';
import { ms } from '../format.js';
import type { MetricsPoint } from '../metrics-history.js';
import { quantile } from '../prometheus.js';

interface Props {
  points: MetricsPoint[];
  error: ApiError | undefined;
}

export function MetricsPage({ points, error }: Props) {
  const latest = points[points.length - 1];
  const modes = useMemo(() => {
    const seen = new Set<string>();
    for (const p of points) for (const [m, f] of p.byMode) if (f.invocations > 0) seen.add(m);
    return [...seen].sort();
  }, [points]);
  const times = useMemo(() => points.map((p) => p.t), [points]);
  const invocations = useMemo(
    (): Series[] =>
      modes.map((m) => ({
        label: m,
        values: points.map((p) => p.byMode.get(m)?.invocations ?? null),
      })),
    [points, modes],
  );
  const latency = useMemo(
    (): Series[] =>
      modes.map((m) => ({
        label: m,
        values: points.map((p) => {
          const f = p.byMode.get(m);
          return f && f.latencyCount > 0 ? (f.latencySum / f.latencyCount) * 1000 : null;
        }),
      })),
    [points, modes],
  );

  return (
    <section>
      <h2>Metrics</h2>
      <ErrorBox error={error} />
      {latest && modes.length === 0 && (
        <p class="muted">No invocations yet: the charts start with the first one.</p>
      )}
      <div class="charts">
        <LineChart
          title="Invocations per mode (total)"
          unit="invocations"
          times={times}
          series={invocations}
        />
        <LineChart
          title="Mean end-to-end latency per mode"
          unit="ms"
          times={times}
          series={latency}
        />
      </div>
      {latest && modes.length > 0 && <ModeTable point={latest} modes={modes} />}
      {latest && modes.length > 0 && <PhaseTable point={latest} modes={modes} />}
    </section>
  );
}

function ModeTable({ point, modes }: { point: MetricsPoint; modes: string[] }) {
  return (
    <>
      <h3>End-to-end latency per mode</h3>
      <p class="muted">
        p50 and p95 are estimated from the histogram's buckets, as Prometheus' histogram_quantile
        does: within a bucket they are interpolated.
      </p>
      <table class="list" aria-label="latency per mode">
        <thead>
          <tr>
            <th>mode</th>
            <th class="num">invocations</th>
            <th class="num">mean</th>
            <th class="num">p50</th>
            <th class="num">p95</th>
          </tr>
        </thead>
        <tbody>
          {modes.map((m) => {
            const f = point.byMode.get(m);
            const q = (x: number) => {
              const v = f ? quantile(x, f.buckets) : undefined;
              return v === undefined ? '–' : ms(v * 1000);
            };
            return (
              <tr key={m}>
                <td>{m}</td>
                <td class="num">{f?.invocations ?? 0}</td>
                <td class="num">
                  {f && f.latencyCount > 0 ? ms((f.latencySum / f.latencyCount) * 1000) : '–'}
                </td>
                <td class="num">{q(0.5)}</td>
                <td class="num">{q(0.95)}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </>
  );
}

function PhaseTable({ point, modes }: { point: MetricsPoint; modes: string[] }) {
  const phases = [...new Set(modes.flatMap((m) => [...(point.phases.get(m)?.keys() ?? [])]))];
  if (phases.length === 0) return null;
  return (
    <>
      <h3>Mean phase time per mode</h3>
      <table class="list" aria-label="phases per mode">
        <thead>
          <tr>
            <th>phase</th>
            {modes.map((m) => (
              <th class="num" key={m}>
                {m}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {phases.map((ph) => (
            <tr key={ph}>
              <td>{ph}</td>
              {modes.map((m) => {
                const v = point.phases.get(m)?.get(ph);
                return (
                  <td class="num" key={m}>
                    {v === undefined ? '–' : ms(v * 1000)}
                  </td>
                );
              })}
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}
