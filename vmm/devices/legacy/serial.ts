// An 8250/16550A UART at the PC's COM1 ports: the guest's console. The host side never blocks,
// so the transmitter is always empty (LSR.THRE/TEMT) and every byte the guest writes goes to the
// output sink at once (rust-vmm vm-superio style; the VM's sink is its ConsoleLog,
// devices/console-log.ts). Input from the host is queued (bounded) and presented through
// RBR/LSR.DR. The interrupt output is modelled as a level and raised on its rising edge, which
// is what the edge-triggered ISA IRQ behind an irqfd expects: one trigger per new condition, no
// storm of spurious interrupts that Linux would eventually disable the IRQ for.

import { Type, type Static } from '@sinclair/typebox';
import type { BusDevice } from '../../bus.js';
import type { InterruptLine } from '../../interrupt.js';
import { validateState } from '../../../common/state.js';
import type { Persist } from '../../persist.js';
import { FaasnapError } from '../../../common/errors.js';

export const SERIAL_PORT_BASE = 0x3f8;
export const SERIAL_PORT_LEN = 8;
export const SERIAL_IRQ = 4;
export const DEFAULT_INPUT_CAPACITY = 64 << 10;

// Register offsets.
const REG_DATA = 0; // RBR (read) / THR (write); DLL when LCR.DLAB
const REG_IER = 1; // DLM when LCR.DLAB
const REG_IIR_FCR = 2;
const REG_LCR = 3;
const REG_MCR = 4;
const REG_LSR = 5;
const REG_MSR = 6;
const REG_SCR = 7;

const IER_RDA = 0x01; // received data available
const IER_THRE = 0x02; // transmitter holding register empty
const IER_RLS = 0x04; // receiver line status
const IER_MS = 0x08; // modem status
const IER_MASK = 0x0f; // a 16550A keeps the upper bits zero (Linux's probe checks this)

const IIR_NONE = 0x01;
const IIR_MS = 0x00;
const IIR_THRE = 0x02;
const IIR_RDA = 0x04;
const IIR_RLS = 0x06;
const IIR_FIFO_ENABLED = 0xc0;

const FCR_ENABLE = 0x01;
const FCR_CLEAR_RX = 0x02;
const FCR_TRIGGER_MASK = 0xc0;

const LCR_DLAB = 0x80;

const MCR_DTR = 0x01;
const MCR_RTS = 0x02;
const MCR_OUT1 = 0x04;
const MCR_OUT2 = 0x08;
const MCR_LOOP = 0x10;
const MCR_MASK = 0x1f;

const LSR_DR = 0x01;
const LSR_OE = 0x02;
const LSR_THRE = 0x20;
const LSR_TEMT = 0x40;

const MSR_DCTS = 0x01;
const MSR_DDSR = 0x02;
const MSR_TERI = 0x04;
const MSR_DDCD = 0x08;
const MSR_CTS = 0x10;
const MSR_DSR = 0x20;
const MSR_RI = 0x40;
const MSR_DCD = 0x80;
/** Not in loopback the host "modem" is always there: carrier, data set ready, clear to send. */
const MSR_HOST_LINES = MSR_CTS | MSR_DSR | MSR_DCD;

/** 115200 / 12 = 9600 baud, a common firmware default; the host ignores the rate anyway. */
const DEFAULT_DIVISOR = 12;

/** Host → guest bytes not yet read by the guest: a FIFO ring that refuses when full. */
class InputQueue {
  private readonly buf: Uint8Array;
  private head = 0;
  length = 0;

  constructor(readonly capacity: number) {
    this.buf = new Uint8Array(capacity);
  }

  /** Returns how many bytes were accepted. */
  push(data: Uint8Array): number {
    const n = Math.min(data.length, this.capacity - this.length);
    for (let i = 0; i < n; i++) {
      this.buf[(this.head + this.length + i) % this.capacity] = data[i]!;
    }
    this.length += n;
    return n;
  }

  shift(): number | undefined {
    if (this.length === 0) return undefined;
    const b = this.buf[this.head]!;
    this.head = (this.head + 1) % this.capacity;
    this.length--;
    return b;
  }

  clear(): void {
    this.head = 0;
    this.length = 0;
  }

  toBytes(): Uint8Array {
    const out = new Uint8Array(this.length);
    for (let i = 0; i < this.length; i++) out[i] = this.buf[(this.head + i) % this.capacity]!;
    return out;
  }
}

const u8 = Type.Integer({ minimum: 0, maximum: 0xff });

