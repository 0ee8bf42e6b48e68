// One rule for tests that cannot run on this machine: they skip and say why, except where the
// run says they must run (CI, the lab): there a skip would pass unseen, so it fails instead.

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
