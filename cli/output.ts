// Options and output of the CLI commands that talk to the daemon (through client/daemon.ts).

import type { Command } from 'commander';
import type { ClientOptions } from '../client/daemon.js';

/** Adds --url and --json to a command. */
export function clientOptions(c: Command): Command {
  return c
    .option('--url <url>', 'daemon URL (default: FAASNAP_URL or the running daemon)')
    .option('--json', 'print JSON');
}

/** Prints JSON with --json, else the human rendering. */
export function output(o: ClientOptions, value: unknown, human: () => string): void {
  console.log(o.json ? JSON.stringify(value, null, 2) : human());
}

/** Left-aligned columns. */
export function table(rows: string[][]): string {
  if (rows.length === 0) return '';
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}
