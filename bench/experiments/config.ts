// Experiment configs (bench/experiments/*.json): which functions, with which inputs, under which
// settings, how often, how many at a time. A TypeBox schema checked on load; semantic checks
// (input indices in range, unique names) follow, and every problem is reported with its path.
// A config may `extend` another one (path relative to itself): top-level keys are replaced.

import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { FUNCTION_NAME, INVOKE_MODES, RUNTIMES } from '../../daemon/schemas.js';

/** bench/experiments/ in the source tree (this file runs from dist/bench/experiments/). */
export const EXPERIMENTS_DIR = resolve(
  dirname(fileURLToPath(import.meta.url)),
  '../../../bench/experiments',
);
/** The repository root (relative `inputsDir`s are resolved against it). */
export const REPO_ROOT = resolve(EXPERIMENTS_DIR, '../..');

export const Setting = Type.Union(
  INVOKE_MODES.map((m) => Type.Literal(m)),
  { description: 'a daemon invocation mode (daemon/schemas.ts INVOKE_MODES)' },
);
export type SettingName = (typeof INVOKE_MODES)[number];

/** Function params: the paper's handlers take strings; micro-guests also take numbers/arrays. */
const Params = Type.Record(Type.String(), Type.Unknown());

export const FunctionEntry = Type.Object(
  {
    name: Type.String({ pattern: FUNCTION_NAME, description: 'name in results and reports' }),
    runtime: Type.Union(RUNTIMES.map((r) => Type.Literal(r))),
    handler: Type.String({ minLength: 1, maxLength: 128 }),
    code: Type.Optional(Type.String()),
    memoryMiB: Type.Optional(Type.Integer({ minimum: 8, maximum: 65536 })),
    vcpus: Type.Optional(Type.Integer({ minimum: 1, maximum: 8 })),
    timeoutMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 600_000 })),
    stateMiB: Type.Optional(Type.Integer({ minimum: 0, maximum: 65536 })),
    inputs: Type.Array(Params, {
      minItems: 1,
      description: 'params per input index (SPEC §6 tables)',
    }),
    record: Type.Optional(Type.Integer({ minimum: 0, description: 'overrides the config record' })),
    tests: Type.Optional(Type.Array(Type.Integer({ minimum: 0 }), { minItems: 1 })),
    note: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);
export type FunctionEntryT = Static<typeof FunctionEntry>;

export const Parallelism = Type.Object(
  {
    n: Type.Integer({ minimum: 1, maximum: 64 }),
    snapshots: Type.Union([Type.Literal('same'), Type.Literal('separate')], {
      description: 'same: n restores of one snapshot; separate: n snapshot copies, one each',
    }),
  },
  { additionalProperties: false },
);
export type ParallelismT = Static<typeof Parallelism>;

export const ExperimentConfig = Type.Object(
  {
    $schema: Type.Optional(Type.String()),
    name: Type.String({ pattern: '^[a-z0-9][a-z0-9_-]*$' }),
    experiment: Type.Union([
      Type.Literal('E1'),
      Type.Literal('E2'),
      Type.Literal('E3'),
      Type.Literal('E4'),
      Type.Literal('custom'),
    ]),
    description: Type.String(),
    settings: Type.Array(Setting, { minItems: 1, uniqueItems: true }),
    repeats: Type.Integer({ minimum: 1, maximum: 1000 }),
    record: Type.Integer({ minimum: 0, description: 'input index used to deploy and record' }),
    tests: Type.Array(Type.Integer({ minimum: 0 }), { minItems: 1, uniqueItems: true }),
    defaults: Type.Optional(
      Type.Object(
        {
          memoryMiB: Type.Optional(Type.Integer({ minimum: 8, maximum: 65536 })),
          vcpus: Type.Optional(Type.Integer({ minimum: 1, maximum: 8 })),
          timeoutMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 600_000 })),
        },
        { additionalProperties: false },
      ),
    ),
    functions: Type.Array(FunctionEntry, { minItems: 1 }),
    parallelism: Type.Optional(Type.Array(Parallelism, { minItems: 1 })),
    recording: Type.Optional(
      Type.Object(
        {
          mincoreSize: Type.Optional(Type.Integer({ minimum: 1 })),
          intervalThreshold: Type.Optional(Type.Integer({ minimum: 0 })),
        },
        { additionalProperties: false },
      ),
    ),
    storage: Type.Optional(
      Type.Object(
        {
          kind: Type.Union([Type.Literal('local'), Type.Literal('slow')]),
          note: Type.Optional(Type.String()),
        },
        { additionalProperties: false },
      ),
    ),
    inputsDir: Type.Optional(
      Type.String({ description: 'files for *_object_key params (relative to the repo root)' }),
    ),
    namePrefix: Type.Optional(
      Type.String({ pattern: '^[a-z0-9_-]*$', description: 'prefix of registered names' }),
    ),
    baseline: Type.Optional(Setting),
  },
  { additionalProperties: false },
);
export type ExperimentConfigT = Static<typeof ExperimentConfig>;

/** The JSON Schema of the config files (bench/experiments/schema.json, for editors). */
export function schemaJson(): string {
  const schema = {
    $schema: 'http://json-schema.org/draft-07/schema#',
    title: 'faasnap experiment config',
    ...JSON.parse(JSON.stringify(ExperimentConfig)),
  };
  // `extends` is resolved before validation.
  schema.properties.extends = { type: 'string', description: 'a config this one overrides' };
  return JSON.stringify(schema, null, 2) + '\n';
}

