// HTTP client of the daemon, used by the CLI commands and the benchmark runner. The daemon's URL
// comes from --url, FAASNAP_URL, or the daemon.json the running daemon wrote into its data dir;
// its API token from FAASNAP_TOKEN or the data dir's token file (daemon/auth.ts).

import { existsSync, readFileSync } from 'node:fs';
import { FaasnapError, errorFromBody } from '../common/errors.js';
import { DEFAULT_PORT, daemonInfoPath, defaultDataDir, tokenPath } from '../common/daemon-info.js';

export interface ClientOptions {
  url?: string;
  json?: boolean;
}

export function daemonUrl(o: ClientOptions): string {
  if (o.url) return o.url.replace(/\/$/, '');
  if (process.env.FAASNAP_URL) return process.env.FAASNAP_URL.replace(/\/$/, '');
  const info = daemonInfoPath(defaultDataDir());
  if (existsSync(info)) {
    try {
      return (JSON.parse(readFileSync(info, 'utf8')) as { url: string }).url;
    } catch {
      // fall through to the default
    }
  }
  return `http://127.0.0.1:${DEFAULT_PORT}`;
}

/** The API token to send, if there is one: FAASNAP_TOKEN, else the default data dir's. */
export function apiToken(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.FAASNAP_TOKEN) return env.FAASNAP_TOKEN;
  try {
    return readFileSync(tokenPath(defaultDataDir(env)), 'utf8').trim();
  } catch {
    return undefined; // none, or not ours to read: a daemon on loopback needs none
  }
}

export async function api<T = unknown>(
  o: ClientOptions,
  method: string,
  path: string,
  body?: unknown,
): Promise<T> {
  const url = daemonUrl(o);
  const headers: Record<string, string> = {};
  const token = apiToken();
  if (token) headers.authorization = `Bearer ${token}`;
  const init: RequestInit = { method, headers };
  if (Buffer.isBuffer(body)) {
    init.body = body;
    headers['content-type'] = 'application/octet-stream';
  } else if (body !== undefined) {
    init.body = JSON.stringify(body);
    headers['content-type'] = 'application/json';
  }
  let r: Response;
  try {
    r = await fetch(url + path, init);
  } catch (e) {
    throw new FaasnapError(
      'DAEMON_UNREACHABLE',
      `${url}: ${(e as Error).cause ?? (e as Error).message} (start it with: faasnap daemon)`,
    );
  }
  const text = await r.text();
  const parsed: unknown =
    (r.headers.get('content-type') ?? '').includes('json') && text ? JSON.parse(text) : text;
  if (r.status >= 400) {
    throw errorFromBody(parsed, 'DAEMON_INTERNAL', text);
  }
  return parsed as T;
}
