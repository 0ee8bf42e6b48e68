// HTTPS for the API with a real certificate (made by openssl): the daemon serves TLS and only
// TLS with --tls-cert/--tls-key, a client trusting the certificate gets answers (the CLI through
// NODE_EXTRA_CA_CERTS), one that does not is refused by the handshake; a missing, unreadable or
// mismatched certificate/key stops the start with DAEMON_CONFIG.

import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { get } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { tokenPath } from '../../common/daemon-info.js';
import { isFaasnapError } from '../../common/errors.js';
import { createDaemon } from '../../daemon/server.js';
import { startDaemon } from './support.js';

const CLI = fileURLToPath(new URL('../../cli/main.js', import.meta.url));

/** Runs the CLI (asynchronously: the daemon it calls lives in this process). */
async function cli(args: string[], env: NodeJS.ProcessEnv) {
  try {
    const r = await promisify(execFile)(process.execPath, [CLI, ...args], { env });
    return { status: 0, ...r };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { status: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

/** A self-signed certificate for 127.0.0.1 and its key, written into `dir`. */
function makeCertificate(dir: string, name: string): { cert: string; key: string } {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-days', '2', '-subj', '/CN=faasnap-test', '-addext', 'subjectAltName=IP:127.0.0.1',
    '-keyout', key, '-out', cert,
  ], { stdio: 'ignore' }); // prettier-ignore
  return { cert, key };
}

function httpsGet(url: string, ca?: Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    get(url, ca ? { ca } : {}, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject);
  });
}

test('with a certificate and key the API is served over TLS, and only TLS', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'faasnap-tls-'));
  let logs = '';
  const logStream = new Writable({
    write(chunk: Buffer, _enc, done) {
      logs += chunk.toString();
      done();
    },
  });
  try {
    const { cert, key } = makeCertificate(dir, 'daemon');
    const ca = readFileSync(cert);
    // Beyond loopback (with its token), as TLS is meant to be used.
    const d = await startDaemon(
      { host: '0.0.0.0', tlsCert: cert, tlsKey: key, poolSize: 0, logLevel: 'info' },
      undefined,
      { logStream },
    );
    try {
      assert.match(d.url, /^https:\/\/0\.0\.0\.0:\d+$/);
      const url = d.url.replace('0.0.0.0', '127.0.0.1');
      const token = readFileSync(tokenPath(d.dir), 'utf8').trim();

      const health = await httpsGet(`${url}/healthz`, ca);
      assert.equal(health.status, 401, 'TLS does not replace the token');
      assert.equal(JSON.parse(health.body).code, 'UNAUTHORIZED');
      // A client that does not trust the certificate is refused by the handshake.
      await assert.rejects(httpsGet(`${url}/healthz`), /self-signed certificate/);
      // Plain HTTP on the same port gets no answer.
      await assert.rejects(fetch(`${url.replace('https', 'http')}/healthz`));

      // The CLI over TLS, trusting the certificate the way Node does (NODE_EXTRA_CA_CERTS).
      const env = { ...process.env, NODE_EXTRA_CA_CERTS: cert, FAASNAP_TOKEN: token };
      const trusted = await cli(['status', '--url', url, '--json'], env);
      assert.equal(trusted.status, 0, trusted.stderr);
      assert.equal(JSON.parse(trusted.stdout).status, 'ok');
      const untrusted = await cli(['status', '--url', url], { ...env, NODE_EXTRA_CA_CERTS: '' });
      assert.notEqual(untrusted.status, 0);
      assert.match(untrusted.stderr, /DAEMON_UNREACHABLE/);
    } finally {
      await d.stop();
    }
    assert.doesNotMatch(logs, /without TLS/, 'no warning when the API is encrypted');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a missing, unreadable or mismatched certificate or key stops the start', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'faasnap-tls-'));
  try {
    const a = makeCertificate(dir, 'a');
    const b = makeCertificate(dir, 'b');
    const garbage = join(dir, 'garbage.pem');
    writeFileSync(garbage, '-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n');
    const cases: { tlsCert?: string; tlsKey?: string; why: RegExp }[] = [
      { tlsCert: a.cert, why: /both a certificate and its key/ },
      { tlsKey: a.key, why: /both a certificate and its key/ },
      { tlsCert: join(dir, 'missing.crt'), tlsKey: a.key, why: /cannot read the TLS certificate/ },
      { tlsCert: a.cert, tlsKey: b.key, why: /not a usable pair/ },
      { tlsCert: garbage, tlsKey: a.key, why: /not a usable pair/ },
    ];
    for (const c of cases)
      await assert.rejects(
        createDaemon({ dataDir: join(dir, 'data'), logLevel: 'silent', poolSize: 0, ...c }),
        (e) => isFaasnapError(e, 'DAEMON_CONFIG') && c.why.test(e.message),
        JSON.stringify(c),
      );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
