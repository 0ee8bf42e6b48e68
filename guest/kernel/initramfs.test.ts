import { test } from 'node:test';
import assert from 'node:assert/strict';
import { S_IFCHR, S_IFDIR, S_IFLNK, S_IFREG, buildCpio, busyboxInitramfs } from './initramfs.js';

interface Parsed {
  name: string;
  mode: number;
  nlink: number;
  rdevMajor: number;
  rdevMinor: number;
  data: Buffer;
}

/** An independent newc reader: fields by offset, 4-byte alignment checked on the way. */
function parseCpio(b: Buffer): Parsed[] {
  const out: Parsed[] = [];
  let at = 0;
  for (;;) {
    assert.equal(at % 4, 0, 'records start 4-byte aligned');
    assert.equal(b.toString('ascii', at, at + 6), '070701');
    const field = (i: number): number =>
      parseInt(b.toString('ascii', at + 6 + i * 8, at + 14 + i * 8), 16);
    const nameSize = field(11);
    const fileSize = field(6);
    const name = b.toString('utf8', at + 110, at + 110 + nameSize - 1);
    assert.equal(b[at + 110 + nameSize - 1], 0, 'name is NUL-terminated');
    let dataAt = at + 110 + nameSize;
    dataAt += (4 - (dataAt % 4)) % 4;
    if (name === 'TRAILER!!!') {
      assert.equal(dataAt, b.length, 'nothing after the trailer');
      return out;
    }
    out.push({
      name,
      mode: field(1),
      nlink: field(4),
      rdevMajor: field(9),
      rdevMinor: field(10),
      data: b.subarray(dataAt, dataAt + fileSize),
    });
    at = dataAt + fileSize;
    at += (4 - (at % 4)) % 4;
  }
}

test('newc records: header fields, names, data and padding', () => {
  const archive = buildCpio([
    { name: 'd', mode: S_IFDIR | 0o755 },
    { name: 'd/f', mode: S_IFREG | 0o644, data: Buffer.from('hello') },
    { name: 'l', mode: S_IFLNK | 0o777, data: 'd/f' },
  ]);
  const entries = parseCpio(archive);
  assert.deepEqual(
    entries.map((e) => [e.name, e.mode, e.nlink, e.data.toString()]),
    [
      ['d', S_IFDIR | 0o755, 2, ''],
      ['d/f', S_IFREG | 0o644, 1, 'hello'],
      ['l', S_IFLNK | 0o777, 1, 'd/f'],
    ],
  );
});

test('names must be relative and non-empty', () => {
  assert.throws(() => buildCpio([{ name: '/init', mode: S_IFREG }]));
  assert.throws(() => buildCpio([{ name: '', mode: S_IFREG }]));
});

test('busybox initramfs has /init, busybox, sh and /dev/console', () => {
  const busybox = Buffer.from('\x7fELF fake busybox');
  const entries = parseCpio(busyboxInitramfs({ busybox, init: '#!/bin/sh\necho hi\n' }));
  const byName = new Map(entries.map((e) => [e.name, e]));
  assert.equal(byName.get('init')?.data.toString(), '#!/bin/sh\necho hi\n');
  assert.equal((byName.get('init')!.mode & 0o111) !== 0, true, 'init is executable');
  assert.deepEqual(byName.get('bin/busybox')?.data, busybox);
  assert.equal(byName.get('bin/sh')?.data.toString(), 'busybox');
  const console = byName.get('dev/console')!;
  assert.equal(console.mode & 0o170000, S_IFCHR);
  assert.deepEqual([console.rdevMajor, console.rdevMinor], [5, 1]);
  // Parents come before children so the kernel can create them in order.
  const names = entries.map((e) => e.name);
  for (const n of names) {
    const parent = n.split('/').slice(0, -1).join('/');
    if (parent) assert.ok(names.indexOf(parent) < names.indexOf(n), `${parent} before ${n}`);
  }
});
