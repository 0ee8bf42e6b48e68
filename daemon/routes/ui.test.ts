// The dashboard's routes: the built bundle is served under /ui/ (/ and /ui redirect there), and a
// daemon whose dashboard was not built answers UI_NOT_BUILT instead of failing.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import Fastify from 'fastify';
import { uiRoutes } from './ui.js';

test('/ui/ serves the bundle; / and /ui redirect to it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'faasnap-ui-'));
  const app = Fastify();
  try {
    writeFileSync(join(dir, 'index.html'), '<!doctype html><title>dashboard</title>');
    writeFileSync(join(dir, 'app.js'), 'console.log(1)');
    await uiRoutes(app, dir);
    const root = await app.inject('/');
    assert.equal(root.statusCode, 302);
    assert.equal(root.headers.location, '/ui/');
    const bare = await app.inject('/ui');
    assert.equal(bare.statusCode, 301);
    assert.equal(bare.headers.location, '/ui/');
    const index = await app.inject('/ui/');
    assert.equal(index.statusCode, 200);
    assert.match(index.body, /dashboard/);
    assert.match(String(index.headers['content-type']), /text\/html/);
    const js = await app.inject('/ui/app.js');
    assert.equal(js.statusCode, 200);
    assert.match(String(js.headers['content-type']), /javascript/);
  } finally {
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('without a built dashboard /ui answers UI_NOT_BUILT (503) and names the missing file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'faasnap-ui-'));
  const app = Fastify();
  try {
    await uiRoutes(app, dir);
    for (const path of ['/ui', '/ui/', '/ui/app.js']) {
      const r = await app.inject(path);
      assert.equal(r.statusCode, 503, path);
      const body = r.json<{ code: string; message: string; details: { dir: string } }>();
      assert.equal(body.code, 'UI_NOT_BUILT');
      assert.match(body.message, /index\.html is missing/);
      assert.equal(body.details.dir, dir);
    }
  } finally {
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
