// Support for daemon tests: a daemon on port 0 with its own temp data dir and its own
// redis-server, a small HTTP client, and a validator that checks every response against the
// committed OpenAPI document (the contract).

// Response bodies are typed `any`: the contract validator checks their shape, and the assertions
// read fields directly.
/* eslint-disable @typescript-eslint/no-explicit-any */
import { Ajv, type ValidateFunction } from 'ajv';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OPENAPI_PATH } from '../../daemon/openapi.js';
import { createDaemon, type Daemon, type DaemonOptions } from '../../daemon/server.js';
import type { DaemonConfigInput } from '../../daemon/config.js';
import { statePageByte } from '../../daemon/runtime/micro.js';
import { MICRO_PAGE_SIZE, touchChecksum } from '../../guest/micro/index.js';

export interface Res<T = any> {
  status: number;
  body: T;
  text: string;
  contentType: string;
}

interface OpenApiDoc {
  components: { schemas: Record<string, unknown> };
  paths: Record<
    string,
    Record<string, { responses: Record<string, { content?: Record<string, { schema: unknown }> }> }>
  >;
}

/** Validates responses against daemon/openapi.json. */
export class Contract {
  readonly doc: OpenApiDoc = JSON.parse(readFileSync(OPENAPI_PATH, 'utf8')) as OpenApiDoc;
  private readonly ajv = new Ajv({ strict: false, allErrors: true });
  private readonly cache = new Map<string, ValidateFunction>();
  /** Operations seen by check(), to prove every route was exercised. */
  readonly covered = new Set<string>();

  constructor() {
    this.ajv.addSchema(rewriteRefs({ components: this.doc.components }) as object, 'openapi');
  }

  /** The route template of a concrete path, e.g. /functions/{name}. */
  template(method: string, path: string): string | undefined {
    const p = path.split('?')[0]!;
    for (const t of Object.keys(this.doc.paths)) {
      if (!this.doc.paths[t]![method.toLowerCase()]) continue;
      const re = new RegExp('^' + t.replace(/\{[^}]+\}/g, '[^/]+') + '$');
      if (re.test(p)) return t;
    }
    return undefined;
  }

  /** Throws when the response is not what the document says for this route and status. */
  check(method: string, path: string, res: Res): void {
    const t = this.template(method, path);
    if (!t) {
      if (res.status !== 404)
        throw new Error(`${method} ${path}: undocumented route answered ${res.status}`);
      this.checkError(res);
      return;
    }
    this.covered.add(`${method.toUpperCase()} ${t}`);
    const op = this.doc.paths[t]![method.toLowerCase()]!;
    const r = op.responses[String(res.status)];
    if (!r)
      throw new Error(
        `${method} ${path}: status ${res.status} is not documented (${res.text.slice(0, 300)})`,
      );
    const schema = r.content?.['application/json']?.schema;
    if (!schema || res.status === 204) return;
    if (!res.contentType.includes('json')) return; // text bodies (/metrics, /objects/{key})
    const key = `${method} ${t} ${res.status}`;
    let v = this.cache.get(key);
    if (!v) {
      v = this.ajv.compile(rewriteRefs(schema) as object);
      this.cache.set(key, v);
    }
    if (!v(res.body))
      throw new Error(
        `${method} ${path} ${res.status}: body violates the document: ${this.ajv.errorsText(v.errors)}\n${res.text.slice(0, 500)}`,
      );
  }

  private checkError(res: Res): void {
    const b = res.body as { code?: unknown; message?: unknown };
    if (typeof b?.code !== 'string' || typeof b.message !== 'string')
      throw new Error(`error body without code/message: ${res.text}`);
  }
}

/** Local refs (#/components/...) point into the document, registered as schema `openapi`. */
function rewriteRefs(s: unknown): unknown {
  if (Array.isArray(s)) return s.map(rewriteRefs);
  if (s && typeof s === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(s))
      out[k] =
        k === '$ref' && typeof v === 'string' && v.startsWith('#/')
          ? `openapi${v}`
          : rewriteRefs(v);
    return out;
  }
  return s;
}

