// `faasnap bench e1|e2|e3|e4|run|report|slow-storage`: the experiment commands, registered on
// the `bench` command by cli/bench.ts.

import { InvalidArgumentError, type Command } from 'commander';
import cliProgress from 'cli-progress';
import { INVOKE_MODES } from '../../daemon/schemas.js';
import { writeReport } from '../report/report.js';
import { loadConfig, type SettingName } from './config.js';
import { runExperiment, type Progress } from './runner.js';
import {
  DEFAULT_MOUNT_POINT,
  DEFAULT_STATE_DIR,
  delayfsStats,
  readState,
  setupSlowStorage,
  storageOf,
  teardownSlowStorage,
} from './slow-storage.js';

interface RunOptions {
  url?: string;
  out: string;
  functions?: string[];
  settings?: SettingName[];
  repeats?: number;
  redeploy?: boolean;
  cleanup?: boolean;
  loadInputs: boolean;
  allowLocalStorage?: boolean;
  report: boolean;
  reportDir: string;
}

const list = (v: string): string[] =>
  v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

function settingsOption(v: string): SettingName[] {
  const s = list(v);
  for (const m of s)
    if (!(INVOKE_MODES as readonly string[]).includes(m))
      throw new InvalidArgumentError(`unknown setting ${m} (${INVOKE_MODES.join(', ')})`);
  return s as SettingName[];
}

function positiveInt(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < 1 || n > 1000) throw new InvalidArgumentError('an integer 1..1000');
  return n;
}

function positiveNumber(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('a positive number');
  return n;
}

/** A cli-progress bar on a terminal, plain lines otherwise (CI logs). */
export function terminalProgress(stream: NodeJS.WriteStream = process.stderr): Progress {
  if (!stream.isTTY) {
    let done = 0;
    let total = 0;
    return {
      start: (t) => {
        total = t;
      },
      tick: (label) => stream.write(`[${++done}/${total}] ${label}\n`),
      log: (m) => stream.write(`${m}\n`),
      stop: () => undefined,
    };
  }
  const multi = new cliProgress.MultiBar(
    {
      stream,
      format:
        ' {bar} {value}/{total} | {duration_formatted} elapsed, ETA {eta_formatted} | {label}',
      hideCursor: true,
      clearOnComplete: false,
    },
    cliProgress.Presets.shades_classic,
  );
  let bar: cliProgress.SingleBar | undefined;
  return {
    start: (total) => {
      bar = multi.create(total, 0, { label: 'starting' });
    },
    tick: (label) => bar?.increment(1, { label }),
    log: (m) => multi.log(`${m}\n`),
    stop: () => multi.stop(),
  };
}

function addRunOptions(c: Command): Command {
  return c
    .option('--url <url>', 'daemon URL (default: FAASNAP_URL or the running daemon)')
    .option('--out <dir>', 'parent directory of the raw results', 'bench/results')
    .option('--functions <list>', 'only these functions (comma-separated config names)', list)
    .option('--settings <list>', 'override the settings (comma-separated modes)', settingsOption)
    .option('--repeats <n>', 'override the repeats', positiveInt)
    .option('--redeploy', 'deploy again even when an identical ready function exists')
    .option('--cleanup', 'delete the registered functions and their snapshots at the end')
    .option('--no-load-inputs', "do not upload missing input objects from the config's inputsDir")
    .option(
      '--allow-local-storage',
      'run a slow-storage config (E4) even though the snapshots are on local storage',
    )
    .option('--no-report', 'do not write the report')
    .option('--report-dir <dir>', 'parent directory of the report', 'docs/results');
}

async function run(config: string, o: RunOptions, command: string): Promise<void> {
  const c = loadConfig(config);
  const { dir, doc } = await runExperiment(c, {
    url: o.url,
    outDir: o.out,
    functions: o.functions,
    settings: o.settings,
    repeats: o.repeats,
    redeploy: o.redeploy,
    cleanup: o.cleanup,
    loadInputs: o.loadInputs,
    allowLocalStorage: o.allowLocalStorage,
    progress: terminalProgress(),
    command,
  });
  const ok = doc.samples.filter((s) => s.status === 'succeeded').length;
  console.log(`${doc.samples.length} invocations (${ok} succeeded); raw results: ${dir}`);
  for (const f of doc.functions) if (f.skipped) console.log(`skipped ${f.name}: ${f.skipped}`);
  if (o.report) {
    const r = writeReport(dir, o.reportDir);
    for (const t of r.ratios.targets)
      console.log(`${t.id} ${t.verdict.padEnd(4)} ${t.text}: ${t.detail}`);
    console.log(`report: ${r.dir}/README.md`);
  }
}

