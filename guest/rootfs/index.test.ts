import { after, before, test } from 'node:test';
import { skipOrFail } from '../../test/support/skip.js';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { isFaasnapError } from '../../common/errors.js';
import {
  GUEST_AGENT_PATH,
  GUEST_FUNCTIONS_DIR,
  GUEST_INIT_PATH,
  GUEST_NODE_RUNTIME_PATH,
  ROOTFS_VARIANTS,
  repoRoot,
  rootfsCacheDir,
  rootfsCacheKey,
  rootfsInputs,
  rootfsPath,
  TEST_ROOTFS_VARIANT,
} from './index.js';

const repo = repoRoot();
let tmp = '';

before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'faasnap-rootfs-test-'));
});
after(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

function bashKey(variant: string, root = repo): string {
  return execFileSync('bash', [path.join(root, 'guest/rootfs/build.sh'), '--print-key', variant], {
    encoding: 'utf8',
  }).trim();
}

/** A copy of just the files the images are built from. */
function copyInputs(): string {
  const root = fs.mkdtempSync(path.join(tmp, 'repo-'));
  const files = new Set(ROOTFS_VARIANTS.flatMap((v) => rootfsInputs(v)));
  for (const rel of files) {
    fs.mkdirSync(path.join(root, path.dirname(rel)), { recursive: true });
    fs.copyFileSync(path.join(repo, rel), path.join(root, rel));
  }
  return root;
}

test('the TypeScript key is the key build.sh computes, for every variant', () => {
  for (const v of ROOTFS_VARIANTS) {
    const key = rootfsCacheKey(v);
    assert.match(key, /^[0-9a-f]{16}$/);
    assert.equal(key, bashKey(v), v);
  }
  assert.notEqual(rootfsCacheKey('small'), rootfsCacheKey('full'));
});

test('inputs: build script, init, package list, agent and every bundled function', () => {
  const inputs = rootfsInputs('small');
  for (const f of [
    'guest/rootfs/build.sh',
    'guest/rootfs/init.c',
    'guest/rootfs/packages/small.txt',
    'guest/agent/agent.py',
    'guest/agent/node-runtime.mjs',
    'guest/functions/hello/handler.py',
    'guest/functions/exec/handler.py',
    'guest/functions/hello-js/handler.js',
  ]) {
    assert.ok(inputs.includes(f), f);
  }
  assert.equal(inputs.includes('guest/rootfs/packages/full.txt'), false);
  assert.deepEqual([...inputs].sort(), inputs);
});

test('any change to an input changes the key (and bash agrees); bytecode caches do not', () => {
  const root = copyInputs();
  const before = rootfsCacheKey('small', root);
  assert.equal(before, rootfsCacheKey('small'));
  fs.mkdirSync(path.join(root, 'guest/functions/hello/__pycache__'));
  fs.writeFileSync(path.join(root, 'guest/functions/hello/__pycache__/handler.pyc'), 'x');
  assert.equal(rootfsCacheKey('small', root), before);

  fs.appendFileSync(path.join(root, 'guest/functions/hello/handler.py'), '\n# changed\n');
  const changed = rootfsCacheKey('small', root);
  assert.notEqual(changed, before);
  assert.equal(changed, bashKey('small', root));

  fs.mkdirSync(path.join(root, 'guest/functions/new'));
  fs.writeFileSync(path.join(root, 'guest/functions/new/handler.py'), 'def handle(p, c): pass\n');
  assert.notEqual(rootfsCacheKey('small', root), changed);
  assert.equal(rootfsCacheKey('small', root), bashKey('small', root));
});

test('cache paths follow FAASNAP_CACHE, then HOME', () => {
  const key = rootfsCacheKey('full');
  assert.equal(
    rootfsPath('full', { env: { FAASNAP_CACHE: '/var/cache/x' } }),
    `/var/cache/x/rootfs/full-${key}.ext4`,
  );
  assert.equal(rootfsCacheDir({ HOME: '/home/u' }), '/home/u/.cache/faasnap/rootfs');
  const out = execFileSync(
    'bash',
    [path.join(repo, 'guest/rootfs/build.sh'), '--print-path', 'full'],
    { encoding: 'utf8', env: { ...process.env, FAASNAP_CACHE: '/var/cache/x' } },
  ).trim();
  assert.equal(out, `/var/cache/x/rootfs/full-${key}.ext4`);
});

test('unknown variants are refused', () => {
  assert.throws(
    () => rootfsCacheKey('huge'),
    (e) => isFaasnapError(e, 'GUEST_IMAGE_INVALID'),
  );
});

test('a cached small image, if built, holds init, agent and functions', (t) => {
  const image = rootfsPath(TEST_ROOTFS_VARIANT);
  let debugfs = '';
  try {
    debugfs = execFileSync('sh', ['-c', 'command -v debugfs || ls /usr/sbin/debugfs'], {
      encoding: 'utf8',
    }).trim();
  } catch {
    // no e2fsprogs
  }
  if (!fs.existsSync(image) || !debugfs) {
    skipOrFail(t, 'no cached small image (guest/rootfs/build.sh small) or no debugfs');
    return;
  }
  const stat = (p: string): string =>
    execFileSync(debugfs, ['-R', `stat ${p}`, image], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
  assert.match(stat(GUEST_INIT_PATH), /Type: regular\s+Mode:\s+0755/);
  for (const p of [
    GUEST_AGENT_PATH,
    GUEST_NODE_RUNTIME_PATH,
    `${GUEST_FUNCTIONS_DIR}/hello/handler.py`,
    `${GUEST_FUNCTIONS_DIR}/exec/handler.py`,
    '/usr/bin/python3.11',
    '/usr/lib/python3.11/json/__init__.py',
  ]) {
    assert.match(stat(p), /Type: regular/, p);
  }
});