export interface TestDaemon {
  daemon: Daemon;
  url: string;
  dir: string;
  contract: Contract;
  call<T = any>(method: string, path: string, body?: unknown): Promise<Res<T>>;
  stop(): Promise<void>;
}

export async function startDaemon(
  cfg: DaemonConfigInput = {},
  dir?: string,
  opts: DaemonOptions = {},
): Promise<TestDaemon> {
  const dataDir = dir ?? mkdtempSync(join(tmpdir(), 'faasnap-daemon-test-'));
  // Unjailed unless a test asks (jail: true): the jail has tests of its own
  // (test/daemon/jail.test.ts, test/process/jail*.test.ts), and the fault tests reach under
  // running VMM processes (FUSE files swapped under snapshots) where a jail's private mount
  // namespace would not see them. FAASNAP_TEST_JAIL=1 runs every daemon test jailed.
  const jail = process.env.FAASNAP_TEST_JAIL === '1';
  const daemon = await createDaemon(
    { dataDir, port: 0, logLevel: 'silent', poolSize: 1, jail, ...cfg },
    opts,
  );
  const url = await daemon.listen();
  const contract = new Contract();
  return {
    daemon,
    url,
    dir: dataDir,
    contract,
    async call(method, path, body) {
      const res = await request(url, method, path, body);
      contract.check(method, path, res);
      return res;
    },
    async stop() {
      await daemon.close();
      if (!dir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export async function request(
  url: string,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Res> {
  const init: RequestInit = { method, headers };
  if (body !== undefined) {
    if (Buffer.isBuffer(body)) {
      init.body = body;
      headers['content-type'] = 'application/octet-stream';
    } else {
      init.body = typeof body === 'string' ? body : JSON.stringify(body);
      headers['content-type'] = 'application/json';
    }
  }
  let r: Response;
  try {
    r = await fetch(url + path, init);
  } catch (e) {
    // fetch's own message names neither the request nor when it failed.
    throw new Error(`${method} ${path} at ${new Date().toISOString()}: ${(e as Error).message}`, {
      cause: e,
    });
  }
  const text = await r.text();
  const contentType = r.headers.get('content-type') ?? '';
  let parsed: unknown = text;
  if (contentType.includes('json') && text) parsed = JSON.parse(text);
  return { status: r.status, body: parsed, text, contentType };
}

/**
 * GET /functions/{name}/wait in rounds of at most a minute until the function reaches `state`
 * (or failed), or `totalMs` passed. One long poll past Node fetch's 5-minute headers timeout fails
 * with "fetch failed" where deploys are slow (the lab).
 */
export async function waitForState(
  call: (method: string, path: string) => Promise<Res>,
  name: string,
  state: string,
  totalMs: number,
): Promise<Res> {
  const deadline = Date.now() + totalMs;
  for (;;) {
    const left = Math.max(0, deadline - Date.now());
    const w = await call(
      'GET',
      `/functions/${name}/wait?state=${state}&timeoutMs=${Math.min(60_000, left)}`,
    );
    if (w.status !== 200 || w.body.reached || w.body.function.state === 'failed' || left === 0)
      return w;
  }
}

/** A micro touch function: `stateMiB` of non-zero state, 32 MiB of memory. */
export const TOUCH_FN = {
  name: 'touchy',
  runtime: 'micro',
  handler: 'touch',
  memoryMiB: 32,
  stateMiB: 4,
};

/** What touch (read mode) of TOUCH_FN reports over the function state written at deploy. */
export function touchExpected(pages: number[]): string {
  const statePages = TOUCH_FN.stateMiB * 256;
  const zero = new Uint8Array(MICRO_PAGE_SIZE);
  const sum = touchChecksum(pages, (p) =>
    p < statePages ? new Uint8Array(MICRO_PAGE_SIZE).fill(statePageByte(p)) : zero,
  );
  return sum.toString(16).padStart(16, '0');
}

/** Pages first..first+count-1 in stride steps (each once when gcd(stride, count) = 1). */
export function walk(first: number, count: number, stride: number): number[] {
  return Array.from({ length: count }, (_, i) => first + ((i * stride) % count));
}
