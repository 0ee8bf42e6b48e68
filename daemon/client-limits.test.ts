import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isFaasnapError } from '../common/errors.js';
import { ClientLimits } from './client-limits.js';

test('a client over its limit gets CLIENT_LIMIT; others and other kinds are unaffected', () => {
  const limits = new ClientLimits({ invocations: 2, deploys: 1 });
  const a1 = limits.acquire('10.0.0.1', 'invocations');
  limits.acquire('10.0.0.1', 'invocations');
  assert.throws(
    () => limits.acquire('10.0.0.1', 'invocations'),
    (e) =>
      isFaasnapError(e, 'CLIENT_LIMIT') &&
      e.details.limit === 2 &&
      e.details.kind === 'invocations',
  );
  // Another client, and another kind of work of the same client, still pass.
  limits.acquire('10.0.0.2', 'invocations');
  const d = limits.acquire('10.0.0.1', 'deploys');
  assert.throws(() => limits.acquire('10.0.0.1', 'deploys'), /deploys in flight/);
  // Ending one frees one slot; a second call of the same release frees nothing more.
  a1();
  a1();
  assert.equal(limits.count('10.0.0.1', 'invocations'), 1);
  limits.acquire('10.0.0.1', 'invocations');
  assert.throws(() => limits.acquire('10.0.0.1', 'invocations'), /limit 2/);
  d();
  assert.equal(limits.count('10.0.0.1', 'deploys'), 0);
});

test('a client with nothing in flight is forgotten', () => {
  const limits = new ClientLimits({ invocations: 1, deploys: 1 });
  const r = limits.acquire('::1', 'deploys');
  assert.equal(limits.clients, 1);
  r();
  assert.equal(limits.clients, 0);
});
