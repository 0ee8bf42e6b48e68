// Tier 1: encoders and reference computations of the micro-guests. Expected constants were
// computed separately (Python, and where noted by running the guest itself on KVM).

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { describe, it } from 'node:test';

import { FaasnapError } from '../../common/errors.js';
import {
  BENCH_OPS,
  FNV64_OFFSET,
  HELLO_LCG_A,
  HELLO_LCG_C,
  MICRO_GUESTS,
  TOUCH_FLAG_PROGRESS,
  TOUCH_FLAG_WRITE,
  blkReadChecksum,
  blkWritePattern,
  encodeBenchParams,
  encodeBlkParams,
  encodeTouchParams,
  helloSum,
  helloSumLoop,
  microGuestPath,
  microRepoRoot,
  microVirtioDevice,
  parseBenchOutput,
  parseBlkOutput,
  parseHelloOutput,
  parseTouchOutput,
  touchChecksum,
  touchExpectedChecksum,
  touchPagePattern,
  touchPageGpa,
  touchPattern,
  wordChecksum,
  wordChecksumOfWords,
} from './index.js';

function u64s(bytes: Uint8Array): bigint[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return Array.from({ length: bytes.length / 8 }, (_, i) => view.getBigUint64(i * 8, true));
}

describe('micro-guest catalogue', () => {
  it('resolves images under guest/micro/build of the repository', () => {
    assert.equal(MICRO_GUESTS.length, 6);
    const p = microGuestPath('touch');
    assert.ok(isAbsolute(p));
    assert.equal(p, join(microRepoRoot(), 'guest', 'micro', 'build', 'touch.bin'));
    assert.ok(existsSync(join(microRepoRoot(), 'guest', 'micro', 'Makefile')));
    assert.throws(() => microGuestPath('nope' as 'hello'), FaasnapError);
  });

  it('numbers virtio-mmio devices as ABI.md does', () => {
    assert.deepEqual(microVirtioDevice(0), { mmioBase: 0xd0000000, gsi: 5 });
    assert.deepEqual(microVirtioDevice(2), { mmioBase: 0xd0002000, gsi: 7 });
  });
});

describe('parameter encoders', () => {
  it('touch: flags, seed, count, then the page indices', () => {
    const blob = encodeTouchParams({
      flags: TOUCH_FLAG_WRITE | TOUCH_FLAG_PROGRESS,
      seed: 0x1122334455667788n,
      pages: [0, 5, 0x1234],
    });
    assert.equal(blob.length, 48);
    assert.deepEqual(u64s(blob), [3n, 0x1122334455667788n, 3n, 0n, 5n, 0x1234n]);
    assert.deepEqual(
      Array.from(blob.subarray(8, 16)),
      [0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11],
    );
    assert.deepEqual(u64s(encodeTouchParams({ flags: 0, seed: 7, pages: [] })), [0n, 7n, 0n]);
    assert.throws(() => encodeTouchParams({ flags: 0, seed: -1, pages: [] }), FaasnapError);
    assert.throws(() => encodeTouchParams({ flags: 0, seed: 0, pages: [1.5] }), FaasnapError);
    assert.throws(() => encodeTouchParams({ flags: 0, seed: 1n << 64n, pages: [] }), FaasnapError);
  });

  it('virtio-blk: base, gsi, sectors, write sector', () => {
    const blob = encodeBlkParams({ mmioBase: 0xd0001000, gsi: 6, readSectors: 8, writeSector: 3 });
    assert.deepEqual(u64s(blob), [0xd0001000n, 6n, 8n, 3n]);
    const ok = { mmioBase: 0xd0000000, gsi: 5, readSectors: 1, writeSector: 0 };
    assert.throws(() => encodeBlkParams({ ...ok, readSectors: 0 }), FaasnapError);
    assert.throws(() => encodeBlkParams({ ...ok, readSectors: 9 }), FaasnapError);
    assert.throws(() => encodeBlkParams({ ...ok, gsi: 24 }), FaasnapError);
    assert.throws(() => encodeBlkParams({ ...ok, mmioBase: 0xd0000800 }), FaasnapError);
    assert.throws(() => encodeBlkParams({ ...ok, mmioBase: 0x1_0000_0000 }), FaasnapError);
  });

  it('bench: op, iterations, port, gsi', () => {
    assert.deepEqual(u64s(encodeBenchParams({ op: 'pio', iterations: 1000, port: 0x80 })), [
      1n,
      1000n,
      0x80n,
      0n,
    ]);
    assert.deepEqual(u64s(encodeBenchParams({ op: 'irq', iterations: 10n, port: 0x500, gsi: 9 })), [
      BigInt(BENCH_OPS.irq),
      10n,
      0x500n,
      9n,
    ]);
    assert.throws(() => encodeBenchParams({ op: 'irq', iterations: 1, port: 0x80 }), FaasnapError);
    assert.throws(
      () => encodeBenchParams({ op: 'pio', iterations: 1, port: 0x10000 }),
      FaasnapError,
    );
    assert.throws(
      () => encodeBenchParams({ op: 'mmio' as 'pio', iterations: 1, port: 0 }),
      FaasnapError,
    );
  });
});

