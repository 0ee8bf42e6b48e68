// `faasnap bench …`: benchmark harness commands. Results are raw samples plus summaries, written
// as JSON with the machine's details; never a pass/fail timing check.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { machineInfo } from '../bench/machine.js';
import type { Summary } from '../bench/stats.js';
import { runLoaderBench } from '../bench/loaders.js';
import { runVmmBench } from '../bench/vmm.js';
import { runJailCost } from '../bench/jail-cost.js';
import { runSoak, type Resources } from '../bench/soak.js';
import { registerExperimentCommands } from '../bench/experiments/commands.js';
import { MEMORY_MODES, isMemoryMode, type MemoryMode } from '../loader/modes.js';
import { InvalidArgumentError } from 'commander';
import { intOption } from './options.js';

interface LoaderOptions {
  modes: MemoryMode[];
  repeats: number;
  dataMib: number;
  workingSetMib: number;
  out: string;
  json?: boolean;
}

function modesOption(value: string): MemoryMode[] {
  const modes = value.split(',').map((m) => m.trim());
  for (const m of modes) {
    if (!isMemoryMode(m))
      throw new InvalidArgumentError(`unknown mode ${m} (${MEMORY_MODES.join(', ')})`);
  }
  return modes as MemoryMode[];
}

const DEFAULT_LOADER_MODES: MemoryMode[] = [
  'cached',
  'vanilla',
  'eager',
  'reap',
  'faasnap',
  'faasnap-no-concurrent-paging',
  'faasnap-no-regions',
  'faasnap-no-compact-file',
];

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
  bench
    .command('loaders')
    .description(
      'memory loaders side by side on the CPL3 touch micro-guest (fresh pooled VMM per run)',
    )
    .option('--modes <list>', 'comma-separated memory modes', modesOption, DEFAULT_LOADER_MODES)
    .option('--repeats <n>', 'repetitions (modes interleaved)', intOption(1, 1000), 5)
    .option('--data-mib <n>', 'non-zero function state in the snapshot', intOption(1, 16384), 256)
    .option('--working-set-mib <n>', 'memory the function reads per run', intOption(1, 16384), 64)
    .option('--out <dir>', 'directory for the raw results', 'bench/results')
    .option('--json', 'print the result document instead of a table')
    .action((opts: LoaderOptions) => benchLoaders(opts));
  bench
    .command('soak')
    .description(
      "restore/invoke/teardown cycles through a daemon in this process; checks that the daemon's fds, threads, file mappings and child processes return to their baseline (RSS is reported)",
    )
    .option('--micro-cycles <n>', 'cycles of a micro touch function', intOption(0, 1e6), 1000)
    .option('--python-cycles <n>', 'cycles of the python hello function', intOption(0, 1e6), 200)
    .option('--modes <list>', 'memory modes, in rotation', modesOption, SOAK_MODES)
    .option('--out <dir>', 'directory for the raw results', 'bench/results')
    .action((opts: SoakOptions) => benchSoak(opts));
  bench
    .command('jail')
    .description(
      'the VMM process jail on the restore path: a jailed and an unjailed daemon in this process, invocations alternating',
    )
    .option('--modes <list>', 'comma-separated memory modes', modesOption, JAIL_COST_MODES)
    .option('--repeats <n>', 'repetitions (daemons and modes interleaved)', intOption(1, 1000), 7)
    .option('--out <dir>', 'directory for the raw results', 'bench/results')
    .action((opts: JailCostOptions) => benchJailCost(opts));
  registerExperimentCommands(bench);
}

const JAIL_COST_MODES: MemoryMode[] = ['faasnap', 'vanilla', 'eager'];

interface JailCostOptions {
  modes: MemoryMode[];
  repeats: number;
  out: string;
}

async function benchJailCost(opts: JailCostOptions): Promise<void> {
  const startedAt = new Date().toISOString();
  const doc = {
    bench: 'jail',
    startedAt,
    command: `faasnap bench jail --modes ${opts.modes.join(',')} --repeats ${opts.repeats}`,
    machine: machineInfo(),
  };
  // The samples are on disk as they come: a run that fails late keeps what it measured.
  const result = await runJailCost({
    ...opts,
    onProgress: progressLine,
    onSample: (samples) => saveResults(opts.out, 'jail', startedAt, { ...doc, partial: samples }),
  });
  if (process.stderr.isTTY) process.stderr.write('\r\x1b[K');
  const file = saveResults(opts.out, 'jail', startedAt, { ...doc, result });
  console.log(
    `${'daemon mode'.padEnd(22)} ${'pool-take'.padStart(10)} ${'restore'.padStart(10)} ${'of it view'.padStart(11)} ${'invocation'.padStart(11)}  (medians, ms)`,
  );
  for (const [k, s] of Object.entries(result.summary))
    console.log(
      `${k.padEnd(22)} ${s.poolTakeMs.median.toFixed(1).padStart(10)} ${s.restoreMs.median.toFixed(1).padStart(10)} ${s.viewMs.median.toFixed(2).padStart(11)} ${s.totalMs.median.toFixed(1).padStart(11)}`,
    );
  console.log(`raw results: ${file}`);
}

const SOAK_MODES: MemoryMode[] = ['eager', 'vanilla', 'cached', 'reap', 'faasnap'];

interface SoakOptions {
  microCycles: number;
  pythonCycles: number;
  modes: MemoryMode[];
  out: string;
}

/** A resource that grew by more than this over a soak is a leak (RSS is reported, not judged). */
const LEAK_TOLERANCE: Record<keyof Resources, number> = {
  fds: 0,
  threads: 0,
  fileMappings: 0,
  children: 0,
  rssMiB: Infinity,
};

