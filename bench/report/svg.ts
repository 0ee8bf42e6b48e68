// A small SVG emitter for the experiment reports: grouped bars, stacked bars and step lines
// (CDFs). Self-contained, deterministic output (same data → same bytes), no browser, canvas or
// native code. Every bar is a <rect class="bar"> with data-group / data-series / data-value
// attributes, every line a <path class="line"> with data-series, so tests and scripts can read
// the charts back.

const PALETTE = [
  '#4c78a8',
  '#f58518',
  '#54a24b',
  '#e45756',
  '#72b7b2',
  '#b279a2',
  '#eeca3b',
  '#9d755d',
  '#ff9da6',
  '#bab0ac',
];

export function color(i: number): string {
  return PALETTE[i % PALETTE.length]!;
}

export function esc(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;');
}

const n = (x: number): string => (Math.round(x * 100) / 100).toString();

/** About `count` round tick values covering [0, max]. */
export function ticks(max: number, count = 5): number[] {
  if (!(max > 0) || !Number.isFinite(max)) return [0, 1];
  const raw = max / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = 0; v <= max + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  if (out[out.length - 1]! < max) out.push(Number((out[out.length - 1]! + step).toPrecision(12)));
  return out;
}

interface Frame {
  width: number;
  height: number;
  left: number;
  top: number;
  plotW: number;
  plotH: number;
}

/** Room below the plot for labels of `chars` characters rotated by `deg` degrees. */
function labelRoom(labels: readonly string[], deg: number): number {
  const chars = Math.max(0, ...labels.map((l) => l.length));
  return Math.ceil(24 + chars * 6.2 * Math.sin((deg * Math.PI) / 180));
}

function frame(width: number, height: number, legendRows: number, bottom = 72, right = 16): Frame {
  const left = 64;
  const top = 36 + legendRows * 16;
  return {
    width,
    height: height + Math.max(0, bottom - 72),
    left,
    top,
    plotW: width - left - right,
    plotH: height - top - 72,
  };
}

function open(f: Frame, title: string): string[] {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${f.width}" height="${f.height}" viewBox="0 0 ${f.width} ${f.height}" font-family="sans-serif" font-size="11">`,
    `<title>${esc(title)}</title>`,
    `<rect width="${f.width}" height="${f.height}" fill="white"/>`,
    `<text x="${f.width / 2}" y="16" text-anchor="middle" font-size="13" font-weight="bold">${esc(title)}</text>`,
  ];
}

function legend(
  names: readonly string[],
  f: Frame,
  dashed?: readonly boolean[],
  colors?: readonly number[],
): string[] {
  const out: string[] = ['<g class="legend">'];
  let x = f.left;
  let y = 30;
  for (const [i, name] of names.entries()) {
    const w = 22 + name.length * 6.5;
    if (x + w > f.width - 8) {
      x = f.left;
      y += 16;
    }
    out.push(
      dashed
        ? `<line x1="${n(x)}" y1="${y - 4}" x2="${n(x + 14)}" y2="${y - 4}" stroke="${color(colors?.[i] ?? i)}" stroke-width="2"${dashed[i] ? ' stroke-dasharray="4 2"' : ''}/>`
        : `<rect x="${n(x)}" y="${y - 9}" width="10" height="10" fill="${color(i)}"/>`,
      `<text x="${n(x + 18)}" y="${y}">${esc(name)}</text>`,
    );
    x += w;
  }
  out.push('</g>');
  return out;
}

function legendRows(names: readonly string[], width: number): number {
  let rows = 1;
  let x = 64;
  for (const name of names) {
    const w = 22 + name.length * 6.5;
    if (x + w > width - 8) {
      rows++;
      x = 64;
    }
    x += w;
  }
  return rows;
}

function yAxis(f: Frame, tv: number[], label: string, fmt = (v: number) => String(v)): string[] {
  const max = tv[tv.length - 1]!;
  const out = ['<g class="y-axis">'];
  for (const v of tv) {
    const y = f.top + f.plotH - (v / max) * f.plotH;
    out.push(
      `<line x1="${f.left}" y1="${n(y)}" x2="${f.left + f.plotW}" y2="${n(y)}" stroke="#ddd"/>`,
      `<text x="${f.left - 4}" y="${n(y + 4)}" text-anchor="end">${esc(fmt(v))}</text>`,
    );
  }
  out.push(
    `<line x1="${f.left}" y1="${f.top}" x2="${f.left}" y2="${f.top + f.plotH}" stroke="black"/>`,
    `<text transform="translate(14 ${n(f.top + f.plotH / 2)}) rotate(-90)" text-anchor="middle">${esc(label)}</text>`,
    '</g>',
  );
  return out;
}

