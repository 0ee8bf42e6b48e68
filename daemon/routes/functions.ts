// /functions: register, list, get, delete, deploy, wait for a lifecycle state, invoke, history.

import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { FaasnapError } from '../../common/errors.js';
import type { DaemonContext } from '../context.js';
import { TRANSIENT } from '../lifecycle.js';
import { runtimeFor } from '../runtime/index.js';
import {
  Function,
  FunctionSpec,
  FunctionState,
  Invocation,
  InvokeRequest,
  Name,
  type FunctionConfigT,
  type FunctionStateName,
  type InvokeRequestT,
} from '../schemas.js';
import { errors, requestSpan } from './common.js';

const NameParams = Type.Object({ name: Name });

export function functionRoutes(app: FastifyInstance, ctx: DaemonContext): void {
  app.post<{ Body: FunctionConfigT }>(
    '/functions',
    {
      schema: {
        tags: ['functions'],
        summary: 'Register a function',
        body: FunctionSpec,
        response: { 201: Function, ...errors(400, 409, 413) },
      },
    },
    async (req, reply) => {
      const cfg = req.body; // defaults filled in by validation
      runtimeFor(ctx.runtimes, cfg.runtime).validateConfig(cfg);
      const created = ctx.store.functions.insert(cfg);
      return reply.code(201).send(created);
    },
  );

  app.get(
    '/functions',
    {
      schema: {
        tags: ['functions'],
        summary: 'List functions',
        response: { 200: Type.Array(Function), ...errors() },
      },
    },
    async () => ctx.store.functions.list(),
  );

  app.get<{ Params: { name: string } }>(
    '/functions/:name',
    {
      schema: {
        tags: ['functions'],
        summary: 'Get a function',
        params: NameParams,
        response: { 200: Function, ...errors(400, 404) },
      },
    },
    async (req) => ctx.store.functions.get(req.params.name),
  );

  app.delete<{ Params: { name: string } }>(
    '/functions/:name',
    {
      schema: {
        tags: ['functions'],
        summary: 'Delete a function and its snapshots',
        params: NameParams,
        response: { 204: Type.Null(), ...errors(400, 404, 409) },
      },
    },
    async (req, reply) => {
      const f = ctx.store.functions.get(req.params.name);
      if (TRANSIENT.includes(f.state))
        throw new FaasnapError('FUNCTION_STATE', `${f.name} is deploying (${f.state})`, {
          state: f.state,
        });
      await ctx.invoker.dropWarm(f.name);
      for (const s of ctx.store.snapshots.list(f.name)) await ctx.snapshots.delete(s.id);
      ctx.store.functions.delete(f.name);
      return reply.code(204).send();
    },
  );

  app.post<{ Params: { name: string } }>(
    '/functions/:name/deploy',
    {
      schema: {
        tags: ['functions'],
        summary: 'Run the deploy chain (boot, warm-up, base snapshot, recording, final snapshot)',
        description:
          'Returns at once with the function `booting`; follow it with GET /functions/{name}/wait.',
        params: NameParams,
        response: { 202: Function, ...errors(400, 404, 409, 413, 429, 501) },
      },
    },
    async (req, reply) => {
      const release = ctx.clientLimits.acquire(req.ip, 'deploys');
      try {
        const fn = ctx.deployer.start(req.params.name, requestSpan(req));
        void ctx.deployer.ended(req.params.name).finally(release);
        void reply.code(202);
        return fn;
      } catch (e) {
        release();
        throw e;
      }
    },
  );

  app.get<{
    Params: { name: string };
    Querystring: { state: FunctionStateName; timeoutMs: number };
  }>(
    '/functions/:name/wait',
    {
      schema: {
        tags: ['functions'],
        summary: 'Wait until the function reaches a lifecycle state (or failed, or the timeout)',
        params: NameParams,
        querystring: Type.Object({
          state: FunctionState,
          timeoutMs: Type.Integer({ minimum: 0, maximum: 600_000, default: 30_000 }),
        }),
        response: {
          200: Type.Object({ reached: Type.Boolean(), function: Function }),
          ...errors(400, 404),
        },
      },
    },
    async (req) => ctx.lifecycle.waitFor(req.params.name, req.query.state, req.query.timeoutMs),
  );

  app.post<{ Params: { name: string }; Body: InvokeRequestT | undefined }>(
    '/functions/:name/invocations',
    {
      schema: {
        tags: ['invocations'],
        summary: 'Invoke the function synchronously',
        description:
          'A function error or timeout is HTTP 200 with status `failed` and an error payload (the VM is discarded). Restore failures, VMM crashes and limits are API errors.',
        params: NameParams,
        body: InvokeRequest,
        response: { 200: Invocation, ...errors(400, 404, 409, 413, 422, 429, 501, 502, 503) },
      },
    },
    async (req) => {
      const release = ctx.clientLimits.acquire(req.ip, 'invocations');
      try {
        return await ctx.invoker.invoke(req.params.name, req.body ?? {}, requestSpan(req));
      } finally {
        release();
      }
    },
  );

  app.get<{ Params: { name: string }; Querystring: { limit: number } }>(
    '/functions/:name/invocations',
    {
      schema: {
        tags: ['invocations'],
        summary: 'Invocation history of a function, newest first',
        params: NameParams,
        querystring: Type.Object({
          limit: Type.Integer({ minimum: 1, maximum: 1000, default: 50 }),
        }),
        response: { 200: Type.Array(Invocation), ...errors(400, 404) },
      },
    },
    async (req) => {
      ctx.store.functions.get(req.params.name);
      return ctx.store.invocations.list(req.params.name, req.query.limit);
    },
  );
}
