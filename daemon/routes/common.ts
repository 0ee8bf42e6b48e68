// Shared route pieces: the error responses every route documents.

import { ErrorBody } from '../schemas.js';

/**
 * Response schemas for the given error statuses (all the same ErrorBody). 500 is on every
 * route: any of them can meet an unexpected fault (DAEMON_INTERNAL) or, where a snapshot is read,
 * a storage error (SNAPSHOT_IO).
 */
export function errors(...statuses: number[]): Record<number, typeof ErrorBody> {
  return Object.fromEntries([...statuses, 500].map((s) => [s, ErrorBody]));
}
