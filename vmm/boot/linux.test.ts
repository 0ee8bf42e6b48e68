import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isFaasnapError } from '../../common/errors.js';
import { linuxCmdline, placeInitrd } from './linux.js';

test('command line: console, template parameters, one virtio_mmio.device per device, extras', () => {
  const cmd = linuxCmdline({
    template: 'pvm-safe',
    virtio: [
      { base: 0xd0000000, gsi: 5 },
      { base: 0xd0001000, gsi: 6 },
    ],
    extra: ['quiet', 'init=/bin/sh'],
  });
  assert.equal(
    cmd,
    'console=ttyS0 noxsave nosmap nosmep clearcpuid=smap,smep,popcnt,erms,fsrm noreplace-smp ' +
      'percpu_alloc=page nofsgsbase faasnap_pvm_syscall=1 faasnap_tsc_jump=1 ' +
      'virtio_mmio.device=4K@0xd0000000:5 virtio_mmio.device=4K@0xd0001000:6 quiet init=/bin/sh',
  );
  assert.equal(linuxCmdline({ template: 'host', virtio: [] }), 'console=ttyS0');
});

test('virtio devices beyond the ISA IRQs are refused', () => {
  assert.throws(
    () => linuxCmdline({ template: 'host', virtio: [{ base: 0xd000f000, gsi: 16 }] }),
    (e) => isFaasnapError(e, 'INVALID_VM_CONFIG'),
  );
});

test('initramfs at the top of RAM, page-aligned, never under the kernel', () => {
  assert.deepEqual(placeInitrd(5000, 0x2000000, 0x8000000), { addr: 0x7ffe000, size: 5000 });
  assert.deepEqual(placeInitrd(4096, 0x1000, 0x3000), { addr: 0x2000, size: 4096 });
  assert.throws(
    () => placeInitrd(0x7000000, 0x2000000, 0x8000000),
    (e) => isFaasnapError(e, 'INVALID_VM_CONFIG'),
  );
});
