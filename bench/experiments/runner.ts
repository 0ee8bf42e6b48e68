// The experiment runner: drives a running daemon over its HTTP API through the matrix of an
// experiment config (bench/experiments/*.json):
//
//   for each function:   register it with the record input and deploy it (boot, warm-up,
//                         snapshot, FaaSnap + REAP recordings), or reuse an identical ready one;
//                         re-record FaaSnap with the config's recording knobs (E4);
//     for each (N, same|separate):   separate → N−1 copies of the ready snapshot
//       for each test input, repeat, setting (settings interleaved, so drift hits all alike):
//         prepare the page cache of every snapshot used (cached: loaded; others: dropped),
//         invoke N times concurrently in that mode with the test input, keep every sample.
//
// It is generic over the function spec (runtime, handler, code, memory, vCPUs): whatever the
// daemon's runtimes accept. Functions whose runtime the daemon lacks, or whose input objects
// are missing, are skipped with the reason written into the results.
//
// The steps, in the order of that matrix: prepareRun (config as run, /healthz, input objects);
// per function ExperimentRun.runFunction: deploy, checkStorage, then runGroup per parallelism
// entry and runRound per test input, repeat and setting (round = prepareRound + one
// collectSample per concurrent invocation); save after every function.

import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { isFaasnapError } from '../../common/errors.js';
import { scaledMs } from '../../common/time-scale.js';
import type {
  FunctionT,
  InvocationT,
  SnapshotT,
  SnapshotInspectT,
  TraceT,
} from '../../daemon/schemas.js';
import { api, type ClientOptions } from '../../client/daemon.js';
import { machineInfo, type MachineInfo } from '../machine.js';
import {
  inputObjectKeys,
  inputPairs,
  resolveInputsDir,
  type Experiment,
  type FunctionEntryT,
  type ParallelismT,
  type SettingName,
} from './config.js';
import {
  runDirName,
  writeRun,
  type FunctionDeploy,
  type RunDoc,
  type Sample,
  type VmmCounters,
} from './results.js';
import { storageOf } from './slow-storage.js';

export interface Progress {
  start(total: number): void;
  /** One invocation round done. */
  tick(label: string): void;
  /** A line of news (deploys, skips). */
  log(message: string): void;
  stop(): void;
}

export const SILENT: Progress = {
  start: () => undefined,
  tick: () => undefined,
  log: () => undefined,
  stop: () => undefined,
};

export interface RunnerOptions {
  url?: string;
  /** Parent of the run directory (default bench/results under the current directory). */
  outDir?: string;
  /** Only these functions (config names). */
  functions?: string[];
  settings?: SettingName[];
  repeats?: number;
  /** Deploy again even when an identical ready function exists. */
  redeploy?: boolean;
  /** Delete the registered functions (and their snapshots) at the end. */
  cleanup?: boolean;
  /** Upload missing input objects from the config's inputsDir (default true). */
  loadInputs?: boolean;
  /** Run a slow-storage config even though the snapshots are not on a delayed device. */
  allowLocalStorage?: boolean;
  deployTimeoutMs?: number;
  progress?: Progress;
  command?: string;
}

export interface RunOutcome {
  dir: string;
  doc: RunDoc;
}

/** The registration body of a config function. */
export function functionSpec(c: Experiment, f: FunctionEntryT): Record<string, unknown> {
  const { record } = inputPairs(c, f);
  const spec: Record<string, unknown> = {
    name: c.namePrefix + f.name,
    runtime: f.runtime,
    handler: f.handler,
    memoryMiB: f.memoryMiB ?? c.defaults?.memoryMiB ?? 128,
    vcpus: f.vcpus ?? c.defaults?.vcpus ?? 1,
    timeoutMs: f.timeoutMs ?? c.defaults?.timeoutMs ?? 30_000,
    recordParams: f.inputs[record]!,
  };
  if (f.code !== undefined) spec.code = f.code;
  if (f.stateMiB !== undefined) spec.stateMiB = f.stateMiB;
  return spec;
}

/** Same registration (the fields we set) as an existing function? */
function sameSpec(existing: FunctionT, spec: Record<string, unknown>): boolean {
  const e = existing as unknown as Record<string, unknown>;
  return Object.entries(spec).every(
    ([k, v]) =>
      JSON.stringify(v) ===
      JSON.stringify(e[k] ?? (k === 'stateMiB' ? 0 : k === 'code' ? undefined : null)),
  );
}

