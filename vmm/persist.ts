// The persist contract (Firecracker's `Persist` trait): every stateful part has `save()` that
// returns plain JSON (no fds, no pointers, bigints as decimal strings) and a restore path that
// treats the state as untrusted input and validates it against a TypeBox schema first.

import { type Static, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { FaasnapError } from '../common/errors.js';

export interface Persist<State> {
  save(): State;
}

/** Validates `state` against `schema`; throws STATE_INVALID naming the first bad field. */
export function validateState<S extends TSchema>(
  what: string,
  schema: S,
  state: unknown,
): Static<S> {
  if (Value.Check(schema, state)) return state;
  const first = Value.Errors(schema, state).First();
  const where = first ? `${first.path || '/'}: ${first.message}` : 'does not match schema';
  throw new FaasnapError('STATE_INVALID', `${what} ${where}`, { what });
}
