// `faasnap daemon`: runs the HTTP daemon in the foreground until SIGINT/SIGTERM;
// `faasnap status`: asks a running daemon how it is.

import type { Command } from 'commander';
import { createDaemon } from '../daemon/server.js';
import { api } from '../client/daemon.js';
import { clientOptions, output } from './output.js';
import { intOption } from './options.js';

interface DaemonOptions {
  host: string;
  tokenFile?: string;
  tlsCert?: string;
  tlsKey?: string;
  jail?: boolean;
  sanitisedPages: boolean;
  maxClientInvocations: number;
  maxClientDeploys: number;
  port: number;
  dataDir?: string;
  poolSize: number;
  maxVms: number;
  maxMemory: number;
  redisUrl?: string;
  redisPassword?: string;
  otlpUrl?: string;
  logLevel: string;
}

export function registerDaemonCommands(program: Command): void {
  program
    .command('daemon')
    .description('run the faasnap daemon (HTTP API on loopback) in the foreground')
    .option('--host <addr>', 'address to listen on', '127.0.0.1')
    .option(
      '--token-file <path>',
      'API token file; beyond loopback one is required (default: <data dir>/api-token, made at first start)',
    )
    .option(
      '--jail',
      'run every VMM process in a jail: own namespaces, uid, no capabilities (default)',
    )
    .option(
      '--no-jail',
      "run VMM processes unjailed, with the daemon's privileges (logged at warn)",
    )
    .option(
      '--no-sanitised-pages',
      'boot guests without init_on_free: stale free pages then fill snapshots (to measure)',
    )
    .option('--tls-cert <path>', 'serve HTTPS with this PEM certificate chain (with --tls-key)')
    .option('--tls-key <path>', 'the private key of --tls-cert (PEM)')
    .option('--port <n>', 'port (0: any free port)', intOption(0, 65535), 8720)
    .option('--data-dir <dir>', 'data directory (default: $FAASNAP_HOME or ~/.local/share/faasnap)')
    .option('--pool-size <n>', 'idle VMM processes kept ready', intOption(0, 64), 2)
    .option('--max-vms <n>', 'live VMs at once', intOption(1, 4096), 8)
    .option('--max-memory <MiB>', 'guest memory of all live VMs', intOption(8, 1 << 24), 8192)
    .option(
      '--max-client-invocations <n>',
      'invocations one client address may have in flight (CLIENT_LIMIT beyond)',
      intOption(1, 1 << 16),
      32,
    )
    .option(
      '--max-client-deploys <n>',
      'deploys one client address may have running (CLIENT_LIMIT beyond)',
      intOption(1, 1 << 16),
      4,
    )
    .option('--redis-url <url>', 'use this Redis instead of starting a local redis-server')
    .option('--redis-password <pw>', 'password of the external Redis')
    .option(
      '--otlp-url <url>',
      'export traces over OTLP/HTTP to this endpoint (also FAASNAP_OTLP_URL)',
    )
    .option('--log-level <level>', 'fatal, error, warn, info, debug, silent', 'info')
    .action(async (o: DaemonOptions) => {
      const daemon = await createDaemon({
        host: o.host,
        tokenFile: o.tokenFile,
        tlsCert: o.tlsCert,
        tlsKey: o.tlsKey,
        jail: o.jail,
        clientLimits: { invocations: o.maxClientInvocations, deploys: o.maxClientDeploys },
        port: o.port,
        dataDir: o.dataDir,
        poolSize: o.poolSize,
        maxVms: o.maxVms,
        maxMemoryMiB: o.maxMemory,
        redis: o.redisUrl ? { url: o.redisUrl, password: o.redisPassword, managed: false } : {},
        otlpUrl: o.otlpUrl,
        logLevel: o.logLevel as never,
        guest: { sanitisedPages: o.sanitisedPages },
      });
      const url = await daemon.listen();
      console.error(
        `faasnap daemon listening on ${url} (data ${daemon.config.dataDir}, objects ${daemon.ctx.objects.url})`,
      );
      let closing = false;
      const stop = (): void => {
        if (closing) return;
        closing = true;
        void daemon.close().then(() => process.exit(0));
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });

  clientOptions(program.command('status').description('health of the running daemon')).action(
    async (o: { url?: string; json?: boolean }) => {
      const h = await api<{
        version: string;
        uptimeS: number;
        pool: { size: number; idle: number };
        vms: number;
        redis: string;
        runtimes: Record<string, boolean>;
      }>(o, 'GET', '/healthz');
      output(o, h, () =>
        [
          `daemon ${h.version}, up ${h.uptimeS.toFixed(0)} s`,
          `VMM pool ${h.pool.idle}/${h.pool.size} idle, ${h.vms} live VMs, object store ${h.redis}`,
          `runtimes: ${Object.entries(h.runtimes)
            .map(([k, v]) => `${k}${v ? '' : ' (unavailable)'}`)
            .join(', ')}`,
        ].join('\n'),
      );
    },
  );
}
