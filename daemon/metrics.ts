// Prometheus metrics of one daemon (own registry, so several daemons in one process — tests —
// do not share counters).

import { Counter, Gauge, Histogram, Registry } from 'prom-client';

const LATENCY_BUCKETS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
];

export class Metrics {
  readonly registry = new Registry();
  readonly invocations = new Counter({
    name: 'faasnap_invocations_total',
    help: 'Invocations by function, mode and outcome (succeeded, failed, error)',
    labelNames: ['function', 'mode', 'status'] as const,
    registers: [this.registry],
  });
  readonly latency = new Histogram({
    name: 'faasnap_invocation_duration_seconds',
    help: 'End-to-end invocation latency by memory mode',
    labelNames: ['mode'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly phase = new Histogram({
    name: 'faasnap_invocation_phase_seconds',
    help: 'Duration of each invocation phase by memory mode',
    labelNames: ['mode', 'phase'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly restoreFailures = new Counter({
    name: 'faasnap_restore_failures_total',
    help: 'Snapshot restores that failed, by mode and error code',
    labelNames: ['mode', 'code'] as const,
    registers: [this.registry],
  });
  readonly vmmCrashes = new Counter({
    name: 'faasnap_vmm_crashes_total',
    help: 'VMM processes that exited unexpectedly',
    registers: [this.registry],
  });
  readonly warmEvictions = new Counter({
    name: 'faasnap_warm_evictions_total',
    help: 'Idle warm VMs stopped to free capacity for another VM',
    labelNames: ['function'] as const,
    registers: [this.registry],
  });
  readonly deploys = new Counter({
    name: 'faasnap_deploys_total',
    help: 'Deploy chains by outcome',
    labelNames: ['status'] as const,
    registers: [this.registry],
  });

  constructor(sources: { poolSize: number; poolIdle: () => number; vms: () => number }) {
    new Gauge({
      name: 'faasnap_vmm_pool_size',
      help: 'Configured number of idle VMM processes kept ready',
      registers: [this.registry],
      collect() {
        this.set(sources.poolSize);
      },
    });
    new Gauge({
      name: 'faasnap_vmm_pool_idle',
      help: 'Idle VMM processes ready now',
      registers: [this.registry],
      collect() {
        this.set(sources.poolIdle());
      },
    });
    new Gauge({
      name: 'faasnap_vms_live',
      help: 'Live VMs (invocations, booted VMs, recordings)',
      registers: [this.registry],
      collect() {
        this.set(sources.vms());
      },
    });
  }
}
