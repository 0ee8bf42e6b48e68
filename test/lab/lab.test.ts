// The lab itself (tier "lab": QEMU on the host, ~10-30 s a boot): a command runs in L1 with a
// hardware-style /dev/kvm (AMD SVM), in the caller's folder and environment, its output comes
// back and its exit status is the run's; a run past its timeout is killed with LAB_TIMEOUT and
// leaves no QEMU process and no run folder behind.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { isFaasnapError } from '../../common/errors.js';
import { listProcesses, processAlive } from '../../common/process.js';
import { repoRoot } from '../../guest/rootfs/index.js';
import { ensureLabAssets } from '../../lab/assets.js';
import { writeCpio } from '../../lab/cpio.js';
import { runInLab } from '../../lab/run.js';

function collector(): { stream: Writable; text: () => string } {
  const chunks: Buffer[] = [];
  return {
    stream: new Writable({
      write(c: Buffer, _e, cb) {
        chunks.push(c);
        cb();
      },
    }),
    text: () => Buffer.concat(chunks).toString(),
  };
}

/** Pids whose command line mentions `text`. */
function processesNaming(text: string): number[] {
  return listProcesses()
    .filter((p) => p.cmdline.includes(text))
    .map((p) => p.pid);
}

/** Inside L1 the lab would nest QEMU's emulation in itself (hours): these run on the host. */
const nested = process.env.FAASNAP_LAB === '1' ? 'runs on the host, not inside the lab' : false;

const base = { vcpus: 2, memoryMiB: 1024, diskGiB: 2, cwd: repoRoot() };

test(
  'a command runs in L1 on hardware-style KVM with the caller’s folder and environment',
  { timeout: 5 * 60_000, skip: nested },
  async () => {
    const out = collector();
    const status = await runInLab({
      ...base,
      command: [
        'sh',
        '-c',
        // svm in L1's cpuinfo and kvm_amd loaded: KVM here is AMD SVM, not PVM.
        'grep -qw svm /proc/cpuinfo && test -d /sys/module/kvm_amd && test -c /dev/kvm && echo kvm-amd; ' +
          'echo "cwd=$(pwd) v=$LAB_TEST_VALUE"; echo to-stderr >&2; ' +
          'mount | grep -q " /tmp type ext4" && echo tmp-ext4; exit 7',
      ],
      timeoutMs: 4 * 60_000,
      env: { PATH: process.env.PATH, LAB_TEST_VALUE: "it's here" },
      stdout: out.stream,
    });
    assert.equal(status, 7, out.text());
    const text = out.text();
    assert.match(text, /^kvm-amd$/m);
    assert.ok(text.includes(`cwd=${repoRoot()} v=it's here`), text);
    assert.match(text, /^to-stderr$/m);
    assert.match(text, /^tmp-ext4$/m);
  },
);

test(
  'a command past its timeout is killed: LAB_TIMEOUT, no QEMU and no run folder left',
  { timeout: 5 * 60_000, skip: nested },
  async () => {
    let run: { pid: number; runDir: string } | undefined;
    const out = collector();
    await assert.rejects(
      runInLab({
        ...base,
        command: ['sh', '-c', 'echo started; sleep 600'],
        timeoutMs: 60_000,
        env: { PATH: process.env.PATH },
        stdout: out.stream,
        onStart: (r) => (run = r),
      }),
      (e) => isFaasnapError(e, 'LAB_TIMEOUT') && typeof e.details.consoleTail === 'string',
    );
    assert.match(out.text(), /started/, 'the command had started before the timeout');
    assert.ok(run, 'QEMU started');
    assert.equal(processAlive(run.pid), false, 'QEMU was killed');
    assert.equal(existsSync(run.runDir), false, 'the run folder was removed');
  },
);

test(
  '`lab run` signalled twice is LAB_INTERRUPTED and still leaves no QEMU and no run folder',
  { timeout: 5 * 60_000, skip: nested },
  async (t) => {
    // The run folder goes to TMPDIR: a fresh one shows whether anything was left.
    const tmp = mkdtempSync(join(tmpdir(), 'faasnap-lab-signal-'));
    t.after(() => rmSync(tmp, { recursive: true, force: true }));
    const cli = resolve(fileURLToPath(import.meta.url), '../../../cli/main.js');
    const child = spawn(
      process.execPath,
      [
        cli,
        'lab',
        'run',
        '--memory',
        '1024',
        '--disk',
        '2',
        '--',
        'sh',
        '-c',
        'echo started; sleep 600',
      ],
      { env: { ...process.env, TMPDIR: tmp }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((res) => child.on('close', (code) => res(code)));
    await new Promise<void>((res, rej) => {
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('started')) res();
      });
      void exited.then(() => rej(new Error(`lab run ended before the command started: ${err}`)));
    });
    assert.equal(readdirSync(tmp).length, 1, 'one run folder while it runs');
    assert.equal(processesNaming(tmp).length, 1, 'QEMU runs with its files in that folder');
    child.kill('SIGTERM');
    // The second one while the first is being handled (QEMU being killed, the folder removed).
    await new Promise((r) => setTimeout(r, 10));
    child.kill('SIGTERM');
    assert.notEqual(await exited, 0);
    assert.match(err, /LAB_INTERRUPTED/);
    assert.deepEqual(readdirSync(tmp), [], 'the run folder was removed');
    assert.deepEqual(processesNaming(tmp), [], 'QEMU was killed');
  },
);

test(
  'an L1 that cannot start the command is LAB_BOOT_FAILED with its console tail',
  { timeout: 5 * 60_000, skip: nested },
  async (t) => {
    // Debian's kernel with an initramfs that has no /init: the kernel panics, L1 stops.
    const dir = mkdtempSync(join(tmpdir(), 'faasnap-lab-noinit-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const initramfs = join(dir, 'empty.cpio');
    writeFileSync(initramfs, writeCpio([{ kind: 'dir', path: 'nothing' }]));
    const real = ensureLabAssets({ install: true });
    let run: { pid: number; runDir: string } | undefined;
    await assert.rejects(
      runInLab({
        ...base,
        command: ['true'],
        timeoutMs: 4 * 60_000,
        env: {},
        stdout: collector().stream,
        assets: { ...real, initramfs },
        onStart: (r) => (run = r),
      }),
      (e) =>
        isFaasnapError(e, 'LAB_BOOT_FAILED') &&
        /Kernel panic|No working init/.test(String(e.details.consoleTail)),
    );
    assert.ok(run && !processAlive(run.pid) && !existsSync(run.runDir));
  },
);
