import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { SYSCALL_NUMBERS } from './syscall-numbers.js';

// The uapi header ships with the addon's build tools (linux-libc-dev, setup.sh).
const HEADER = '/usr/include/x86_64-linux-gnu/asm/unistd_64.h';

test('the syscall table matches the kernel header', () => {
  const fromHeader: Record<string, number> = {};
  for (const m of readFileSync(HEADER, 'utf8').matchAll(/^#define __NR_(\w+) (\d+)$/gm))
    fromHeader[m[1]!] = Number(m[2]);
  assert.ok(Object.keys(fromHeader).length > 300);
  assert.deepEqual({ ...SYSCALL_NUMBERS }, fromHeader);
});
