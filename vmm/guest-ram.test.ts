import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HUGE_PAGE_SIZE, PAGE_SIZE } from '../common/page.js';
import { native } from '../native/index.js';
import { mapHugeAligned } from './guest-ram.js';

test('guest RAM is mapped at 2 MiB-aligned host addresses, every byte usable', () => {
  for (const size of [PAGE_SIZE, HUGE_PAGE_SIZE, 3 * HUGE_PAGE_SIZE + PAGE_SIZE, 64 << 20]) {
    const addr = mapHugeAligned(size);
    try {
      assert.equal(addr % BigInt(HUGE_PAGE_SIZE), 0n, `${size} B at 0x${addr.toString(16)}`);
      const view = new Uint8Array(native.memoryView(addr, size));
      try {
        assert.equal(view[0], 0, 'fresh anonymous memory is zero');
        view[0] = 1;
        view[size - 1] = 2;
        assert.equal(view[0]! + view[size - 1]!, 3);
      } finally {
        native.detachView(view.buffer);
      }
    } finally {
      native.munmap(addr, size);
    }
  }
});