async function benchSoak(opts: SoakOptions): Promise<void> {
  const startedAt = new Date().toISOString();
  const result = await runSoak({ ...opts, onProgress: progressLine });
  if (process.stderr.isTTY) process.stderr.write('\r\x1b[K');
  const doc = {
    bench: 'soak',
    startedAt,
    command: `faasnap bench soak --micro-cycles ${opts.microCycles} --python-cycles ${opts.pythonCycles} --modes ${opts.modes.join(',')}`,
    machine: machineInfo(),
    result,
  };
  const file = saveResults(opts.out, 'soak', startedAt, doc);
  let leaks = 0;
  for (const p of result.phases) {
    console.log(
      `${p.function} (${p.runtime}): ${p.cycles} cycles in ${(p.durationMs / 1000).toFixed(0)} s, ${(p.durationMs / p.cycles).toFixed(0)} ms each, ${p.failures.length} failed`,
    );
    for (const k of Object.keys(LEAK_TOLERANCE) as (keyof Resources)[]) {
      const delta = p.after[k] - p.before[k];
      const leak = delta > LEAK_TOLERANCE[k];
      if (leak) leaks++;
      const f = (v: number) => (k === 'rssMiB' ? v.toFixed(1) : String(v));
      console.log(
        `  ${k.padEnd(12)} ${f(p.before[k]).padStart(8)} → ${f(p.after[k]).padStart(8)}  (${delta >= 0 ? '+' : ''}${f(delta)})${leak ? '  LEAK' : ''}`,
      );
    }
    for (const x of p.failures.slice(0, 5)) console.log(`  cycle ${x.cycle}: ${x.error}`);
  }
  console.log(`raw results: ${file}`);
  if (leaks > 0 || result.phases.some((p) => p.failures.length > 0)) process.exitCode = 1;
}

function progressLine(what: string): void {
  if (process.stderr.isTTY) process.stderr.write(`\r\x1b[K${what}`);
  else process.stderr.write(`${what}\n`);
}

function saveResults(outDir: string, name: string, startedAt: string, doc: unknown): string {
  const dir = resolve(outDir);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${name}-${startedAt.replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify(doc, null, 2) + '\n');
  return file;
}

async function benchLoaders(opts: LoaderOptions): Promise<void> {
  const startedAt = new Date().toISOString();
  const result = await runLoaderBench({
    modes: opts.modes,
    repeats: opts.repeats,
    dataMiB: opts.dataMib,
    workingSetPages: (opts.workingSetMib * 1024 * 1024) / 4096,
    onProgress: progressLine,
  });
  if (process.stderr.isTTY) process.stderr.write('\r\x1b[K');
  const doc = {
    bench: 'loaders',
    startedAt,
    command: `faasnap bench loaders --modes ${opts.modes.join(',')} --repeats ${opts.repeats} --data-mib ${opts.dataMib} --working-set-mib ${opts.workingSetMib}`,
    machine: machineInfo(),
    result,
  };
  const file = saveResults(opts.out, 'loaders', startedAt, doc);
  if (opts.json) {
    console.log(JSON.stringify(doc, null, 2));
    return;
  }
  const cached = result.summary.cached?.e2eMs.median;
  console.log(`machine: ${doc.machine.cpu}, ${doc.machine.cores} cores, KVM ${doc.machine.kvm}`);
  console.log(
    `snapshot ${(result.snapshotBytes / 2 ** 20).toFixed(0)} MiB, loading set ${(result.loadingSetBytes / 2 ** 20).toFixed(1)} MiB (recorded in ${result.recordMs.toFixed(0)} ms)`,
  );
  const { limit } = result;
  console.log(
    `physical limit: loading-set read alone ${limit.readMs.median.toFixed(1)} ms (dropped cache), warm ${limit.warmMs === undefined ? 'n/a (no cached mode)' : `${limit.warmMs.toFixed(1)} ms (cached run phase)`}`,
  );
  console.log(
    `${'mode'.padEnd(30)} ${'e2e ms'.padStart(9)} ${'p10'.padStart(8)} ${'p90'.padStart(8)} ${'restore'.padStart(8)} ${'majflt'.padStart(8)} ${'read MiB'.padStart(9)} ${'vs cached'.padStart(9)} ${'- limit'.padStart(9)} ${'vs limit'.padStart(9)}`,
  );
  for (const [mode, s] of Object.entries(result.summary)) {
    const ratio = cached ? (s.e2eMs.median / cached).toFixed(2) + 'x' : '';
    const d = limit.distances[mode];
    console.log(
      `${mode.padEnd(30)} ${s.e2eMs.median.toFixed(1).padStart(9)} ${s.e2eMs.p10.toFixed(1).padStart(8)} ${s.e2eMs.p90.toFixed(1).padStart(8)} ${s.restoreMs.median.toFixed(1).padStart(8)} ${s.majorFaults.median.toFixed(0).padStart(8)} ${s.readMiB.median.toFixed(1).padStart(9)} ${ratio.padStart(9)} ${(d ? d.distanceMs.toFixed(1) : '').padStart(9)} ${(d ? d.ratio.toFixed(2) + 'x' : '').padStart(9)}`,
    );
  }
  console.log(`raw results: ${file}`);
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
    onProgress: progressLine,
  });
  if (process.stderr.isTTY) process.stderr.write('\r\x1b[K');
  const doc = {
    bench: 'vmm',
    startedAt,
    command: `faasnap bench vmm --repeats ${opts.repeats} --pio-iterations ${opts.pioIterations} --irq-iterations ${opts.irqIterations}`,
    machine: machineInfo(),
    result,
  };
  const file = saveResults(opts.out, 'vmm', startedAt, doc);
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
