// Shared route pieces: the error responses every route documents.

import { ErrorBody } from '../schemas.js';

/** Response schemas for the given error statuses (all the same ErrorBody). */
export function errors(...statuses: number[]): Record<number, typeof ErrorBody> {
  return Object.fromEntries(statuses.map((s) => [s, ErrorBody]));
}
