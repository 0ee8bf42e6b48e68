// The daemon's one public entry point: createDaemon(config) builds every service (SQLite store,
// VMM pool, object store, traces, metrics, lifecycle, deploy chain, invoker) and the HTTP API;
// listen() recovers state left by a previous process, fills the pool and starts serving;
// close() stops everything it started (VMM processes, redis-server, the database).

import { writeFileSync, rmSync, mkdirSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { dirname } from 'node:path';
import { pino, type DestinationStream } from 'pino';
import { FaasnapError } from '../common/errors.js';
import { VmmCgroups, cgroupMissing } from '../process/cgroup.js';
import { jailMissing } from '../process/jail.js';
import { daemonInfoPath } from '../common/daemon-info.js';
import { buildApi, API_VERSION } from './api.js';
import { apiToken, isLoopback } from './auth.js';
import { ClientLimits } from './client-limits.js';
import { dataPaths, resolveConfig, type DaemonConfig, type DaemonConfigInput } from './config.js';
import type { DaemonContext } from './context.js';
import { Deployer } from './deploy.js';
import { Invoker } from './invoker.js';
import { Lifecycle, TRANSIENT } from './lifecycle.js';
import { Metrics } from './metrics.js';
import { ObjectStore } from './redis.js';
import { defaultRuntimes, type Runtimes } from './runtime/index.js';
import { Snapshots } from './snapshots.js';
import { Store } from './store/index.js';
import { tlsFiles } from './tls.js';
import { Traces } from './traces.js';
import { VmManager, type VmJail } from './vms.js';

export interface Daemon {
  readonly config: DaemonConfig;
  readonly app: FastifyInstance;
  readonly ctx: DaemonContext;
  /** Base URL once listening, e.g. http://127.0.0.1:8720 */
  url: string;
  listen(): Promise<string>;
  close(): Promise<void>;
}

/** Memory a jailed VMM process may use beyond its guest's (Node, the VMM, page tables), MiB. */
export const VMM_OVERHEAD_MIB = 256;

export interface DaemonOptions {
  /** Replace runtimes (tests). */
  runtimes?: Runtimes;
  /** Where log lines go (default stdout; tests read them). */
  logStream?: DestinationStream;
  /** What the host lacks for a jail (default: probed at start; tests give a host that lacks). */
  jailLacks?: JailLacks;
}

/** What the host lacks for a jail: pieces without which there is none, and cgroup v2. */
interface JailLacks {
  jail: string[];
  cgroup: string | undefined;
}

export async function createDaemon(
  input: DaemonConfigInput = {},
  opts: DaemonOptions = {},
): Promise<Daemon> {
  const config = resolveConfig(input);
  const paths = dataPaths(config.dataDir);
  mkdirSync(config.dataDir, { recursive: true });
  // Configuration errors (token, TLS files) stop the start before any service is created.
  const token = apiToken(config);
  const tls = tlsFiles(config);
  const store = Store.open(paths.db);
  // What the host lacks for a jail, checked once: the jail's set-up and /healthz both say it.
  const lacks = opts.jailLacks ?? { jail: jailMissing(), cgroup: cgroupMissing() };
  const vms = new VmManager(config.poolSize, config, vmJail(config, paths, lacks));
  const runtimes = opts.runtimes ?? defaultRuntimes(config.guest);
  const metrics = new Metrics({
    poolSize: config.poolSize,
    poolIdle: () => vms.pool.idleCount,
    vms: () => vms.count,
  });
  const traces = new Traces(store.spans, { otlpUrl: config.otlpUrl, version: API_VERSION });
  const objects = new ObjectStore(config.redis, paths.redis);
  const snapshots = new Snapshots(store.snapshots, paths.snapshots);
  const lifecycle = new Lifecycle(store.functions);
  // One logger for the HTTP layer and the background work (deploys, invocations).
  const log = pino(
    { level: config.logLevel, enabled: config.logLevel !== 'silent' },
    opts.logStream ?? pino.destination(1),
  );
  const base = { store, vms, snapshots, runtimes, traces, metrics, objects, log };
  const ctx: DaemonContext = {
    ...base,
    config,
    lifecycle,
    invoker: new Invoker(base),
    deployer: new Deployer({ ...base, lifecycle }),
    clientLimits: new ClientLimits(config.clientLimits),
    jail: {
      enabled: config.jail,
      missing: [...lacks.jail, ...(lacks.cgroup ? [lacks.cgroup] : [])],
    },
    startedAt: Date.now(),
    version: API_VERSION,
  };
  const app = await buildApi(ctx, { logger: log, token, tls });
  if (config.jail && ctx.jail.missing.length)
    log.warn({ missing: ctx.jail.missing }, 'VMM processes run jailed but without cgroup limits');
  if (!config.jail)
    log.warn(
      "VMM processes run unjailed, with the daemon's privileges (--no-jail; docs/security.md)",
    );
  if (!isLoopback(config.host) && !tls)
    log.warn(
      { host: config.host },
      'serving the API beyond loopback without TLS: the API token crosses the network in clear (--tls-cert/--tls-key)',
    );

  let listening = false;
  const daemon: Daemon = {
    config,
    app,
    ctx,
    url: '',
    async listen() {
      // Each start-up step logs its time: a slow start says where it waited.
      const step = async (what: string, run: () => Promise<unknown>): Promise<void> => {
        const t0 = performance.now();
        await run();
        app.log.info({ ms: Math.round(performance.now() - t0) }, `start-up: ${what}`);
      };
      await step('state recovered', () => recover(ctx, app.log));
      await step('object store up', () => objects.start());
      await step('VMM pool filled', () => vms.pool.fill());
      await app.listen({ host: config.host, port: config.port });
      listening = true;
      const addr = app.server.address();
      const port = typeof addr === 'object' && addr ? addr.port : config.port;
      daemon.url = `${tls ? 'https' : 'http'}://${urlHost(config.host)}:${port}`;
      writeFileSync(
        daemonInfoPath(config.dataDir),
        JSON.stringify({ url: daemon.url, pid: process.pid, redis: objects.url }) + '\n',
      );
      return daemon.url;
    },
    async close() {
      lifecycle.close();
      await app.close();
      // VMs first: a deploy in progress fails at once instead of holding the shutdown for
      // minutes (the restarted daemon marks it failed; a redeploy continues).
      await vms.close();
      await ctx.deployer.settle();
      await objects.close();
      await traces.close();
      store.close();
      if (listening) rmSync(daemonInfoPath(config.dataDir), { force: true });
    },
  };
  return daemon;
}

/**
 * The jail of VMM processes when config.jail (the default): it needs root and util-linux.
 * Without them the daemon does not start (DAEMON_CONFIG, naming what is missing): VMM processes
 * run unjailed only when the operator says so (--no-jail).
 */
function vmJail(
  config: DaemonConfig,
  paths: ReturnType<typeof dataPaths>,
  lacks: JailLacks,
): VmJail | undefined {
  if (!config.jail) return undefined;
  const missing = lacks.jail;
  if (missing.length)
    throw new FaasnapError(
      'DAEMON_CONFIG',
      `cannot jail VMM processes: missing ${missing.join(', ')}; --no-jail (FAASNAP_JAIL=0) runs them unjailed, with the daemon's privileges (docs/security.md)`,
      {
        missing,
      },
    );
  mkdirSync(paths.snapshots, { recursive: true });
  return {
    // Without cgroup v2 the processes run jailed but without memory and CPU limits (/healthz
    // and the start-up log say so).
    cgroups: lacks.cgroup ? undefined : vmmCgroups(),
    overheadMiB: VMM_OVERHEAD_MIB,
    root: paths.jailRoot,
    readOnly: [config.guest.kernel, config.guest.rootfs].flatMap((p) => (p ? [dirname(p)] : [])),
    readWrite: [paths.snapshots],
  };
}

function vmmCgroups(): VmmCgroups {
  try {
    return VmmCgroups.create();
  } catch (e) {
    throw new FaasnapError(
      'DAEMON_CONFIG',
      `cannot set up cgroups for VMM processes: ${(e as Error).message}`,
    );
  }
}

/** An address as a URL's host: IPv6 literals in brackets. */
function urlHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

/**
 * Start-up recovery after a crash or SIGKILL: half-created snapshots are cleaned (complete ones
 * kept), deploys that were running are failed (redeploy to continue), invocations that were
 * running are marked failed. Committed rows are never lost (SQLite, synchronous=FULL).
 */
async function recover(ctx: DaemonContext, log: FastifyInstance['log']): Promise<void> {
  const r = await ctx.snapshots.recover();
  const restarted = { code: 'DAEMON_RESTARTED', message: 'the daemon restarted while this ran' };
  for (const f of ctx.store.functions.list()) {
    if (TRANSIENT.includes(f.state))
      ctx.lifecycle.transition(f.name, 'failed', { error: restarted });
    else if (
      f.state === 'ready' &&
      f.readySnapshot &&
      ctx.store.snapshots.find(f.readySnapshot)?.status !== 'complete'
    )
      ctx.store.functions.setState(f.name, 'failed', {
        error: { code: 'SNAPSHOT_MISSING', message: `ready snapshot ${f.readySnapshot} is gone` },
        readySnapshot: null,
      });
  }
  const inv = ctx.store.invocations.failRunning(restarted);
  if (r.cleaned + r.completed + r.missing + r.orphans + inv > 0)
    log.warn(
      { snapshots: r, invocations: inv },
      'recovered state left by a previous daemon process',
    );
}
