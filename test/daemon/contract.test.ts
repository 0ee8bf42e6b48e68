// API contract on a real daemon (KVM, redis-server): every route's answers validate against the
// committed OpenAPI document, invalid bodies / unknown ids / wrong states get their documented
// 4xx with a registry code, and a property-based fuzz over request bodies never gets a 5xx.

import { scaledMs } from '../../common/time-scale.js';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ERRORS } from '../../common/errors.js';
import { kvmTest } from '../kvm/support.js';
import { TOUCH_FN, startDaemon, waitForState, type TestDaemon } from './support.js';

function expectError(
  r: { status: number; body: { code?: string } },
  status: number,
  code: string,
): void {
  assert.equal(r.status, status, JSON.stringify(r.body));
  assert.equal(r.body.code, code);
  assert.equal(ERRORS[code as keyof typeof ERRORS].status, status);
}

async function deployTouch(d: TestDaemon): Promise<string> {
  assert.equal((await d.call('POST', '/functions', TOUCH_FN)).status, 201);
  assert.equal((await d.call('POST', `/functions/${TOUCH_FN.name}/deploy`)).status, 202);
  const w = await waitForState(d.call, TOUCH_FN.name, 'ready', scaledMs(60000));
  assert.equal(w.body.reached, true, JSON.stringify(w.body));
  return w.body.function.readySnapshot as string;
}

