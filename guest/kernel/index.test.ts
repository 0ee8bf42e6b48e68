import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cacheRoot, kernelCacheKey, kernelInputs, kernelPath, kernelSourceDir } from './index.js';

const VERSION = '6.1.999-1';

/** A scratch copy of guest/kernel (fragment, build script, patches) to mutate. */
function withCopy(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'faasnap-kernel-'));
  try {
    for (const rel of kernelInputs()) cpSync(join(kernelSourceDir(), rel), join(dir, rel));
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function shellKey(dir: string, version: string): string {
  return execFileSync('bash', [join(dir, 'build.sh'), '--print-key'], {
    env: { ...process.env, FAASNAP_LINUX_SOURCE_VERSION: version },
    encoding: 'utf8',
  }).trim();
}

test('inputs: fragment, build script and every patch, patches in byte order', () => {
  const inputs = kernelInputs();
  assert.deepEqual(inputs.slice(0, 2), ['config.fragment', 'build.sh']);
  const patches = inputs.slice(2);
  assert.ok(patches.length >= 3, 'the three PVM patches');
  assert.deepEqual([...patches].sort(), patches);
  assert.ok(patches.every((p) => /^patches\/\d{4}-.*\.patch$/.test(p)));
});

test('the cache key is stable and 16 hex digits', () => {
  const a = kernelCacheKey({ sourceVersion: VERSION });
  assert.match(a, /^[0-9a-f]{16}$/);
  assert.equal(kernelCacheKey({ sourceVersion: VERSION }), a);
  withCopy((dir) => assert.equal(kernelCacheKey({ dir, sourceVersion: VERSION }), a));
});

test('the key changes with the fragment, a patch, the script and the source version', () => {
  withCopy((dir) => {
    const key = (v = VERSION): string => kernelCacheKey({ dir, sourceVersion: v });
    const base = key();
    assert.notEqual(key('6.1.998-1'), base);

    appendFileSync(join(dir, 'config.fragment'), 'CONFIG_IKCONFIG=y\n');
    const fragmentChanged = key();
    assert.notEqual(fragmentChanged, base);

    writeFileSync(join(dir, 'patches', '0099-extra.patch'), '--- a/x\n+++ b/x\n');
    const patchAdded = key();
    assert.notEqual(patchAdded, fragmentChanged);
    writeFileSync(join(dir, 'patches', '0099-extra.patch'), '--- a/y\n+++ b/y\n');
    assert.notEqual(key(), patchAdded, 'patch contents count, not just names');

    appendFileSync(join(dir, 'build.sh'), '\n# changed\n');
    assert.notEqual(key(), patchAdded);
  });
});

test('build.sh --print-key computes the same key as TypeScript', () => {
  assert.equal(shellKey(kernelSourceDir(), VERSION), kernelCacheKey({ sourceVersion: VERSION }));
  withCopy((dir) => {
    appendFileSync(join(dir, 'config.fragment'), 'CONFIG_IKCONFIG=y\n');
    writeFileSync(join(dir, 'patches', '0010-b.patch'), 'b\n');
    writeFileSync(join(dir, 'patches', '0002-a.patch'), 'a\n');
    assert.equal(shellKey(dir, '1.2.3'), kernelCacheKey({ dir, sourceVersion: '1.2.3' }));
  });
});

test('kernelPath lives under FAASNAP_CACHE, keyed', () => {
  const saved = process.env.FAASNAP_CACHE;
  process.env.FAASNAP_CACHE = '/somewhere/cache';
  try {
    assert.equal(cacheRoot(), '/somewhere/cache');
    const key = kernelCacheKey({ sourceVersion: VERSION });
    assert.equal(kernelPath({ sourceVersion: VERSION }), `/somewhere/cache/kernel/${key}/vmlinux`);
    const printed = execFileSync('bash', [join(kernelSourceDir(), 'build.sh'), '--print-path'], {
      env: { ...process.env, FAASNAP_LINUX_SOURCE_VERSION: VERSION },
      encoding: 'utf8',
    }).trim();
    assert.equal(printed, kernelPath({ sourceVersion: VERSION }));
  } finally {
    if (saved === undefined) delete process.env.FAASNAP_CACHE;
    else process.env.FAASNAP_CACHE = saved;
  }
});
