// OTLP export to a real OTLP/HTTP receiver (a local HTTP server that keeps what it is sent):
// spans carry the daemon's Resource (service.name, service.version), each API request has an
// HTTP server span, and the deploy it started is its own trace, linked to that request's span.
// The local trace (GET /traces/{id}) holds the deploy's spans only.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { API_VERSION } from '../../daemon/api.js';
import { scaledMs } from '../../common/time-scale.js';
import { TOUCH_FN, startDaemon, waitForState } from './support.js';

interface OtlpValue {
  stringValue?: string;
}
interface OtlpSpan {
  traceId: string;
  spanId: string;
  name: string;
  kind: number;
  attributes: { key: string; value: OtlpValue }[];
  links?: { traceId: string; spanId: string }[];
}
interface OtlpRequest {
  resourceSpans: {
    resource: { attributes: { key: string; value: OtlpValue }[] };
    scopeSpans: { scope: { name: string }; spans: OtlpSpan[] }[];
  }[];
}

/** An OTLP/HTTP (JSON) trace receiver on a free port. */
async function otlpReceiver() {
  const received: OtlpRequest[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      if (req.url === '/v1/traces' && req.headers['content-type']?.includes('json'))
        received.push(JSON.parse(body) as OtlpRequest);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v1/traces`,
    received,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

test('spans go to the OTLP endpoint with the Resource; a deploy links to its HTTP request span', async (t) => {
  const otlp = await otlpReceiver();
  try {
    const dir = mkdtempSync(join(tmpdir(), 'faasnap-otlp-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const d = await startDaemon({ poolSize: 0, otlpUrl: otlp.url }, dir);
    try {
      assert.equal((await d.call('POST', '/functions', TOUCH_FN)).status, 201);
      assert.equal((await d.call('POST', `/functions/${TOUCH_FN.name}/deploy`)).status, 202);
      // Ready where KVM is, failed where it is not: either way the deploy's trace has ended.
      const end = await waitForState(d.call, TOUCH_FN.name, 'ready', scaledMs(120_000));
      assert.ok(['ready', 'failed'].includes(end.body.function.state), end.text);
    } finally {
      await d.stop(); // shuts the tracer provider down: the batch is flushed
    }

    const spans = otlp.received.flatMap((r) =>
      r.resourceSpans.flatMap((rs) => {
        const attr = Object.fromEntries(rs.resource.attributes.map((a) => [a.key, a.value]));
        assert.equal(attr['service.name']?.stringValue, 'faasnap-daemon');
        assert.equal(attr['service.version']?.stringValue, API_VERSION);
        return rs.scopeSpans.flatMap((s) => s.spans.map((sp) => ({ ...sp, scope: s.scope.name })));
      }),
    );
    const http = spans.find(
      (s) =>
        s.scope !== 'faasnap-daemon' &&
        s.attributes.some(
          (a) => a.key === 'http.route' && a.value.stringValue === '/functions/:name/deploy',
        ),
    );
    assert.ok(http, `an HTTP span for POST /functions/:name/deploy among ${spans.length}`);
    const deploy = spans.find((s) => s.scope === 'faasnap-daemon' && s.name === 'deploy');
    assert.ok(deploy, 'the deploy trace was exported');
    assert.notEqual(deploy.traceId, http.traceId, 'the deploy is a trace of its own');
    assert.deepEqual(
      deploy.links?.map((l) => ({ traceId: l.traceId, spanId: l.spanId })),
      [{ traceId: http.traceId, spanId: http.spanId }],
      'linked to the request that started it',
    );
    // Phases of the deploy went out too, in the deploy's trace.
    assert.ok(spans.some((s) => s.traceId === deploy.traceId && s.name !== 'deploy'));

    // The local store (the same data dir, read by a daemon without OTLP) has the deploy's trace
    // and no HTTP spans.
    const again = await startDaemon({ poolSize: 0 }, dir);
    try {
      const local = await again.call('GET', `/traces/${deploy.traceId}`);
      assert.equal(local.status, 200, local.text);
      assert.ok(local.body.spans.some((s: { name: string }) => s.name === 'deploy'));
      assert.equal((await again.call('GET', `/traces/${http.traceId}`)).status, 404);
    } finally {
      await again.stop();
    }
  } finally {
    await otlp.close();
  }
});
