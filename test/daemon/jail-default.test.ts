// The jail is the default: a daemon jails its VMM processes unless the operator says --no-jail
// (logged at warn); on a host that cannot jail them it does not start at all, and says what is
// missing and how to run unjailed. Real daemons: created in this process, and started by the CLI
// as users start them (no VMM process is needed for this: pool size 0).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { isFaasnapError } from '../../common/errors.js';
import { scaledMs } from '../../common/time-scale.js';
import { createDaemon } from '../../daemon/server.js';
import { jailMissing } from '../../process/jail.js';

const CLI = resolve(fileURLToPath(import.meta.url), '../../../cli/main.js');

test('a host that cannot jail VMM processes stops the daemon unless --no-jail says so', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'faasnap-jail-default-'));
  const lacks = { jail: ['root privileges (the daemon runs as another user)'], cgroup: undefined };
  try {
    await assert.rejects(
      createDaemon(
        { dataDir: join(dir, 'a'), logLevel: 'silent', poolSize: 0 },
        { jailLacks: lacks },
      ),
      (e) =>
        isFaasnapError(e, 'DAEMON_CONFIG') &&
        /cannot jail VMM processes: missing root privileges/.test(e.message) &&
        /--no-jail/.test(e.message),
    );
    let log = '';
    const logStream = new Writable({
      write(chunk: Buffer, _enc, done) {
        log += chunk.toString();
        done();
      },
    });
    const d = await createDaemon(
      { dataDir: join(dir, 'b'), logLevel: 'warn', poolSize: 0, jail: false },
      { jailLacks: lacks, logStream },
    );
    try {
      assert.deepEqual(d.ctx.jail, { enabled: false, missing: lacks.jail });
      assert.match(log, /"level":40,.*VMM processes run unjailed/);
    } finally {
      await d.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

interface Health {
  jail: { enabled: boolean; missing: string[] };
}

/** Runs `faasnap daemon` until it is listening; returns its /healthz and its log. */
async function cliDaemon(args: string[]): Promise<{ health?: Health; log: string; exit?: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'faasnap-jail-default-'));
  const proc = spawn(
    process.execPath,
    [CLI, 'daemon', '--data-dir', dir, '--port', '0', '--pool-size', '0', ...args],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, FAASNAP_JAIL: '' } },
  );
  let log = '';
  proc.stdout!.on('data', (b: Buffer) => (log += b.toString()));
  proc.stderr!.on('data', (b: Buffer) => (log += b.toString()));
  const exited = new Promise<number>((res) => proc.once('exit', (code) => res(code ?? -1)));
  try {
    const info = join(dir, 'daemon.json');
    for (const deadline = Date.now() + scaledMs(30_000); !existsSync(info);) {
      if (proc.exitCode !== null) return { health: undefined, log, exit: await exited };
      assert.ok(Date.now() < deadline, `the daemon did not start; its log:\n${log}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const { url } = JSON.parse(readFileSync(info, 'utf8')) as { url: string };
    const health = (await (await fetch(`${url}/healthz`)).json()) as Health;
    proc.kill('SIGTERM');
    assert.equal(await exited, 0, log);
    return { health, log };
  } finally {
    proc.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

test('faasnap daemon jails by default; --no-jail runs unjailed and warns', async () => {
  const unjailed = await cliDaemon(['--no-jail', '--log-level', 'warn']);
  assert.equal(unjailed.health?.jail.enabled, false, unjailed.log);
  assert.match(unjailed.log, /VMM processes run unjailed/);

  const byDefault = await cliDaemon(['--log-level', 'warn']);
  const missing = jailMissing();
  if (missing.length === 0) {
    assert.equal(byDefault.health?.jail.enabled, true, byDefault.log);
    assert.doesNotMatch(byDefault.log, /run unjailed/);
  } else {
    // This host cannot jail (e.g. not root): the CLI stops and says how to run unjailed.
    assert.notEqual(byDefault.exit, 0);
    assert.match(byDefault.log, /DAEMON_CONFIG|cannot jail VMM processes/);
    assert.match(byDefault.log, /--no-jail/);
  }
});
