// Invocation history: a row is written when an invocation starts (status `running`) and
// completed when it ends, so a crash leaves evidence that start-up recovery marks failed.

import { FaasnapError } from '../../common/errors.js';
import type { ErrorBodyT, InvocationT } from '../schemas.js';
import { json, now, parse, type Db } from './db.js';

interface Row {
  id: string;
  function: string;
  snapshot: string | null;
  mode: string;
  status: string;
  params: string;
  result: string | null;
  error: string | null;
  trace_id: string;
  vm: string | null;
  phases: string;
  duration_ms: number | null;
  started_at: string;
  finished_at: string | null;
}

function toInvocation(r: Row): InvocationT {
  return {
    id: r.id,
    function: r.function,
    snapshot: r.snapshot,
    mode: r.mode,
    status: r.status as InvocationT['status'],
    result: parse(r.result),
    error: parse<ErrorBodyT>(r.error),
    traceId: r.trace_id,
    vm: r.vm,
    phases: JSON.parse(r.phases) as InvocationT['phases'],
    durationMs: r.duration_ms,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
  };
}

export class InvocationStore {
  constructor(private readonly db: Db) {}

  start(i: {
    id: string;
    function: string;
    snapshot: string | null;
    mode: string;
    params: unknown;
    traceId: string;
  }): void {
    this.db
      .prepare(
        `INSERT INTO invocations (id, function, snapshot, mode, status, params, trace_id, started_at)
         VALUES (?, ?, ?, ?, 'running', ?, ?, ?)`,
      )
      .run(i.id, i.function, i.snapshot, i.mode, JSON.stringify(i.params), i.traceId, now());
  }

  setVm(id: string, vm: string): void {
    this.db.prepare('UPDATE invocations SET vm = ? WHERE id = ?').run(vm, id);
  }

  finish(
    id: string,
    f: {
      status: 'succeeded' | 'failed';
      result?: unknown;
      error?: ErrorBodyT | null;
      phases: InvocationT['phases'];
      durationMs: number;
    },
  ): InvocationT {
    this.db
      .prepare(
        `UPDATE invocations SET status = ?, result = ?, error = ?, phases = ?, duration_ms = ?,
           finished_at = ? WHERE id = ?`,
      )
      .run(
        f.status,
        json(f.result),
        json(f.error),
        JSON.stringify(f.phases),
        f.durationMs,
        now(),
        id,
      );
    return this.get(id);
  }

  get(id: string): InvocationT {
    const r = this.db.prepare('SELECT * FROM invocations WHERE id = ?').get(id) as Row | undefined;
    if (!r) throw new FaasnapError('INVOCATION_UNKNOWN', id, { id });
    return toInvocation(r);
  }

  list(fn: string, limit: number): InvocationT[] {
    return (
      this.db
        .prepare('SELECT * FROM invocations WHERE function = ? ORDER BY started_at DESC LIMIT ?')
        .all(fn, limit) as Row[]
    ).map(toInvocation);
  }

  /** Marks invocations left `running` by a previous daemon process as failed. */
  failRunning(error: ErrorBodyT): number {
    return this.db
      .prepare(
        `UPDATE invocations SET status = 'failed', error = ?, finished_at = ? WHERE status = 'running'`,
      )
      .run(JSON.stringify(error), now()).changes;
  }
}