describe('hello sum', () => {
  it('matches hand-computed first terms', () => {
    assert.equal(helloSumLoop(0), 0n);
    assert.equal(helloSumLoop(1), HELLO_LCG_C);
    assert.equal(helloSumLoop(2), 0x2e0e69907c21ee81n); // C + (A*C + C) mod 2^64
    assert.equal(HELLO_LCG_A, 0x5851f42d4c957f2dn);
  });

  it('closed form equals the loop', () => {
    for (const n of [0, 1, 2, 3, 7, 64, 1000, 4097])
      assert.equal(helloSum(n), helloSumLoop(n), `n=${n}`);
  });

  it('10M iterations give what the guest printed on KVM', () => {
    assert.equal(helloSum(), 0xf0c8282ee06577c0n);
  });
});

describe('word checksum (FNV-1a over u64 words)', () => {
  it('matches hand-computed values', () => {
    assert.equal(wordChecksum(new Uint8Array(0)), FNV64_OFFSET);
    assert.equal(wordChecksum(new Uint8Array(8)), 0xaf63bd4c8601b7dfn);
    assert.equal(wordChecksumOfWords([0n]), 0xaf63bd4c8601b7dfn);
    const b = new Uint8Array(16);
    b[0] = 1;
    b[8] = 2;
    assert.equal(wordChecksum(b), 0x082f2407b4e8902an);
    assert.equal(wordChecksum(new Uint8Array(512)), 0xb9b23f3a46fd0825n);
  });

  it('fast path equals the BigInt reference on arbitrary data, also unaligned', () => {
    let x = 12345;
    const backing = new Uint8Array(8 * 300 + 3);
    for (let i = 0; i < backing.length; i++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      backing[i] = x >>> 24;
    }
    const data = backing.subarray(3); // odd byteOffset
    assert.equal(wordChecksum(data), wordChecksumOfWords(u64s(data)));
  });

  it('rejects partial words', () => {
    assert.throws(() => wordChecksum(new Uint8Array(12)), FaasnapError);
  });
});

