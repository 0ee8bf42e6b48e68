// Per-client limits on work in flight: one client (one remote address) cannot hold every VM
// slot or every deploy of the daemon. Requests over a limit get CLIENT_LIMIT (429) at once
// instead of queueing; the daemon-wide limits on VMs and memory (daemon/vms.ts) stay as before.

import { FaasnapError } from '../common/errors.js';

export type ClientWork = 'invocations' | 'deploys';

export type ClientLimitConfig = Record<ClientWork, number>;

export class ClientLimits {
  private readonly inFlight = new Map<string, Record<ClientWork, number>>();

  constructor(private readonly limits: ClientLimitConfig) {}

  /**
   * Counts one more `kind` for `client` and returns the function that ends it (idempotent), or
   * throws CLIENT_LIMIT when the client already has its limit in flight.
   */
  acquire(client: string, kind: ClientWork): () => void {
    const counts = this.inFlight.get(client) ?? { invocations: 0, deploys: 0 };
    const limit = this.limits[kind];
    if (counts[kind] >= limit)
      throw new FaasnapError(
        'CLIENT_LIMIT',
        `this client already has ${counts[kind]} ${kind} in flight (limit ${limit})`,
        { kind, limit, client },
      );
    counts[kind]++;
    this.inFlight.set(client, counts);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      counts[kind]--;
      if (counts.invocations + counts.deploys === 0) this.inFlight.delete(client);
    };
  }

  /** Work in flight for `client` (tests, /healthz). */
  count(client: string, kind: ClientWork): number {
    return this.inFlight.get(client)?.[kind] ?? 0;
  }

  /** Clients with work in flight. */
  get clients(): number {
    return this.inFlight.size;
  }
}
