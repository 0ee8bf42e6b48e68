// The daemon's store: one database, one repository per resource.

import { FunctionStore } from './functions.js';
import { InvocationStore } from './invocations.js';
import { SnapshotStore } from './snapshots.js';
import { SpanStore } from './spans.js';
import { openDb, type Db } from './db.js';

export class Store {
  readonly functions: FunctionStore;
  readonly snapshots: SnapshotStore;
  readonly invocations: InvocationStore;
  readonly spans: SpanStore;

  constructor(readonly db: Db) {
    this.functions = new FunctionStore(db);
    this.snapshots = new SnapshotStore(db);
    this.invocations = new InvocationStore(db);
    this.spans = new SpanStore(db);
  }

  static open(path: string): Store {
    return new Store(openDb(path));
  }

  close(): void {
    this.db.close();
  }
}
