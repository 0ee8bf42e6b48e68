import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mounts, readState, storageOf } from './slow-storage.js';

test('mounts() parses /proc/self/mountinfo and storageOf finds the file system of a path', () => {
  const all = mounts();
  const root = all.find((m) => m.mountPoint === '/');
  assert.ok(root, 'the root mount is listed');
  assert.ok(root.fstype.length > 0 && root.source.length > 0);
  const s = storageOf('/proc/self/status');
  assert.equal(s.mountPoint, '/proc');
  assert.equal(s.fstype, 'proc');
  assert.equal(s.delayed, false);
  // A path that does not exist yet is judged by its nearest existing parent.
  const n = storageOf('/proc/no/such/dir');
  assert.equal(n.mountPoint, '/proc');
  assert.equal(readState('/nonexistent-faasnap-slow'), undefined);
});