describe('touch', () => {
  it('pattern matches hand-computed words', () => {
    assert.equal(touchPattern(0n, 0, 0), 0n);
    assert.equal(touchPattern(1n, 0, 0), 0x9e3779b9e17d05acn);
    assert.equal(touchPattern(0n, 2, 3), 0xb88d53291f429b16n);
    // page index whose word index g exceeds 2^32
    assert.equal(touchPattern(0xffffffffffffffffn, 0x800000, 511), 0x11c210ec7ac5c6ecn);
  });

  it('fast page pattern equals the BigInt pattern', () => {
    for (const [seed, page] of [
      [0n, 0],
      [0x1234567890abcdefn, 5],
      [0xffffffffffffffffn, 0x800000],
      [0x8000000000000001n, 123456789],
    ] as const) {
      const words = u64s(touchPagePattern(seed, page));
      assert.equal(words.length, 512);
      words.forEach((w, i) =>
        assert.equal(w, touchPattern(seed, page, i), `seed ${seed} page ${page} word ${i}`),
      );
    }
  });

  it('expected checksums equal what the guest printed on KVM', () => {
    const write = {
      flags: TOUCH_FLAG_WRITE | TOUCH_FLAG_PROGRESS,
      seed: 0x1234567890abcdefn,
      pages: [0, 5, 3, 1000, 5],
    };
    assert.equal(touchExpectedChecksum(write), 0x7c03e4fd1eaa7dbfn);
    assert.equal(touchExpectedChecksum({ flags: 0, seed: 0, pages: [7, 8] }), 0x51d88627df287325n);
  });

  it('reads pages from a RAM image or a page reader, in list order', () => {
    const ram = new Uint8Array(touchPageGpa(4));
    const pages = [3, 0, 3];
    for (const p of [0, 3]) ram.set(touchPagePattern(9n, p), touchPageGpa(p));
    const expected = touchExpectedChecksum({ flags: TOUCH_FLAG_WRITE, seed: 9n, pages });
    assert.equal(touchChecksum(pages, ram), expected);
    assert.equal(touchExpectedChecksum({ flags: 0, seed: 0, pages }, ram), expected);
    assert.equal(
      touchChecksum(pages, (p) => ram.subarray(touchPageGpa(p), touchPageGpa(p) + 4096)),
      expected,
    );
    assert.notEqual(touchChecksum([0, 3, 3], ram), expected);
    assert.throws(() => touchChecksum([4], ram), FaasnapError);
  });
});

describe('virtio-blk expectations', () => {
  it('write pattern and read checksum', () => {
    const p = blkWritePattern();
    assert.equal(p.length, 512);
    assert.deepEqual([p[0], p[1], p[255], p[256], p[511]], [0, 1, 255, 0, 255]);
    assert.equal(wordChecksum(p), 0xf18810a85430d525n);
    const disk = new Uint8Array(4096);
    assert.equal(blkReadChecksum(disk, 1), 0xb9b23f3a46fd0825n);
  });
});

describe('output parsers', () => {
  it('hello', () => {
    const out = 'hello from CPL0\nhello from CPL3 sum=f0c8282ee06577c0\nvcpus=2\n';
    assert.deepEqual(parseHelloOutput(out), { cpl0: true, sum: 0xf0c8282ee06577c0n, vcpus: 2 });
    assert.deepEqual(parseHelloOutput('hello from CPL0\r\nvcpus=timeout\r\n'), {
      cpl0: true,
      vcpus: 'timeout',
    });
    assert.deepEqual(parseHelloOutput(''), { cpl0: false });
  });

  it('touch', () => {
    const out =
      'progress 0000000000000000\nprogress 0000000000000100\ncycles=00000000002c173a\n' +
      'touch pages=0000000000000005 checksum=7c03e4fd1eaa7dbf\n';
    assert.deepEqual(parseTouchOutput(out), {
      progress: [0, 256],
      cycles: 0x2c173an,
      pages: 5,
      checksum: 0x7c03e4fd1eaa7dbfn,
    });
    assert.deepEqual(parseTouchOutput('touch error params\n'), { progress: [], error: 'params' });
  });

  it('virtio-blk, including errors and exceptions', () => {
    const out =
      'blk read sectors=0000000000000008 status=00 checksum=59a549d1116c2579\n' +
      'blk write status=00\nblk flush status=02\n';
    assert.deepEqual(parseBlkOutput(out), {
      read: { sectors: 8, status: 0, checksum: 0x59a549d1116c2579n },
      writeStatus: 0,
      flushStatus: 2,
    });
    assert.deepEqual(parseBlkOutput('blk error timeout\n'), { error: 'timeout' });
    const exc =
      'exception 14\nfault rip=000000000010000f error=0000000000000002 cr2=00000000dead0000\n';
    assert.deepEqual(parseBlkOutput(exc), {
      exception: { vector: 14, rip: 0x10000fn, errorCode: 2n, cr2: 0xdead0000n },
    });
  });

  it('bench', () => {
    assert.deepEqual(parseBenchOutput('bench pio done\n'), { done: 'pio' });
    assert.deepEqual(parseBenchOutput('bench irq done count=0000000000004e20\n'), {
      done: 'irq',
      count: 20000n,
    });
    assert.deepEqual(parseBenchOutput('bench error gsi\n'), { error: 'gsi' });
  });
});
