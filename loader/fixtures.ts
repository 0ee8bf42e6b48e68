// Hand-made memory images and guest RAM for the loader tests and bench/loader-io.ts (which runs
// the loaders without KVM).

import { native } from '../native/index.js';
import { mapHugeAligned, type GuestRam } from '../vmm/guest-ram.js';

export const P = 4096;

/** A `pages`-page image whose listed pages are non-zero (one byte set, at a varying position). */
export function image(pages: number, nonZero: Iterable<number>): Buffer {
  const b = Buffer.alloc(pages * P);
  for (const pg of nonZero) {
    // Vary the position (first, last, middle byte) so a check that only looks at part of a
    // block is caught.
    const pos = [0, P - 1, 1234][pg % 3]!;
    b[pg * P + pos] = 0x5a ^ (pg & 0xff) || 1;
  }
  return b;
}

/** Every page index in [from, to). */
export function range(from: number, to: number): number[] {
  return Array.from({ length: to - from }, (_, i) => from + i);
}

/** Deterministic PRNG (mulberry32) so randomised tests replay exactly. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Anonymous memory mapped as GuestRam maps it (one region at GPA 0); free() unmaps it. */
export function anonRam(size: number): GuestRam & { free(): void } {
  const hostAddr = mapHugeAligned(size);
  const view = native.memoryView(hostAddr, size);
  return {
    regions: [{ slot: 0, gpa: 0, size, hostAddr, view }],
    size,
    free() {
      native.detachView(view);
      native.munmap(hostAddr, size);
    },
  } as unknown as GuestRam & { free(): void };
}
