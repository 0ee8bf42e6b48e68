// Wall-clock timings of named phases (create, memory, vcpus, ...), in the order they ran.
// Cheap enough for hot paths: one performance.now() per boundary.

import { performance } from 'node:perf_hooks';

export interface PhaseTiming {
  name: string;
  /** Start relative to the timer's origin, in milliseconds. */
  startMs: number;
  durationMs: number;
}

export class PhaseTimer {
  readonly origin = performance.now();
  readonly phases: PhaseTiming[] = [];

  measure<T>(name: string, fn: () => T): T {
    const start = performance.now();
    try {
      return fn();
    } finally {
      this.record(name, start);
    }
  }

  /** Records a phase that started at `start` (a performance.now() value) and ends now. */
  record(name: string, start: number): void {
    const now = performance.now();
    this.phases.push({ name, startMs: start - this.origin, durationMs: now - start });
  }

  /** Milliseconds since the timer was created. */
  elapsed(): number {
    return performance.now() - this.origin;
  }
}
