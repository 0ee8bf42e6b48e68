// Snapshot rows: one per snapshot directory. A row is inserted (status `creating`) before its
// directory is written, so a crash leaves a row that start-up recovery can reconcile.

import { FaasnapError } from '../../common/errors.js';
import type { ErrorBodyT, SnapshotT } from '../schemas.js';
import { json, now, parse, type Db } from './db.js';

interface Row {
  id: string;
  function: string;
  status: string;
  kind: string;
  source: string | null;
  dir: string;
  memory_bytes: number;
  rec_faasnap: number;
  rec_reap: number;
  cache_state: string;
  error: string | null;
  created_at: string;
}

function toSnapshot(r: Row): SnapshotT {
  return {
    id: r.id,
    function: r.function,
    status: r.status as SnapshotT['status'],
    kind: r.kind as SnapshotT['kind'],
    source: r.source,
    dir: r.dir,
    memoryBytes: r.memory_bytes,
    recorded: { faasnap: r.rec_faasnap === 1, reap: r.rec_reap === 1 },
    cacheState: r.cache_state as SnapshotT['cacheState'],
    error: parse<ErrorBodyT>(r.error),
    createdAt: r.created_at,
  };
}

export class SnapshotStore {
  constructor(private readonly db: Db) {}

  insert(s: {
    id: string;
    function: string;
    kind: SnapshotT['kind'];
    source?: string;
    dir: string;
  }): SnapshotT {
    this.db
      .prepare(
        `INSERT INTO snapshots (id, function, status, kind, source, dir, created_at)
         VALUES (?, ?, 'creating', ?, ?, ?, ?)`,
      )
      .run(s.id, s.function, s.kind, s.source ?? null, s.dir, now());
    return this.get(s.id);
  }

  find(id: string): SnapshotT | undefined {
    const r = this.db.prepare('SELECT * FROM snapshots WHERE id = ?').get(id) as Row | undefined;
    return r && toSnapshot(r);
  }

  get(id: string): SnapshotT {
    const s = this.find(id);
    if (!s) throw new FaasnapError('SNAPSHOT_UNKNOWN', id, { id });
    return s;
  }

  list(fn?: string): SnapshotT[] {
    const rows = fn
      ? this.db.prepare('SELECT * FROM snapshots WHERE function = ? ORDER BY created_at').all(fn)
      : this.db.prepare('SELECT * FROM snapshots ORDER BY created_at').all();
    return (rows as Row[]).map(toSnapshot);
  }

  update(
    id: string,
    f: Partial<{
      status: SnapshotT['status'];
      memoryBytes: number;
      recorded: Partial<SnapshotT['recorded']>;
      cacheState: SnapshotT['cacheState'];
      error: ErrorBodyT | null;
    }>,
  ): SnapshotT {
    const s = this.get(id);
    this.db
      .prepare(
        `UPDATE snapshots SET status = ?, memory_bytes = ?, rec_faasnap = ?, rec_reap = ?,
           cache_state = ?, error = ? WHERE id = ?`,
      )
      .run(
        f.status ?? s.status,
        f.memoryBytes ?? s.memoryBytes,
        (f.recorded?.faasnap ?? s.recorded.faasnap) ? 1 : 0,
        (f.recorded?.reap ?? s.recorded.reap) ? 1 : 0,
        f.cacheState ?? s.cacheState,
        f.error === undefined ? json(s.error) : json(f.error),
        id,
      );
    return this.get(id);
  }

  delete(id: string): void {
    this.db.prepare('DELETE FROM snapshots WHERE id = ?').run(id);
  }
}
