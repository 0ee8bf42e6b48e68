// Guest physical memory as seen by the VMM and its devices: a sorted list of regions, each a
// host view (Uint8Array) of the mapping that backs it. Pure: devices get this object and never
// touch the native addon. Every access is bounds-checked because addresses come from the guest.

import { FaasnapError } from '../common/errors.js';

export interface MemoryRegionView {
  /** Guest physical address of the first byte. */
  readonly gpa: number;
  /** Host view of the region; its length is the region size. */
  readonly bytes: Uint8Array;
}

export class GuestMemory {
  readonly regions: readonly MemoryRegionView[];

  constructor(regions: MemoryRegionView[]) {
    const sorted = [...regions].sort((a, b) => a.gpa - b.gpa);
    for (let i = 1; i < sorted.length; i++) {
      const prev = sorted[i - 1]!;
      if (prev.gpa + prev.bytes.length > sorted[i]!.gpa) {
        throw new FaasnapError('INVALID_VM_CONFIG', 'guest memory regions overlap');
      }
    }
    this.regions = sorted;
  }

  /** Total bytes of guest RAM. */
  get size(): number {
    return this.regions.reduce((n, r) => n + r.bytes.length, 0);
  }

  /** True when [gpa, gpa+len) lies inside one region. */
  contains(gpa: number, len: number): boolean {
    return this.find(gpa, len) !== undefined;
  }

  /**
   * A view of [gpa, gpa+len) that aliases guest memory (writes go to the guest).
   * Throws GUEST_MEMORY_ACCESS if the range is not inside one region.
   */
  slice(gpa: number, len: number): Uint8Array {
    const r = this.find(gpa, len);
    if (!r) {
      throw new FaasnapError(
        'GUEST_MEMORY_ACCESS',
        `[0x${gpa.toString(16)}, +0x${len.toString(16)})`,
        { gpa, len },
      );
    }
    const off = gpa - r.gpa;
    return r.bytes.subarray(off, off + len);
  }

  read(gpa: number, out: Uint8Array): void {
    out.set(this.slice(gpa, out.length));
  }

  write(gpa: number, data: Uint8Array): void {
    this.slice(gpa, data.length).set(data);
  }

  readU8(gpa: number): number {
    return this.slice(gpa, 1)[0]!;
  }

  readU16(gpa: number): number {
    return dataView(this.slice(gpa, 2)).getUint16(0, true);
  }

  readU32(gpa: number): number {
    return dataView(this.slice(gpa, 4)).getUint32(0, true);
  }

  readU64(gpa: number): bigint {
    return dataView(this.slice(gpa, 8)).getBigUint64(0, true);
  }

  writeU8(gpa: number, v: number): void {
    this.slice(gpa, 1)[0] = v;
  }

  writeU16(gpa: number, v: number): void {
    dataView(this.slice(gpa, 2)).setUint16(0, v, true);
  }

  writeU32(gpa: number, v: number): void {
    dataView(this.slice(gpa, 4)).setUint32(0, v, true);
  }

  writeU64(gpa: number, v: bigint): void {
    dataView(this.slice(gpa, 8)).setBigUint64(0, v, true);
  }

  private find(gpa: number, len: number): MemoryRegionView | undefined {
    if (!Number.isSafeInteger(gpa) || !Number.isSafeInteger(len) || gpa < 0 || len < 0) {
      return undefined;
    }
    for (const r of this.regions) {
      if (gpa >= r.gpa && gpa + len <= r.gpa + r.bytes.length) return r;
    }
    return undefined;
  }
}

function dataView(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}
