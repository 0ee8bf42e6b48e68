// A pool of started, idle VMM processes (the original FaaSnap daemon keeps one too): taking a
// process costs a message, not a Node start-up (~0.3 s here) plus /dev/kvm set-up. Refills start
// at the lowest CPU priority: a refill begins exactly when a restore does, and at normal priority
// its start-up took CPU from the guest being resumed (priority.ts).

import { FaasnapError } from '../common/errors.js';
import { VmmProcess } from './client.js';
import type { JailSpec } from './jail.js';
import { canStartInBackground } from './priority.js';

export class VmmPool {
  private readonly idle: VmmProcess[] = [];
  private refilling = 0;
  private closed = false;
  /** Cancels the start-ups in flight when the pool closes. */
  private readonly closing = new AbortController();
  private readonly starting = new Set<Promise<void>>();

  /** `jail` gives each new process its jail (a uid of its own), if processes are jailed. */
  constructor(
    readonly size: number,
    private readonly jail?: () => JailSpec,
  ) {}

  /** Starts processes until `size` are idle. */
  async fill(): Promise<void> {
    const want = this.size - this.idle.length - this.refilling;
    await Promise.all(Array.from({ length: Math.max(0, want) }, () => this.spawnOne()));
  }

  get idleCount(): number {
    return this.idle.length;
  }

  /** An idle process (or a new one if none is idle); the pool refills in the background. */
  async take(): Promise<VmmProcess> {
    if (this.closed) throw new FaasnapError('VMM_START_FAILED', 'the VMM pool is closed');
    let p: VmmProcess | undefined;
    while ((p = this.idle.shift()) && !p.alive);
    void this.fill().catch(() => undefined);
    if (!p) return VmmProcess.spawn({ jail: this.jail?.() });
    p.foreground();
    return p;
  }

  /** Stops the idle processes and those still starting; resolves when all are gone. */
  async close(): Promise<void> {
    this.closed = true;
    this.closing.abort();
    await Promise.all(this.idle.splice(0).map((p) => p.kill()));
    await Promise.allSettled([...this.starting]);
  }

  private spawnOne(): Promise<void> {
    const started = this.startOne().finally(() => this.starting.delete(started));
    this.starting.add(started);
    return started;
  }

  private async startOne(): Promise<void> {
    this.refilling++;
    try {
      const p = await VmmProcess.spawn({
        background: canStartInBackground(),
        signal: this.closing.signal,
        jail: this.jail?.(),
      });
      if (this.closed) await p.kill();
      else this.idle.push(p);
    } finally {
      this.refilling--;
    }
  }
}