export interface BarGroup {
  label: string;
  /** series → value (missing or null: no bar). */
  values: Record<string, number | null | undefined>;
}

export interface BarChartOptions {
  title: string;
  yLabel: string;
  series: readonly string[];
  groups: readonly BarGroup[];
  /** A dashed horizontal reference line (e.g. 1.0 = the baseline). */
  refLine?: number;
  width?: number;
  height?: number;
  valueFormat?: (v: number) => string;
}

/** Grouped bars: one group per label, one bar per series. */
export function barChart(o: BarChartOptions): string {
  const width = o.width ?? Math.max(480, 90 + o.groups.length * (o.series.length * 14 + 24));
  const f = frame(
    width,
    o.height ?? 360,
    legendRows(o.series, width),
    labelRoom(
      o.groups.map((g) => g.label),
      30,
    ),
    16 + Math.min(120, (o.groups[o.groups.length - 1]?.label.length ?? 0) * 5),
  );
  const vals = o.groups.flatMap((g) => o.series.map((s) => g.values[s] ?? 0));
  const tv = ticks(Math.max(o.refLine ?? 0, ...vals, 0));
  const max = tv[tv.length - 1]!;
  const fmt = o.valueFormat ?? ((v: number) => n(v));
  const out = [...open(f, o.title), ...legend(o.series, f), ...yAxis(f, tv, o.yLabel)];
  const gw = f.plotW / Math.max(1, o.groups.length);
  const bw = Math.min(28, (gw - 12) / Math.max(1, o.series.length));
  out.push('<g class="bars">');
  for (const [gi, g] of o.groups.entries()) {
    const x0 = f.left + gi * gw + (gw - bw * o.series.length) / 2;
    for (const [si, s] of o.series.entries()) {
      const v = g.values[s];
      if (v === null || v === undefined || !Number.isFinite(v)) continue;
      const h = (v / max) * f.plotH;
      out.push(
        `<rect class="bar" data-group="${esc(g.label)}" data-series="${esc(s)}" data-value="${n(v)}" x="${n(x0 + si * bw)}" y="${n(f.top + f.plotH - h)}" width="${n(Math.max(1, bw - 1))}" height="${n(h)}" fill="${color(si)}"><title>${esc(`${g.label} ${s}: ${fmt(v)}`)}</title></rect>`,
      );
    }
    const lx = f.left + gi * gw + gw / 2;
    const ly = f.top + f.plotH + 12;
    out.push(
      `<text class="group-label" transform="translate(${n(lx)} ${n(ly)}) rotate(30)" text-anchor="start">${esc(g.label)}</text>`,
    );
  }
  out.push('</g>');
  if (o.refLine !== undefined) {
    const y = f.top + f.plotH - (o.refLine / max) * f.plotH;
    out.push(
      `<line class="ref" x1="${f.left}" y1="${n(y)}" x2="${f.left + f.plotW}" y2="${n(y)}" stroke="black" stroke-dasharray="5 3"/>`,
    );
  }
  out.push(
    `<line x1="${f.left}" y1="${f.top + f.plotH}" x2="${f.left + f.plotW}" y2="${f.top + f.plotH}" stroke="black"/>`,
    '</svg>',
  );
  return out.join('\n') + '\n';
}

export interface StackedBar {
  label: string;
  parts: Record<string, number | null | undefined>;
}

/** Stacked bars: one bar per label, segments in `parts` order. */
export function stackedBarChart(o: {
  title: string;
  yLabel: string;
  parts: readonly string[];
  bars: readonly StackedBar[];
  width?: number;
  height?: number;
}): string {
  const width = o.width ?? Math.max(480, 90 + o.bars.length * 30);
  const f = frame(
    width,
    o.height ?? 380,
    legendRows(o.parts, width),
    labelRoom(
      o.bars.map((b) => b.label),
      40,
    ),
    16 + Math.min(160, (o.bars[o.bars.length - 1]?.label.length ?? 0) * 5),
  );
  const totals = o.bars.map((b) => o.parts.reduce((a, p) => a + Math.max(0, b.parts[p] ?? 0), 0));
  const tv = ticks(Math.max(0, ...totals));
  const max = tv[tv.length - 1]!;
  const out = [...open(f, o.title), ...legend(o.parts, f), ...yAxis(f, tv, o.yLabel)];
  const bw = f.plotW / Math.max(1, o.bars.length);
  out.push('<g class="bars">');
  for (const [bi, b] of o.bars.entries()) {
    let y = f.top + f.plotH;
    const x = f.left + bi * bw + bw * 0.15;
    for (const [pi, p] of o.parts.entries()) {
      const v = b.parts[p];
      if (v === null || v === undefined || !(v > 0)) continue;
      const h = (v / max) * f.plotH;
      y -= h;
      out.push(
        `<rect class="bar" data-group="${esc(b.label)}" data-series="${esc(p)}" data-value="${n(v)}" x="${n(x)}" y="${n(y)}" width="${n(bw * 0.7)}" height="${n(h)}" fill="${color(pi)}"><title>${esc(`${b.label} ${p}: ${n(v)}`)}</title></rect>`,
      );
    }
    out.push(
      `<text class="group-label" transform="translate(${n(x + bw * 0.35)} ${f.top + f.plotH + 12}) rotate(40)" text-anchor="start">${esc(b.label)}</text>`,
    );
  }
  out.push(
    '</g>',
    `<line x1="${f.left}" y1="${f.top + f.plotH}" x2="${f.left + f.plotW}" y2="${f.top + f.plotH}" stroke="black"/>`,
    '</svg>',
  );
  return out.join('\n') + '\n';
}

