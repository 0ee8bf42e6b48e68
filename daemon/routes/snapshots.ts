// /snapshots: create from a booted VM, record a working set, copy, inspect, page-cache state,
// delete.

import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { FaasnapError } from '../../common/errors.js';
import type { DaemonContext } from '../context.js';
import type { RecordRequest } from '../deploy.js';
import { Id, Params, Snapshot, SnapshotInspect, Name } from '../schemas.js';
import { errors } from './common.js';

const IdParams = Type.Object({ id: Id });

export function snapshotRoutes(app: FastifyInstance, ctx: DaemonContext): void {
  app.get<{ Querystring: { function?: string } }>(
    '/snapshots',
    {
      schema: {
        tags: ['snapshots'],
        summary: 'List snapshots',
        querystring: Type.Object({ function: Type.Optional(Name) }),
        response: { 200: Type.Array(Snapshot), ...errors(400) },
      },
    },
    async (req) => ctx.store.snapshots.list(req.query.function),
  );

  app.post<{ Body: { vm: string } }>(
    '/snapshots',
    {
      schema: {
        tags: ['snapshots'],
        summary: 'Snapshot a booted (paused) VM; the VM is stopped afterwards',
        body: Type.Object({ vm: Id }, { additionalProperties: false }),
        response: { 201: Snapshot, ...errors(400, 404, 409, 502) },
      },
    },
    async (req, reply) => {
      const vm = ctx.vms.get(req.body.vm);
      if (vm.info.purpose !== 'boot' || vm.info.state !== 'paused')
        throw new FaasnapError(
          'INVALID_VM_STATE',
          `${vm.info.id} is a ${vm.info.purpose} VM in state ${vm.info.state}; only paused booted VMs can be snapshotted`,
        );
      ctx.vms.setState(vm.info.id, 'running');
      let snap;
      try {
        snap = await ctx.snapshots.createFromVm(vm.info.function, vm.vmm!);
      } finally {
        await ctx.vms.release(vm.info.id);
      }
      return reply.code(201).send(snap);
    },
  );

  app.get<{ Params: { id: string } }>(
    '/snapshots/:id',
    {
      schema: {
        tags: ['snapshots'],
        summary: 'Get a snapshot',
        params: IdParams,
        response: { 200: Snapshot, ...errors(400, 404) },
      },
    },
    async (req) => ctx.store.snapshots.get(req.params.id),
  );

  app.get<{ Params: { id: string } }>(
    '/snapshots/:id/inspect',
    {
      schema: {
        tags: ['snapshots'],
        summary:
          'Sizes, non-zero regions, FaaSnap loading set and groups, REAP working set, page-cache residency',
        params: IdParams,
        response: { 200: SnapshotInspect, ...errors(400, 404, 409, 422) },
      },
    },
    async (req) => ctx.snapshots.inspect(req.params.id),
  );

  app.post<{ Params: { id: string }; Body: RecordRequest }>(
    '/snapshots/:id/record',
    {
      schema: {
        tags: ['snapshots'],
        summary:
          'Record the working set (faasnap, reap or both) by running the snapshot once with an input',
        params: IdParams,
        body: Type.Object(
          {
            kind: Type.Union(
              [Type.Literal('faasnap'), Type.Literal('reap'), Type.Literal('both')],
              { default: 'both' },
            ),
            params: Type.Optional(Params),
            mincoreSize: Type.Optional(Type.Integer({ minimum: 1, maximum: 1 << 24 })),
            intervalThreshold: Type.Optional(Type.Integer({ minimum: 0, maximum: 1 << 24 })),
          },
          { additionalProperties: false },
        ),
        response: { 200: Snapshot, ...errors(400, 404, 409, 422, 429, 501, 502) },
      },
    },
    async (req) => {
      const snap = ctx.snapshots.complete(req.params.id);
      const rec = ctx.traces.start('record', { 'faasnap.snapshot': snap.id });
      try {
        const out = await ctx.deployer.record(snap, req.body, rec);
        rec.end();
        return out;
      } catch (e) {
        rec.end({
          code: (e as FaasnapError).code ?? 'DAEMON_INTERNAL',
          message: (e as Error).message,
        });
        throw e;
      }
    },
  );

  app.post<{ Params: { id: string } }>(
    '/snapshots/:id/copy',
    {
      schema: {
        tags: ['snapshots'],
        summary: 'Copy a snapshot (all files, recordings included) into a new snapshot',
        params: IdParams,
        response: { 201: Snapshot, ...errors(400, 404, 409) },
      },
    },
    async (req, reply) => reply.code(201).send(await ctx.snapshots.copy(req.params.id)),
  );

  app.put<{ Params: { id: string }; Body: { state: 'dropped' | 'loaded' } }>(
    '/snapshots/:id/cache',
    {
      schema: {
        tags: ['snapshots'],
        summary: "Drop the snapshot's files from the page cache or load them into it",
        params: IdParams,
        body: Type.Object(
          { state: Type.Union([Type.Literal('dropped'), Type.Literal('loaded')]) },
          { additionalProperties: false },
        ),
        response: { 200: Snapshot, ...errors(400, 404, 409) },
      },
    },
    async (req) => ctx.snapshots.setCacheState(req.params.id, req.body.state),
  );

  app.delete<{ Params: { id: string } }>(
    '/snapshots/:id',
    {
      schema: {
        tags: ['snapshots'],
        summary: 'Delete a snapshot and its files',
        description: "Refused while it is in use or is its function's ready snapshot.",
        params: IdParams,
        response: { 204: Type.Null(), ...errors(400, 404, 409) },
      },
    },
    async (req, reply) => {
      const s = ctx.store.snapshots.get(req.params.id);
      const fn = ctx.store.functions.find(s.function);
      if (fn?.readySnapshot === s.id)
        throw new FaasnapError('SNAPSHOT_IN_USE', `${s.id} is the ready snapshot of ${fn.name}`, {
          id: s.id,
        });
      await ctx.snapshots.delete(s.id);
      return reply.code(204).send();
    },
  );
}
