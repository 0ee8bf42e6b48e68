// Shared route pieces: the error responses every route documents, the request's HTTP span.

import type { SpanContext } from '@opentelemetry/api';
import type { FastifyRequest } from 'fastify';
import { ErrorBody } from '../schemas.js';

/**
 * Response schemas for the given error statuses (all the same ErrorBody). 401 and 500 are on
 * every route: a daemon with an API token refuses requests without it (UNAUTHORIZED), and any
 * route can meet an unexpected fault (DAEMON_INTERNAL) or, where a snapshot is read, a storage
 * error (SNAPSHOT_IO).
 */
export function errors(...statuses: number[]): Record<number, typeof ErrorBody> {
  return Object.fromEntries([...statuses, 401, 500].map((s) => [s, ErrorBody]));
}

/** The HTTP server span of `req`, for the trace it starts to link to (none without OTLP). */
export function requestSpan(req: FastifyRequest): SpanContext | undefined {
  // The decorator exists only where @fastify/otel is registered (Traces.httpSpans).
  if (typeof req.opentelemetry !== 'function') return undefined;
  const otel = req.opentelemetry();
  return otel.instrumented ? otel.span?.spanContext() : undefined;
}
