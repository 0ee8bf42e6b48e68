// Daemon configuration: defaults, environment overrides and the derived paths of the data dir.
// Everything the daemon writes lives under `dataDir` (SQLite database, snapshots, Redis data).

import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DEFAULT_PORT, defaultDataDir } from '../common/daemon-info.js';
import { FaasnapError } from '../common/errors.js';
import { builtKernelPath } from '../guest/kernel/index.js';
import { rootfsPath } from '../guest/rootfs/index.js';
import type { ClientLimitConfig } from './client-limits.js';
import type { GuestImage } from './runtime/agent.js';

export interface RedisConfig {
  /** An external server (redis://host:port/db); when absent the daemon starts its own. */
  url?: string;
  password?: string;
  /** Start a local redis-server (default when no url is given). */
  managed: boolean;
  /** The redis-server binary for the managed server. */
  binary: string;
}

export interface DaemonConfig {
  host: string;
  /** File holding the API token; required beyond loopback (else the data dir's, daemon/auth.ts). */
  tokenFile?: string | undefined;
  /** PEM certificate chain and private key: the API is served over HTTPS when both are given. */
  tlsCert?: string | undefined;
  tlsKey?: string | undefined;
  /** 0 picks a free port (tests). */
  port: number;
  dataDir: string;
  /** Started, idle VMM processes kept ready. */
  poolSize: number;
  /** Live VMs at once (invocations, booted VMs, recordings). */
  maxVms: number;
  /** Sum of the guest memory of live VMs, MiB. */
  maxMemoryMiB: number;
  /**
   * Run every VMM process in a jail (process/jail.ts; docs/security.md). On by default; off only
   * when asked (--no-jail, FAASNAP_JAIL=0), which the daemon logs at warn.
   */
  jail: boolean;
  /** Invocations and deploys one client (remote address) may have in flight (CLIENT_LIMIT). */
  clientLimits: ClientLimitConfig;
  redis: RedisConfig;
  /** OTLP/HTTP traces endpoint (e.g. http://127.0.0.1:4318/v1/traces); traces are always kept locally. */
  otlpUrl?: string;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** What python/node functions boot: the built kernel and the full image unless told. */
  guest: GuestImage;
}

export type DaemonConfigInput = Partial<Omit<DaemonConfig, 'redis' | 'guest' | 'clientLimits'>> & {
  redis?: Partial<RedisConfig>;
  clientLimits?: Partial<ClientLimitConfig>;
  guest?: Partial<GuestImage>;
};

/**
 * The root image for agent runtimes: FAASNAP_GUEST_ROOTFS, else the full image (every workload)
 * if it is built, else small-node (Python + Node.js, hello-class functions) if that is built.
 */
export function defaultGuestRootfs(env: NodeJS.ProcessEnv): string {
  if (env.FAASNAP_GUEST_ROOTFS) return env.FAASNAP_GUEST_ROOTFS;
  const full = rootfsPath('full', { env });
  if (existsSync(full)) return full;
  const smallNode = rootfsPath('small-node', { env });
  return existsSync(smallNode) ? smallNode : full;
}

export function resolveConfig(
  input: DaemonConfigInput = {},
  env: NodeJS.ProcessEnv = process.env,
): DaemonConfig {
  const redisUrl = input.redis?.url ?? env.FAASNAP_REDIS_URL;
  const c: DaemonConfig = {
    host: input.host ?? '127.0.0.1',
    tokenFile: input.tokenFile ?? env.FAASNAP_TOKEN_FILE,
    tlsCert: input.tlsCert ?? env.FAASNAP_TLS_CERT,
    tlsKey: input.tlsKey ?? env.FAASNAP_TLS_KEY,
    port: input.port ?? DEFAULT_PORT,
    dataDir: resolve(input.dataDir ?? defaultDataDir(env)),
    poolSize: input.poolSize ?? 2,
    maxVms: input.maxVms ?? 8,
    maxMemoryMiB: input.maxMemoryMiB ?? 8192,
    jail: input.jail ?? env.FAASNAP_JAIL !== '0',
    clientLimits: {
      invocations: input.clientLimits?.invocations ?? 32,
      deploys: input.clientLimits?.deploys ?? 4,
    },
    redis: {
      url: redisUrl,
      password: input.redis?.password ?? env.FAASNAP_REDIS_PASSWORD,
      managed: input.redis?.managed ?? !redisUrl,
      binary: input.redis?.binary ?? 'redis-server',
    },
    otlpUrl: input.otlpUrl ?? env.FAASNAP_OTLP_URL,
    logLevel: input.logLevel ?? 'info',
    guest: {
      kernel: input.guest?.kernel ?? env.FAASNAP_GUEST_KERNEL ?? builtKernelPath(),
      rootfs: input.guest?.rootfs ?? defaultGuestRootfs(env),
      sanitisedPages: input.guest?.sanitisedPages ?? env.FAASNAP_GUEST_SANITISED_PAGES !== '0',
    },
  };
  const int = (v: number, min: number, max: number, what: string): void => {
    if (!Number.isInteger(v) || v < min || v > max)
      throw new FaasnapError('INVALID_VM_CONFIG', `${what} must be an integer in ${min}..${max}`);
  };
  int(c.port, 0, 65535, 'port');
  int(c.poolSize, 0, 64, 'poolSize');
  int(c.maxVms, 1, 4096, 'maxVms');
  int(c.maxMemoryMiB, 8, 1 << 24, 'maxMemoryMiB');
  int(c.clientLimits.invocations, 1, 1 << 16, 'clientLimits.invocations');
  int(c.clientLimits.deploys, 1, 1 << 16, 'clientLimits.deploys');
  if (!c.tlsCert !== !c.tlsKey)
    throw new FaasnapError('DAEMON_CONFIG', 'TLS needs both a certificate and its key');
  return c;
}

export function dataPaths(dataDir: string) {
  return {
    db: join(dataDir, 'faasnap.db'),
    snapshots: join(dataDir, 'snapshots'),
    redis: join(dataDir, 'redis'),
    /** Mount point of the VMM processes' jail roots (each in its own mount namespace). */
    jailRoot: join(dataDir, 'jail-root'),
  };
}
