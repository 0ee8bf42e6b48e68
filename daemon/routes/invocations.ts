// /invocations/{id} and /traces/{id}: history and per-phase traces of invocations.

import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { DaemonContext } from '../context.js';
import { Id, Invocation, Trace } from '../schemas.js';
import { errors } from './common.js';

export function invocationRoutes(app: FastifyInstance, ctx: DaemonContext): void {
  app.get<{ Params: { id: string } }>(
    '/invocations/:id',
    {
      schema: {
        tags: ['invocations'],
        summary: 'Get an invocation',
        params: Type.Object({ id: Id }),
        response: { 200: Invocation, ...errors(400, 404) },
      },
    },
    async (req) => ctx.store.invocations.get(req.params.id),
  );

  app.get<{ Params: { id: string } }>(
    '/traces/:id',
    {
      schema: {
        tags: ['invocations'],
        summary: 'The spans of a trace (an invocation, deploy or recording)',
        params: Type.Object({ id: Type.String({ pattern: '^[0-9a-f]{32}$' }) }),
        response: { 200: Trace, ...errors(400, 404) },
      },
    },
    async (req) => ctx.store.spans.trace(req.params.id),
  );
}
