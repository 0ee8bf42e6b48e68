// HTTP client of the daemon, used by the CLI commands and the benchmark runner. The daemon's URL
// comes from --url, FAASNAP_URL, or the daemon.json the running daemon wrote into its data dir.

import { existsSync, readFileSync } from 'node:fs';
import { FaasnapError, errorFromBody } from '../common/errors.js';
import { DEFAULT_PORT, daemonInfoPath, defaultDataDir } from '../common/daemon-info.js';

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

export async function api<T = unknown>(
  o: ClientOptions,
  method: string,
  path: string,
  body?: unknown,
): Promise<T> {
  const url = daemonUrl(o);
  const init: RequestInit = { method };
  if (Buffer.isBuffer(body)) {
    init.body = body;
    init.headers = { 'content-type': 'application/octet-stream' };
  } else if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers = { 'content-type': 'application/json' };
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