export function registerExperimentCommands(bench: Command): void {
  for (const [name, what] of [
    ['e1', 'E1: record input 0, test input 1, every function (SPEC §6)'],
    ['e2', 'E2: record input 2, test inputs 0, 1, 3, 4, 5'],
    ['e3', 'E3: 1/2/4/8 concurrent invocations from one snapshot and from copies'],
    ['e4', 'E4: E1 on slow storage with interval thresholds 0'],
  ] as const)
    addRunOptions(
      bench.command(name).description(`${what} (bench/experiments/${name}.json)`),
    ).action((o: RunOptions) => run(name, o, `faasnap bench ${process.argv.slice(3).join(' ')}`));
  addRunOptions(
    bench
      .command('run <config>')
      .description('run an experiment config (a name in bench/experiments/, e.g. tiny, or a path)'),
  ).action((config: string, o: RunOptions) =>
    run(config, o, `faasnap bench ${process.argv.slice(3).join(' ')}`),
  );
  bench
    .command('report <run-dir>')
    .description('markdown tables and SVG charts of a run, into docs/results/<run>/')
    .option('--out <dir>', 'parent directory of the report', 'docs/results')
    .action((runDir: string, o: { out: string }) => {
      const r = writeReport(runDir, o.out);
      for (const t of r.ratios.targets)
        console.log(`${t.id} ${t.verdict.padEnd(4)} ${t.text}: ${t.detail}`);
      console.log(`wrote ${r.files.length} files to ${r.dir}`);
    });

  const slow = bench
    .command('slow-storage')
    .description(
      'emulated remote storage for E4: ext4 on a loop device over a delaying FUSE file (root)',
    );
  slow
    .command('setup')
    .description('build delayfs, mount the slow file system (idempotent)')
    .option('--state-dir <dir>', 'image, FUSE mount and state file', DEFAULT_STATE_DIR)
    .option('--mount <dir>', 'mount point of the slow ext4', DEFAULT_MOUNT_POINT)
    .option('--size-mib <n>', 'size of the (sparse) device', positiveNumber, 32768)
    .option('--latency-us <n>', 'latency per request', positiveNumber, 1000)
    .option('--bandwidth-mib <n>', 'link bandwidth, MiB/s', positiveNumber, 150)
    .action(
      async (o: {
        stateDir: string;
        mount: string;
        sizeMib: number;
        latencyUs: number;
        bandwidthMib: number;
      }) => {
        const s = await setupSlowStorage({
          stateDir: o.stateDir,
          mountPoint: o.mount,
          sizeMiB: o.sizeMib,
          latencyUs: o.latencyUs,
          bandwidthMiBps: o.bandwidthMib,
        });
        console.log(
          `slow storage at ${s.mountPoint} (${s.loop} over ${s.fuseDir}/disk, ${s.latencyUs} µs + ${s.bandwidthMiBps} MiB/s)`,
        );
        console.log(`start the daemon on it: faasnap daemon --data-dir ${s.mountPoint}/faasnap`);
      },
    );
  slow
    .command('teardown')
    .description('unmount, detach the loop device, stop delayfs, delete the image')
    .option('--state-dir <dir>', 'as given to setup', DEFAULT_STATE_DIR)
    .action(async (o: { stateDir: string }) => {
      console.log((await teardownSlowStorage(o.stateDir)) ? 'torn down' : 'nothing set up');
    });
  slow
    .command('status [path]')
    .description('the set-up and its counters; with a path: whether it lies on delayed storage')
    .option('--state-dir <dir>', 'as given to setup', DEFAULT_STATE_DIR)
    .action((path: string | undefined, o: { stateDir: string }) => {
      const s = readState(o.stateDir);
      if (s) console.log(JSON.stringify({ ...s, stats: delayfsStats(s) }, null, 2));
      else console.log('not set up');
      if (path) console.log(JSON.stringify(storageOf(path), null, 2));
    });
}
