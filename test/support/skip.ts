// One rule for tests that cannot run on this machine: they skip and say why, except where the
// run says they must run (CI, the lab): there a skip would pass unseen, so it fails instead.

import { test, type TestContext } from 'node:test';
import { scaledMs } from '../../common/time-scale.js';

/** FAASNAP_REQUIRE_KVM=1: the KVM, guest and fault-injection tiers must run here. */
export const TIERS_REQUIRED = process.env.FAASNAP_REQUIRE_KVM === '1';

/** Skips with `reason`, or throws when `required` (by default: TIERS_REQUIRED). */
export function skipOrFail(
  t: { skip(message?: string): void },
  reason: string,
  required = TIERS_REQUIRED,
): void {
  if (required) throw new Error(`${reason}; this run requires the test to run`);
  t.skip(reason);
}

/**
 * node:test's `test` for a tier that needs something this machine may lack: `missing()` says
 * what (or undefined when all is there); then the test skips or fails as skipOrFail decides.
 */
export function tierTest(
  name: string,
  missing: () => string | undefined,
  fn: (t: TestContext) => Promise<void> | void,
  timeoutMs: number,
): void {
  test(name, { timeout: scaledMs(timeoutMs) }, async (t) => {
    const why = missing();
    if (why) {
      skipOrFail(t, why);
      return;
    }
    await fn(t);
  });
}
