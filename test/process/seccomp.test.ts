// The VMM processes' seccomp filter in a real jail (no KVM needed): a process that installed it
// (process/seccomp.ts, as a VMM process does once set up) still reads files and serves a Unix
// socket, and the moment it opens a TCP socket it is ended; its report names the call, and the
// controller's report gives the typed error VMM_SECCOMP. That the list covers a VMM's own work
// in every memory mode is shown by the jailed daemon in the lab (test/daemon/jail.test.ts).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chownSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { native } from '../../native/index.js';
import { jailCommand } from '../../process/jail.js';
import { SECCOMP_ENV, SeccompReport } from '../../process/seccomp.js';
import { PROJECT, jailTierMissing } from '../support/jail.js';
import { tierTest } from '../support/skip.js';

const PROBE = fileURLToPath(new URL('./seccomp-probe.js', import.meta.url));
const UID = 1_000_322;

tierTest(
  'a filtered process reads files and serves a Unix socket, and is stopped at a TCP socket',
  jailTierMissing,
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'faasnap-seccomp-'));
    const tcpServer = createServer((s) => s.destroy());
    try {
      const [mountPoint, work] = ['root', 'work'].map((d) => join(dir, d));
      for (const d of [mountPoint!, work!]) mkdirSync(d);
      chownSync(work!, UID, UID);
      const unixPath = join(work!, 'agent.sock');
      await new Promise<void>((r) => tcpServer.listen(0, '127.0.0.1', r));
      const port = (tcpServer.address() as AddressInfo).port;
      const { file, args } = jailCommand(
        {
          mountPoint: mountPoint!,
          uid: UID,
          gid: UID,
          readOnly: [PROJECT, dirname(dirname(process.execPath))],
          readWrite: [work!],
          maxFiles: 256,
        },
        [process.execPath, PROBE, unixPath, String(port)],
      );
      // As spawnJailed wires a VMM process: the report pipe's write end is descriptor 6.
      const child = spawn(file, args, {
        stdio: ['ignore', 'inherit', 'inherit', 'ipc', 'ignore', 'ignore', 'pipe'],
        env: { ...process.env, [SECCOMP_ENV.reportFd]: '6' },
      });
      const report = new SeccompReport((child.stdio as unknown[])[6] as Readable);
      const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
      const messages: Record<string, unknown>[] = [];
      child.on('message', (m: Record<string, unknown>) => messages.push(m));
      const first = await new Promise<Record<string, unknown>>((resolve, reject) => {
        child.once('message', resolve as never);
        void exited.then(async (code) => {
          await report.ended;
          reject(
            new Error(`probe exited (${code}, ${report.error(0, code, null)?.message}) early`),
          );
        });
      });
      assert.deepEqual(first, { seccomp: '2', listening: unixPath });
      const greeting = await new Promise<string>((resolve, reject) => {
        let text = '';
        connect(unixPath)
          .on('data', (d) => (text += String(d)))
          .on('end', () => resolve(text))
          .on('error', reject);
      });
      assert.equal(greeting, 'hello from the jail');
      child.send('tcp');
      const code = await exited;
      await report.ended;
      assert.equal(code, native.SECCOMP_EXIT_CODE);
      assert.equal(messages.length, 1, `the probe went on: ${JSON.stringify(messages)}`);
      const err = report.error(child.pid!, code, null);
      assert.equal(err?.code, 'VMM_SECCOMP');
      assert.deepEqual(err?.details, { syscall: 'socket', nr: 41 });
    } finally {
      tcpServer.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
  60_000,
);
