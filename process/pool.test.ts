// The VMM pool with real VMM processes (each opens /dev/kvm: a KVM tier).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { kvmTest } from '../test/kvm/support.js';
import { VmmPool } from './pool.js';

/** This process's children (pgrep exits 1 when there are none). */
function children(): number[] {
  try {
    return execFileSync('pgrep', ['-P', String(process.pid)], { encoding: 'utf8' })
      .split('\n')
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

kvmTest('closing the pool while refills are starting leaves no VMM process behind', async () => {
  const before = children();
  const pool = new VmmPool(2);
  const filling = pool.fill().catch(() => undefined);
  // Both start-ups are in flight (a start takes ~0.4 s on a host, seconds in the lab).
  assert.equal(children().length, before.length + 2);
  await pool.close();
  assert.deepEqual(children(), before, 'no VMM process outlives close()');
  await filling;
  assert.equal(pool.idleCount, 0);
});