export const SerialStateSchema = Type.Object(
  {
    dll: u8,
    dlm: u8,
    ier: Type.Integer({ minimum: 0, maximum: IER_MASK }),
    lcr: u8,
    mcr: Type.Integer({ minimum: 0, maximum: MCR_MASK }),
    scr: u8,
    /** FCR bits we keep: FIFO enable and the RX trigger level. */
    fcr: Type.Integer({ minimum: 0, maximum: 0xff }),
    thrEmptyPending: Type.Boolean(),
    overrun: Type.Boolean(),
    msrDelta: Type.Integer({ minimum: 0, maximum: 0x0f }),
    irqLevel: Type.Boolean(),
    /** Pending host input, base64. */
    rx: Type.String({ pattern: '^[A-Za-z0-9+/]*={0,2}$' }),
  },
  { additionalProperties: false },
);
export type SerialState = Static<typeof SerialStateSchema>;

/** Where the UART puts each byte the guest transmits (a ConsoleLog in the VM). */
export interface ByteSink {
  appendByte(b: number): void;
}

export interface SerialOptions {
  interrupt: InterruptLine;
  /** Receives the guest's output, one byte at a time. */
  output: ByteSink;
  /** Pending host input capacity in bytes (default 64 KiB). */
  inputCapacity?: number;
}

export class Serial implements BusDevice, Persist<SerialState> {
  private readonly output: ByteSink;
  private readonly interrupt: InterruptLine;
  private readonly rx: InputQueue;

  private dll = DEFAULT_DIVISOR & 0xff;
  private dlm = DEFAULT_DIVISOR >> 8;
  private ier = 0;
  private lcr = 0;
  private mcr = 0;
  private scr = 0;
  private fcr = 0;
  /** The THR-empty interrupt condition, cleared by reading it from IIR or writing THR. */
  private thrEmptyPending = false;
  private overrun = false;
  private msrDelta = 0;
  private irqLevel = false;
  /** Loopback bytes that found the RX queue full (overrun) and were lost. */
  overruns = 0;

  constructor(opts: SerialOptions) {
    const inputCapacity = opts.inputCapacity ?? DEFAULT_INPUT_CAPACITY;
    if (!Number.isSafeInteger(inputCapacity) || inputCapacity < 1) {
      throw new FaasnapError('INVALID_VM_CONFIG', `serial input capacity ${inputCapacity}`);
    }
    this.interrupt = opts.interrupt;
    this.output = opts.output;
    this.rx = new InputQueue(inputCapacity);
  }

  static restore(opts: SerialOptions, state: unknown): Serial {
    const s = validateState('serial', SerialStateSchema, state);
    const dev = new Serial(opts);
    const rx = Buffer.from(s.rx, 'base64');
    if (rx.length > dev.rx.capacity) {
      throw new FaasnapError('STATE_INVALID', `serial /rx: ${rx.length} bytes exceed capacity`, {
        what: 'serial',
      });
    }
    dev.dll = s.dll;
    dev.dlm = s.dlm;
    dev.ier = s.ier;
    dev.lcr = s.lcr;
    dev.mcr = s.mcr;
    dev.scr = s.scr;
    dev.fcr = s.fcr & (FCR_ENABLE | FCR_TRIGGER_MASK);
    dev.thrEmptyPending = s.thrEmptyPending;
    dev.overrun = s.overrun;
    dev.msrDelta = s.msrDelta;
    // The interrupt controller's own state (restored separately) holds any undelivered edge.
    dev.irqLevel = s.irqLevel;
    dev.rx.push(rx);
    return dev;
  }

  save(): SerialState {
    return {
      dll: this.dll,
      dlm: this.dlm,
      ier: this.ier,
      lcr: this.lcr,
      mcr: this.mcr,
      scr: this.scr,
      fcr: this.fcr,
      thrEmptyPending: this.thrEmptyPending,
      overrun: this.overrun,
      msrDelta: this.msrDelta,
      irqLevel: this.irqLevel,
      rx: Buffer.from(this.rx.toBytes()).toString('base64'),
    };
  }

  // ---- host side --------------------------------------------------------------------------

  /** Queue bytes for the guest to read. Returns how many fit (the queue is bounded). */
  enqueueInput(data: Uint8Array | string): number {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    const n = this.rx.push(bytes);
    this.updateInterrupt();
    return n;
  }

  /** Bytes of host input the guest has not read yet. */
  get pendingInput(): number {
    return this.rx.length;
  }

  /** Divisor latch (DLM:DLL); the baud rate is 115200 / divisor. */
  get divisor(): number {
    return (this.dlm << 8) | this.dll;
  }

  // ---- guest side (BusDevice) -------------------------------------------------------------

  read(offset: number, data: Uint8Array): void {
    // A wider access is a run of byte accesses to consecutive ports.
    for (let i = 0; i < data.length; i++) data[i] = this.readReg(offset + i);
    this.updateInterrupt();
  }

  write(offset: number, data: Uint8Array): void {
    for (let i = 0; i < data.length; i++) this.writeReg(offset + i, data[i]!);
    this.updateInterrupt();
  }

  private get dlab(): boolean {
    return (this.lcr & LCR_DLAB) !== 0;
  }

