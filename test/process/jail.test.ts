// The VMM process jail with real namespaces, mounts and privileges (no KVM needed): a process
// started in it reports, over the IPC channel carried through the jail, that it runs as the
// given unprivileged uid with no groups, no capabilities and no_new_privs, sees only its own
// PID namespace and the paths it was given (no /etc/shadow), cannot write a read-only path even
// where the file mode allows it, can write the read-write one, cannot reach a TCP server on the
// host, and has its rlimits; the host never sees the jail's mounts.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { jailCommand } from '../../process/jail.js';
import { PROJECT, jailTierMissing } from '../support/jail.js';
import { tierTest } from '../support/skip.js';

const PROBE = fileURLToPath(new URL('./jail-probe.js', import.meta.url));
const UID = 1_000_321;

tierTest(
  'a jailed process has no privileges, sees only its own processes and paths, has no network',
  jailTierMissing,
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'faasnap-jail-'));
    const server = createServer((s) => s.destroy());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const [mountPoint, snapshots, work] = ['root', 'snapshots', 'work'].map((d) => join(dir, d));
      for (const d of [mountPoint!, snapshots!, work!]) mkdirSync(d);
      const snapshotFile = join(snapshots!, 'memory');
      // World-writable on the host: only the read-only mount keeps the jailed process out.
      writeFileSync(snapshotFile, 'guest memory', { mode: 0o666 });
      chownSync(work!, UID, UID);
      const port = (server.address() as AddressInfo).port;
      const { file, args } = jailCommand(
        {
          mountPoint: mountPoint!,
          uid: UID,
          gid: UID,
          readOnly: [PROJECT, dirname(dirname(process.execPath)), snapshots!],
          readWrite: [work!],
          maxFiles: 256,
        },
        [process.execPath, PROBE, String(port), snapshotFile, work!],
      );
      const mountsBefore = readFileSync('/proc/self/mountinfo', 'utf8');
      const child = spawn(file, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      const [report, exit] = await Promise.all([
        new Promise<Record<string, unknown>>((resolve) => child.once('message', resolve as never)),
        new Promise<number | null>((resolve) => child.once('exit', resolve)),
      ]);
      assert.equal(exit, 0);
      assert.deepEqual(
        [report.uid, report.gid, report.groups],
        [UID, UID, ''],
        'unprivileged, no groups',
      );
      assert.equal(report.capEff, '0000000000000000');
      assert.equal(report.capBnd, '0000000000000000');
      assert.equal(report.noNewPrivs, '1');
      assert.equal(report.maxFiles, '256');
      assert.equal(report.maxCore, '0');
      assert.deepEqual(report.pids, ['1'], 'only itself, as PID 1 of its own namespace');
      assert.equal(report.shadow, 'ENOENT', '/etc is not in the jail');
      const given = [PROJECT, process.execPath, dir].map((p) => p.split('/')[1]!);
      const own = ['bin', 'dev', 'lib', 'lib64', 'proc', 'sbin', 'tmp', 'usr'];
      assert.deepEqual(report.rootEntries, [...new Set([...own, ...given])].sort());
      assert.equal(report.writeReadOnly, 'EROFS');
      assert.equal(readFileSync(snapshotFile, 'utf8'), 'guest memory');
      assert.equal(report.writeWritable, 'ok');
      assert.equal(readFileSync(join(work!, 'out'), 'utf8'), 'written');
      assert.equal(report.tcp, 'ENETUNREACH');
      assert.equal(readFileSync('/proc/self/mountinfo', 'utf8'), mountsBefore);
    } finally {
      server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
  60_000,
);
