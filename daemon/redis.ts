// The object store: Redis, keyed by object name (the workloads' inputs by basename). By default
// the daemon runs its own redis-server on loopback (a free port, its data under the data dir,
// append-only file so objects survive restarts); an external server is used when a URL is
// configured. ioredis: one package with built-in types and binary-safe Buffer replies.

import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { FaasnapError } from '../common/errors.js';
import type { RedisConfig } from './config.js';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** A redis-server left behind by a daemon that was killed (its pid file names it). */
function killStale(pidFile: string): void {
  try {
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    if (!Number.isInteger(pid) || pid <= 1) return;
    const comm = readFileSync(`/proc/${pid}/cmdline`, 'latin1');
    if (comm.startsWith('redis-server') || comm.includes('/redis-server'))
      process.kill(pid, 'SIGKILL');
  } catch {
    // no pid file or no such process: nothing to clean
  }
}

/** A redis-server child process on 127.0.0.1 with its own data dir and password. */
async function startManagedRedis(
  binary: string,
  dir: string,
): Promise<{ child: ChildProcess; port: number; password: string }> {
  mkdirSync(dir, { recursive: true });
  // The password is kept beside the data so a restarted daemon uses the same one.
  const pwFile = join(dir, 'password');
  if (!existsSync(pwFile)) writeFileSync(pwFile, randomBytes(16).toString('hex'), { mode: 0o600 });
  const password = readFileSync(pwFile, 'utf8').trim();
  killStale(join(dir, 'redis.pid'));
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const child = spawn(
      binary,
      [
        '--bind',
        '127.0.0.1',
        '--port',
        String(port),
        '--dir',
        dir,
        '--appendonly',
        'yes',
        '--save',
        '',
        '--daemonize',
        'no',
        '--protected-mode',
        'yes',
        '--requirepass',
        password,
        '--logfile',
        join(dir, 'redis.log'),
        '--pidfile',
        join(dir, 'redis.pid'),
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    const ok = await new Promise<boolean>((resolve) => {
      let done = false;
      const finish = (v: boolean): void => {
        if (!done) {
          done = true;
          resolve(v);
        }
      };
      child.once('error', () => finish(false));
      child.once('exit', () => finish(false));
      // Poll until the port answers.
      const probe = async (): Promise<void> => {
        for (let i = 0; i < 100 && !done; i++) {
          const c = new Redis({
            protocol: 2,
            host: '127.0.0.1',
            port,
            password,
            lazyConnect: true,
            maxRetriesPerRequest: 0,
            retryStrategy: () => null,
          });
          c.on('error', () => undefined);
          try {
            await c.connect();
            await c.ping();
            c.disconnect();
            return finish(true);
          } catch {
            c.disconnect();
            await new Promise((r) => setTimeout(r, 50));
          }
        }
        finish(false);
      };
      void probe();
    });
    if (ok) return { child, port, password };
    child.kill('SIGKILL');
    if (attempt >= 2)
      throw new FaasnapError(
        'OBJECT_STORE_UNAVAILABLE',
        `${binary} did not start (is the redis-server package installed?)`,
      );
  }
}

/**
 * RESP2: every Redis speaks it. ioredis 6 opens with RESP3 (HELLO 3, Redis >= 6) and falls back
 * with a warning where a server lacks it; the store uses no RESP3 reply type, so it asks for
 * RESP2 from the start, the same against any server the user names with --redis-url.
 */
const CLIENT = { protocol: 2, maxRetriesPerRequest: 2 } as const;

export class ObjectStore {
  private child: ChildProcess | undefined;
  private client: Redis | undefined;
  /** Where the store is, for guests and `faasnap daemon` output (password not included). */
  url = '';

  constructor(
    private readonly cfg: RedisConfig,
    private readonly dir: string,
  ) {}

  async start(): Promise<void> {
    if (this.cfg.managed) {
      const { child, port, password } = await startManagedRedis(this.cfg.binary, this.dir);
      this.child = child;
      this.url = `redis://127.0.0.1:${port}`;
      this.client = new Redis({ ...CLIENT, host: '127.0.0.1', port, password });
    } else {
      this.url = this.cfg.url ?? 'redis://127.0.0.1:6379';
      this.client = new Redis(this.url, {
        ...CLIENT,
        password: this.cfg.password,
        lazyConnect: true,
      });
      await this.client.connect().catch(() => undefined);
    }
    this.client.on('error', () => undefined); // ioredis reconnects; calls report failures
  }

  get up(): boolean {
    return this.client?.status === 'ready';
  }

  private redis(): Redis {
    if (!this.client || this.client.status === 'end')
      throw new FaasnapError('OBJECT_STORE_UNAVAILABLE', 'not started');
    return this.client;
  }

  private async guard<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      if (e instanceof FaasnapError) throw e;
      throw new FaasnapError(
        'OBJECT_STORE_UNAVAILABLE',
        e instanceof Error ? e.message : String(e),
      );
    }
  }

  put(key: string, data: Buffer): Promise<void> {
    return this.guard(async () => {
      await this.redis().set(key, data);
    });
  }

  get(key: string): Promise<Buffer> {
    return this.guard(async () => {
      const v = await this.redis().getBuffer(key);
      if (v === null) throw new FaasnapError('OBJECT_UNKNOWN', key, { key });
      return v;
    });
  }

  /** Up to `length` bytes from `offset` and the value's size; OBJECT_UNKNOWN when missing. */
  getRange(key: string, offset: number, length: number): Promise<{ data: Buffer; size: number }> {
    return this.guard(async () => {
      const r = this.redis();
      const [exists, size, data] = await r
        .multi()
        .exists(key)
        .strlen(key)
        .getrangeBuffer(key, offset, offset + length - 1)
        .exec()
        .then((replies) =>
          (replies ?? []).map(([err, v]) => {
            if (err) throw err;
            return v;
          }),
        );
      if (exists !== 1) throw new FaasnapError('OBJECT_UNKNOWN', key, { key });
      return { data: data as Buffer, size: size as number };
    });
  }

  /** Writes `data` at `offset` of the value; offset 0 replaces it. */
  putRange(key: string, offset: number, data: Buffer): Promise<void> {
    return this.guard(async () => {
      if (offset === 0) await this.redis().set(key, data);
      else await this.redis().setrange(key, offset, data);
    });
  }

  list(): Promise<{ key: string; bytes: number }[]> {
    return this.guard(async () => {
      const r = this.redis();
      const keys: string[] = [];
      let cursor = '0';
      do {
        const [next, batch] = await r.scan(cursor, 'COUNT', 1000);
        cursor = next;
        keys.push(...batch);
      } while (cursor !== '0');
      keys.sort();
      const sizes = await Promise.all(keys.map((k) => r.strlen(k)));
      return keys.map((key, i) => ({ key, bytes: sizes[i] ?? 0 }));
    });
  }

  delete(key: string): Promise<boolean> {
    return this.guard(async () => (await this.redis().del(key)) === 1);
  }

  async close(): Promise<void> {
    this.client?.disconnect();
    this.client = undefined;
    const c = this.child;
    if (c && c.exitCode === null && c.signalCode === null) {
      await new Promise<void>((resolve) => {
        c.once('exit', () => resolve());
        c.kill('SIGTERM'); // redis flushes its append-only file on SIGTERM
        setTimeout(() => c.kill('SIGKILL'), 5000).unref();
      });
    }
  }
}
