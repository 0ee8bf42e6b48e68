// `faasnap snapshot …` and `faasnap vm restore`: create, record, inspect and restore snapshots
// directly (no daemon). Micro-guest inputs are parameter blobs placed into guest RAM before the
// restored VM resumes.

import { readFileSync } from 'node:fs';
import { InvalidArgumentError, type Command } from 'commander';
import { MICRO_PARAM_GPA } from '../guest/micro/index.js';
import { MEMORY_MODES, isMemoryMode, type MemoryMode } from '../loader/modes.js';
import { loadingSetSize } from '../loader/loading-set.js';
import { recordFaasnap, recordReap } from '../restore/record.js';
import { inspectSnapshot } from '../restore/inspect.js';
import { restoreSnapshot } from '../restore/snapshot.js';
import type { Vm } from '../vmm/vm.js';
import { formatMs, phaseTable } from './format.js';
import { durationOption, intOption } from './options.js';

function modeOption(v: string): MemoryMode {
  if (!isMemoryMode(v)) throw new InvalidArgumentError(`must be one of ${MEMORY_MODES.join(', ')}`);
  return v;
}

function placeInput(vm: Vm, file: string | undefined): void {
  if (file) vm.memory.write(MICRO_PARAM_GPA, readFileSync(file));
}

const MiB = (n: number): string => `${(n / 2 ** 20).toFixed(1)} MiB`;

export function registerSnapshotCommands(program: Command, vm: Command): void {
  vm.command('restore <snapshot-dir>')
    .description('restore a snapshot in a memory mode, run it to completion, print phase timings')
    .requiredOption('--mode <mode>', `memory mode (${MEMORY_MODES.join(', ')})`, modeOption)
    .option('--input <file>', 'micro-guest parameter blob placed into guest RAM before resume')
    .option('--timeout <duration>', 'stop the guest after this long', durationOption, 60_000)
    .action(async (dir: string, o: { mode: MemoryMode; input?: string; timeout: number }) => {
      const t0 = performance.now();
      const v = await restoreSnapshot(dir, { mode: o.mode });
      const restoredMs = performance.now() - t0;
      v.console.onOutput((c) => process.stdout.write(c));
      placeInput(v, o.input);
      v.resume();
      const exit = await v.runToCompletion(o.timeout).catch((e: unknown) => {
        v.stop();
        throw e;
      });
      const prefetch = await v.loader?.prefetch;
      console.log(`\n--- guest stopped: ${exit.reason}`);
      console.log(phaseTable(v.phases.phases));
      console.log(
        `restore ${formatMs(restoredMs)}, end to end ${formatMs(performance.now() - t0)}`,
      );
      if (prefetch)
        console.log(`concurrent paging read ${MiB(prefetch.bytes)} in ${formatMs(prefetch.ms)}`);
    });

  const snap = program
    .command('snapshot')
    .description('snapshot files: record working sets, inspect');
  snap
    .command('record <snapshot-dir>')
    .description(
      'run the snapshot once with an input and record its working set (faasnap and/or reap)',
    )
    .option('--input <file>', 'micro-guest parameter blob (the record input)')
    .option('--kind <kind>', 'faasnap, reap or both', 'both')
    .option(
      '--mincore-size <pages>',
      'scan after RSS grew by this many pages',
      intOption(1, 1 << 30),
      1024,
    )
    .option('--interval-ms <ms>', 'scan on a fixed interval instead', intOption(1, 60_000))
    .option(
      '--interval-threshold <pages>',
      'zero gaps shorter than this are merged',
      intOption(0, 1 << 30),
      32,
    )
    .option('--timeout <duration>', 'stop the guest after this long', durationOption, 120_000)
    .action(
      async (
        dir: string,
        o: {
          input?: string;
          kind: string;
          mincoreSize: number;
          intervalMs?: number;
          intervalThreshold: number;
          timeout: number;
        },
      ) => {
        if (!['faasnap', 'reap', 'both'].includes(o.kind))
          throw new InvalidArgumentError('--kind: faasnap, reap or both');
        const run = async (v: Vm): Promise<void> => {
          await v.runToCompletion(o.timeout);
        };
        const prepare = (v: Vm): void => placeInput(v, o.input);
        if (o.kind !== 'reap') {
          const r = await recordFaasnap(dir, run, {
            prepare,
            mincoreSize: o.mincoreSize,
            intervalMs: o.intervalMs,
            intervalThreshold: o.intervalThreshold,
          });
          console.log(
            `faasnap: ${r.scans} mincore scans, working set ${MiB(r.workingSetPages * 4096)}, loading set ${MiB(loadingSetSize(r.manifest.regions))} in ${r.manifest.regions.length} regions (${formatMs(r.recordMs)})`,
          );
        }
        if (o.kind !== 'faasnap') {
          const r = await recordReap(dir, run, { prepare });
          console.log(
            `reap: ${r.pages} pages faulted, working set ${MiB(r.pages * 4096)} (${formatMs(r.recordMs)})`,
          );
        }
      },
    );

  snap
    .command('inspect <snapshot-dir>')
    .description(
      'sizes, VM config, non-zero regions, FaaSnap groups and loading set, REAP working set',
    )
    .option('--json', 'print JSON')
    .action(async (dir: string, o: { json?: boolean }) => {
      const info = { dir, ...(await inspectSnapshot(dir)) };
      if (o.json) {
        console.log(JSON.stringify(info, null, 2));
        return;
      }
      console.log(`snapshot ${dir}  (${info.cpuTemplate}, ${JSON.stringify(info.config)})`);
      console.log(`state file ${info.stateFileBytes} B, checksum ${info.checksum.slice(0, 16)}…`);
      console.log(
        `memory ${MiB(info.memoryBytes)}, non-zero ${MiB(info.nonZero.bytes)} in ${info.nonZero.regions} regions`,
      );
      if (info.loadingSet) {
        console.log(
          `loading set ${MiB(info.loadingSet.bytes)} in ${info.loadingSet.regions} regions from ${info.loadingSet.scans} scans`,
        );
        for (const g of info.loadingSet.groups)
          console.log(`  group ${String(g.group).padStart(3)}: ${MiB(g.bytes)}`);
      } else console.log('loading set: not recorded');
      console.log(
        info.reap
          ? `reap working set ${info.reap.pages} pages (${MiB(info.reap.bytes)})`
          : 'reap: not recorded',
      );
    });
}
