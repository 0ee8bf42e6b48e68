// The built test image (small-node) without a kernel: its tree (extracted with debugfs, no
// mount) runs our init as PID 1 of fresh mount/PID/UTS namespaces in a chroot, and the agent it
// starts serves the host over an inherited socket. Checks the mounts, the hostname, the image's
// Python and functions, and that init restarts a dead agent. Needs root, unshare and a cached
// image (guest/rootfs/build.sh small-node); skipped otherwise.

import { after, test } from 'node:test';
import { skipOrFail } from '../../test/support/skip.js';
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Duplex } from 'node:stream';
import { AgentClient } from '../agent/client.js';
import type { ReadyMessage } from '../agent/protocol.js';
import { TEST_ROOTFS_VARIANT, rootfsPath } from './index.js';

const image = rootfsPath(TEST_ROOTFS_VARIANT);
let dir = '';
let child: ChildProcess | undefined;

after(async () => {
  if (child && child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((resolve) => child!.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

function which(cmd: string): string | undefined {
  for (const d of ['/usr/sbin', '/usr/bin', '/sbin', '/bin']) {
    if (fs.existsSync(path.join(d, cmd))) return path.join(d, cmd);
  }
  return undefined;
}

test('init and agent from the small image serve invocations in a chroot', async (t) => {
  const debugfs = which('debugfs');
  const unshare = which('unshare');
  const chroot = which('chroot');
  if (process.getuid?.() !== 0 || !debugfs || !unshare || !chroot || !fs.existsSync(image)) {
    skipOrFail(
      t,
      `needs root, debugfs, unshare and a cached ${TEST_ROOTFS_VARIANT} image (guest/rootfs/build.sh ${TEST_ROOTFS_VARIANT})`,
    );
    return;
  }
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'faasnap-image-test-'));
  const root = path.join(dir, 'root');
  fs.mkdirSync(root);
  execFileSync(debugfs, ['-R', `rdump / ${root}`, image], { stdio: 'ignore' });

  // --kill-child: when the test ends, the namespace's init and everything under it go too.
  child = spawn(
    unshare,
    ['--mount', '--pid', '--uts', '--fork', '--kill-child', chroot, root, '/sbin/faasnap-init'],
    {
      stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
      // As the kernel passes cmdline words: only what we set (no host PATH, no host Python).
      env: { FAASNAP_AGENT_CHANNEL: 'fd:3', FAASNAP_AGENT_SET_CLOCK: '0' },
    },
  );
  let console = '';
  child.stderr!.on('data', (d: Buffer) => (console += d.toString()));
  const client = new AgentClient(child.stdio[3] as Duplex, { pingTimeoutMs: 20_000 });
  try {
    const ready = await client.waitReady(20_000);
    assert.equal(ready.pid, 2, 'the agent is the first child of init (PID 1)');
    assert.deepEqual(ready.runtimes, ['python', 'node'], 'small-node has both runtimes');
    assert.ok(ready.functions.includes('hello') && ready.functions.includes('exec'));

    const hello = await client.invoke('hello', { name: 'image' }, { timeoutMs: 10_000 });
    assert.deepEqual(hello.result, { greeting: 'Hello, image!', params: { name: 'image' } });

    const probe = await client.invoke(
      'exec',
      {
        script: [
          'mounts = {l.split()[1]: l.split()[2] for l in open("/proc/mounts")}',
          'result = {"init": open("/proc/1/cmdline").read().strip("\\0"),',
          '          "host": os.uname().nodename, "mounts": mounts,',
          '          "env": os.environ.get("PYTHONDONTWRITEBYTECODE"), "py": sys.executable}',
        ].join('\n'),
      },
      { timeoutMs: 10_000 },
    );
    const r = probe.result as {
      init: string;
      host: string;
      mounts: Record<string, string>;
      env: string;
      py: string;
    };
    assert.equal(r.init, '/sbin/faasnap-init');
    assert.equal(r.host, 'faasnap');
    assert.equal(r.env, '1');
    assert.equal(r.py, '/usr/bin/python3');
    for (const [m, type] of Object.entries({
      '/proc': 'proc',
      '/sys': 'sysfs',
      '/dev': 'devtmpfs',
      '/dev/shm': 'tmpfs',
      '/tmp': 'tmpfs',
      '/run': 'tmpfs',
    })) {
      assert.equal(r.mounts[m], type, m);
    }

    // The agent dies: init reaps it and starts a new one, which announces itself.
    const next = new Promise<ReadyMessage>((resolve) => client.once('ready', resolve));
    await client.invoke(
      'exec',
      { script: 'import threading\nthreading.Timer(0.1, lambda: os._exit(5)).start()' },
      { timeoutMs: 10_000 },
    );
    const again = await next;
    assert.notEqual(again.pid, ready.pid);
    assert.match(console, /agent exited with status 5; restarting/);
    const after = await client.invoke('hello', {}, { timeoutMs: 10_000 });
    assert.deepEqual(after.result, { greeting: 'Hello, world!', params: {} });
  } finally {
    client.close();
  }
});
