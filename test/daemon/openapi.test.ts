// The committed OpenAPI document is the one the route schemas generate; Swagger UI serves it.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { OPENAPI_PATH, generateOpenApi, serialize } from '../../daemon/openapi.js';
import { startDaemon } from './support.js';

test('daemon/openapi.json equals the generated document (run node dist/daemon/openapi.js --write)', async () => {
  const generated = serialize(await generateOpenApi());
  assert.equal(readFileSync(OPENAPI_PATH, 'utf8'), generated);
});

test('/docs serves Swagger UI from the package, with try-it-out aimed at this daemon', async () => {
  const d = await startDaemon({ poolSize: 0 });
  try {
    const page = await fetch(`${d.url}/docs`);
    assert.equal(page.status, 200);
    const html = await page.text();
    assert.match(html, /swagger-ui/);
    // Every file the page loads comes from the daemon, none from a CDN.
    const assets = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    assert.ok(assets.length > 0);
    for (const a of assets) {
      assert.doesNotMatch(a, /^(https?:)?\/\//, `${a} is served by the daemon`);
      const r = await fetch(new URL(a, page.url));
      assert.equal(r.status, 200, `${a}: ${r.status}`);
    }
    const bundle = await fetch(`${d.url}/docs/static/swagger-ui-bundle.js`);
    assert.equal(bundle.status, 200);
    assert.ok((await bundle.arrayBuffer()).byteLength > 100_000, 'the Swagger UI bundle');
    // The document the UI reads names the daemon's own address as the server to call.
    const spec = (await (await fetch(`${d.url}/docs/json`)).json()) as {
      servers: { url: string }[];
      paths: Record<string, unknown>;
    };
    assert.deepEqual(spec.servers, [{ url: d.url }]);
    assert.ok(spec.paths['/functions/{name}/invocations']);
  } finally {
    await d.stop();
  }
});
