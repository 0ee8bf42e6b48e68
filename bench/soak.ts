// Soak: many restore → invoke → teardown cycles through a real daemon (in this process, over
// HTTP), then a check that the daemon's open fds, threads, file mappings, child processes and
// RSS came back to where they were after warm-up. A leak of one fd or thread per invocation
// shows as a delta of the cycle count; a correct daemon shows zero.

import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { childPids } from '../common/process.js';
import { createDaemon, type Daemon } from '../daemon/server.js';
import type { RuntimeName } from '../daemon/schemas.js';
import type { MemoryMode } from '../loader/modes.js';

export interface Resources {
  fds: number;
  threads: number;
  fileMappings: number;
  children: number;
  rssMiB: number;
}

export function processResources(): Resources {
  return {
    fds: readdirSync('/proc/self/fd').length,
    threads: readdirSync('/proc/self/task').length,
    // File mappings only (snapshot files, the database…): anonymous ones grow and shrink with
    // the JS heap and would read as leaks.
    fileMappings: readFileSync('/proc/self/maps', 'latin1')
      .split('\n')
      .filter((l) => / \/\S/.test(l)).length,
    children: childPids().length,
    rssMiB: process.memoryUsage().rss / 2 ** 20,
  };
}

export interface SoakPhase {
  function: string;
  runtime: RuntimeName;
  cycles: number;
  modes: MemoryMode[];
  failures: { cycle: number; error: string }[];
  durationMs: number;
  before: Resources;
  after: Resources;
}

export interface SoakOptions {
  microCycles: number;
  pythonCycles: number;
  modes: MemoryMode[];
  onProgress?: (line: string) => void;
}

const WARM_UP = 10;

interface Fn {
  name: string;
  runtime: RuntimeName;
  handler: string;
  memoryMiB: number;
  params: Record<string, unknown>;
  /** The invocation result every cycle must return. */
  check(result: unknown): boolean;
}

export async function runSoak(opts: SoakOptions): Promise<{ phases: SoakPhase[] }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'faasnap-soak-'));
  const daemon = await createDaemon({ dataDir, port: 0, logLevel: 'warn', poolSize: 2 });
  const phases: SoakPhase[] = [];
  try {
    const url = await daemon.listen();
    const micro: Fn = {
      name: 'soak-touch',
      runtime: 'micro',
      handler: 'touch',
      memoryMiB: 32,
      params: { range: { count: 512, stride: 7 } },
      check: (r) => typeof (r as { checksum?: unknown }).checksum === 'string',
    };
    const python: Fn = {
      name: 'soak-hello',
      runtime: 'python',
      handler: 'hello',
      memoryMiB: 256,
      params: { name: 'soak' },
      check: (r) => (r as { greeting?: unknown }).greeting === 'Hello, soak!',
    };
    for (const [fn, cycles] of [
      [micro, opts.microCycles],
      [python, opts.pythonCycles],
    ] as const) {
      if (cycles === 0) continue;
      if (!daemon.ctx.runtimes[fn.runtime].available) {
        throw new Error(
          `${fn.runtime}: ${daemon.ctx.runtimes[fn.runtime].unavailableReason} (or pass --python-cycles 0)`,
        );
      }
      phases.push(await soakFunction(daemon, url, fn, cycles, opts));
    }
  } finally {
    await daemon.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
  return { phases };
}

async function soakFunction(
  daemon: Daemon,
  url: string,
  fn: Fn,
  cycles: number,
  opts: SoakOptions,
): Promise<SoakPhase> {
  const call = async (method: string, path: string, body?: unknown) => {
    const r = await fetch(url + path, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- API JSON, checked by use
    return { status: r.status, body: (await r.json()) as Record<string, any> };
  };
  const { params, check, ...spec } = fn;
  await call('POST', '/functions', { ...spec, timeoutMs: 120_000 });
  opts.onProgress?.(`${fn.name}: deploying`);
  await call('POST', `/functions/${fn.name}/deploy`);
  for (;;) {
    const w = await call('GET', `/functions/${fn.name}/wait?state=ready&timeoutMs=60000`);
    if (w.body.reached) break;
    if (w.body.function?.state === 'failed')
      throw new Error(`${fn.name} failed to deploy: ${JSON.stringify(w.body.function.error)}`);
  }
  const failures: SoakPhase['failures'] = [];
  const invoke = async (i: number) => {
    const mode = opts.modes[i % opts.modes.length];
    const r = await call('POST', `/functions/${fn.name}/invocations`, { mode, params });
    if (r.status !== 200 || r.body.status !== 'succeeded' || !check(r.body.result))
      failures.push({ cycle: i, error: JSON.stringify(r.body.error ?? r.body).slice(0, 500) });
  };
  for (let i = 0; i < WARM_UP; i++) await invoke(i);
  const before = await settled(daemon);
  const t0 = performance.now();
  for (let i = 0; i < cycles; i++) {
    if (i % 10 === 0) opts.onProgress?.(`${fn.name}: cycle ${i}/${cycles}`);
    await invoke(WARM_UP + i);
  }
  const durationMs = performance.now() - t0;
  const after = await settled(daemon, before);
  return {
    function: fn.name,
    runtime: fn.runtime,
    cycles,
    modes: opts.modes,
    failures,
    durationMs,
    before,
    after,
  };
}

/**
 * Resources once the VMM pool is full again and nothing is in flight; with `target`, waits (up
 * to 30 s) for fds, threads and children to come back to it, as teardown is asynchronous.
 */
async function settled(daemon: Daemon, target?: Resources): Promise<Resources> {
  const end = Date.now() + 30_000;
  for (;;) {
    const r = processResources();
    const poolFull = daemon.ctx.vms.pool.idleCount === daemon.config.poolSize;
    const back =
      !target ||
      (r.fds <= target.fds && r.threads <= target.threads && r.children <= target.children);
    if ((poolFull && back) || Date.now() > end) return r;
    await new Promise((res) => setTimeout(res, 200));
  }
}
