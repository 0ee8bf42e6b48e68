// Function rows: the registered configuration, lifecycle state and ready snapshot.

import { FaasnapError } from '../../common/errors.js';
import type { ErrorBodyT, FunctionConfigT, FunctionStateName, FunctionT } from '../schemas.js';
import { json, now, parse, type Db } from './db.js';

interface Row {
  name: string;
  config: string;
  state: string;
  error: string | null;
  ready_snapshot: string | null;
  created_at: string;
  updated_at: string;
}

function toFunction(r: Row): FunctionT {
  return {
    ...(JSON.parse(r.config) as FunctionConfigT),
    state: r.state as FunctionStateName,
    error: parse<ErrorBodyT>(r.error),
    readySnapshot: r.ready_snapshot,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

export class FunctionStore {
  constructor(private readonly db: Db) {}

  insert(config: FunctionConfigT): FunctionT {
    const t = now();
    try {
      this.db
        .prepare(
          `INSERT INTO functions (name, config, state, created_at, updated_at)
           VALUES (?, ?, 'registered', ?, ?)`,
        )
        .run(config.name, JSON.stringify(config), t, t);
    } catch (e) {
      if ((e as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY')
        throw new FaasnapError('FUNCTION_EXISTS', config.name, { name: config.name });
      throw e;
    }
    return this.get(config.name);
  }

  find(name: string): FunctionT | undefined {
    const r = this.db.prepare('SELECT * FROM functions WHERE name = ?').get(name) as
      Row | undefined;
    return r && toFunction(r);
  }

  get(name: string): FunctionT {
    const f = this.find(name);
    if (!f) throw new FaasnapError('FUNCTION_UNKNOWN', name, { name });
    return f;
  }

  list(): FunctionT[] {
    return (this.db.prepare('SELECT * FROM functions ORDER BY name').all() as Row[]).map(
      toFunction,
    );
  }

  setState(
    name: string,
    state: FunctionStateName,
    fields: { error?: ErrorBodyT | null; readySnapshot?: string | null } = {},
  ): FunctionT {
    const f = this.get(name);
    this.db
      .prepare(
        'UPDATE functions SET state = ?, error = ?, ready_snapshot = ?, updated_at = ? WHERE name = ?',
      )
      .run(
        state,
        fields.error === undefined ? json(f.error) : json(fields.error),
        fields.readySnapshot === undefined ? f.readySnapshot : fields.readySnapshot,
        now(),
        name,
      );
    return this.get(name);
  }

  delete(name: string): void {
    this.db.prepare('DELETE FROM functions WHERE name = ?').run(name);
  }
}
