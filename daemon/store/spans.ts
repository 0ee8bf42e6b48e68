// Trace spans kept locally (always, whether or not an OTLP endpoint is configured).

import { FaasnapError } from '../../common/errors.js';
import type { TraceT } from '../schemas.js';
import type { Db } from './db.js';

export interface SpanRow {
  traceId: string;
  spanId: string;
  parentId: string | null;
  name: string;
  /** Epoch microseconds. */
  startUs: number;
  endUs: number;
  attributes: Record<string, unknown>;
  error: string | null;
}

interface Row {
  trace_id: string;
  span_id: string;
  parent_id: string | null;
  name: string;
  start_us: number;
  end_us: number;
  attributes: string;
  error: string | null;
}

export class SpanStore {
  constructor(private readonly db: Db) {}

  insert(spans: readonly SpanRow[]): void {
    const stmt = this.db.prepare(
      `INSERT OR REPLACE INTO spans (trace_id, span_id, parent_id, name, start_us, end_us, attributes, error)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.db.transaction(() => {
      for (const s of spans)
        stmt.run(
          s.traceId,
          s.spanId,
          s.parentId,
          s.name,
          s.startUs,
          s.endUs,
          JSON.stringify(s.attributes),
          s.error,
        );
    })();
  }

  trace(traceId: string): TraceT {
    const rows = this.db
      .prepare('SELECT * FROM spans WHERE trace_id = ? ORDER BY start_us, end_us DESC')
      .all(traceId) as Row[];
    if (rows.length === 0) throw new FaasnapError('TRACE_UNKNOWN', traceId, { traceId });
    const t0 = rows[0]!.start_us;
    return {
      traceId,
      startedAt: new Date(t0 / 1000).toISOString(),
      spans: rows.map((r) => ({
        spanId: r.span_id,
        parentSpanId: r.parent_id,
        name: r.name,
        startMs: (r.start_us - t0) / 1000,
        durationMs: (r.end_us - r.start_us) / 1000,
        attributes: JSON.parse(r.attributes) as Record<string, unknown>,
        error: r.error,
      })),
    };
  }
}
