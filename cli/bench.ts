// `faasnap bench …`: benchmark harness commands. Results are raw samples plus summaries, written
// as JSON with the machine's details; never a pass/fail timing check.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { machineInfo } from '../bench/machine.js';
import type { Summary } from '../bench/stats.js';
import { runVmmBench } from '../bench/vmm.js';
import { intOption } from './options.js';

interface VmmOptions {
  repeats: number;
  pioIterations: number;
  irqIterations: number;
  out: string;
  json?: boolean;
}

export function registerBenchCommands(program: Command): void {
  const bench = program.command('bench').description('benchmarks (raw results kept as JSON)');
  bench
    .command('vmm')
    .description(
      'VM create → first guest exit, port-I/O exit round trip, ioeventfd → irqfd round trip',
    )
    .option('--repeats <n>', 'repetitions of each measurement', intOption(1, 1000), 10)
    .option(
      '--pio-iterations <n>',
      'port writes per port-I/O sample',
      intOption(2, 10_000_000),
      20_000,
    )
    .option(
      '--irq-iterations <n>',
      'round trips per ioeventfd/irqfd sample',
      intOption(2, 10_000_000),
      5_000,
    )
    .option('--out <dir>', 'directory for the raw results', 'bench/results')
    .option('--json', 'print the result document instead of a table')
    .action((opts: VmmOptions) => benchVmm(opts));
}

function row(name: string, unit: string, s: Summary): string {
  const f = (v: number) => v.toFixed(unit === 'ms' ? 2 : 1).padStart(9);
  return `${name.padEnd(34)} ${f(s.median)} ${f(s.p10)} ${f(s.p90)}  ${unit}  (n=${s.n})`;
}

async function benchVmm(opts: VmmOptions): Promise<void> {
  const startedAt = new Date().toISOString();
  const result = await runVmmBench({
    repeats: opts.repeats,
    pioIterations: opts.pioIterations,
    irqIterations: opts.irqIterations,
    onProgress: (what) => {
      if (process.stderr.isTTY) process.stderr.write(`\r\x1b[K${what}`);
    },
  });
  if (process.stderr.isTTY) process.stderr.write('\r\x1b[K');
  const doc = {
    bench: 'vmm',
    startedAt,
    command: `faasnap bench vmm --repeats ${opts.repeats} --pio-iterations ${opts.pioIterations} --irq-iterations ${opts.irqIterations}`,
    machine: machineInfo(),
    result,
  };
  const dir = resolve(opts.out);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `vmm-${startedAt.replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify(doc, null, 2) + '\n');
  if (opts.json) {
    console.log(JSON.stringify(doc, null, 2));
    return;
  }
  console.log(
    `machine: ${doc.machine.cpu}, ${doc.machine.cores} cores, KVM ${doc.machine.kvm}, kernel ${doc.machine.kernel}`,
  );
  console.log(
    `${'measurement'.padEnd(34)} ${'median'.padStart(9)} ${'p10'.padStart(9)} ${'p90'.padStart(9)}`,
  );
  console.log(row('VM create → first guest exit', 'ms', result.createToFirstExitMs.summary));
  console.log(row('port-I/O exit via TS bus', 'µs', result.pioRoundTripUs.summary));
  console.log(row('ioeventfd → TS → irqfd round trip', 'µs', result.irqRoundTripUs.summary));
  console.log(`raw results: ${file}`);
}
