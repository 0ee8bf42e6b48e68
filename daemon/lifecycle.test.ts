import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { isFaasnapError } from '../common/errors.js';
import { Lifecycle, canTransition } from './lifecycle.js';
import { Store } from './store/index.js';

const cfg = {
  name: 'f',
  runtime: 'micro' as const,
  handler: 'touch',
  memoryMiB: 32,
  vcpus: 1,
  defaultMode: 'faasnap' as const,
  timeoutMs: 1000,
  stateMiB: 0,
};

test('lifecycle follows the deploy chain, persists each state and wakes waiters', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'faasnap-lifecycle-'));
  const store = Store.open(join(dir, 'db'));
  try {
    store.functions.insert(cfg);
    const lc = new Lifecycle(store.functions);
    assert.throws(
      () => lc.transition('f', 'ready'),
      (e) => isFaasnapError(e, 'FUNCTION_STATE'),
    );
    const waiting = lc.waitFor('f', 'ready', 5000);
    for (const s of ['booting', 'warm', 'snapshotted', 'recorded'] as const) lc.transition('f', s);
    lc.transition('f', 'ready', { readySnapshot: 'snap-00000000' });
    const w = await waiting;
    assert.equal(w.reached, true);
    assert.equal(w.function.readySnapshot, 'snap-00000000');
    // A failed deploy answers waiters at once with reached=false.
    lc.transition('f', 'booting');
    const w2 = lc.waitFor('f', 'ready', 5000);
    lc.transition('f', 'failed', { error: { code: 'FUNCTION_ERROR', message: 'x' } });
    assert.equal((await w2).reached, false);
    assert.equal((await lc.waitFor('f', 'ready', 10)).reached, false);
    // Durable: a second store on the same file sees the state.
    const again = Store.open(join(dir, 'db'));
    assert.equal(again.functions.get('f').state, 'failed');
    again.close();
    assert.equal(canTransition('registered', 'booting'), true);
    assert.equal(canTransition('ready', 'warm'), false);
  } finally {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
