// `faasnap demo`: the product end to end on the embedded defaults. Starts a daemon in this
// process (SQLite store and a locally started redis-server in a temp data dir), registers the
// bundled Python `hello`, deploys it (boot to a ready agent, warm-up, snapshot, FaaSnap and REAP
// recordings) with the lifecycle states as progress, invokes it once per start mode and prints
// end-to-end and per-phase times side by side. Everything it started is stopped at the end.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { FaasnapError, errorFromBody } from '../common/errors.js';
import { createDaemon } from '../daemon/server.js';
import type { InvocationT, InvokeMode } from '../daemon/schemas.js';
import { formatMs } from './format.js';

const MODES: InvokeMode[] = ['vanilla', 'cached', 'eager', 'reap', 'faasnap', 'warm', 'warm'];
const DEPLOY_TIMEOUT_MS = 10 * 60_000;
const SHOWN_PHASES = ['restore', 'channel-connect', 'guest-run', 'guest-read', 'guest-process'];

interface DemoOptions {
  function: string;
  runtime: 'python' | 'node';
  keep?: boolean;
  /** false with --no-jail. */
  jail: boolean;
}

export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('start a daemon, deploy a bundled function, invoke it in every start mode')
    .option('--function <handler>', 'bundled function to deploy (guest/functions)', 'hello')
    .option('--runtime <python|node>', 'its runtime', 'python')
    .option('--keep', 'keep the temp data dir (SQLite store, snapshots, traces)')
    .option('--no-jail', "run the VMM processes unjailed, with this process's privileges")
    .action((o: DemoOptions) => demo(o));
}

async function demo(o: DemoOptions): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'faasnap-demo-'));
  // --no-jail turns the jail off; otherwise the daemon's default (FAASNAP_JAIL=0 too) decides.
  const daemon = await createDaemon({
    dataDir,
    port: 0,
    logLevel: 'warn',
    poolSize: 2,
    jail: o.jail ? undefined : false,
  });
  const t0 = performance.now();
  const stamp = (): string => formatMs(performance.now() - t0).padStart(8);
  try {
    const url = await daemon.listen();
    const { ctx } = daemon;
    console.log(`[${stamp()}] daemon at ${url}, redis at ${ctx.objects.url}, data in ${dataDir}`);
    const runtime = ctx.runtimes[o.runtime];
    if (!runtime.available)
      throw new FaasnapError('RUNTIME_UNAVAILABLE', runtime.unavailableReason ?? o.runtime);
    console.log(`[${stamp()}] guest: ${daemon.config.guest.kernel}, ${daemon.config.guest.rootfs}`);
    const { jail } = ctx;
    console.log(
      `[${stamp()}] VMM processes ${jail.enabled ? 'jailed' : "unjailed, with this process's privileges"}` +
        (jail.missing.length ? `; the host lacks ${jail.missing.join(', ')}` : ''),
    );

    const name = `demo-${o.function}`;
    const api = async (method: string, path: string, body?: unknown) => {
      const r = await daemon.app.inject({
        method: method as 'GET',
        url: path,
        payload: body as object,
      });
      const json = r.json() as Record<string, unknown>;
      if (r.statusCode >= 400) {
        const e = errorFromBody(json, 'DAEMON_INTERNAL', r.body);
        e.message = `${method} ${path}: ${e.message}`;
        throw e;
      }
      return json;
    };
    await api('POST', '/functions', {
      name,
      runtime: o.runtime,
      handler: o.function,
      memoryMiB: 256,
      vcpus: 2,
      timeoutMs: 240_000,
      recordParams: { name: 'record' },
    });
    await api('POST', `/functions/${name}/deploy`);
    // The lifecycle states as progress: booting → warm → snapshotted → recorded → ready.
    let state = '';
    const deadline = performance.now() + DEPLOY_TIMEOUT_MS;
    while (state !== 'ready') {
      const f = await api('GET', `/functions/${name}`);
      if (f.state !== state) console.log(`[${stamp()}] ${name}: ${(state = f.state as string)}`);
      if (state === 'failed' || performance.now() > deadline)
        throw new FaasnapError('FUNCTION_STATE', `deploy did not finish: ${JSON.stringify(f)}`);
      await new Promise((r) => setTimeout(r, 500));
    }

    console.log(`\nmode        total ${SHOWN_PHASES.map((p) => p.padStart(16)).join('')}  result`);
    for (const mode of MODES) {
      const inv = (await api('POST', `/functions/${name}/invocations`, {
        mode,
        params: { name: mode },
      })) as unknown as InvocationT;
      const phase = (p: string) => {
        const ms = inv.phases.filter((x) => x.name === p).reduce((n, x) => n + x.durationMs, 0);
        return (ms ? formatMs(ms) : '-').padStart(16);
      };
      const result = inv.status === 'succeeded' ? JSON.stringify(inv.result) : inv.error?.code;
      console.log(
        `${mode.padEnd(8)} ${formatMs(inv.durationMs ?? 0).padStart(8)}  ${SHOWN_PHASES.map(phase).join('')}  ${result}`,
      );
    }
    console.log(`\n[${stamp()}] done; traces: faasnap trace <id> against a running daemon`);
  } finally {
    await daemon.close();
    if (!o.keep) rmSync(dataDir, { recursive: true, force: true });
  }
}
