// The per-function lifecycle (registered → booting → warm → snapshotted → recorded → ready, or
// failed from any transient state) as an explicit transition table, persisted on every step,
// with waiters for "until the function reaches state X".

import { FaasnapError } from '../common/errors.js';
import type { FunctionStore } from './store/functions.js';
import type { ErrorBodyT, FunctionStateName, FunctionT } from './schemas.js';

export const TRANSITIONS: Record<FunctionStateName, readonly FunctionStateName[]> = {
  registered: ['booting'],
  booting: ['warm', 'failed'],
  warm: ['snapshotted', 'failed'],
  snapshotted: ['recorded', 'failed'],
  recorded: ['ready', 'failed'],
  ready: ['booting'],
  failed: ['booting'],
};

/** States a deploy is running in (a restart of the daemon interrupts them). */
export const TRANSIENT: readonly FunctionStateName[] = [
  'booting',
  'warm',
  'snapshotted',
  'recorded',
];

export function canTransition(from: FunctionStateName, to: FunctionStateName): boolean {
  return TRANSITIONS[from].includes(to);
}

type Waiter = { want: FunctionStateName; resolve(f: FunctionT): void };

export class Lifecycle {
  private readonly waiters = new Map<string, Set<Waiter>>();

  constructor(private readonly functions: FunctionStore) {}

  transition(
    name: string,
    to: FunctionStateName,
    fields: { error?: ErrorBodyT | null; readySnapshot?: string | null } = {},
  ): FunctionT {
    const f = this.functions.get(name);
    if (!canTransition(f.state, to))
      throw new FaasnapError('FUNCTION_STATE', `${name} is ${f.state}, cannot become ${to}`, {
        state: f.state,
        to,
      });
    const next = this.functions.setState(name, to, fields);
    for (const w of this.waiters.get(name) ?? []) {
      // A waiter also returns when the function failed: the state it wants will not come.
      if (w.want === to || to === 'failed') w.resolve(next);
    }
    return next;
  }

  /** Resolves with the function when it is in `want` (or failed), or at the timeout. */
  async waitFor(
    name: string,
    want: FunctionStateName,
    timeoutMs: number,
  ): Promise<{ reached: boolean; function: FunctionT }> {
    const f = this.functions.get(name);
    if (f.state === want || f.state === 'failed') return { reached: f.state === want, function: f };
    const set = this.waiters.get(name) ?? new Set<Waiter>();
    this.waiters.set(name, set);
    const result = await new Promise<FunctionT | undefined>((resolve) => {
      const w: Waiter = {
        want,
        resolve: (fn) => {
          set.delete(w);
          clearTimeout(timer);
          resolve(fn);
        },
      };
      set.add(w);
      const timer = setTimeout(() => {
        set.delete(w);
        resolve(undefined);
      }, timeoutMs);
    });
    const now = result ?? this.functions.get(name);
    return { reached: now.state === want, function: now };
  }

  /** Wakes every waiter (shutdown). */
  close(): void {
    for (const [name, set] of this.waiters) {
      const f = this.functions.find(name);
      for (const w of set) if (f) w.resolve(f);
    }
    this.waiters.clear();
  }
}
