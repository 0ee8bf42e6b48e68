import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  ConfigError,
  EXPERIMENTS_DIR,
  inputObjectKeys,
  inputPairs,
  loadConfig,
  schemaJson,
  validateConfig,
} from './config.js';
import { functionSpec } from './runner.js';

const valid = {
  name: 'small',
  experiment: 'custom',
  description: 'a test',
  settings: ['cached', 'faasnap'],
  repeats: 2,
  record: 0,
  tests: [1],
  functions: [
    {
      name: 'matmul',
      runtime: 'python',
      handler: 'matmul',
      inputs: [{ n: '1100' }, { n: '1200' }],
    },
  ],
};

function problems(raw: unknown): string[] {
  try {
    validateConfig(raw, 'x.json');
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    assert.match(e.message, /^x\.json: invalid experiment config:/);
    return e.problems;
  }
  assert.fail('expected a ConfigError');
}

test('a valid config gets its defaults', () => {
  const c = validateConfig(valid, 'x.json');
  assert.deepEqual(c.parallelism, [{ n: 1, snapshots: 'same' }]);
  assert.equal(c.namePrefix, 'bench-');
  assert.equal(c.baseline, 'cached');
  assert.deepEqual(inputPairs(c, c.functions[0]!), { record: 0, tests: [1] });
  const spec = functionSpec(c, c.functions[0]!);
  assert.deepEqual(spec, {
    name: 'bench-matmul',
    runtime: 'python',
    handler: 'matmul',
    memoryMiB: 128,
    vcpus: 1,
    timeoutMs: 30_000,
    recordParams: { n: '1100' },
  });
});

test('invalid configs are refused with the path of every problem', () => {
  assert.ok(
    problems({ ...valid, settings: ['cached', 'turbo'] }).some((p) => p.startsWith('/settings/1')),
  );
  assert.ok(problems({ ...valid, repeats: 0 }).some((p) => p.startsWith('/repeats')));
  assert.ok(problems({ ...valid, extra: 1 }).some((p) => /extra|additional/i.test(p)));
  const noName = { ...valid, functions: [{ ...valid.functions[0], name: 'Bad Name' }] };
  assert.ok(problems(noName).some((p) => p.startsWith('/functions/0/name')));
  const badRuntime = { ...valid, functions: [{ ...valid.functions[0], runtime: 'java' }] };
  assert.ok(problems(badRuntime).some((p) => p.startsWith('/functions/0/runtime')));
  // Semantic checks: indices, duplicates.
  assert.deepEqual(problems({ ...valid, tests: [3] }), [
    '/functions/0 (matmul): test input 3 but only 2 inputs',
  ]);
  assert.deepEqual(problems({ ...valid, functions: [valid.functions[0], valid.functions[0]] }), [
    '/functions/1/name: duplicate function matmul',
  ]);
  assert.deepEqual(
    problems({
      ...valid,
      parallelism: [
        { n: 2, snapshots: 'same' },
        { n: 2, snapshots: 'same' },
      ],
    }),
    ['/parallelism/1: duplicate 2/same'],
  );
});

test('files: unreadable, not JSON, extends', () => {
  const dir = mkdtempSync(join(tmpdir(), 'faasnap-bench-config-'));
  try {
    assert.throws(() => loadConfig(join(dir, 'missing.json')), /cannot read/);
    writeFileSync(join(dir, 'bad.json'), '{ nope');
    assert.throws(() => loadConfig(join(dir, 'bad.json')), /not JSON/);
    writeFileSync(join(dir, 'base.json'), JSON.stringify(valid));
    writeFileSync(
      join(dir, 'child.json'),
      JSON.stringify({ extends: 'base.json', name: 'child', recording: { intervalThreshold: 0 } }),
    );
    const c = loadConfig(join(dir, 'child.json'));
    assert.equal(c.name, 'child');
    assert.deepEqual(c.recording, { intervalThreshold: 0 });
    assert.equal(c.functions[0]!.name, 'matmul');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the committed configs are valid and match SPEC §6', () => {
  const e1 = loadConfig('e1');
  assert.equal(e1.functions.length, 11);
  assert.deepEqual(e1.settings, ['cached', 'vanilla', 'reap', 'faasnap']);
  const matmul = e1.functions.find((f) => f.name === 'matmul')!;
  assert.deepEqual(matmul.inputs, [{ n: '1100' }, { n: '1200' }]);
  assert.ok(inputObjectKeys(e1).includes('resnet50-19c8e357.pth'));
  const e2 = loadConfig('e2');
  assert.equal(e2.record, 2);
  assert.deepEqual(e2.tests, [0, 1, 3, 4, 5]);
  for (const f of e2.functions) assert.equal(f.inputs.length, 6, f.name);
  const e3 = loadConfig('e3');
  assert.deepEqual(
    e3.parallelism.map((p) => `${p.n}/${p.snapshots}`),
    ['1/same', '2/same', '4/same', '8/same', '2/separate', '4/separate', '8/separate'],
  );
  assert.equal(e3.functions.length, 11);
  const e4 = loadConfig('e4');
  assert.deepEqual(e4.recording, { intervalThreshold: 0 });
  assert.equal(e4.storage?.kind, 'slow');
  const tiny = loadConfig('tiny');
  assert.deepEqual(tiny.settings, ['cached', 'faasnap']);
  assert.equal(tiny.repeats, 1);
  assert.equal(tiny.functions[0]!.name, 'hello');
  loadConfig('micro');
  assert.equal(loadConfig('hello-modes').settings.length, 9);
});

test('bench/experiments/schema.json is the generated schema', () => {
  assert.deepEqual(
    JSON.parse(readFileSync(join(EXPERIMENTS_DIR, 'schema.json'), 'utf8')),
    JSON.parse(schemaJson()),
    'regenerate with: node dist/bench/experiments/config.js --write-schema && npx prettier --write bench/experiments/schema.json',
  );
});
