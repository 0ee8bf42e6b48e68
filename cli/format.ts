// Human output helpers shared by CLI commands.

import type { PhaseTiming } from '../common/phases.js';

export function formatMs(ms: number): string {
  return ms < 1 ? `${(ms * 1000).toFixed(0)} µs` : `${ms.toFixed(2)} ms`;
}

/** A phase table: name, start offset and duration, aligned. */
export function phaseTable(phases: readonly PhaseTiming[], extra: [string, number][] = []): string {
  const rows: [string, string, string][] = phases.map((p) => [
    p.name,
    formatMs(p.startMs),
    formatMs(p.durationMs),
  ]);
  for (const [name, at] of extra) rows.push([name, formatMs(at), '']);
  const w0 = Math.max(5, ...rows.map((r) => r[0].length));
  const w1 = Math.max(8, ...rows.map((r) => r[1].length));
  const lines = [`${'phase'.padEnd(w0)}  ${'start'.padStart(w1)}  duration`];
  for (const [a, b, c] of rows) lines.push(`${a.padEnd(w0)}  ${b.padStart(w1)}  ${c}`.trimEnd());
  return lines.join('\n');
}
