import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resolveConfig } from './config.js';

test('guests boot with sanitised pages unless the option or FAASNAP_GUEST_SANITISED_PAGES=0 says not', () => {
  const at = { dataDir: '/nonexistent/faasnap' };
  assert.equal(resolveConfig(at, {}).guest.sanitisedPages, true);
  assert.equal(
    resolveConfig(at, { FAASNAP_GUEST_SANITISED_PAGES: '0' }).guest.sanitisedPages,
    false,
  );
  assert.equal(
    resolveConfig({ ...at, guest: { sanitisedPages: false } }, {}).guest.sanitisedPages,
    false,
  );
  assert.equal(
    resolveConfig(
      { ...at, guest: { sanitisedPages: true } },
      { FAASNAP_GUEST_SANITISED_PAGES: '0' },
    ).guest.sanitisedPages,
    true,
  );
});
