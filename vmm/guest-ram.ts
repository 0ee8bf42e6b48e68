// Guest RAM: one host mapping per memory region, registered with KVM_SET_USER_MEMORY_REGION.
// It owns the mappings (allocation, KVM slots, release); guest-memory.ts is the pure,
// bounds-checked view of them that devices read and write through.
//
// x86 layout: RAM from 0 up to the MMIO hole at 3 GiB, the rest above 4 GiB. Each region starts
// as private anonymous memory (zero pages cost no I/O); the snapshot loaders later replace
// parts of a region in place with MAP_FIXED file mappings, so the host address of a region never
// changes after KVM knows it.

import { FaasnapError } from '../common/errors.js';
import { native } from '../native/index.js';
import { HUGE_PAGE_SIZE, PAGE_SIZE } from '../common/page.js';
import { GuestMemory } from './guest-memory.js';

/** First byte of the 32-bit MMIO hole (virtio-mmio devices, IOAPIC, LAPIC live above it). */
export const MMIO_HOLE_START = 0xc000_0000;
export const FOUR_GIB = 0x1_0000_0000;

export interface RamRegion {
  slot: number;
  gpa: number;
  size: number;
  hostAddr: bigint;
  /** Zero-copy view of the mapping; detached when the RAM is released. */
  view: ArrayBuffer;
}

/** The guest-physical layout for `sizeBytes` of RAM (pure; used by snapshots too). */
export function ramLayout(sizeBytes: number): { gpa: number; size: number }[] {
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0 || sizeBytes % PAGE_SIZE !== 0) {
    throw new FaasnapError(
      'INVALID_VM_CONFIG',
      `memory size ${sizeBytes} is not a positive multiple of 4 KiB`,
    );
  }
  if (sizeBytes <= MMIO_HOLE_START) return [{ gpa: 0, size: sizeBytes }];
  return [
    { gpa: 0, size: MMIO_HOLE_START },
    { gpa: FOUR_GIB, size: sizeBytes - MMIO_HOLE_START },
  ];
}

/**
 * Private anonymous memory at a HUGE_PAGE_SIZE-aligned host address (the kernel aligns large
 * anonymous mappings only on some versions): a loader's file mapping on top can then be mapped
 * with whole 2 MiB folios. NORESERVE: guest RAM is overcommitted like any VMM's; untouched pages
 * cost nothing.
 */
export function mapHugeAligned(size: number): bigint {
  const M = native.memConstants;
  const span = size + HUGE_PAGE_SIZE;
  const base = native.mmap(
    span,
    M.PROT_READ! | M.PROT_WRITE!,
    M.MAP_PRIVATE! | M.MAP_ANONYMOUS! | M.MAP_NORESERVE!,
    -1,
    0,
  );
  const huge = BigInt(HUGE_PAGE_SIZE);
  const addr = ((base + huge - 1n) / huge) * huge;
  const head = addr - base;
  const tail = huge - head; // span - size - head
  if (head > 0n) native.munmap(base, head);
  if (tail > 0n) native.munmap(addr + BigInt(size), tail);
  return addr;
}

export class GuestRam {
  readonly regions: RamRegion[] = [];
  readonly memory: GuestMemory;
  private released = false;

  /** Maps anonymous memory for every region and registers it with the VM. */
  constructor(vmFd: number, sizeBytes: number) {
    const M = native.memConstants;
    try {
      ramLayout(sizeBytes).forEach(({ gpa, size }, slot) => {
        const hostAddr = mapHugeAligned(size);
        const region: RamRegion = {
          slot,
          gpa,
          size,
          hostAddr,
          view: native.memoryView(hostAddr, size),
        };
        this.regions.push(region);
        // A forked child (e.g. a helper process) must not inherit guest memory.
        native.madvise(hostAddr, size, M.MADV_DONTFORK!);
        native.kvm.SetUserMemoryRegion(vmFd, slot, 0, gpa, size, hostAddr);
      });
    } catch (e) {
      this.release();
      throw e;
    }
    this.memory = new GuestMemory(
      this.regions.map((r) => ({ gpa: r.gpa, bytes: new Uint8Array(r.view) })),
    );
  }

  get size(): number {
    return this.regions.reduce((n, r) => n + r.size, 0);
  }

  /** Detaches every view (stale references then see empty buffers) and unmaps. Idempotent. */
  release(): void {
    if (this.released) return;
    this.released = true;
    for (const r of this.regions) {
      native.detachView(r.view);
      native.munmap(r.hostAddr, r.size);
    }
  }
}