/** Phase durations by name (summed when a name repeats). */
export function phaseMap(
  phases: readonly { name: string; durationMs: number }[],
): Record<string, number> {
  const m: Record<string, number> = {};
  for (const p of phases) m[p.name] = (m[p.name] ?? 0) + p.durationMs;
  return m;
}

function num(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

/** The VMM counters the daemon puts on the invocation's root span (absent on warm hits). */
async function vmmCounters(o: ClientOptions, traceId: string): Promise<VmmCounters | null> {
  const trace = await api<TraceT>(o, 'GET', `/traces/${traceId}`).catch(() => undefined);
  const a = trace?.spans.find((s) => s.parentSpanId === null)?.attributes ?? {};
  const n = (k: string) => (typeof a[k] === 'number' ? (a[k] as number) : undefined);
  const majorFaults = n('faasnap.vmm.major_faults');
  const minorFaults = n('faasnap.vmm.minor_faults');
  const readBytes = n('faasnap.vmm.read_bytes');
  if (majorFaults === undefined || minorFaults === undefined || readBytes === undefined)
    return null;
  return { majorFaults, minorFaults, readBytes };
}

/** Guest read/process/write: agent phases when present, else fields of the result. */
export function guestBreakdown(
  phases: Record<string, number>,
  result: unknown,
): { readMs: number | null; processMs: number | null; writeMs: number | null } {
  const r = (result && typeof result === 'object' ? result : {}) as Record<string, unknown>;
  const t = (r.timings && typeof r.timings === 'object' ? r.timings : {}) as Record<
    string,
    unknown
  >;
  return {
    readMs: phases['guest-read'] ?? num(r.readMs) ?? num(t.readMs),
    processMs: phases['guest-process'] ?? num(r.processMs) ?? num(t.processMs),
    writeMs: phases['guest-write'] ?? num(r.writeMs) ?? num(t.writeMs),
  };
}

/** The measured latency: the daemon's duration without the cached preparation and teardown. */
export function e2eOf(durationMs: number | null, phases: Record<string, number>): number | null {
  if (durationMs === null) return null;
  return durationMs - (phases['page-cache-load'] ?? 0) - (phases.teardown ?? 0);
}

function findFile(dir: string, name: string): string | undefined {
  if (!existsSync(dir)) return undefined;
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    const st = statSync(p);
    if (st.isDirectory()) {
      const f = findFile(p, name);
      if (f) return f;
    } else if (e === name) return p;
  }
  return undefined;
}

export async function runExperiment(c: Experiment, opts: RunnerOptions = {}): Promise<RunOutcome> {
  const run = new ExperimentRun(await prepareRun(c, opts));
  run.progress.start(run.totalTicks());
  try {
    // One function at a time: deploy (or find out why it cannot run), then all its rounds, then
    // save; a run that stops early keeps every finished function.
    for (const f of run.config.functions) await run.runFunction(f);
  } catch (e) {
    run.save(true);
    throw e;
  } finally {
    run.progress.stop();
    if (opts.cleanup) await run.deleteFunctions();
  }
  return { dir: run.dir, doc: run.save(false) };
}

/** What the runner reads from GET /healthz. */
interface Health {
  version: string;
  runtimes: Record<string, boolean>;
  guest?: { kernel: string | null; rootfs: string | null; sanitisedPages?: boolean };
}

/** What a run fixes before its first function; the rest of the run only reads it. */
interface RunSetup {
  o: ClientOptions;
  opts: RunnerOptions;
  progress: Progress;
  startedAt: string;
  /** The config as run (see runConfig). */
  config: Experiment;
  health: Health;
  /** Input object keys neither the daemon nor inputsDir has: functions reading them are skipped. */
  missing: Set<string>;
}

/** The run's first step: the config as run, the daemon's health, the input objects uploaded. */
async function prepareRun(c: Experiment, opts: RunnerOptions): Promise<RunSetup> {
  const o: ClientOptions = opts.url ? { url: opts.url } : {};
  const progress = opts.progress ?? SILENT;
  const startedAt = new Date().toISOString();
  const config = runConfig(c, opts);
  const health = await api<Health>(o, 'GET', '/healthz');
  const missing = await uploadInputs(o, config, opts.loadInputs !== false, progress);
  return { o, opts, progress, startedAt, config, health, missing };
}