  private readReg(reg: number): number {
    switch (reg) {
      case REG_DATA:
        return this.dlab ? this.dll : (this.rx.shift() ?? 0);
      case REG_IER:
        return this.dlab ? this.dlm : this.ier;
      case REG_IIR_FCR: {
        const id = this.interruptId();
        if (id === IIR_THRE) this.thrEmptyPending = false; // reading IIR acknowledges THRE
        return id | (this.fcr & FCR_ENABLE ? IIR_FIFO_ENABLED : 0);
      }
      case REG_LCR:
        return this.lcr;
      case REG_MCR:
        return this.mcr;
      case REG_LSR: {
        let lsr = LSR_THRE | LSR_TEMT;
        if (this.rx.length > 0) lsr |= LSR_DR;
        if (this.overrun) lsr |= LSR_OE;
        this.overrun = false; // error bits clear on read
        return lsr;
      }
      case REG_MSR: {
        const msr = this.modemLines() | this.msrDelta;
        this.msrDelta = 0;
        return msr;
      }
      case REG_SCR:
        return this.scr;
      default:
        return 0xff;
    }
  }

  private writeReg(reg: number, v: number): void {
    switch (reg) {
      case REG_DATA:
        if (this.dlab) {
          this.dll = v;
        } else {
          this.transmit(v);
          // The host took the byte at once, so THR is empty again: a fresh THRE condition.
          this.thrEmptyPending = true;
        }
        break;
      case REG_IER:
        if (this.dlab) {
          this.dlm = v;
        } else {
          const enablingThre = (v & IER_THRE) !== 0 && (this.ier & IER_THRE) === 0;
          this.ier = v & IER_MASK;
          // A 16550 raises THRE when it is enabled while THR is empty (always, here). Linux's
          // startup test toggles IER.THRI and expects exactly this.
          if (enablingThre) this.thrEmptyPending = true;
        }
        break;
      case REG_IIR_FCR:
        // Clearing the TX FIFO is a no-op: nothing waits to be transmitted. Clearing RX drops
        // input the guest has not read, as resetting a real receive FIFO does.
        if (v & FCR_CLEAR_RX || (v & FCR_ENABLE) !== (this.fcr & FCR_ENABLE)) this.rx.clear();
        this.fcr = v & (FCR_ENABLE | FCR_TRIGGER_MASK);
        break;
      case REG_LCR:
        this.lcr = v;
        break;
      case REG_MCR: {
        const before = this.modemLines();
        this.mcr = v & MCR_MASK;
        this.noteModemChange(before, this.modemLines());
        break;
      }
      case REG_SCR:
        this.scr = v;
        break;
      default:
        // LSR and MSR are read-only (their writes are factory-test only).
        break;
    }
  }

  private transmit(b: number): void {
    if (this.mcr & MCR_LOOP) {
      // Loopback: the transmitter feeds the receiver; nothing reaches the console.
      if (this.rx.push(Uint8Array.of(b)) === 0) {
        this.overrun = true;
        this.overruns++;
      }
      return;
    }
    this.output.appendByte(b);
  }

  /** MSR's upper nibble: the host's lines, or in loopback MCR's outputs wired back. */
  private modemLines(): number {
    if (!(this.mcr & MCR_LOOP)) return MSR_HOST_LINES;
    let m = 0;
    if (this.mcr & MCR_RTS) m |= MSR_CTS;
    if (this.mcr & MCR_DTR) m |= MSR_DSR;
    if (this.mcr & MCR_OUT1) m |= MSR_RI;
    if (this.mcr & MCR_OUT2) m |= MSR_DCD;
    return m;
  }

  private noteModemChange(before: number, after: number): void {
    const changed = before ^ after;
    if (changed & MSR_CTS) this.msrDelta |= MSR_DCTS;
    if (changed & MSR_DSR) this.msrDelta |= MSR_DDSR;
    if (before & MSR_RI && !(after & MSR_RI)) this.msrDelta |= MSR_TERI; // trailing edge only
    if (changed & MSR_DCD) this.msrDelta |= MSR_DDCD;
  }

  /** IIR's interrupt id in 16550 priority order, gated by IER. */
  private interruptId(): number {
    if (this.ier & IER_RLS && this.overrun) return IIR_RLS;
    if (this.ier & IER_RDA && this.rx.length > 0) return IIR_RDA;
    if (this.ier & IER_THRE && this.thrEmptyPending) return IIR_THRE;
    if (this.ier & IER_MS && this.msrDelta !== 0) return IIR_MS;
    return IIR_NONE;
  }

  // OUT2 does not gate the line (as in QEMU and Firecracker): guests that forget it still work.
  private updateInterrupt(): void {
    const level = this.interruptId() !== IIR_NONE;
    if (level && !this.irqLevel) this.interrupt.trigger();
    this.irqLevel = level;
  }
}