kvmTest(
  'every route answers as daemon/openapi.json says, errors carry registry codes',
  async () => {
    // No guest image: the agent runtimes answer RUNTIME_UNAVAILABLE (test/daemon/linux.test.ts
    // deploys real python/node functions).
    const d = await startDaemon({ guest: { rootfs: '/nonexistent/rootfs.ext4' } });
    try {
      const h = await d.call('GET', '/healthz');
      assert.equal(h.body.redis, 'up');
      assert.equal(h.body.runtimes.python, false);
      // Registration: invalid bodies, unknown fields, duplicates, runtime-specific rules.
      expectError(await d.call('POST', '/functions', { name: 'x' }), 400, 'REQUEST_INVALID');
      expectError(
        await d.call('POST', '/functions', { ...TOUCH_FN, extra: 1 }),
        400,
        'REQUEST_INVALID',
      );
      expectError(
        await d.call('POST', '/functions', { ...TOUCH_FN, name: 'Bad Name' }),
        400,
        'REQUEST_INVALID',
      );
      expectError(
        await d.call('POST', '/functions', { ...TOUCH_FN, code: 'print(1)' }),
        400,
        'REQUEST_INVALID',
      );
      expectError(await d.call('POST', '/functions', '{not json'), 400, 'REQUEST_INVALID');
      assert.equal(
        (await d.call('POST', '/functions', { name: 'py', runtime: 'python', handler: 'hello' }))
          .status,
        201,
      );
      expectError(
        await d.call('POST', '/functions', { name: 'py2', runtime: 'python', handler: 'h.main' }),
        400,
        'REQUEST_INVALID',
      );
      expectError(await d.call('POST', '/functions/py/deploy'), 501, 'RUNTIME_UNAVAILABLE');
      expectError(
        await d.call('POST', '/functions/py/invocations', {}),
        501,
        'RUNTIME_UNAVAILABLE',
      );
      expectError(await d.call('GET', '/functions/nope'), 404, 'FUNCTION_UNKNOWN');
      expectError(await d.call('GET', '/functions/NOPE'), 400, 'REQUEST_INVALID');
      expectError(await d.call('POST', '/functions/nope/deploy'), 404, 'FUNCTION_UNKNOWN');

      assert.equal((await d.call('POST', '/functions', TOUCH_FN)).status, 201);
      expectError(await d.call('POST', '/functions', TOUCH_FN), 409, 'FUNCTION_EXISTS');
      expectError(
        await d.call('POST', `/functions/${TOUCH_FN.name}/invocations`, {}),
        409,
        'FUNCTION_NOT_READY',
      );
      expectError(
        await d.call('GET', `/functions/${TOUCH_FN.name}/wait?state=nope`),
        400,
        'REQUEST_INVALID',
      );
      assert.equal((await d.call('POST', `/functions/${TOUCH_FN.name}/deploy`)).status, 202);
      expectError(
        await d.call('POST', `/functions/${TOUCH_FN.name}/deploy`),
        409,
        'FUNCTION_STATE',
      );
      expectError(await d.call('DELETE', `/functions/${TOUCH_FN.name}`), 409, 'FUNCTION_STATE');
      const w = await waitForState(d.call, TOUCH_FN.name, 'ready', scaledMs(60000));
      assert.equal(w.body.reached, true, JSON.stringify(w.body));
      const snap = w.body.function.readySnapshot as string;
      assert.equal((await d.call('GET', '/functions')).body.length, 2);
      assert.equal((await d.call('GET', `/functions/${TOUCH_FN.name}`)).body.state, 'ready');

      // Invocations.
      const inv = await d.call('POST', `/functions/${TOUCH_FN.name}/invocations`, {
        params: { range: { count: 64 } },
        mode: 'vanilla',
      });
      assert.equal(inv.body.status, 'succeeded', JSON.stringify(inv.body));
      expectError(
        await d.call('POST', `/functions/${TOUCH_FN.name}/invocations`, { mode: 'warm' }),
        422,
        'MODE_UNSUPPORTED',
      );
      expectError(
        await d.call('POST', `/functions/${TOUCH_FN.name}/invocations`, { mode: 'fast' }),
        400,
        'REQUEST_INVALID',
      );
      expectError(
        await d.call('POST', `/functions/${TOUCH_FN.name}/invocations`, {
          params: { pages: [1e9] },
        }),
        400,
        'INVALID_PARAMS',
      );
      expectError(
        await d.call('POST', `/functions/${TOUCH_FN.name}/invocations`, { params: { colour: 1 } }),
        400,
        'INVALID_PARAMS',
      );
      expectError(
        await d.call('POST', `/functions/${TOUCH_FN.name}/invocations`, {
          snapshot: 'snap-00000000',
        }),
        404,
        'SNAPSHOT_UNKNOWN',
      );
      expectError(
        await d.call('POST', `/functions/${TOUCH_FN.name}/invocations`, {
          params: { input_object_key: 'missing' },
        }),
        404,
        'OBJECT_UNKNOWN',
      );
      assert.equal(
        (await d.call('GET', `/functions/${TOUCH_FN.name}/invocations?limit=5`)).body[0].id,
        inv.body.id,
      );
      assert.equal((await d.call('GET', `/invocations/${inv.body.id}`)).body.status, 'succeeded');
      expectError(
        await d.call('GET', '/invocations/inv-0000000000000000'),
        404,
        'INVOCATION_UNKNOWN',
      );
      const tr = await d.call('GET', `/traces/${inv.body.traceId}`);
      const names = tr.body.spans.map((s: { name: string }) => s.name);
      for (const n of [
        'invocation',
        'pool-take',
        'restore',
        'state-load',
        'memory-mapping',
        'vcpu-resume',
        'guest-run',
        'teardown',
      ])
        assert.ok(names.includes(n), `${n} in ${names}`);
      // Unjailed (the test daemons' default), the VMM process reads the snapshot itself.
      if (process.env.FAASNAP_TEST_JAIL !== '1') assert.ok(!names.includes('snapshot-view'));
      expectError(await d.call('GET', `/traces/${'0'.repeat(32)}`), 404, 'TRACE_UNKNOWN');

      // Snapshots.
      assert.equal((await d.call('GET', `/snapshots?function=${TOUCH_FN.name}`)).body.length, 1);
      assert.equal((await d.call('GET', `/snapshots/${snap}`)).body.recorded.reap, true);
      const ins = await d.call('GET', `/snapshots/${snap}/inspect`);
      assert.ok(ins.body.loadingSet.bytes > 0);
      const copy = await d.call('POST', `/snapshots/${snap}/copy`);
      assert.equal(copy.status, 201);
      assert.equal(
        (await d.call('PUT', `/snapshots/${copy.body.id}/cache`, { state: 'dropped' })).body
          .cacheState,
        'dropped',
      );
      expectError(
        await d.call('PUT', `/snapshots/${copy.body.id}/cache`, { state: 'warm' }),
        400,
        'REQUEST_INVALID',
      );
      assert.equal(
        (await d.call('POST', `/snapshots/${copy.body.id}/record`, { kind: 'faasnap' })).body
          .recorded.faasnap,
        true,
      );
      expectError(await d.call('DELETE', `/snapshots/${snap}`), 409, 'SNAPSHOT_IN_USE');
      assert.equal((await d.call('DELETE', `/snapshots/${copy.body.id}`)).status, 204);
      expectError(await d.call('GET', `/snapshots/${copy.body.id}`), 404, 'SNAPSHOT_UNKNOWN');
      expectError(await d.call('POST', '/snapshots/snap-00000000/copy'), 404, 'SNAPSHOT_UNKNOWN');

      // VMs: boot, inspect, snapshot (stops the VM), boot again and stop.
      const vm = await d.call('POST', '/vms', { function: TOUCH_FN.name });
      assert.equal(vm.status, 201);
      assert.equal((await d.call('GET', `/vms/${vm.body.id}`)).body.state, 'paused');
      assert.equal((await d.call('GET', '/vms')).body.length, 1);
      const s2 = await d.call('POST', '/snapshots', { vm: vm.body.id });
      assert.equal(s2.status, 201);
      expectError(
        await d.call('POST', `/functions/${TOUCH_FN.name}/invocations`, {
          snapshot: s2.body.id,
          mode: 'faasnap',
        }),
        409,
        'SNAPSHOT_NOT_RECORDED',
      );
      expectError(await d.call('GET', `/vms/${vm.body.id}`), 404, 'VM_UNKNOWN');
      expectError(await d.call('POST', '/snapshots', { vm: 'vm-000000000000' }), 404, 'VM_UNKNOWN');
      const vm2 = await d.call('POST', '/vms', { function: TOUCH_FN.name });
      assert.equal((await d.call('DELETE', `/vms/${vm2.body.id}`)).status, 204);
      expectError(await d.call('DELETE', `/vms/${vm2.body.id}`), 404, 'VM_UNKNOWN');
      expectError(await d.call('POST', '/vms', { function: 'py' }), 501, 'RUNTIME_UNAVAILABLE');

      // Objects.
      assert.equal((await d.call('PUT', '/objects/in.bin', Buffer.from('hello'))).body.bytes, 5);
      assert.deepEqual((await d.call('GET', '/objects')).body, [{ key: 'in.bin', bytes: 5 }]);
      assert.equal((await d.call('GET', '/objects/in.bin')).text, 'hello');
      assert.equal((await d.call('DELETE', '/objects/in.bin')).status, 204);
      expectError(await d.call('GET', '/objects/in.bin'), 404, 'OBJECT_UNKNOWN');

      const metrics = await d.call('GET', '/metrics');
      assert.match(
        metrics.text,
        /faasnap_invocations_total\{function="touchy",mode="vanilla",status="succeeded"\} 1/,
      );
      assert.match(metrics.text, /faasnap_invocation_phase_seconds_bucket\{.*phase="guest-run"/);
      assert.match(metrics.text, /faasnap_vmm_pool_size 1/);
      expectError(await d.call('GET', '/no/such/route'), 404, 'ROUTE_NOT_FOUND');
      assert.equal((await d.call('DELETE', '/functions/py')).status, 204);
      assert.equal((await d.call('GET', '/vms')).body.length, 0);

      const all = Object.entries(d.contract.doc.paths).flatMap(([p, ops]) =>
        Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`),
      );
      assert.deepEqual(
        all.filter((op) => !d.contract.covered.has(op)),
        [],
      );
    } finally {
      await d.stop();
    }
  },
  180_000,
);

kvmTest(
  'fuzzed request bodies never get a 5xx and always match the document',
  async () => {
    const d = await startDaemon();
    try {
      const snap = await deployTouch(d);
      const value = fc.oneof(
        fc.integer(),
        fc.string({ maxLength: 8 }),
        fc.boolean(),
        fc.constant(null),
        fc.double(),
      );
      const fnBody = fc.oneof(
        fc.anything(),
        fc.record(
          {
            name: fc.oneof(fc.stringMatching(/^[a-z][a-z0-9-]{0,10}$/), fc.string()),
            runtime: fc.oneof(fc.constantFrom('micro', 'python', 'node'), fc.string()),
            handler: fc.oneof(fc.constantFrom('touch', 'hello', 'hang'), fc.string()),
            memoryMiB: fc.oneof(fc.integer({ min: -10, max: 70000 }), value),
            vcpus: fc.oneof(fc.integer({ min: 0, max: 9 }), value),
            stateMiB: fc.oneof(fc.integer({ min: 0, max: 100 }), value),
            defaultMode: fc.oneof(fc.constantFrom('faasnap', 'warm', 'reap'), fc.string()),
            recordParams: fc.oneof(fc.dictionary(fc.string(), value), value),
            extra: value,
          },
          { requiredKeys: [] },
        ),
      );
      const invokeBody = fc.oneof(
        fc.anything(),
        fc.record(
          {
            mode: fc.oneof(
              fc.constantFrom(
                'eager',
                'vanilla',
                'cached',
                'reap',
                'faasnap',
                'warm',
                'faasnap-no-regions',
              ),
              fc.string(),
            ),
            snapshot: fc.oneof(fc.constant(snap), fc.string()),
            timeoutMs: fc.oneof(fc.integer({ min: -1, max: 700_000 }), value),
            params: fc.oneof(
              fc.record(
                {
                  pages: fc.oneof(
                    fc.array(fc.integer({ min: -2, max: 2000 }), { maxLength: 20 }),
                    value,
                  ),
                  range: fc.oneof(
                    fc.record(
                      {
                        first: fc.integer({ min: -1, max: 2000 }),
                        count: fc.integer({ min: -1, max: 4000 }),
                        stride: fc.integer({ min: -1, max: 9 }),
                      },
                      { requiredKeys: [] },
                    ),
                    value,
                  ),
                  seed: fc.oneof(fc.nat(), value),
                  write: fc.oneof(fc.boolean(), value),
                },
                { requiredKeys: [] },
              ),
              fc.dictionary(fc.string(), value),
              value,
            ),
          },
          { requiredKeys: [] },
        ),
      );
      const target = fc.oneof(
        fnBody.map((b) => ['POST', '/functions', b] as const),
        invokeBody.map((b) => ['POST', `/functions/${TOUCH_FN.name}/invocations`, b] as const),
        fc.anything().map((b) => ['PUT', `/snapshots/${snap}/cache`, b] as const),
        fc.anything().map((b) => ['POST', '/snapshots', b] as const),
        fc.anything().map((b) => ['POST', '/vms', b] as const),
        fc.string().map((b) => ['POST', `/functions/${TOUCH_FN.name}/invocations`, b] as const),
      );
      await fc.assert(
        fc.asyncProperty(target, async ([method, path, body]) => {
          const r = await d.call(method, path, body === undefined ? 'null' : body);
          assert.ok(
            r.status < 500,
            `${method} ${path} ${JSON.stringify(body)} → ${r.status} ${r.text}`,
          );
          // Booted VMs from fuzzed POST /vms are stopped so the VM limit is never the answer.
          if (method === 'POST' && path === '/vms' && r.status === 201)
            await d.call('DELETE', `/vms/${r.body.id}`);
        }),
        { numRuns: 150, seed: 42 },
      );
      assert.equal((await d.call('GET', '/healthz')).status, 200);
      assert.equal((await d.call('GET', '/vms')).body.length, 0);
    } finally {
      await d.stop();
    }
  },
  180_000,
);
