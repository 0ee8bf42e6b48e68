// /healthz, /metrics and /openapi.json (Swagger UI at /docs: daemon/api.ts).

import type { FastifyInstance } from 'fastify';
import type { DaemonContext } from '../context.js';
import { Health } from '../schemas.js';
import { errors } from './common.js';

export function systemRoutes(app: FastifyInstance, ctx: DaemonContext): void {
  app.get(
    '/healthz',
    {
      schema: {
        tags: ['system'],
        summary: 'Liveness and a summary of the daemon',
        response: { 200: Health, ...errors() },
      },
    },
    async () => ({
      status: 'ok' as const,
      version: ctx.version,
      uptimeS: (Date.now() - ctx.startedAt) / 1000,
      pool: { size: ctx.vms.pool.size, idle: ctx.vms.pool.idleCount },
      vms: ctx.vms.count,
      redis: ctx.objects.up ? ('up' as const) : ('down' as const),
      runtimes: Object.fromEntries(Object.entries(ctx.runtimes).map(([k, r]) => [k, r.available])),
      guest: {
        kernel: ctx.config.guest.kernel ?? null,
        rootfs: ctx.config.guest.rootfs ?? null,
        sanitisedPages: ctx.config.guest.sanitisedPages,
      },
      jail: ctx.jail,
    }),
  );

  app.get(
    '/metrics',
    {
      schema: {
        tags: ['system'],
        summary: 'Prometheus metrics (text exposition format)',
        response: {
          200: { type: 'string', description: 'text/plain; version=0.0.4' },
          ...errors(),
        },
      },
    },
    async (_req, reply) => {
      const text = await ctx.metrics.registry.metrics();
      return reply.type(ctx.metrics.registry.contentType).send(text);
    },
  );

  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
}
