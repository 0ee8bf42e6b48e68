// JSON typed into a form: a JSON object, or an error in the daemon's shape that the form shows.

import { ApiError } from './api.js';

export function parseJsonObject(text: string, what: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new ApiError(0, 'INVALID_JSON', `${what}: ${(e as Error).message}`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v))
    throw new ApiError(0, 'INVALID_JSON', `${what}: a JSON object is expected`);
  return v as Record<string, unknown>;
}
