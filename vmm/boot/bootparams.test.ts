import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  BOOT_PARAMS_SIZE,
  E820_RAM,
  E820_RESERVED,
  SETUP_RNG_SEED,
  buildBootParams,
  e820Map,
  rngSeedSetupData,
} from './bootparams.js';

// Offsets from <asm/bootparam.h> (struct boot_params / struct setup_header), restated here so a
// typo in the module cannot hide in both places.
const at = {
  e820Entries: 0x1e8,
  sentinel: 0x1ef,
  rootFlags: 0x1f2,
  bootFlag: 0x1fe,
  header: 0x202,
  version: 0x206,
  typeOfLoader: 0x210,
  ramdiskImage: 0x218,
  ramdiskSize: 0x21c,
  cmdLinePtr: 0x228,
  setupData: 0x250,
  e820Table: 0x2d0,
};

test('zero page: setup header magic, loader, command line, initrd, setup_data, e820', () => {
  const e820 = [
    { addr: 0, size: 0x9fc00, type: E820_RAM },
    { addr: 0x100000, size: 0x7f00000, type: E820_RAM },
  ];
  const b = buildBootParams({
    cmdlineAddr: 0x20000,
    e820,
    initrd: { addr: 0x7e00000, size: 12345 },
    setupData: 0x6000,
  });
  const v = new DataView(b.buffer);
  assert.equal(b.length, BOOT_PARAMS_SIZE);
  assert.equal(v.getUint16(at.bootFlag, true), 0xaa55);
  assert.equal(Buffer.from(b.subarray(at.header, at.header + 4)).toString('ascii'), 'HdrS');
  assert.ok(v.getUint16(at.version, true) >= 0x020a, 'protocol with cmdline_size etc.');
  assert.equal(v.getUint8(at.typeOfLoader), 0xff);
  assert.equal(v.getUint8(at.sentinel), 0, 'a set sentinel makes Linux wipe fields');
  assert.equal(v.getUint16(at.rootFlags, true), 1, 'read-only root by default');
  assert.equal(v.getUint32(at.cmdLinePtr, true), 0x20000);
  assert.equal(v.getUint32(at.ramdiskImage, true), 0x7e00000);
  assert.equal(v.getUint32(at.ramdiskSize, true), 12345);
  assert.equal(v.getBigUint64(at.setupData, true), 0x6000n);
  assert.equal(v.getUint8(at.e820Entries), 2);
  assert.equal(v.getBigUint64(at.e820Table + 20, true), 0x100000n);
  assert.equal(v.getBigUint64(at.e820Table + 28, true), 0x7f00000n);
  assert.equal(v.getUint32(at.e820Table + 36, true), E820_RAM);
});

test('zero page without initrd or setup data leaves those fields zero; rw root', () => {
  const b = buildBootParams({
    cmdlineAddr: 0x20000,
    e820: [{ addr: 0, size: 0x1000, type: E820_RAM }],
    rootReadOnly: false,
  });
  const v = new DataView(b.buffer);
  assert.equal(v.getUint32(at.ramdiskImage, true), 0);
  assert.equal(v.getBigUint64(at.setupData, true), 0n);
  assert.equal(v.getUint16(at.rootFlags, true), 0);
});

test('zero page rejects addresses above 4 GiB and empty maps', () => {
  const e820 = [{ addr: 0, size: 0x1000, type: E820_RAM }];
  assert.throws(() => buildBootParams({ cmdlineAddr: 2 ** 32, e820 }));
  assert.throws(() => buildBootParams({ cmdlineAddr: 0x20000, e820: [] }));
});

test('e820: holes removed, reserved ranges carved out and listed, MMIO hole absent', () => {
  const GiB = 2 ** 30;
  const map = e820Map(
    [
      { addr: 0, size: 3 * GiB },
      { addr: 4 * GiB, size: GiB },
    ],
    [{ addr: 0xa0000, size: 0x60000 }],
    [{ addr: 0x9fc00, size: 0x400 }],
  );
  assert.deepEqual(map, [
    { addr: 0, size: 0x9fc00, type: E820_RAM },
    { addr: 0x9fc00, size: 0x400, type: E820_RESERVED },
    { addr: 0x100000, size: 3 * GiB - 0x100000, type: E820_RAM },
    { addr: 4 * GiB, size: GiB, type: E820_RAM },
  ]);
});

test('setup_data RNG seed record', () => {
  const seed = Uint8Array.from({ length: 32 }, (_, i) => i + 1);
  const r = rngSeedSetupData(seed);
  const v = new DataView(r.buffer);
  assert.equal(v.getBigUint64(0, true), 0n);
  assert.equal(v.getUint32(8, true), SETUP_RNG_SEED);
  assert.equal(v.getUint32(12, true), 32);
  assert.deepEqual(r.subarray(16), seed);
});
