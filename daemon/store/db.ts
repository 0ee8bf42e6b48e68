// The daemon's durable metadata: one SQLite database (better-sqlite3, synchronous) in WAL mode
// with synchronous=FULL, so every committed row survives a SIGKILL of the daemon and a power
// loss alike. Schema changes are numbered migrations applied in one transaction each.

import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

export type Db = Database.Database;

const MIGRATIONS: string[] = [
  `CREATE TABLE functions (
     name TEXT PRIMARY KEY,
     config TEXT NOT NULL,
     state TEXT NOT NULL,
     error TEXT,
     ready_snapshot TEXT,
     created_at TEXT NOT NULL,
     updated_at TEXT NOT NULL
   );
   CREATE TABLE snapshots (
     id TEXT PRIMARY KEY,
     function TEXT NOT NULL,
     status TEXT NOT NULL,
     kind TEXT NOT NULL,
     source TEXT,
     dir TEXT NOT NULL,
     memory_bytes INTEGER NOT NULL DEFAULT 0,
     rec_faasnap INTEGER NOT NULL DEFAULT 0,
     rec_reap INTEGER NOT NULL DEFAULT 0,
     cache_state TEXT NOT NULL DEFAULT 'unknown',
     error TEXT,
     created_at TEXT NOT NULL
   );
   CREATE INDEX snapshots_function ON snapshots(function);
   CREATE TABLE invocations (
     id TEXT PRIMARY KEY,
     function TEXT NOT NULL,
     snapshot TEXT,
     mode TEXT NOT NULL,
     status TEXT NOT NULL,
     params TEXT NOT NULL,
     result TEXT,
     error TEXT,
     trace_id TEXT NOT NULL,
     vm TEXT,
     phases TEXT NOT NULL DEFAULT '[]',
     duration_ms REAL,
     started_at TEXT NOT NULL,
     finished_at TEXT
   );
   CREATE INDEX invocations_function ON invocations(function, started_at);
   CREATE TABLE spans (
     trace_id TEXT NOT NULL,
     span_id TEXT NOT NULL,
     parent_id TEXT,
     name TEXT NOT NULL,
     start_us REAL NOT NULL,
     end_us REAL NOT NULL,
     attributes TEXT NOT NULL,
     error TEXT,
     PRIMARY KEY (trace_id, span_id)
   );`,
];

export function openDb(path: string): Db {
  mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  const version = db.pragma('user_version', { simple: true }) as number;
  for (let v = version; v < MIGRATIONS.length; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v]!);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
  return db;
}

export function now(): string {
  return new Date().toISOString();
}

export function json(v: unknown): string | null {
  return v === undefined || v === null ? null : JSON.stringify(v);
}

export function parse<T>(s: string | null | undefined): T | null {
  return s === null || s === undefined ? null : (JSON.parse(s) as T);
}
