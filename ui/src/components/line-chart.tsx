// A uPlot line chart of time series sharing one time axis. The chart is rebuilt when the set of
// series changes (a mode seen for the first time) and only fed new data otherwise.

import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import { colourOf } from '../palette.js';

export interface Series {
  label: string;
  values: (number | null)[];
}

interface Props {
  title: string;
  unit: string;
  /** Unix seconds. */
  times: number[];
  series: Series[];
}

export function LineChart({ title, unit, times, series }: Props) {
  const box = useRef<HTMLDivElement>(null);
  const chart = useRef<{ plot: uPlot; labels: string } | null>(null);
  const labels = series.map((s) => s.label).join('\u0000');

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const data: uPlot.AlignedData = [times, ...series.map((s) => s.values)];
    if (chart.current && chart.current.labels === labels) {
      chart.current.plot.setData(data);
      return;
    }
    chart.current?.plot.destroy();
    const opts: uPlot.Options = {
      title,
      width: Math.max(320, el.clientWidth),
      height: 260,
      series: [
        {},
        ...series.map((s) => ({
          label: s.label,
          stroke: colourOf(s.label),
          width: 2,
          points: { show: true, size: 4 },
          value: (_u: uPlot, v: number | null) => (v === null ? '–' : `${+v.toFixed(3)} ${unit}`),
        })),
      ],
      axes: [{}, { label: unit, size: 60 }],
      scales: { y: { range: (_u, min, max) => [Math.min(0, min), max > 0 ? max * 1.1 : 1] } },
    };
    chart.current = { plot: new uPlot(opts, data, el), labels };
  }, [times, series, labels, title, unit]);

  // Follow the width of the page.
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const observer = new ResizeObserver(() =>
      chart.current?.plot.setSize({ width: Math.max(320, el.clientWidth), height: 260 }),
    );
    observer.observe(el);
    return () => {
      observer.disconnect();
      chart.current?.plot.destroy();
      chart.current = null;
    };
  }, []);

  return <div class="chart" ref={box} aria-label={title} />;
}
