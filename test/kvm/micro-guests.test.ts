// Tier 2: each micro-guest boots on real KVM and produces its expected output, checked against
// independent TypeScript computations (guest/micro/index.ts).

import { scaledMs } from '../../common/time-scale.js';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  TOUCH_FLAG_WRITE,
  blkReadChecksum,
  blkWritePattern,
  encodeTouchParams,
  helloSum,
  parseBlkOutput,
  parseHelloOutput,
  parseTouchOutput,
  touchExpectedChecksum,
} from '../../guest/micro/index.js';
import { createMicroVm } from '../../guest/micro/launch.js';
import { kvmTest } from './support.js';

kvmTest('hello prints from CPL0 and CPL3 with the expected sum and shuts down', async () => {
  const vm = createMicroVm({ guest: 'hello', memMiB: 16, vcpus: 1 });
  const exit = await vm.runToCompletion(scaledMs(30_000));
  assert.equal(exit.reason, 'reset');
  const out = parseHelloOutput(vm.console.text());
  assert.equal(out.cpl0, true);
  assert.equal(out.sum, helloSum());
  assert.equal(out.vcpus, 1);
});

kvmTest('multiple vCPUs start and check in', async () => {
  const vm = createMicroVm({ guest: 'hello', memMiB: 16, vcpus: 2 });
  await vm.runToCompletion(scaledMs(30_000));
  assert.equal(parseHelloOutput(vm.console.text()).vcpus, 2);
});

kvmTest('touch writes a pattern over pages in a given order and reports its checksum', async () => {
  // A shuffled order over 8 MiB so order matters for nothing but the checksum fold.
  const pages = Array.from({ length: 2048 }, (_, i) => (i * 1237) % 2048);
  const params = { flags: TOUCH_FLAG_WRITE, seed: 0x5eedn, pages };
  const vm = createMicroVm({
    guest: 'touch',
    memMiB: 16,
    vcpus: 1,
    params: encodeTouchParams(params),
  });
  await vm.runToCompletion(scaledMs(30_000));
  const out = parseTouchOutput(vm.console.text());
  assert.equal(out.pages, pages.length);
  assert.equal(out.checksum, touchExpectedChecksum(params));
});

kvmTest('touch read-only checksums memory the host prepared', async () => {
  const pages = [0, 5, 3, 1000];
  const params = { flags: 0, seed: 0, pages };
  const vm = createMicroVm({
    guest: 'touch',
    memMiB: 16,
    vcpus: 1,
    params: encodeTouchParams(params),
  });
  // The host writes known bytes into guest RAM before the guest runs.
  const ram = new Uint8Array(16 << 20);
  for (const p of pages) {
    const gpa = 0x400000 + p * 4096;
    for (let i = 0; i < 4096; i++) ram[gpa + i] = (p * 31 + i) & 0xff;
    vm.memory.write(gpa, ram.subarray(gpa, gpa + 4096));
  }
  await vm.runToCompletion(scaledMs(30_000));
  assert.equal(parseTouchOutput(vm.console.text()).checksum, touchExpectedChecksum(params, ram));
});

kvmTest(
  'virtio-blk guest reads, writes and flushes a real disk file through the transport',
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'faasnap-blk-'));
    try {
      const disk = join(dir, 'disk.img');
      const content = Buffer.alloc(64 * 1024);
      for (let i = 0; i < content.length; i++) content[i] = (i * 7 + (i >> 9)) & 0xff;
      writeFileSync(disk, content);
      const vm = createMicroVm({
        guest: 'virtio-blk',
        memMiB: 16,
        vcpus: 1,
        disk,
        diskWritable: true,
      });
      await vm.runToCompletion(scaledMs(30_000));
      const out = parseBlkOutput(vm.console.text());
      assert.equal(out.error, undefined, vm.console.text());
      assert.equal(out.read?.status, 0);
      assert.equal(out.read?.checksum, blkReadChecksum(content, 8));
      assert.equal(out.writeStatus, 0);
      assert.equal(out.flushStatus, 0);
      const after = readFileSync(disk);
      assert.deepEqual(after.subarray(8 * 512, 9 * 512), Buffer.from(blkWritePattern()));
      assert.deepEqual(after.subarray(0, 8 * 512), content.subarray(0, 8 * 512));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

kvmTest('a read-only disk rejects the guest write with an I/O error status', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'faasnap-blk-'));
  try {
    const disk = join(dir, 'disk.img');
    writeFileSync(disk, Buffer.alloc(16 * 1024, 0xab));
    const vm = createMicroVm({ guest: 'virtio-blk', memMiB: 16, vcpus: 1, disk });
    await vm.runToCompletion(scaledMs(30_000));
    const out = parseBlkOutput(vm.console.text());
    assert.equal(out.read?.status, 0);
    assert.equal(out.writeStatus, 1); // VIRTIO_BLK_S_IOERR
    assert.deepEqual(readFileSync(disk), Buffer.alloc(16 * 1024, 0xab));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
