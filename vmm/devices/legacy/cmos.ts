// The PC's CMOS real-time clock (MC146818) at ports 0x70 (index) and 0x71 (data), reading the
// host's wall clock. Linux reads it once at boot for the time of day; with nothing at these
// ports it polls the "update in progress" bit, which reads as 1 from an unclaimed port, for a
// full second of emulated port I/O (~5 s on the PVM host) and then starts at 1970.
//
// Time registers are computed from the host clock on every read (UTC, BCD or binary and 12/24-
// hour as register B says); the update-in-progress bit is never set because reads are atomic
// here. Writes to the time registers are ignored: the guest cannot move the host's clock, and a
// restored snapshot gets its time corrected by the VMM, not by this device. The other bytes of
// CMOS RAM are plain storage. No periodic or alarm interrupts (Linux does not need them).

import { Type, type Static } from '@sinclair/typebox';
import type { BusDevice } from '../../bus.js';
import { validateState } from '../../../common/state.js';
import type { Persist } from '../../persist.js';

export const CMOS_PORT_BASE = 0x70;
export const CMOS_PORT_LEN = 2;
const RAM_SIZE = 128;
const INDEX_MASK = 0x7f; // bit 7 of the index port gates NMIs on a PC

const REG_SECONDS = 0x00;
const REG_MINUTES = 0x02;
const REG_HOURS = 0x04;
const REG_WEEKDAY = 0x06;
const REG_DAY = 0x07;
const REG_MONTH = 0x08;
const REG_YEAR = 0x09;
const REG_A = 0x0a;
const REG_B = 0x0b;
const REG_C = 0x0c;
const REG_D = 0x0d;
/** The century byte most firmware keeps (ACPI's FADT usually points here). */
const REG_CENTURY = 0x32;

const A_DEFAULT = 0x26; // 32.768 kHz time base, 1024 Hz rate; UIP (bit 7) always clear
const B_24H = 0x02;
const B_BINARY = 0x04;
const B_DEFAULT = B_24H; // BCD, 24-hour: what PC firmware sets up
const D_VALID = 0x80; // valid RAM and time: the battery is fine

const u8 = Type.Integer({ minimum: 0, maximum: 0xff });
export const CmosStateSchema = Type.Object(
  {
    index: u8,
    ram: Type.Array(u8, { minItems: RAM_SIZE, maxItems: RAM_SIZE }),
  },
  { additionalProperties: false },
);
export type CmosState = Static<typeof CmosStateSchema>;

export interface CmosOptions {
  /** Milliseconds since the epoch; defaults to the host clock. */
  now?: () => number;
}

export class Cmos implements BusDevice, Persist<CmosState> {
  private readonly now: () => number;
  private index = 0;
  private readonly ram = new Uint8Array(RAM_SIZE);

  constructor(opts: CmosOptions = {}) {
    this.now = opts.now ?? Date.now;
    this.ram[REG_A] = A_DEFAULT;
    this.ram[REG_B] = B_DEFAULT;
    this.ram[REG_D] = D_VALID;
  }

  static restore(opts: CmosOptions, state: unknown): Cmos {
    const s = validateState('cmos', CmosStateSchema, state);
    const dev = new Cmos(opts);
    dev.index = s.index;
    dev.ram.set(s.ram);
    return dev;
  }

  save(): CmosState {
    return { index: this.index, ram: [...this.ram] };
  }

  read(offset: number, data: Uint8Array): void {
    data.fill(0xff);
    if (offset !== 1 || data.length === 0) return; // the index port is write-only
    data[0] = this.register(this.index);
  }

  write(offset: number, data: Uint8Array): void {
    const v = data[0];
    if (v === undefined) return;
    if (offset === 0) {
      this.index = v & INDEX_MASK;
      return;
    }
    if (offset !== 1) return;
    switch (this.index) {
      case REG_A:
        this.ram[REG_A] = v & 0x7f; // UIP is read-only
        break;
      case REG_B:
        this.ram[REG_B] = v;
        break;
      case REG_C:
      case REG_D:
        break; // read-only status registers
      default:
        if (!isClockRegister(this.index)) this.ram[this.index] = v;
    }
  }

  private register(index: number): number {
    if (index === REG_C) return 0; // no interrupt flags pending
    if (!isClockRegister(index)) return this.ram[index] ?? 0xff;
    const t = new Date(this.now());
    const b = this.ram[REG_B]!;
    const enc = (n: number): number => (b & B_BINARY ? n : ((n / 10) | 0) * 16 + (n % 10));
    switch (index) {
      case REG_SECONDS:
        return enc(t.getUTCSeconds());
      case REG_MINUTES:
        return enc(t.getUTCMinutes());
      case REG_HOURS: {
        const h = t.getUTCHours();
        if (b & B_24H) return enc(h);
        // 12-hour mode: 1..12 with bit 7 for PM.
        return enc(h % 12 === 0 ? 12 : h % 12) | (h >= 12 ? 0x80 : 0);
      }
      case REG_WEEKDAY:
        return enc(t.getUTCDay() + 1);
      case REG_DAY:
        return enc(t.getUTCDate());
      case REG_MONTH:
        return enc(t.getUTCMonth() + 1);
      case REG_YEAR:
        return enc(t.getUTCFullYear() % 100);
      default: // REG_CENTURY
        return enc(Math.floor(t.getUTCFullYear() / 100));
    }
  }
}

function isClockRegister(index: number): boolean {
  return (
    index === REG_SECONDS ||
    index === REG_MINUTES ||
    index === REG_HOURS ||
    (index >= REG_WEEKDAY && index <= REG_YEAR) ||
    index === REG_CENTURY
  );
}
