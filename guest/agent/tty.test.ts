// With a console-shaped device the channel is /dev/hvc0, a tty: unless the agent puts it in raw
// mode, the line discipline would echo, turn CR into NL, act on ^C/^Z/^S/^Q/^V and swallow ^D — and the length
// prefixes of frames are arbitrary bytes. Here the agent runs on a pseudo-terminal (a small
// Python bridge copies between the pty master and our socket) and frames of every length byte
// value go through it unchanged.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import * as path from 'node:path';
import type { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { AgentClient } from './client.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, here.includes(`${path.sep}dist${path.sep}`) ? '../../..' : '../..');

// Opens a pty, starts the agent on its slave side, and copies bytes between the master and fd 3.
const BRIDGE = `
import os, select, subprocess, sys
master, slave = os.openpty()
agent = subprocess.Popen([sys.executable, sys.argv[1], "--channel", os.ttyname(slave),
                          "--functions", sys.argv[2]])
try:
    while agent.poll() is None:
        r, _, _ = select.select([master, 3], [], [], 0.2)
        if master in r:
            data = os.read(master, 65536)
            os.write(3, data)
        if 3 in r:
            data = os.read(3, 65536)
            if not data:
                break
            view = memoryview(data)
            while view:
                view = view[os.write(master, view):]
finally:
    agent.kill()
    agent.wait()
`;

let bridge: ChildProcess;
let client: AgentClient;

before(() => {
  bridge = spawn(
    'python3',
    ['-c', BRIDGE, path.join(repo, 'guest/agent/agent.py'), path.join(repo, 'guest/functions')],
    {
      stdio: ['ignore', 'ignore', 'inherit', 'pipe'],
      env: { ...process.env, FAASNAP_AGENT_SET_CLOCK: '0', PYTHONDONTWRITEBYTECODE: '1' },
    },
  );
  client = new AgentClient(bridge.stdio[3] as Duplex, { pingTimeoutMs: 10_000 });
});

after(() => {
  client.close();
  bridge.kill('SIGKILL');
});

test('frames of every length byte pass a raw tty unchanged, both ways', async () => {
  await client.waitReady(10_000);
  // Frame lengths sweep 256 consecutive values, so the low byte of the prefix takes every
  // value, control characters included, in both the request and the reply.
  for (let pad = 0; pad < 256; pad++) {
    const name = 'n'.repeat(pad);
    const r = await client.invoke('hello', { name }, { timeoutMs: 5000 });
    assert.deepEqual(r.result, { greeting: `Hello, ${name}!`, params: { name } });
  }
  assert.equal(client.protocolErrors, 0);
});
