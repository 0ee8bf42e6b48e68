import assert from 'node:assert/strict';
import { test } from 'node:test';
import { VmmCgroup } from './cgroup.js';

test('a memory limit that is not a positive byte count is refused before the kernel sees it', () => {
  const cgroup = new VmmCgroup('/sys/fs/cgroup/faasnap-test-never-created');
  for (const bytes of [-1879048192, 0, 1.5, Number.NaN, 2 ** 60])
    assert.throws(() => cgroup.limitMemory(bytes), /memory\.max of .*: not a positive byte count/);
});