export interface LineSeries {
  name: string;
  points: readonly (readonly [number, number])[];
  dashed?: boolean;
  /** Palette index (default: the series' position), so related series can share a colour. */
  colorIndex?: number;
}

/** Lines (steps when `step`) over a linear x axis from 0; y from 0 to `yMax` (or the data). */
export function lineChart(o: {
  title: string;
  xLabel: string;
  yLabel: string;
  series: readonly LineSeries[];
  step?: boolean;
  yMax?: number;
  width?: number;
  height?: number;
}): string {
  const width = o.width ?? 560;
  const names = o.series.map((s) => s.name);
  const f = frame(width, o.height ?? 360, legendRows(names, width));
  const xs = o.series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = o.series.flatMap((s) => s.points.map((p) => p[1]));
  const xt = ticks(Math.max(0, ...xs));
  const yt = o.yMax !== undefined ? ticks(o.yMax, 4) : ticks(Math.max(0, ...ys));
  const xMax = xt[xt.length - 1]!;
  const yMax = yt[yt.length - 1]!;
  const X = (v: number) => f.left + (v / xMax) * f.plotW;
  const Y = (v: number) => f.top + f.plotH - (v / yMax) * f.plotH;
  const out = [
    ...open(f, o.title),
    ...legend(
      names,
      f,
      o.series.map((s) => s.dashed ?? false),
      o.series.map((s, i) => s.colorIndex ?? i),
    ),
    ...yAxis(f, yt, o.yLabel),
    '<g class="x-axis">',
  ];
  for (const v of xt)
    out.push(
      `<line x1="${n(X(v))}" y1="${f.top + f.plotH}" x2="${n(X(v))}" y2="${f.top + f.plotH + 4}" stroke="black"/>`,
      `<text x="${n(X(v))}" y="${f.top + f.plotH + 16}" text-anchor="middle">${esc(String(v))}</text>`,
    );
  out.push(
    `<line x1="${f.left}" y1="${f.top + f.plotH}" x2="${f.left + f.plotW}" y2="${f.top + f.plotH}" stroke="black"/>`,
    `<text x="${n(f.left + f.plotW / 2)}" y="${f.top + f.plotH + 34}" text-anchor="middle">${esc(o.xLabel)}</text>`,
    '</g>',
    '<g class="lines">',
  );
  for (const [i, s] of o.series.entries()) {
    if (s.points.length === 0) continue;
    const d: string[] = [];
    let prevY: number | undefined;
    for (const [j, [x, y]] of s.points.entries()) {
      if (j === 0) d.push(`M${n(X(x))} ${n(Y(o.step ? 0 : y))}`);
      if (o.step && prevY !== undefined) d.push(`L${n(X(x))} ${n(Y(prevY))}`);
      if (o.step && j === 0) d.push(`L${n(X(x))} ${n(Y(y))}`);
      else d.push(`L${n(X(x))} ${n(Y(y))}`);
      prevY = y;
    }
    out.push(
      `<path class="line" data-series="${esc(s.name)}" data-points="${s.points.length}" d="${d.join(' ')}" fill="none" stroke="${color(s.colorIndex ?? i)}" stroke-width="1.5"${s.dashed ? ' stroke-dasharray="4 2"' : ''}/>`,
    );
  }
  out.push('</g>', '</svg>');
  return out.join('\n') + '\n';
}

/** Empirical CDF points (value, fraction ≤ value) of samples. */
export function cdfPoints(samples: readonly number[]): [number, number][] {
  const s = [...samples].sort((a, b) => a - b);
  return s.map((v, i) => [v, (i + 1) / s.length]);
}
