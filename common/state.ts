// Validation of state read back from disk or from another process: it is untrusted input, checked
// against a TypeBox schema before anything uses it.

import { type Static, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { FaasnapError } from './errors.js';

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
