// Everything a route handler may use: the daemon's services, built once by createDaemon().

import type { ClientLimits } from './client-limits.js';
import type { DaemonConfig } from './config.js';
import type { Deployer } from './deploy.js';
import type { Invoker } from './invoker.js';
import type { Lifecycle } from './lifecycle.js';
import type { Metrics } from './metrics.js';
import type { ObjectStore } from './redis.js';
import type { Runtimes } from './runtime/index.js';
import type { Snapshots } from './snapshots.js';
import type { Store } from './store/index.js';
import type { Traces } from './traces.js';
import type { VmManager } from './vms.js';

export interface DaemonContext {
  config: DaemonConfig;
  store: Store;
  vms: VmManager;
  snapshots: Snapshots;
  runtimes: Runtimes;
  lifecycle: Lifecycle;
  invoker: Invoker;
  deployer: Deployer;
  traces: Traces;
  metrics: Metrics;
  objects: ObjectStore;
  clientLimits: ClientLimits;
  /** Whether VMM processes are jailed and what the host lacks for it (checked at start). */
  jail: { enabled: boolean; missing: string[] };
  startedAt: number;
  version: string;
}