/** The config as run: the options' settings, repeats and choice of functions applied. */
function runConfig(c: Experiment, opts: RunnerOptions): Experiment {
  // --functions picks and orders them (cheap ones first keeps a long run's early results useful).
  const functions = opts.functions
    ? opts.functions.map((name) => {
        const f = c.functions.find((x) => x.name === name);
        if (!f) throw new Error(`${c.name} has no function ${name}`);
        return f;
      })
    : c.functions;
  if (functions.length === 0) throw new Error(`${c.name} has no functions to run`);
  return {
    ...c,
    settings: opts.settings ?? c.settings,
    repeats: opts.repeats ?? c.repeats,
    functions,
  };
}

/**
 * Uploads the input objects the daemon lacks from the config's inputsDir (when `load`); returns
 * the keys it could not find, so that the functions reading them are skipped instead of failing.
 */
async function uploadInputs(
  o: ClientOptions,
  config: Experiment,
  load: boolean,
  progress: Progress,
): Promise<Set<string>> {
  const missing = new Set<string>();
  const needed = inputObjectKeys(config);
  if (needed.length === 0) return missing;
  const have = new Set((await api<{ key: string }[]>(o, 'GET', '/objects')).map((x) => x.key));
  const dir = resolveInputsDir(config);
  for (const key of needed) {
    if (have.has(key)) continue;
    const file = dir && load ? findFile(dir, key) : undefined;
    if (!file) {
      missing.add(key);
      continue;
    }
    progress.log(`loading input ${key} from ${file}`);
    await api(o, 'PUT', `/objects/${encodeURIComponent(key)}`, readFileSync(file));
  }
  return missing;
}

/** A function's entry in the results, before its deploy fills in the snapshot. */
function deployEntry(f: FunctionEntryT, spec: Record<string, unknown>): FunctionDeploy {
  return {
    name: f.name,
    registeredAs: spec.name as string,
    runtime: f.runtime,
    handler: f.handler,
    snapshot: null,
    snapshotDir: null,
    deployMs: null,
    reused: false,
    recordParams: spec.recordParams as Record<string, unknown>,
    inspect: null,
    skipped: null,
  };
}

/** One round of a function: n concurrent invocations in one setting with one test input. */
interface Round {
  f: FunctionEntryT;
  d: FunctionDeploy;
  par: ParallelismT;
  /** The ready snapshot, then a separate group's copies. */
  snaps: string[];
  setting: SettingName;
  record: number;
  test: number;
  repeat: number;
}

/**
 * A run under way: the deploys and samples gathered so far (saved after every function) and the
 * steps that add to them, one function at a time.
 */
class ExperimentRun {
  readonly config: Experiment;
  readonly progress: Progress;
  /** The run directory: bench/results/<name>-<timestamp> unless opts.outDir says otherwise. */
  readonly dir: string;
  private readonly o: ClientOptions;
  private readonly opts: RunnerOptions;
  private readonly startedAt: string;
  private readonly health: Health;
  private readonly missing: Set<string>;
  private readonly machine: MachineInfo;
  private readonly deploys: FunctionDeploy[] = [];
  private readonly samples: Sample[] = [];
  /** The device of the first deployed function's snapshot. */
  private dataDevice: string | null = null;

  constructor(s: RunSetup) {
    this.o = s.o;
    this.opts = s.opts;
    this.progress = s.progress;
    this.startedAt = s.startedAt;
    this.config = s.config;
    this.health = s.health;
    this.missing = s.missing;
    this.machine = machineInfo();
    this.dir = resolve(s.opts.outDir ?? 'bench/results', runDirName(s.config.name, s.startedAt));
  }

  /** Progress ticks of the whole run: one per round of every function, skipped ones included. */
  totalTicks(): number {
    let total = 0;
    for (const f of this.config.functions) total += this.ticksOf(f);
    return total;
  }

  /** Rounds of one function: parallelism entries × test inputs × repeats × settings. */
  private ticksOf(f: FunctionEntryT): number {
    const { parallelism, repeats, settings } = this.config;
    return parallelism.length * inputPairs(this.config, f).tests.length * repeats * settings.length;
  }

