// /objects: the object store (Redis) that functions read their inputs from.

import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { FaasnapError } from '../../common/errors.js';
import type { DaemonContext } from '../context.js';
import { errors } from './common.js';

const Key = Type.String({ minLength: 1, maxLength: 512, pattern: '^[^/\\s]+$' });
export const MAX_OBJECT_BYTES = 512 << 20;

export function objectRoutes(app: FastifyInstance, ctx: DaemonContext): void {
  app.addContentTypeParser(
    'application/octet-stream',
    { parseAs: 'buffer', bodyLimit: MAX_OBJECT_BYTES },
    (_req, body, done) => done(null, body),
  );

  app.get(
    '/objects',
    {
      schema: {
        tags: ['objects'],
        summary: 'List objects with their sizes',
        response: {
          200: Type.Array(Type.Object({ key: Type.String(), bytes: Type.Integer() })),
          ...errors(503),
        },
      },
    },
    async () => ctx.objects.list(),
  );

  app.put<{ Params: { key: string }; Body: Buffer }>(
    '/objects/:key',
    {
      bodyLimit: MAX_OBJECT_BYTES,
      schema: {
        tags: ['objects'],
        summary: 'Store an object (body: application/octet-stream)',
        params: Type.Object({ key: Key }),
        response: {
          200: Type.Object({ key: Type.String(), bytes: Type.Integer() }),
          ...errors(400, 413, 415, 503),
        },
      },
    },
    async (req) => {
      const body = Buffer.isBuffer(req.body)
        ? req.body
        : Buffer.from(JSON.stringify(req.body ?? ''));
      await ctx.objects.put(req.params.key, body);
      return { key: req.params.key, bytes: body.length };
    },
  );

  app.get<{ Params: { key: string } }>(
    '/objects/:key',
    {
      schema: {
        tags: ['objects'],
        summary: 'Read an object (application/octet-stream)',
        params: Type.Object({ key: Key }),
        response: {
          200: { type: 'string', format: 'binary', description: 'the object bytes' },
          ...errors(400, 404, 503),
        },
      },
    },
    async (req, reply) => {
      const data = await ctx.objects.get(req.params.key);
      return reply.type('application/octet-stream').send(data);
    },
  );

  app.delete<{ Params: { key: string } }>(
    '/objects/:key',
    {
      schema: {
        tags: ['objects'],
        summary: 'Delete an object',
        params: Type.Object({ key: Key }),
        response: { 204: Type.Null(), ...errors(400, 404, 503) },
      },
    },
    async (req, reply) => {
      if (!(await ctx.objects.delete(req.params.key)))
        throw new FaasnapError('OBJECT_UNKNOWN', req.params.key, { key: req.params.key });
      return reply.code(204).send();
    },
  );
}
