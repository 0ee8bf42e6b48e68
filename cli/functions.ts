// `faasnap functions …`, `faasnap deploy`, `faasnap invoke`, `faasnap trace`: the function
// resources of the daemon, with human output by default and --json.

import { readFileSync } from 'node:fs';
import { InvalidArgumentError, type Command } from 'commander';
import { FaasnapError } from '../common/errors.js';
import type { FunctionT, InvocationT, TraceT } from '../daemon/schemas.js';
import { INVOKE_MODES, FUNCTION_STATES } from '../daemon/schemas.js';
import { api, type ClientOptions } from '../client/daemon.js';
import { clientOptions, output, table } from './output.js';
import { formatMs } from './format.js';
import { durationOption, intOption } from './options.js';

function jsonObject(v: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(v.startsWith('@') ? readFileSync(v.slice(1), 'utf8') : v);
  } catch (e) {
    throw new InvalidArgumentError(`not JSON: ${(e as Error).message}`);
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed))
    throw new InvalidArgumentError('must be a JSON object');
  return parsed as Record<string, unknown>;
}

function modeOption(v: string): string {
  if (!(INVOKE_MODES as readonly string[]).includes(v))
    throw new InvalidArgumentError(`one of ${INVOKE_MODES.join(', ')}`);
  return v;
}

function describe(f: FunctionT): string {
  return [
    `${f.name}  ${f.runtime}/${f.handler}  ${f.state}`,
    `memory ${f.memoryMiB} MiB, ${f.vcpus} vCPU, default mode ${f.defaultMode}, timeout ${f.timeoutMs} ms`,
    `ready snapshot: ${f.readySnapshot ?? '-'}`,
    ...(f.error ? [`error: ${f.error.code}: ${f.error.message}`] : []),
  ].join('\n');
}

/** Follows the lifecycle until ready/failed, printing each state as it is reached. */
async function follow(o: ClientOptions, name: string, timeoutMs: number): Promise<FunctionT> {
  const deadline = Date.now() + timeoutMs;
  let f = await api<FunctionT>(o, 'GET', `/functions/${name}`);
  const t0 = Date.now();
  let last = '';
  while (f.state !== 'ready' && f.state !== 'failed') {
    if (f.state !== last && !o.json)
      console.error(`  ${((Date.now() - t0) / 1000).toFixed(1).padStart(5)} s  ${f.state}`);
    last = f.state;
    if (Date.now() > deadline)
      throw new FaasnapError('FUNCTION_STATE', `${name} is still ${f.state} after ${timeoutMs} ms`);
    // Wait for the next state of the chain (or failed).
    const idx = FUNCTION_STATES.indexOf(f.state);
    const next = FUNCTION_STATES[idx + 1] ?? 'ready';
    const w = await api<{ function: FunctionT }>(
      o,
      'GET',
      `/functions/${name}/wait?state=${next}&timeoutMs=${Math.min(5000, Math.max(0, deadline - Date.now()))}`,
    );
    f = w.function;
  }
  if (!o.json)
    console.error(`  ${((Date.now() - t0) / 1000).toFixed(1).padStart(5)} s  ${f.state}`);
  return f;
}

export function waterfall(t: TraceT, width = 40): string {
  const total = Math.max(...t.spans.map((s) => s.startMs + s.durationMs), 0.001);
  const depth = new Map<string, number>();
  const rows = t.spans.map((s) => {
    const d = s.parentSpanId ? (depth.get(s.parentSpanId) ?? 0) + 1 : 0;
    depth.set(s.spanId, d);
    const a = Math.floor((s.startMs / total) * width);
    const len = Math.max(1, Math.round((s.durationMs / total) * width));
    const bar = ' '.repeat(a) + '█'.repeat(Math.min(len, width - a));
    return [
      `${'  '.repeat(d)}${s.name}`,
      formatMs(s.startMs),
      formatMs(s.durationMs),
      `|${bar.padEnd(width)}|${s.error ? ' ' + s.error : ''}`,
    ];
  });
  return (
    `trace ${t.traceId}  (${t.startedAt})\n` + table([['span', 'start', 'duration', ''], ...rows])
  );
}