  /** One function: deploy it (or record why it cannot run), then all its rounds, then save. */
  async runFunction(f: FunctionEntryT): Promise<void> {
    const spec = functionSpec(this.config, f);
    const d = deployEntry(f, spec);
    this.deploys.push(d);
    const why = this.cannotRun(f);
    if (why !== null) return this.skip(f, d, why);
    try {
      await this.deploy(f, spec, d);
    } catch (e) {
      this.skip(
        f,
        d,
        `deploy failed: ${isFaasnapError(e) ? `${e.code}: ` : ''}${(e as Error).message}`,
      );
      this.save(true);
      return;
    }
    this.checkStorage(f, d);
    for (const par of this.config.parallelism) await this.runGroup(f, d, par);
    this.save(true);
  }

  /** Why this daemon cannot run f (no runtime, input objects missing), or null. */
  private cannotRun(f: FunctionEntryT): string | null {
    if (this.health.runtimes[f.runtime] !== true)
      return `runtime ${f.runtime} is not available in this daemon`;
    const lacking = f.inputs.flatMap((p) =>
      ['input_object_key', 'model_object_key']
        .map((k) => p[k])
        .filter((v): v is string => typeof v === 'string' && this.missing.has(v)),
    );
    if (lacking.length)
      return `input objects missing from the object store: ${[...new Set(lacking)].join(', ')}`;
    return null;
  }

  /** Records why f is skipped and ticks its rounds off, so the progress total still holds. */
  private skip(f: FunctionEntryT, d: FunctionDeploy, why: string): void {
    d.skipped = why;
    this.progress.log(`skipping ${f.name}: ${why}`);
    for (let i = 0, n = this.ticksOf(f); i < n; i++) this.progress.tick(`${f.name} skipped`);
  }

  /**
   * Registers and deploys f, or reuses an identical ready registration, or waits for an identical
   * one still deploying; then re-records FaaSnap with the config's recording knobs and keeps the
   * snapshot's directory and inspection in d.
   */
  private async deploy(
    f: FunctionEntryT,
    spec: Record<string, unknown>,
    d: FunctionDeploy,
  ): Promise<void> {
    const { o, config: c, opts, progress } = this;
    const name = d.registeredAs;
    let existing: FunctionT | undefined;
    try {
      existing = await api<FunctionT>(o, 'GET', `/functions/${name}`);
    } catch (e) {
      if (!isFaasnapError(e, 'FUNCTION_UNKNOWN')) throw e;
    }
    const same = existing !== undefined && !opts.redeploy && sameSpec(existing, spec);
    const timeoutMs = opts.deployTimeoutMs ?? 1_800_000;
    if (same && existing!.state === 'ready') {
      d.reused = true;
      progress.log(`${f.name}: reusing ready ${name} (${existing!.readySnapshot})`);
    } else if (same && !['registered', 'failed'].includes(existing!.state)) {
      // An identical deploy already under way (e.g. started by a run that was stopped).
      progress.log(`${f.name}: waiting for the deploy of ${name} in progress (${existing!.state})`);
      await waitUntilReady(o, name, timeoutMs);
    } else {
      if (existing) await api(o, 'DELETE', `/functions/${name}`);
      await api(o, 'POST', '/functions', spec);
      progress.log(`${f.name}: deploying ${name} (${f.runtime}/${f.handler})`);
      const t0 = performance.now();
      await api(o, 'POST', `/functions/${name}/deploy`);
      await waitUntilReady(o, name, timeoutMs);
      d.deployMs = performance.now() - t0;
      progress.log(`${f.name}: ready after ${(d.deployMs / 1000).toFixed(1)} s`);
    }
    const fn = await api<FunctionT>(o, 'GET', `/functions/${name}`);
    d.snapshot = fn.readySnapshot;
    if (c.recording && !d.reused) {
      progress.log(`${f.name}: recording FaaSnap again with ${JSON.stringify(c.recording)}`);
      await api<SnapshotT>(o, 'POST', `/snapshots/${d.snapshot}/record`, {
        kind: 'faasnap',
        params: spec.recordParams,
        ...c.recording,
      });
    }
    const snap = await api<SnapshotT>(o, 'GET', `/snapshots/${d.snapshot}`);
    d.snapshotDir = snap.dir;
    d.inspect = await api<SnapshotInspectT>(o, 'GET', `/snapshots/${d.snapshot}/inspect`).catch(
      (e: unknown) => ({ error: (e as Error).message }),
    );
  }

