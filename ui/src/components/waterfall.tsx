// An invocation's trace as a waterfall: one row per span, nested under its parent, with a bar
// placed at its start and as long as its duration on the trace's time axis.

import { ms } from '../format.js';
import type { TraceT } from '../types.js';

type SpanT = TraceT['spans'][number];

interface Row {
  span: SpanT;
  depth: number;
}

/**
 * Spans in tree order: children after their parent, by start time; of spans that start together
 * the longer one first, since it is the enclosing phase (restore before its state-load, which
 * the VMM measured and the daemon records beside it rather than under it).
 */
export function spanRows(spans: SpanT[]): Row[] {
  const children = new Map<string | null, SpanT[]>();
  const ids = new Set(spans.map((s) => s.spanId));
  for (const s of spans) {
    const parent = s.parentSpanId && ids.has(s.parentSpanId) ? s.parentSpanId : null;
    children.set(parent, [...(children.get(parent) ?? []), s]);
  }
  const rows: Row[] = [];
  const visit = (parent: string | null, depth: number) => {
    for (const s of (children.get(parent) ?? []).sort(
      (a, b) => a.startMs - b.startMs || b.durationMs - a.durationMs,
    )) {
      rows.push({ span: s, depth });
      visit(s.spanId, depth + 1);
    }
  };
  visit(null, 0);
  return rows;
}

export function Waterfall({ trace }: { trace: TraceT }) {
  const rows = spanRows(trace.spans);
  const total = Math.max(0.001, ...trace.spans.map((s) => s.startMs + s.durationMs));
  return (
    <div class="waterfall" aria-label="waterfall">
      <div class="waterfall-head muted">
        <span>span</span>
        <span class="num">start</span>
        <span class="num">duration</span>
        <span>0 – {ms(total)}</span>
      </div>
      {rows.map(({ span, depth }) => (
        <div class={`waterfall-row${span.error ? ' failed' : ''}`} key={span.spanId}>
          <span
            class="span-name"
            style={{ paddingLeft: `${depth}em` }}
            title={attributesText(span)}
          >
            {span.name}
          </span>
          <span class="num">{ms(span.startMs)}</span>
          <span class="num">{ms(span.durationMs)}</span>
          <span class="bar-track">
            <span
              class="bar"
              style={{
                left: `${(span.startMs / total) * 100}%`,
                width: `${Math.max(0.4, (span.durationMs / total) * 100)}%`,
              }}
            />
            {span.error && <span class="span-error">{span.error}</span>}
          </span>
        </div>
      ))}
    </div>
  );
}

function attributesText(span: SpanT): string {
  const entries = Object.entries(span.attributes);
  return entries.length ? entries.map(([k, v]) => `${k}: ${String(v)}`).join('\n') : span.name;
}
