import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { writeCpio } from './cpio.js';

test('newc archive: header fields, 4-byte padding and the trailer', () => {
  const a = writeCpio([{ kind: 'file', path: '/init', data: Buffer.from('abc'), mode: 0o755 }]);
  const h = a.subarray(0, 110).toString('ascii');
  assert.equal(h.slice(0, 6), '070701');
  assert.equal(parseInt(h.slice(14, 22), 16), 0o100755); // mode
  assert.equal(parseInt(h.slice(54, 62), 16), 3); // filesize
  assert.equal(parseInt(h.slice(94, 102), 16), 5); // namesize incl. NUL
  // 110 + "init\0" = 115 -> padded to 116; data 3 -> padded to 4.
  assert.equal(a.subarray(116, 119).toString(), 'abc');
  assert.ok(a.subarray(120).toString('latin1').includes('TRAILER!!!'));
  assert.equal(a.length % 4, 0);
});

// busybox-static is installed by scripts/setup.sh (the lab's initramfs is built from it).
test('busybox cpio extracts what writeCpio wrote (files, dirs, symlinks)', () => {
  const cpio = '/bin/busybox';
  const dir = mkdtempSync(join(tmpdir(), 'faasnap-cpio-'));
  try {
    const archive = writeCpio([
      { kind: 'dir', path: 'bin' },
      { kind: 'file', path: 'bin/hello', data: Buffer.from('#!/bin/sh\necho hi\n'), mode: 0o755 },
      { kind: 'symlink', path: 'bin/alias', target: 'hello' },
      { kind: 'file', path: 'odd', data: Buffer.alloc(5, 7) },
    ]);
    writeFileSync(join(dir, 'a.cpio'), archive);
    const out = join(dir, 'out');
    execFileSync('sh', ['-c', `mkdir ${out} && cd ${out} && ${cpio} cpio -i < ../a.cpio`]);
    assert.equal(readFileSync(join(out, 'bin/hello'), 'utf8'), '#!/bin/sh\necho hi\n');
    assert.equal(statSync(join(out, 'bin/hello')).mode & 0o777, 0o755);
    assert.equal(readlinkSync(join(out, 'bin/alias')), 'hello');
    assert.deepEqual(readFileSync(join(out, 'odd')), Buffer.alloc(5, 7));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
