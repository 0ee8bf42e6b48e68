// The raw result document of an experiment run (bench/results/<experiment>-<timestamp>/):
// results.json holds the resolved config, the machine, every sample and the deploy details;
// results.csv has one row per sample for spreadsheets and R/pandas.

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MachineInfo } from '../machine.js';
import type { Experiment, SettingName } from './config.js';

export interface SampleError {
  code: string;
  message: string;
}

/** One invocation of one function in one setting. */
export interface Sample {
  function: string;
  setting: SettingName;
  record: number;
  test: number;
  /** The test params equal the record params (the paper's "same input" case). */
  sameInput: boolean;
  repeat: number;
  parallelism: number;
  snapshots: 'same' | 'separate';
  /** Which of the `parallelism` concurrent invocations (0-based). */
  slot: number;
  snapshot: string | null;
  invocation: string | null;
  traceId: string | null;
  /** succeeded; failed = the function failed (HTTP 200); error = an API error. */
  status: 'succeeded' | 'failed' | 'error';
  error: SampleError | null;
  /** Wall time of the HTTP request, as the client sees it. */
  clientMs: number;
  /** The daemon's invocation duration (pool-take … teardown). */
  durationMs: number | null;
  /**
   * The measured latency: the daemon's duration without `page-cache-load` (the cached setting's
   * preparation, done before the request in the paper) and `teardown` (after the answer).
   */
  e2eMs: number | null;
  /** Phase name → milliseconds (summed when a phase repeats). */
  phases: Record<string, number>;
  readMs: number | null;
  processMs: number | null;
  writeMs: number | null;
  /**
   * The restored VMM process's page faults and bytes it read from storage (restore through the
   * end of the function), from the invocation's trace; null for warm hits and older runs.
   */
  vmm?: VmmCounters | null;
  startedAt: string;
}

export interface VmmCounters {
  majorFaults: number;
  minorFaults: number;
  readBytes: number;
}

export interface FunctionDeploy {
  name: string;
  registeredAs: string;
  runtime: string;
  handler: string;
  snapshot: string | null;
  snapshotDir: string | null;
  deployMs: number | null;
  reused: boolean;
  recordParams: Record<string, unknown>;
  /** GET /snapshots/{id}/inspect of the ready snapshot (sizes, loading set, REAP set). */
  inspect: unknown;
  skipped: string | null;
}

export interface RunDoc {
  bench: 'experiment';
  format: 1;
  experiment: string;
  startedAt: string;
  /** When the samples were last written: runs are saved after every function. */
  finishedAt: string;
  /** True while the run is going on, and for good if it stopped before the end. */
  partial?: boolean;
  command: string;
  machine: MachineInfo;
  daemon: {
    url: string;
    version: string | null;
    dataDevice: string | null;
    /** The guest kernel and root image the daemon boots (absent in older runs). */
    guest?: { kernel: string | null; rootfs: string | null; sanitisedPages?: boolean } | null;
  };
  config: Experiment;
  functions: FunctionDeploy[];
  samples: Sample[];
}

export const RESULTS_JSON = 'results.json';
export const RESULTS_CSV = 'results.csv';

/** Phases that get their own CSV column (others are in the JSON only). */
export const CSV_PHASES = [
  'pool-take',
  'page-cache-load',
  'restore',
  'snapshot-view',
  'state-load',
  'vm-restore',
  'memory-mapping',
  'input-write',
  'vcpu-resume',
  'guest-run',
  'loader-progress',
  'teardown',
];

const CSV_COLUMNS: (keyof Sample)[] = [
  'function',
  'setting',
  'record',
  'test',
  'sameInput',
  'repeat',
  'parallelism',
  'snapshots',
  'slot',
  'status',
  'e2eMs',
  'durationMs',
  'clientMs',
  'readMs',
  'processMs',
  'writeMs',
  'snapshot',
  'invocation',
  'traceId',
  'startedAt',
];

function csvCell(v: unknown): string {
  if (v === null || v === undefined) return '';
  const s = typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(3)) : String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function toCsv(samples: readonly Sample[]): string {
  const head = [...CSV_COLUMNS, ...CSV_PHASES.map((p) => `phase:${p}`), 'errorCode', 'error'];
  const rows = samples.map((s) =>
    [
      ...CSV_COLUMNS.map((c) => csvCell(s[c])),
      ...CSV_PHASES.map((p) => csvCell(s.phases[p])),
      csvCell(s.error?.code),
      csvCell(s.error?.message),
    ].join(','),
  );
  return [head.join(','), ...rows].join('\n') + '\n';
}

export function runDirName(experiment: string, startedAt: string): string {
  return `${experiment}-${startedAt.replace(/[:.]/g, '-')}`;
}

export function writeRun(dir: string, doc: RunDoc): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, RESULTS_JSON), JSON.stringify(doc, null, 2) + '\n');
  writeFileSync(join(dir, RESULTS_CSV), toCsv(doc.samples));
}

export function readRun(dir: string): RunDoc {
  const file = join(dir, RESULTS_JSON);
  const doc = JSON.parse(readFileSync(file, 'utf8')) as RunDoc;
  if (doc.bench !== 'experiment' || !Array.isArray(doc.samples))
    throw new Error(`${file} is not an experiment result (bench: ${String(doc.bench)})`);
  return doc;
}
