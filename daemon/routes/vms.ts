// /vms: live VMs (booted, invocation, recording, warm-up), boot one for a function, stop one.

import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { DaemonContext } from '../context.js';
import { agentStorage, requireAvailable, runtimeFor } from '../runtime/index.js';
import { Id, Name, Vm } from '../schemas.js';
import { runtimeVm } from '../vms.js';
import { errors } from './common.js';

const IdParams = Type.Object({ id: Id });

export function vmRoutes(app: FastifyInstance, ctx: DaemonContext): void {
  app.get(
    '/vms',
    {
      schema: {
        tags: ['vms'],
        summary: 'List live VMs',
        response: { 200: Type.Array(Vm), ...errors() },
      },
    },
    async () => ctx.vms.list(),
  );

  app.post<{ Body: { function: string } }>(
    '/vms',
    {
      schema: {
        tags: ['vms'],
        summary:
          'Boot a fresh VM for a function; it stays paused where a snapshot is taken (POST /snapshots)',
        body: Type.Object({ function: Name }, { additionalProperties: false }),
        response: { 201: Vm, ...errors(400, 404, 429, 501, 502, 503) },
      },
    },
    async (req, reply) => {
      const fn = ctx.store.functions.get(req.body.function);
      const runtime = runtimeFor(ctx.runtimes, fn.runtime);
      requireAvailable(runtime);
      const vm = await ctx.vms.acquire({
        function: fn.name,
        memoryMiB: fn.memoryMiB,
        vcpus: fn.vcpus,
        purpose: 'boot',
      });
      try {
        const warmUp = await runtime.prepareInput(fn, runtime.recordParams(fn), {
          getObject: (k) => ctx.objects.get(k),
        });
        await runtime.boot(runtimeVm(vm), fn, warmUp, { storage: agentStorage(ctx.objects) });
      } catch (e) {
        await ctx.vms.release(vm.info.id);
        throw e;
      }
      ctx.vms.setState(vm.info.id, 'paused');
      return reply.code(201).send(vm.info);
    },
  );

  app.get<{ Params: { id: string } }>(
    '/vms/:id',
    {
      schema: {
        tags: ['vms'],
        summary: 'Get a live VM',
        params: IdParams,
        response: { 200: Vm, ...errors(400, 404) },
      },
    },
    async (req) => ctx.vms.get(req.params.id).info,
  );

  app.delete<{ Params: { id: string } }>(
    '/vms/:id',
    {
      schema: {
        tags: ['vms'],
        summary:
          'Stop a VM (its VMM process ends; a running invocation on it fails with VMM_CRASHED)',
        params: IdParams,
        response: { 204: Type.Null(), ...errors(400, 404) },
      },
    },
    async (req, reply) => {
      ctx.vms.get(req.params.id);
      await ctx.vms.release(req.params.id);
      return reply.code(204).send();
    },
  );
}
