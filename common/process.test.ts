import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { childPids, listProcesses } from './process.js';

test('a child shows up with its parent and command line, and is gone after it exits', async () => {
  const child = spawn('sleep', ['30']);
  try {
    assert.ok(childPids().includes(child.pid!));
    const me = listProcesses().find((p) => p.pid === child.pid);
    assert.equal(me?.ppid, process.pid);
    assert.equal(me?.cmdline, 'sleep\0' + '30\0');
  } finally {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill();
    await exited;
  }
  assert.ok(!childPids().includes(child.pid!));
});