export function registerFunctionCommands(program: Command): void {
  const fns = program.command('functions').description('functions registered with the daemon');
  clientOptions(
    fns
      .command('register <name>')
      .description('register a function')
      .requiredOption('--runtime <runtime>', 'micro, python or node')
      .requiredOption(
        '--handler <handler>',
        'micro: touch, hello or hang; python/node: a bundled function (guest/functions/<name>) or the name for --code',
      )
      .option('--code <file>', 'python/node source to upload (handler names it)')
      .option('--memory <MiB>', 'guest memory', intOption(8, 65536))
      .option('--vcpus <n>', 'vCPUs', intOption(1, 8))
      .option('--mode <mode>', 'default memory mode', modeOption)
      .option('--timeout <duration>', 'invocation timeout', durationOption)
      .option('--record-params <json>', 'record input (JSON object or @file)', jsonObject)
      .option(
        '--state <MiB>',
        'micro: MiB of non-zero function state in the snapshot',
        intOption(0, 65536),
      ),
  ).action(async (name: string, o: ClientOptions & Record<string, unknown>) => {
    const body = {
      name,
      runtime: o.runtime,
      handler: o.handler,
      code: o.code ? readFileSync(o.code as string, 'utf8') : undefined,
      memoryMiB: o.memory,
      vcpus: o.vcpus,
      defaultMode: o.mode,
      timeoutMs: o.timeout === undefined ? undefined : Math.round(o.timeout as number),
      recordParams: o.recordParams,
      stateMiB: o.state,
    };
    const f = await api<FunctionT>(o, 'POST', '/functions', body);
    output(o, f, () => describe(f));
  });
  clientOptions(fns.command('list').description('list functions')).action(
    async (o: ClientOptions) => {
      const list = await api<FunctionT[]>(o, 'GET', '/functions');
      output(o, list, () =>
        table([
          ['name', 'runtime', 'handler', 'state', 'ready snapshot'],
          ...list.map((f) => [f.name, f.runtime, f.handler, f.state, f.readySnapshot ?? '-']),
        ]),
      );
    },
  );
  clientOptions(fns.command('get <name>').description('show a function')).action(
    async (name: string, o: ClientOptions) => {
      const f = await api<FunctionT>(o, 'GET', `/functions/${name}`);
      output(o, f, () => describe(f));
    },
  );
  clientOptions(
    fns.command('delete <name>').description('delete a function and its snapshots'),
  ).action(async (name: string, o: ClientOptions) => {
    await api(o, 'DELETE', `/functions/${name}`);
    output(o, { deleted: name }, () => `deleted ${name}`);
  });

  clientOptions(
    program
      .command('deploy <function>')
      .description(
        'boot, warm up, snapshot and record a function until it is ready (shows progress)',
      )
      .option('--timeout <duration>', 'give up waiting after this long', durationOption, 600_000)
      .option('--no-wait', 'return once the deploy has started'),
  ).action(async (name: string, o: ClientOptions & { timeout: number; wait: boolean }) => {
    let f = await api<FunctionT>(o, 'POST', `/functions/${name}/deploy`);
    if (o.wait) f = await follow(o, name, o.timeout);
    output(o, f, () => describe(f));
    if (f.state === 'failed') process.exitCode = 1;
  });

  clientOptions(
    program
      .command('invoke <function>')
      .description('invoke a function synchronously')
      .option('--params <json>', 'parameters (JSON object or @file)', jsonObject)
      .option('--mode <mode>', 'memory mode (default: the function default)', modeOption)
      .option('--snapshot <id>', 'restore this snapshot instead of the ready one')
      .option('--timeout <duration>', 'invocation timeout', durationOption),
  ).action(
    async (
      name: string,
      o: ClientOptions & { params?: object; mode?: string; snapshot?: string; timeout?: number },
    ) => {
      const inv = await api<InvocationT>(o, 'POST', `/functions/${name}/invocations`, {
        params: o.params,
        mode: o.mode,
        snapshot: o.snapshot,
        timeoutMs: o.timeout === undefined ? undefined : Math.round(o.timeout),
      });
      output(o, inv, () =>
        [
          inv.status === 'succeeded'
            ? `result: ${JSON.stringify(inv.result)}`
            : `FAILED ${inv.error?.code}: ${inv.error?.message}`,
          `${inv.id}  ${inv.mode}  ${formatMs(inv.durationMs ?? 0)}  trace ${inv.traceId}`,
          table(inv.phases.map((p) => [`  ${p.name}`, formatMs(p.durationMs)])),
        ].join('\n'),
      );
      if (inv.status === 'failed') process.exitCode = 1;
    },
  );

  clientOptions(
    program
      .command('trace <id>')
      .description('print the waterfall of a trace (or an invocation id)'),
  ).action(async (id: string, o: ClientOptions) => {
    const traceId = id.startsWith('inv-')
      ? (await api<InvocationT>(o, 'GET', `/invocations/${id}`)).traceId
      : id;
    const t = await api<TraceT>(o, 'GET', `/traces/${traceId}`);
    output(o, t, () => waterfall(t));
  });
}