  /**
   * Notes the device of f's snapshot for the results; a slow-storage config stops the run when
   * the snapshot is not on a delayed device, since its numbers would mean nothing.
   */
  private checkStorage(f: FunctionEntryT, d: FunctionDeploy): void {
    const storage = storageOf(d.snapshotDir!);
    this.dataDevice ??= storage.device;
    if (this.config.storage?.kind === 'slow' && !storage.delayed && !this.opts.allowLocalStorage)
      throw new Error(
        `${this.config.name} needs the snapshots on slow storage, but ${f.name}'s snapshot ${d.snapshotDir} is on ${storage.device} (${storage.mountPoint}): start the daemon with --data-dir on the slow mount (faasnap bench slow-storage setup), or pass --allow-local-storage`,
      );
  }

  /** The rounds of one parallelism entry; a separate group's snapshot copies are deleted after. */
  private async runGroup(f: FunctionEntryT, d: FunctionDeploy, par: ParallelismT): Promise<void> {
    const snaps = await snapshotsFor(this.o, d.snapshot!, par);
    try {
      const { record, tests } = inputPairs(this.config, f);
      for (const test of tests)
        for (let repeat = 0; repeat < this.config.repeats; repeat++)
          // Settings innermost (interleaved within a repeat), so drift hits them all alike.
          for (const setting of this.config.settings)
            await this.runRound({ f, d, par, snaps, setting, record, test, repeat });
    } finally {
      for (const s of snaps.slice(1))
        await api(this.o, 'DELETE', `/snapshots/${s}`).catch(() => undefined);
    }
  }

  /** One round: its samples kept, a failure logged, one progress tick. */
  private async runRound(r: Round): Promise<void> {
    const { f, par, setting, test, repeat } = r;
    const label = `${f.name} ${setting} in${test} ×${par.n}${par.n > 1 ? ` ${par.snapshots}` : ''} #${repeat + 1}`;
    const got = await round(this.o, r);
    this.samples.push(...got);
    const bad = got.find((s) => s.status !== 'succeeded');
    if (bad)
      this.progress.log(
        `${label}: ${bad.status} ${bad.error?.code ?? ''} ${bad.error?.message ?? ''}`,
      );
    this.progress.tick(label);
  }

  /**
   * Writes results.json and results.csv. Called after every function, so hours of samples survive
   * a daemon or harness crash; `partial` until the run ends.
   */
  save(partial: boolean): RunDoc {
    const doc: RunDoc = {
      bench: 'experiment',
      format: 1,
      experiment: this.config.name,
      startedAt: this.startedAt,
      finishedAt: new Date().toISOString(),
      ...(partial ? { partial } : {}),
      command: this.opts.command ?? `faasnap bench run ${this.config.source}`,
      machine: this.machine,
      daemon: {
        url: this.opts.url ?? '',
        version: this.health.version ?? null,
        dataDevice: this.dataDevice,
        guest: this.health.guest ?? null,
      },
      config: this.config,
      functions: this.deploys,
      samples: this.samples,
    };
    writeRun(this.dir, doc);
    return doc;
  }

  /** --cleanup: deletes every function registered for the run (and so their snapshots). */
  async deleteFunctions(): Promise<void> {
    for (const d of this.deploys)
      await api(this.o, 'DELETE', `/functions/${d.registeredAs}`).catch(() => undefined);
  }
}

async function waitUntilReady(o: ClientOptions, name: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`${name} not ready after ${timeoutMs} ms`);
    const w = await api<{ reached: boolean; function: FunctionT }>(
      o,
      'GET',
      `/functions/${name}/wait?state=ready&timeoutMs=${Math.min(60_000, left)}`,
    );
    if (w.function.state === 'ready') return;
    if (w.function.state === 'failed')
      throw new Error(
        `${w.function.error?.code ?? 'failed'}: ${w.function.error?.message ?? 'deploy failed'}`,
      );
  }
}

/** The snapshots of one parallelism group: the ready one, plus n−1 copies when separate. */
async function snapshotsFor(o: ClientOptions, ready: string, par: ParallelismT): Promise<string[]> {
  const snaps = [ready];
  if (par.snapshots === 'separate')
    for (let i = 1; i < par.n; i++)
      snaps.push((await api<SnapshotT>(o, 'POST', `/snapshots/${ready}/copy`)).id);
  return snaps;
}

