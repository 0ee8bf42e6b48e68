import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isFaasnapError } from '../common/errors.js';
import { loadOrder, modinfoDependencies, moduleName } from './modules.js';

test('module names compare with - and _ alike and drop the path and .ko', () => {
  assert.equal(moduleName('kernel/arch/x86/kvm/kvm-amd.ko'), 'kvm_amd');
  assert.equal(moduleName('9pnet_virtio'), '9pnet_virtio');
});

test('.modinfo: depends= and the pre part of softdep=', () => {
  const ko = Buffer.from(
    'ELF junk\0license=GPL\0depends=jbd2,mbcache,crc16\0softdep=pre: crc32c post: foo\0vermagic=6.1\0',
    'latin1',
  );
  assert.deepEqual(modinfoDependencies(ko), {
    hard: ['jbd2', 'mbcache', 'crc16'],
    soft: ['crc32c'],
  });
  assert.deepEqual(modinfoDependencies(Buffer.from('\0depends=\0')), { hard: [], soft: [] });
});

test('load order puts dependencies first, once, and skips built-ins', () => {
  const files = new Map([
    ['kvm_amd', 'k/kvm-amd.ko'],
    ['kvm', 'k/kvm.ko'],
    ['irqbypass', 'k/irqbypass.ko'],
    ['ccp', 'k/ccp.ko'],
    ['ext4', 'k/ext4.ko'],
  ]);
  const deps: Record<string, string[]> = {
    kvm_amd: ['kvm', 'ccp'],
    kvm: ['irqbypass'],
    ext4: ['jbd2', 'kvm'],
  };
  const soft: Record<string, string[]> = { ext4: ['ccp', 'crypto_crc32c'] };
  const order = loadOrder(
    ['kvm-amd', 'ext4'],
    files,
    (n) => ({ hard: deps[n] ?? [], soft: soft[n] ?? [] }),
    new Set(['jbd2']),
  );
  // A soft dependency that is no file (an alias) is skipped; one that is a file loads first.
  assert.deepEqual(order, ['k/irqbypass.ko', 'k/kvm.ko', 'k/ccp.ko', 'k/kvm-amd.ko', 'k/ext4.ko']);
});

test('a missing module or a cycle is a typed error naming it', () => {
  const files = new Map([
    ['a', 'a.ko'],
    ['b', 'b.ko'],
  ]);
  assert.throws(
    () => loadOrder(['a'], files, () => ({ hard: ['zz'], soft: [] })),
    (e) =>
      isFaasnapError(e) &&
      e.code === 'LAB_SETUP_FAILED' &&
      /zz not found \(needed by a\)/.test(e.message),
  );
  assert.throws(
    () => loadOrder(['a'], files, (n) => ({ hard: [n === 'a' ? 'b' : 'a'], soft: [] })),
    (e) => isFaasnapError(e) && /cycle: a -> b -> a/.test(e.message),
  );
});
