// Shared support for the KVM tiers: a test wrapper that reports clearly when /dev/kvm is absent
// (and fails instead when FAASNAP_REQUIRE_KVM=1, as CI sets it), and process resource counters
// used to prove that a stopped VM released everything.

import { existsSync, readdirSync } from 'node:fs';
import { test, type TestContext } from 'node:test';

export const KVM_PRESENT = existsSync('/dev/kvm');
const REQUIRED = process.env.FAASNAP_REQUIRE_KVM === '1';

/** node:test's `test` for tests that need /dev/kvm. */
export function kvmTest(
  name: string,
  fn: (t: TestContext) => Promise<void> | void,
  timeoutMs = 120_000,
): void {
  test(name, { timeout: timeoutMs }, async (t) => {
    if (!KVM_PRESENT) {
      if (REQUIRED)
        throw new Error(
          '/dev/kvm is missing but FAASNAP_REQUIRE_KVM=1: the KVM tier must run here',
        );
      t.skip('KVM tier did not run: /dev/kvm is missing');
      return;
    }
    await fn(t);
  });
}

export function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

export function threads(): number {
  return readdirSync('/proc/self/task').length;
}

/** Host mappings of this process (lines of /proc/self/maps). */
export async function mappings(): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  return (await readFile('/proc/self/maps', 'utf8')).split('\n').filter(Boolean).length;
}

/**
 * Mappings a VM can leave behind: KVM's (vCPU run structures, anon_inode:kvm-*) and anonymous
 * ones exactly `ramMiB` long (guest RAM). Counting every mapping is flaky: V8 maps and unmaps
 * heap pages on its own schedule (a run under load saw 216 before and 214 after).
 */
export async function vmMappings(ramMiB: readonly number[]): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  const sizes = new Set(ramMiB.map((m) => m * 1024 * 1024));
  return (await readFile('/proc/self/maps', 'utf8'))
    .split('\n')
    .filter(Boolean)
    .filter((l) => {
      const [a, b] = l
        .split(' ')[0]!
        .split('-')
        .map((h) => parseInt(h, 16));
      return l.includes('kvm') || sizes.has(b! - a!);
    }).length;
}
