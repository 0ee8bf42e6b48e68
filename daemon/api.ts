// The HTTP layer: a fastify instance with TypeBox schemas on every route (request validation,
// response serialisation, the OpenAPI document via @fastify/swagger, Swagger UI at /docs), the web
// dashboard at /ui/ (daemon/routes/ui.ts), the API token check beyond loopback, HTTP spans when
// traces are exported, and one error mapping:
// every error leaves as { code, message, details } with the registry's status.

import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance } from 'fastify';
import { ERRORS, FaasnapError, isFaasnapError } from '../common/errors.js';
import { requireToken } from './auth.js';
import type { DaemonContext } from './context.js';
import { functionRoutes } from './routes/functions.js';
import { invocationRoutes } from './routes/invocations.js';
import { objectRoutes } from './routes/objects.js';
import { snapshotRoutes } from './routes/snapshots.js';
import { systemRoutes } from './routes/system.js';
import { uiRoutes } from './routes/ui.js';
import { vmRoutes } from './routes/vms.js';
import { ErrorBody } from './schemas.js';
import type { TlsFiles } from './tls.js';

export const API_VERSION = '0.1.0';

/** Largest JSON request body (objects have their own limit, daemon/routes/objects.ts). */
export const MAX_BODY_BYTES = 4 << 20;

export interface ApiOptions {
  logger: FastifyBaseLogger;
  /** The bearer token every API request must carry (daemon/auth.ts), if any. */
  token?: string | undefined;
  /** Serve HTTPS with this certificate and key (daemon/tls.ts). */
  tls?: TlsFiles | undefined;
}

export async function buildApi(ctx: DaemonContext, opts: ApiOptions): Promise<FastifyInstance> {
  // One instance type for HTTP and HTTPS: the routes never touch the server itself.
  const app = Fastify({
    ...(opts.tls ? { https: opts.tls } : {}),
    loggerInstance: opts.logger,
    // Unknown body properties are errors, not silently dropped; defaults are filled in.
    ajv: {
      customOptions: {
        removeAdditional: false,
        useDefaults: true,
        coerceTypes: 'array',
        allErrors: false,
      },
    },
    bodyLimit: MAX_BODY_BYTES,
  }) as unknown as FastifyInstance;
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'faasnap daemon API',
        version: API_VERSION,
        description:
          'Functions in KVM microVMs started from snapshots (FaaSnap). Errors: every 4xx/5xx has the Error body with a registry code (docs/errors.md).',
      },
      servers: [{ url: 'http://127.0.0.1:8720' }],
      // Beyond loopback every request needs the bearer token (daemon/auth.ts); on loopback none.
      components: {
        securitySchemes: {
          bearerAuth: {
            type: 'http',
            scheme: 'bearer',
            description: 'the daemon API token (<data dir>/api-token, or --token-file)',
          },
        },
      },
      security: [{}, { bearerAuth: [] }],
      tags: ['functions', 'invocations', 'snapshots', 'vms', 'objects', 'system'].map((name) => ({
        name,
      })),
    },
    refResolver: { buildLocalReference: (json, _base, _frag, i) => String(json.$id ?? `def-${i}`) },
  });
  if (opts.token) requireToken(app, opts.token);
  const httpSpans = ctx.traces.httpSpans();
  if (httpSpans) await app.register(httpSpans);
  // Swagger UI, its files served from the package (the daemon runs offline). Try-it-out calls
  // the daemon that served the page, wherever it listens, not the document's default server.
  await app.register(swaggerUi, {
    routePrefix: '/docs',
    uiConfig: { tryItOutEnabled: true, displayRequestDuration: true, persistAuthorization: true },
    transformSpecificationClone: true,
    transformSpecification: (spec, req) => ({
      ...spec,
      servers: [{ url: `${req.protocol}://${req.host}` }],
    }),
  });
  app.addSchema(ErrorBody);

  app.setErrorHandler((err: FastifyError | FaasnapError | Error, req, reply) => {
    let e: FaasnapError;
    if (isFaasnapError(err)) e = err;
    else if ((err as FastifyError).validation) {
      e = new FaasnapError('REQUEST_INVALID', err.message, {
        context: (err as FastifyError).validationContext,
      });
    } else if ((err as FastifyError).code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      e = new FaasnapError('REQUEST_TOO_LARGE', err.message, { limit: req.routeOptions.bodyLimit });
    } else if (
      typeof (err as FastifyError).statusCode === 'number' &&
      (err as FastifyError).statusCode! < 500
    ) {
      // fastify's own client errors: bad JSON, wrong content type
      e = new FaasnapError('REQUEST_INVALID', err.message, {
        fastifyCode: (err as FastifyError).code,
      });
      e.details.status = (err as FastifyError).statusCode;
    } else {
      req.log.error({ err }, 'internal error');
      e = new FaasnapError('DAEMON_INTERNAL', err.message);
    }
    const status =
      typeof e.details.status === 'number' && e.code === 'REQUEST_INVALID'
        ? e.details.status
        : ERRORS[e.code].status;
    void reply.code(status).send(e.toJSON());
  });
  app.setNotFoundHandler((req, reply) => {
    void reply
      .code(404)
      .send(new FaasnapError('ROUTE_NOT_FOUND', `${req.method} ${req.url}`).toJSON());
  });

  functionRoutes(app, ctx);
  snapshotRoutes(app, ctx);
  vmRoutes(app, ctx);
  invocationRoutes(app, ctx);
  objectRoutes(app, ctx);
  systemRoutes(app, ctx);
  await uiRoutes(app);
  return app;
}
