// API access. Bound to loopback the daemon needs no token (local users reach it as before);
// bound to any other address every API request needs `Authorization: Bearer <token>`. The token
// comes from --token-file, else from the data directory, where the first start writes a new one
// (mode 0600). Swagger UI (/docs: its page, files and the API document) and the dashboard's files
// (/ui/) hold no data and are served without it, since a browser cannot add the header to page
// loads; Swagger UI's calls carry the token once given to its Authorize button.

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { FaasnapError } from '../common/errors.js';
import { tokenPath } from '../common/daemon-info.js';

/** True for addresses only this machine can reach: 127.0.0.0/8, ::1 and localhost. */
export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1';
}

const MIN_TOKEN_CHARS = 32;

function readToken(path: string): string {
  let token: string;
  try {
    token = readFileSync(path, 'utf8').trim();
  } catch (e) {
    throw new FaasnapError('DAEMON_CONFIG', `cannot read the API token file ${path}`, {
      cause: e,
    });
  }
  if (token.length < MIN_TOKEN_CHARS)
    throw new FaasnapError(
      'DAEMON_CONFIG',
      `the API token in ${path} is shorter than ${MIN_TOKEN_CHARS} characters`,
    );
  return token;
}

/** The token this daemon requires, or undefined when it requires none (loopback, no file). */
export function apiToken(cfg: {
  host: string;
  dataDir: string;
  tokenFile?: string | undefined;
}): string | undefined {
  if (cfg.tokenFile) return readToken(cfg.tokenFile);
  if (isLoopback(cfg.host)) return undefined;
  const path = tokenPath(cfg.dataDir);
  try {
    // 'wx': never overwrite the token clients already hold.
    writeFileSync(path, randomBytes(32).toString('hex') + '\n', { flag: 'wx', mode: 0o600 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  return readToken(path);
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

/** Static pages a browser loads without headers: Swagger UI and the dashboard (see the top). */
const PUBLIC = /^\/(?:$|docs(?:$|[/?])|ui(?:$|[/?]))/;

/** Requires the bearer token on every request except for the static pages (see the top). */
export function requireToken(app: FastifyInstance, token: string): void {
  // Equal-length digests: the comparison takes the same time whatever the caller sent.
  const want = digest(token);
  app.addHook('onRequest', async (req) => {
    if (PUBLIC.test(req.url)) return;
    const got = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '';
    if (!timingSafeEqual(digest(got), want))
      throw new FaasnapError('UNAUTHORIZED', 'send Authorization: Bearer <the daemon API token>');
  });
}
