// The web dashboard at /ui/: the static bundle built from ui/ (npm run build:ui, into dist/ui/),
// served by the daemon itself (no CDN). Its routes are hidden from the OpenAPI document: the
// dashboard is a client of the API, not part of it.

import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ERRORS, FaasnapError } from '../../common/errors.js';

/** dist/ui/, beside dist/daemon/ where this file runs from. */
export const UI_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../ui');

export async function uiRoutes(app: FastifyInstance, dir = UI_DIR): Promise<void> {
  app.get('/', { schema: { hide: true } }, async (_req, reply) => reply.redirect('/ui/'));
  if (!existsSync(join(dir, 'index.html'))) {
    // A daemon built without its dashboard still runs; /ui says what is missing.
    const missing = async (_req: FastifyRequest, reply: FastifyReply) =>
      reply
        .code(ERRORS.UI_NOT_BUILT.status)
        .send(new FaasnapError('UI_NOT_BUILT', `${dir}/index.html is missing`, { dir }).toJSON());
    app.get('/ui', { schema: { hide: true } }, missing);
    app.get('/ui/*', { schema: { hide: true } }, missing);
    return;
  }
  await app.register(fastifyStatic, {
    root: dir,
    prefix: '/ui',
    // /ui answers with a redirect to /ui/, so the page's relative URLs resolve under /ui/.
    redirect: true,
    // Swagger UI registers its own instance of the plugin; this one adds no reply decorators.
    decorateReply: false,
    schemaHide: true,
  });
}
