// The daemon's JSON API over fetch (same origin: the daemon serves this page). Every failure
// becomes an ApiError carrying the daemon's {code, message, details}, so the page can show it.
// A daemon beyond loopback wants its API token on every call: the one entered on the page is
// kept in this tab's sessionStorage (gone when the tab closes) and sent as a bearer token.

import type { ErrorBodyT } from './types.js';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}

export function asApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  return new ApiError(0, 'UI_ERROR', e instanceof Error ? e.message : String(e));
}

/** An error the daemon stored (a function's deploy error, an invocation's error). */
export function errorOfBody(body: ErrorBodyT): ApiError {
  return new ApiError(0, body.code, body.message, body.details);
}

const TOKEN_KEY = 'faasnap-api-token';

/** The API token entered on this tab, if any. */
export function storedToken(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function storeToken(token: string): void {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = {};
  const init: RequestInit = { method, headers };
  const token = storedToken();
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    headers['content-type'] = 'application/json';
  }
  let res: Response;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, 'DAEMON_UNREACHABLE', `${method} ${path}: ${(e as Error).message}`);
  }
  const text = await res.text();
  if (!res.ok) throw errorOf(res, text, `${method} ${path}`);
  if (!text) return undefined as T;
  return (res.headers.get('content-type') ?? '').includes('json')
    ? (JSON.parse(text) as T)
    : (text as T);
}

/** The daemon's error body, or a stand-in that still says what happened. */
function errorOf(res: Response, text: string, what: string): ApiError {
  try {
    const b = JSON.parse(text) as Partial<ErrorBodyT>;
    if (typeof b.code === 'string' && typeof b.message === 'string')
      return new ApiError(res.status, b.code, b.message, b.details);
  } catch {
    // not JSON: reported below with the raw text
  }
  return new ApiError(res.status, `HTTP_${res.status}`, `${what}: ${text.slice(0, 200)}`);
}
