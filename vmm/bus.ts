// The I/O bus: routes port-I/O and MMIO exits to device models by address range (Firecracker's
// `Bus`). Devices see offsets relative to their base. Unclaimed reads return all-ones, as on
// real hardware, and unclaimed writes are dropped; both are counted so tests can see them.

import { FaasnapError } from '../common/errors.js';

export interface BusDevice {
  /** Fill `data` with the value at `offset` (relative to the device's base). */
  read(offset: number, data: Uint8Array): void;
  /** Apply a write of `data` at `offset` (relative to the device's base). */
  write(offset: number, data: Uint8Array): void;
}

interface Range {
  base: number;
  len: number;
  device: BusDevice;
}

export class Bus {
  private ranges: Range[] = [];
  unclaimedReads = 0;
  unclaimedWrites = 0;

  insert(device: BusDevice, base: number, len: number): void {
    if (!Number.isSafeInteger(base) || !Number.isSafeInteger(len) || base < 0 || len <= 0) {
      throw new FaasnapError('BUS_CONFLICT', `invalid range base=${base} len=${len}`);
    }
    for (const r of this.ranges) {
      if (base < r.base + r.len && r.base < base + len) {
        throw new FaasnapError(
          'BUS_CONFLICT',
          `[0x${base.toString(16)}, +0x${len.toString(16)}) overlaps [0x${r.base.toString(16)}, +0x${r.len.toString(16)})`,
        );
      }
    }
    this.ranges.push({ base, len, device });
    this.ranges.sort((a, b) => a.base - b.base);
  }

  /** Returns false (and fills all-ones) when no device claims the address. */
  read(addr: number, data: Uint8Array): boolean {
    const r = this.find(addr, data.length);
    if (!r) {
      data.fill(0xff);
      this.unclaimedReads++;
      return false;
    }
    r.device.read(addr - r.base, data);
    return true;
  }

  /** Returns false when no device claims the address. */
  write(addr: number, data: Uint8Array): boolean {
    const r = this.find(addr, data.length);
    if (!r) {
      this.unclaimedWrites++;
      return false;
    }
    r.device.write(addr - r.base, data);
    return true;
  }

  private find(addr: number, len: number): Range | undefined {
    // Few devices per bus: a linear scan beats any index here.
    for (const r of this.ranges) {
      if (addr >= r.base && addr + len <= r.base + r.len) return r;
    }
    return undefined;
  }
}