/**
 * Waits (up to 15 s, scaled in the lab) until the daemon's VMM pool holds `n` idle processes (or
 * is full), so that no invocation pays for starting a VMM process because the previous round
 * drained the pool.
 */
async function waitForPool(o: ClientOptions, n: number): Promise<void> {
  const deadline = Date.now() + scaledMs(15_000);
  for (;;) {
    const h = await api<{ pool: { size: number; idle: number } }>(o, 'GET', '/healthz');
    if (h.pool.idle >= Math.min(n, h.pool.size) || Date.now() > deadline) return;
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** One round: prepared, then n concurrent invocations, one sample each. */
async function round(o: ClientOptions, r: Round): Promise<Sample[]> {
  await prepareRound(o, r);
  const params = r.f.inputs[r.test]!;
  const sameInput = JSON.stringify(params) === JSON.stringify(r.f.inputs[r.record]);
  return Promise.all(
    Array.from({ length: r.par.n }, (_, slot) => collectSample(o, r, slot, params, sameInput)),
  );
}

/**
 * What a round's measured invocations find, unmeasured: a refilled VMM pool, every snapshot's
 * page cache as the setting wants it, and for warm, running VMs.
 */
async function prepareRound(o: ClientOptions, r: Round): Promise<void> {
  const { f, d, par, snaps, setting, record } = r;
  await waitForPool(o, par.n);
  if (setting !== 'warm')
    for (const s of snaps)
      await api(o, 'PUT', `/snapshots/${s}/cache`, {
        state: setting === 'cached' ? 'loaded' : 'dropped',
      });
  if (setting === 'warm')
    // Warm is an instance that has already served a request: n unmeasured calls with the record
    // input start (or find idle) the VMs the measured ones then reuse.
    await Promise.all(
      Array.from({ length: par.n }, () =>
        api(o, 'POST', `/functions/${d.registeredAs}/invocations`, {
          mode: 'warm',
          params: f.inputs[record],
          snapshot: snaps[0],
        }).catch(() => undefined),
      ),
    );
}

/**
 * One measured invocation (the round's `slot`) and its sample: the daemon's answer with its
 * phases and VMM counters, or the API error it got.
 */
async function collectSample(
  o: ClientOptions,
  r: Round,
  slot: number,
  params: Record<string, unknown>,
  sameInput: boolean,
): Promise<Sample> {
  const { f, d, par, snaps, setting, record, test, repeat } = r;
  const snapshot = snaps[par.snapshots === 'separate' ? slot : 0]!;
  const base = {
    function: f.name,
    setting,
    record,
    test,
    sameInput,
    repeat,
    parallelism: par.n,
    snapshots: par.snapshots,
    slot,
    startedAt: new Date().toISOString(),
  };
  const t0 = performance.now();
  try {
    const inv = await api<InvocationT>(o, 'POST', `/functions/${d.registeredAs}/invocations`, {
      mode: setting,
      params,
      snapshot,
    });
    const clientMs = performance.now() - t0;
    const phases = phaseMap(inv.phases);
    return {
      ...base,
      snapshot: inv.snapshot,
      invocation: inv.id,
      traceId: inv.traceId,
      status: inv.status === 'succeeded' ? 'succeeded' : 'failed',
      error: inv.error ? { code: inv.error.code, message: inv.error.message } : null,
      clientMs,
      durationMs: inv.durationMs,
      e2eMs: e2eOf(inv.durationMs, phases),
      phases,
      ...guestBreakdown(phases, inv.result),
      // After the answer, outside the measured time.
      vmm: await vmmCounters(o, inv.traceId),
    };
  } catch (e) {
    const clientMs = performance.now() - t0;
    const details = (isFaasnapError(e) ? e.details : {}) as Record<string, unknown>;
    return {
      ...base,
      snapshot,
      invocation: typeof details.invocation === 'string' ? details.invocation : null,
      traceId: typeof details.traceId === 'string' ? details.traceId : null,
      status: 'error',
      error: {
        code: isFaasnapError(e) ? e.code : 'CLIENT_ERROR',
        message: (e as Error).message,
      },
      clientMs,
      durationMs: null,
      e2eMs: null,
      phases: {},
      readMs: null,
      processMs: null,
      writeMs: null,
    };
  }
}
