import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isFaasnapError } from '../common/errors.js';
import { ensureHostPackages } from './assets.js';

test('missing host packages are a typed error that names the apt-get command', () => {
  assert.throws(
    () => ensureHostPackages(false, (f) => f !== '/usr/bin/qemu-system-x86_64'),
    (e) =>
      isFaasnapError(e, 'LAB_PACKAGE_MISSING') &&
      e.message.includes('apt-get install -y --no-install-recommends qemu-system-x86') &&
      JSON.stringify(e.details.missing) === '["qemu-system-x86"]',
  );
  assert.doesNotThrow(() => ensureHostPackages(false, () => true));
});