/** A config with every optional part resolved. */
export interface Experiment extends ExperimentConfigT {
  parallelism: ParallelismT[];
  namePrefix: string;
  baseline: SettingName;
  /** Where it was loaded from. */
  source: string;
}

export class ConfigError extends Error {
  constructor(
    readonly file: string,
    readonly problems: string[],
  ) {
    super(`${file}: invalid experiment config:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

/** Checks a parsed config; throws ConfigError listing every problem. */
export function validateConfig(raw: unknown, file = '<config>'): Experiment {
  const problems: string[] = [];
  if (!Value.Check(ExperimentConfig, raw)) {
    for (const e of Value.Errors(ExperimentConfig, raw)) {
      problems.push(`${e.path || '/'}: ${e.message}${valueHint(e.value)}`);
      if (problems.length >= 20) break;
    }
    throw new ConfigError(file, dedupe(problems));
  }
  const c = raw as ExperimentConfigT;
  const names = new Set<string>();
  c.functions.forEach((f, i) => {
    if (names.has(f.name)) problems.push(`/functions/${i}/name: duplicate function ${f.name}`);
    names.add(f.name);
    const record = f.record ?? c.record;
    const tests = f.tests ?? c.tests;
    if (record >= f.inputs.length)
      problems.push(
        `/functions/${i} (${f.name}): record input ${record} but only ${f.inputs.length} inputs`,
      );
    for (const t of tests)
      if (t >= f.inputs.length)
        problems.push(
          `/functions/${i} (${f.name}): test input ${t} but only ${f.inputs.length} inputs`,
        );
    if (f.runtime === 'micro' && f.code !== undefined)
      problems.push(`/functions/${i} (${f.name}): micro functions take no code`);
  });
  const par = c.parallelism ?? [{ n: 1, snapshots: 'same' }];
  const seen = new Set<string>();
  par.forEach((p, i) => {
    const k = `${p.n}/${p.snapshots}`;
    if (seen.has(k)) problems.push(`/parallelism/${i}: duplicate ${k}`);
    seen.add(k);
  });
  const baseline = c.baseline ?? 'cached';
  if (problems.length) throw new ConfigError(file, problems);
  return {
    ...c,
    parallelism: par,
    namePrefix: c.namePrefix ?? 'bench-',
    baseline,
    source: file,
  };
}

function valueHint(v: unknown): string {
  if (v === undefined) return '';
  const s = JSON.stringify(v);
  return s && s.length <= 60 ? ` (got ${s})` : '';
}

function dedupe(xs: string[]): string[] {
  return [...new Set(xs)];
}

function readJson(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(file, [`cannot read: ${(e as Error).message}`]);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(file, [`not JSON: ${(e as Error).message}`]);
  }
  if (!v || typeof v !== 'object' || Array.isArray(v))
    throw new ConfigError(file, ['must be a JSON object']);
  return v as Record<string, unknown>;
}

/** Reads a config, following `extends` (top-level keys of the extending file win). */
function readWithExtends(file: string, depth = 0): Record<string, unknown> {
  if (depth > 4) throw new ConfigError(file, ['`extends` nests too deeply']);
  const v = readJson(file);
  const ext = v.extends;
  delete v.extends;
  if (ext === undefined) return v;
  if (typeof ext !== 'string') throw new ConfigError(file, ['/extends: must be a file name']);
  const base = readWithExtends(resolve(dirname(file), ext), depth + 1);
  delete base.$schema;
  return { ...base, ...v };
}

/** `e1` → bench/experiments/e1.json; anything else is a path. */
export function configPath(nameOrPath: string): string {
  if (/^[a-z0-9_-]+$/.test(nameOrPath)) {
    const p = resolve(EXPERIMENTS_DIR, `${nameOrPath}.json`);
    if (existsSync(p)) return p;
  }
  return resolve(nameOrPath);
}

export function loadConfig(nameOrPath: string): Experiment {
  const file = configPath(nameOrPath);
  return validateConfig(readWithExtends(file), file);
}

/** The record input index and test input indices of a function. */
export function inputPairs(
  c: ExperimentConfigT,
  f: FunctionEntryT,
): { record: number; tests: number[] } {
  return { record: f.record ?? c.record, tests: f.tests ?? c.tests };
}

/** Object keys read by a function (inputs only: outputs are written by the function). */
export function inputObjectKeys(c: ExperimentConfigT): string[] {
  const keys = new Set<string>();
  for (const f of c.functions)
    for (const p of f.inputs)
      for (const [k, v] of Object.entries(p))
        if ((k === 'input_object_key' || k === 'model_object_key') && typeof v === 'string')
          keys.add(v);
  return [...keys].sort();
}

export function resolveInputsDir(c: ExperimentConfigT): string | undefined {
  if (!c.inputsDir) return undefined;
  return isAbsolute(c.inputsDir) ? c.inputsDir : resolve(REPO_ROOT, c.inputsDir);
}

/** `node dist/bench/experiments/config.js --write-schema` rewrites bench/experiments/schema.json. */
if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  if (process.argv.includes('--write-schema')) {
    const { writeFileSync } = await import('node:fs');
    writeFileSync(resolve(EXPERIMENTS_DIR, 'schema.json'), schemaJson());
  }
}
