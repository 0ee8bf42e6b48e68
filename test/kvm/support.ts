// Shared support for the KVM tiers: a test wrapper that reports clearly when /dev/kvm is absent
// (and fails instead when FAASNAP_REQUIRE_KVM=1, as CI sets it), and process resource counters
// used to prove that a stopped VM released everything.

import { existsSync, readdirSync, readlinkSync } from 'node:fs';
import type { TestContext } from 'node:test';
import { tierTest } from '../support/skip.js';

export const KVM_PRESENT = existsSync('/dev/kvm');

/** node:test's `test` for tests that need /dev/kvm. */
export function kvmTest(
  name: string,
  fn: (t: TestContext) => Promise<void> | void,
  timeoutMs = 120_000,
): void {
  const why = () => (KVM_PRESENT ? undefined : 'KVM tier did not run: /dev/kvm is missing');
  tierTest(name, why, fn, timeoutMs);
}

export function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

/**
 * Open fds whose target matches `kind` (e.g. /userfaultfd|eventfd/). Tests of one native
 * resource count only its kinds: Node opens its own fds lazily at any time (CI once saw one
 * appear in the middle of a test), which made a total count flaky.
 */
export function openFdsOfKind(kind: RegExp): number {
  let n = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (kind.test(readlinkSync(`/proc/self/fd/${fd}`))) n++;
    } catch {
      // The fd closed between readdir and readlink (e.g. the one readdir itself used).
    }
  }
  return n;
}

export function threads(): number {
  return readdirSync('/proc/self/task').length;
}

/**
 * The thread count once exited threads are gone: pthread_join returns when the kernel clears the
 * thread's tid, a moment before its /proc/self/task entry is removed. A leaked thread never goes,
 * so waiting up to `ms` for `expected` cannot hide one.
 */
export async function threadsSettled(expected: number, ms = 1000): Promise<number> {
  const deadline = Date.now() + ms;
  let n = threads();
  while (n !== expected && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 5));
    n = threads();
  }
  return n;
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
