// What the VMM process jail costs on the restore path (issue #14): two daemons in this process,
// one jailing its VMM processes and one not, the same micro touch function deployed on each.
// Invocations alternate between the two and between the modes, so both see the same machine,
// and each starts with its daemon's pool full: the jail's extra process start-up is the pool's
// to hide, what remains is what a restore in a jailed process costs. Per (jail, mode): medians
// of pool-take, restore (of which snapshot-view, the jailed process's own view of the snapshot)
// and the whole invocation.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDaemon, type Daemon } from '../daemon/server.js';
import type { MemoryMode } from '../loader/modes.js';
import { summarize, type Summary } from './stats.js';

export interface JailCostOptions {
  repeats: number;
  modes: MemoryMode[];
  onProgress?: (line: string) => void;
  /** Called after each sample with all so far (the CLI keeps them on disk as they come). */
  onSample?: (samples: JailCostResult['samples']) => void;
}

export interface JailCostSample {
  poolTakeMs: number;
  restoreMs: number;
  /** Part of restoreMs; 0 unjailed. */
  viewMs: number;
  totalMs: number;
}

export interface JailCostResult {
  samples: Record<string, JailCostSample[]>;
  summary: Record<string, Record<keyof JailCostSample, Summary>>;
}

const FN = { name: 'jail-touch', runtime: 'micro', handler: 'touch', memoryMiB: 64, stateMiB: 32 };
const PARAMS = { range: { count: 4096, stride: 7 } };

export async function runJailCost(opts: JailCostOptions): Promise<JailCostResult> {
  const dirs: string[] = [];
  const daemons: { label: string; daemon: Daemon; url: string }[] = [];
  try {
    for (const jail of [false, true]) {
      const dataDir = mkdtempSync(join(tmpdir(), 'faasnap-jail-cost-'));
      dirs.push(dataDir);
      const daemon = await createDaemon({ dataDir, port: 0, logLevel: 'error', poolSize: 1, jail });
      daemons.push({ label: jail ? 'jailed' : 'unjailed', daemon, url: await daemon.listen() });
    }
    for (const d of daemons) {
      opts.onProgress?.(`${d.label}: deploying`);
      await deploy(d.url);
    }
    const samples: JailCostResult['samples'] = {};
    for (let r = 0; r < opts.repeats; r++)
      for (const mode of opts.modes)
        for (const d of r % 2 ? [...daemons].reverse() : daemons) {
          opts.onProgress?.(`repeat ${r + 1}/${opts.repeats}: ${d.label} ${mode}`);
          await poolFull(d.daemon);
          (samples[`${d.label} ${mode}`] ??= []).push(await invoke(d.url, mode));
          opts.onSample?.(samples);
        }
    const summary: JailCostResult['summary'] = {};
    for (const [k, s] of Object.entries(samples))
      summary[k] = {
        poolTakeMs: summarize(s.map((x) => x.poolTakeMs)),
        restoreMs: summarize(s.map((x) => x.restoreMs)),
        viewMs: summarize(s.map((x) => x.viewMs)),
        totalMs: summarize(s.map((x) => x.totalMs)),
      };
    return { samples, summary };
  } finally {
    for (const d of daemons) await d.daemon.close();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  }
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- API JSON, checked by use
async function call(url: string, method: string, path: string, body?: unknown): Promise<any> {
  const r = await fetch(url + path, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json: unknown = await r.json();
  if (!r.ok) throw new Error(`${method} ${path}: HTTP ${r.status} ${JSON.stringify(json)}`);
  return json;
}

async function deploy(url: string): Promise<void> {
  await call(url, 'POST', '/functions', FN);
  await call(url, 'POST', `/functions/${FN.name}/deploy`);
  for (;;) {
    const w = await call(url, 'GET', `/functions/${FN.name}/wait?state=ready&timeoutMs=60000`);
    if (w.reached) return;
    if (w.function.state === 'failed')
      throw new Error(`deploy failed: ${JSON.stringify(w.function.error)}`);
  }
}

async function poolFull(daemon: Daemon): Promise<void> {
  while (daemon.ctx.vms.pool.idleCount < daemon.ctx.vms.pool.size)
    await new Promise((r) => setTimeout(r, 100));
}

async function invoke(url: string, mode: MemoryMode): Promise<JailCostSample> {
  const inv = await call(url, 'POST', `/functions/${FN.name}/invocations`, {
    mode,
    params: PARAMS,
  });
  if (inv.status !== 'succeeded') throw new Error(`${mode}: ${JSON.stringify(inv.error)}`);
  const phase = (name: string, absent = NaN): number =>
    (inv.phases as { name: string; durationMs: number }[]).find((p) => p.name === name)
      ?.durationMs ?? absent;
  return {
    poolTakeMs: phase('pool-take'),
    restoreMs: phase('restore'),
    viewMs: phase('snapshot-view', 0),
    totalMs: inv.durationMs,
  };
}
