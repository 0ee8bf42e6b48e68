import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as tick } from 'node:timers/promises';
import { isFaasnapError } from '../../common/errors.js';
import { ConsoleLog } from './console-log.js';

/** Byte by byte, as the UART writes. */
const puts = (log: ConsoleLog, s: string): void => {
  for (const b of Buffer.from(s)) log.appendByte(b);
};

test('flood: the log stays at its cap and counts exactly what it dropped', () => {
  const log = new ConsoleLog(1 << 20);
  const total = 3 * (1 << 20) + 12345;
  for (let i = 0; i < total; i++) log.appendByte(i & 0xff);
  assert.equal(log.size, 1 << 20);
  assert.equal(log.droppedBytes, total - (1 << 20));
  const b = log.bytes();
  assert.equal(b.length, 1 << 20);
  // The newest bytes survive, in order.
  assert.equal(b[b.length - 1], (total - 1) & 0xff);
  assert.equal(b[0], (total - (1 << 20)) & 0xff);
});

test('ConsoleLog.append drops the oldest bytes across wrap-around and huge chunks', () => {
  const log = new ConsoleLog(8);
  log.append(Buffer.from('abcdef'));
  log.append(Buffer.from('ghij'));
  assert.equal(log.text(), 'cdefghij');
  assert.equal(log.droppedBytes, 2);
  log.append(Buffer.from('0123456789ABC'));
  assert.equal(log.text(), '56789ABC');
  assert.equal(log.droppedBytes, 2 + 8 + 5);
  assert.equal(log.totalBytes, 6 + 4 + 13);
  const big = new Uint8Array(8 << 20).fill(0x41);
  log.append(big);
  assert.equal(log.size, 8);
  assert.equal(log.droppedBytes, log.totalBytes - 8);
});

test('onOutput streams chunks; a throwing listener breaks nothing; unsubscribe works', async () => {
  const log = new ConsoleLog();
  puts(log, 'before ');
  const got: string[] = [];
  const stop = log.onOutput((c) => got.push(Buffer.from(c).toString()));
  log.onOutput(() => {
    throw new Error('consumer bug');
  });
  puts(log, 'hello');
  await tick();
  puts(log, ' world');
  log.flush();
  assert.deepEqual(got, ['hello', ' world']);
  assert.equal(log.listenerErrors, 2);
  stop();
  puts(log, '!');
  await tick();
  assert.deepEqual(got, ['hello', ' world']);
  assert.equal(log.text(), 'before hello world!');
});

test('waitFor resolves on logged and on later output, strings and regexes', async () => {
  const log = new ConsoleLog();
  puts(log, 'Linux version 6.1\n');
  assert.equal(await log.waitFor('version', 10), 'version');
  const later = log.waitFor(/login: ?$/m, 1000);
  const split = log.waitFor('ready!', 1000);
  puts(log, 'host login:');
  puts(log, ' \nrea');
  await tick();
  puts(log, 'dy!');
  assert.equal(await later, 'login: ');
  assert.equal(await split, 'ready!');
  const g = /(\d+) ms/g;
  g.lastIndex = 1000; // caller's regex state must not matter
  puts(log, 'took 42 ms\n');
  assert.equal(await log.waitFor(g, 100), '42 ms');
});

test('waitFor rejects with CONSOLE_WAIT_TIMEOUT', async () => {
  const log = new ConsoleLog();
  puts(log, 'nothing to see');
  const t0 = Date.now();
  await assert.rejects(log.waitFor('kernel panic', 50), (e: unknown) => {
    assert.ok(isFaasnapError(e, 'CONSOLE_WAIT_TIMEOUT'));
    return true;
  });
  assert.ok(Date.now() - t0 >= 45);
});
