// A deploy that fails writes one error-level daemon log line naming the function, the step and
// the code, and the function keeps the error (details included) for GET /functions/{name}.

import { scaledMs } from '../../common/time-scale.js';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { kvmTest } from '../kvm/support.js';
import { startDaemon, waitForState } from './support.js';

kvmTest(
  'a failed deploy is logged once at error level with its function, step and code',
  async () => {
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l));
        cb();
      },
    });
    const d = await startDaemon({ logLevel: 'info' }, undefined, { logStream: sink });
    try {
      // `hang` never finishes: its warm-up invocation runs into the function's timeout.
      const fn = {
        name: 'stuck',
        runtime: 'micro',
        handler: 'hang',
        memoryMiB: 16,
        timeoutMs: 300,
      };
      assert.equal((await d.call('POST', '/functions', fn)).status, 201);
      assert.equal((await d.call('POST', '/functions/stuck/deploy')).status, 202);
      const w = await waitForState(d.call, 'stuck', 'failed', scaledMs(60000));
      assert.equal(w.body.reached, true, JSON.stringify(w.body));
      assert.equal(w.body.function.error.code, 'FUNCTION_TIMEOUT');

      const errors = lines.filter((l) => l.level === 50);
      assert.equal(errors.length, 1, JSON.stringify(errors));
      assert.equal(errors[0]!.function, 'stuck');
      assert.equal(errors[0]!.step, 'warm-up');
      assert.equal(errors[0]!.code, 'FUNCTION_TIMEOUT');
      assert.match(String(errors[0]!.msg), /deploy of stuck failed at warm-up: FUNCTION_TIMEOUT/);
    } finally {
      await d.stop();
    }
  },
);
