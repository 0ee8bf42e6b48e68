// API access with real daemons: beyond loopback every route refuses requests without the token
// (or with a wrong one) with UNAUTHORIZED and changes nothing; the token, generated 0600 into the
// data dir, opens them; it never shows in logs or answers. A token file is enforced on loopback
// too, and a missing or short one stops the start. The CLI's client sends FAASNAP_TOKEN.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { api } from '../../client/daemon.js';
import { isFaasnapError } from '../../common/errors.js';
import { tokenPath } from '../../common/daemon-info.js';
import { isLoopback } from '../../daemon/auth.js';
import { createDaemon } from '../../daemon/server.js';
import { TOUCH_FN, request, startDaemon } from './support.js';

test('loopback addresses need no token; every other address does', () => {
  for (const h of ['127.0.0.1', '127.1.2.3', '::1', 'localhost']) assert.equal(isLoopback(h), true);
  for (const h of ['0.0.0.0', '::', '10.0.0.1', '192.168.1.5', 'example.org'])
    assert.equal(isLoopback(h), false, h);
});

test('beyond loopback every route needs the token; without it nothing changes', async () => {
  let logs = '';
  const logStream = new Writable({
    write(chunk: Buffer, _enc, done) {
      logs += chunk.toString();
      done();
    },
  });
  const d = await startDaemon({ host: '0.0.0.0', poolSize: 0, logLevel: 'debug' }, undefined, {
    logStream,
  });
  try {
    const file = tokenPath(d.dir);
    assert.equal(statSync(file).mode & 0o777, 0o600, 'the generated token is for its owner only');
    const token = readFileSync(file, 'utf8').trim();
    assert.match(token, /^[0-9a-f]{64}$/);
    const good = { authorization: `Bearer ${token}` };
    const wrong: Record<string, string>[] = [
      {},
      { authorization: 'Bearer nope' },
      { authorization: `Bearer ${token}0` },
      { authorization: `Basic ${token}` },
      { authorization: token },
    ];

    // Every documented route, with placeholder parameters.
    const routes = Object.entries(d.contract.doc.paths).flatMap(([path, ops]) =>
      Object.keys(ops).map((m) => [m.toUpperCase(), path.replace(/\{[^}]+\}/g, 'x1')] as const),
    );
    assert.ok(routes.length > 20, `${routes.length} routes`);
    for (const [method, path] of [...routes, ['GET', '/no/such/route'] as const])
      for (const headers of wrong) {
        const body = method === 'POST' || method === 'PUT' ? { name: 'x' } : undefined;
        const r = await request(d.url, method, path, body, { ...headers });
        if (path !== '/no/such/route') d.contract.check(method, path, r);
        assert.equal(r.status, 401, `${method} ${path} ${JSON.stringify(headers)}: ${r.text}`);
        assert.equal(r.body.code, 'UNAUTHORIZED');
        assert.ok(!r.text.includes(token), 'the answer never holds the token');
      }

    // The refused requests changed nothing.
    const fn = await request(d.url, 'POST', '/functions', TOUCH_FN);
    assert.equal(fn.status, 401);
    const listed = await request(d.url, 'GET', '/functions', undefined, { ...good });
    assert.equal(listed.status, 200, listed.text);
    assert.deepEqual(listed.body, []);
    // The token opens the API.
    const made = await request(d.url, 'POST', '/functions', TOUCH_FN, { ...good });
    assert.equal(made.status, 201, made.text);
    assert.equal((await request(d.url, 'GET', '/healthz', undefined, { ...good })).status, 200);
    // Swagger UI's page and files are served without it (a browser cannot send the header).
    assert.equal((await request(d.url, 'GET', '/docs/json')).status, 200);
    // So are the dashboard's files (its API calls are not).
    assert.notEqual((await request(d.url, 'GET', '/ui/')).status, 401);

    // The client sends FAASNAP_TOKEN.
    process.env.FAASNAP_TOKEN = token;
    try {
      const fns = await api<{ name: string }[]>({ url: d.url }, 'GET', '/functions');
      assert.deepEqual(
        fns.map((f) => f.name),
        [TOUCH_FN.name],
      );
      process.env.FAASNAP_TOKEN = 'f'.repeat(64);
      await assert.rejects(api({ url: d.url }, 'GET', '/functions'), (e) =>
        isFaasnapError(e, 'UNAUTHORIZED'),
      );
    } finally {
      delete process.env.FAASNAP_TOKEN;
    }
    assert.ok(logs.length > 0, 'the daemon logged at debug level');
    assert.match(logs, /beyond loopback without TLS/, 'an unencrypted bind is warned about');
    assert.ok(!logs.includes(token), 'the token never shows in the logs');
  } finally {
    await d.stop();
  }
});

test('a token file is enforced on loopback too; a missing or short one stops the start', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'faasnap-token-'));
  try {
    const tokenFile = join(dir, 'token');
    for (const setUp of [() => undefined, () => writeFileSync(tokenFile, 'short\n')]) {
      setUp();
      await assert.rejects(
        createDaemon({ dataDir: join(dir, 'data'), tokenFile, logLevel: 'silent', poolSize: 0 }),
        (e) => isFaasnapError(e, 'DAEMON_CONFIG'),
      );
    }
    const token = 'a'.repeat(40);
    writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
    const d = await startDaemon({ tokenFile, poolSize: 0 });
    try {
      assert.equal((await request(d.url, 'GET', '/vms')).status, 401);
      const r = await request(d.url, 'GET', '/vms', undefined, {
        authorization: `Bearer ${token}`,
      });
      assert.equal(r.status, 200, r.text);
    } finally {
      await d.stop();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
