// An i8042 keyboard controller with no keyboard and no mouse behind it: just enough for a
// guest to reset the machine through it (Linux's `reboot=k` path pulses the reset line with
// command 0xFE) and for Linux's i8042 driver to probe it quickly and move on instead of
// waiting out timeouts (every udelay spins in emulated code on the PVM host).
//
// Register it as one range: base 0x60, length 5. Offset 0 is port 0x60 (data), offset 4 is port
// 0x64 (status on read, command on write). Offsets 1..3 (ports 0x61..0x63) are not ours: 0x61 is
// the PIT's speaker/gate port, which KVM's in-kernel PIT serves when created with
// KVM_PIT_SPEAKER_DUMMY; if an access does arrive here it reads all-ones like an unclaimed port.

import { Type, type Static } from '@sinclair/typebox';
import type { BusDevice } from '../../bus.js';
import type { InterruptLine } from '../../interrupt.js';
import { validateState } from '../../../common/state.js';
import type { Persist } from '../../persist.js';

export const I8042_PORT_BASE = 0x60;
export const I8042_PORT_LEN = 5;
export const I8042_KBD_IRQ = 1;

const OFF_DATA = 0;
const OFF_STATUS_COMMAND = 4;

// Status register.
const STS_OBF = 0x01; // output buffer full: a byte waits on port 0x60
const STS_SYS = 0x04; // system flag, mirrors CTR bit 2 (set by a passed self-test)
const STS_CMD = 0x08; // last write went to the command port
const STS_UNLOCKED = 0x10; // keyboard not inhibited (Linux warns "Keylock active" otherwise)

// Controller configuration byte ("CTR" in Linux, "command byte" in the AT manuals).
const CTR_KBDINT = 0x01;
const CTR_SYS = 0x04;
const CTR_KBDDIS = 0x10;
const CTR_AUXDIS = 0x20;
/** What firmware leaves behind: keyboard IRQ on, POST passed, AUX clock off, translation on. */
const CTR_DEFAULT = 0x65;

// Output port: bit 0 drives the CPU reset line (active low), bit 1 the A20 gate.
const OUTPORT_RESET = 0x01;
const OUTPORT_A20 = 0x02;
const OUTPORT_DEFAULT = OUTPORT_RESET | OUTPORT_A20;

// Commands (written to port 0x64).
const CMD_READ_CTR = 0x20;
const CMD_WRITE_CTR = 0x60;
const CMD_AUX_DISABLE = 0xa7;
const CMD_AUX_ENABLE = 0xa8;
const CMD_AUX_TEST = 0xa9;
const CMD_SELF_TEST = 0xaa;
const CMD_KBD_TEST = 0xab;
const CMD_KBD_DISABLE = 0xad;
const CMD_KBD_ENABLE = 0xae;
const CMD_READ_INPORT = 0xc0;
const CMD_READ_OUTPORT = 0xd0;
const CMD_WRITE_OUTPORT = 0xd1;
const CMD_WRITE_KBD_OUTBUF = 0xd2;
const CMD_WRITE_AUX_OUTBUF = 0xd3; // Linux's AUX_LOOP
const CMD_WRITE_AUX = 0xd4;
const CMD_A20_DISABLE = 0xdd;
const CMD_A20_ENABLE = 0xdf;
const CMD_READ_TEST_INPUTS = 0xe0;

const SELF_TEST_OK = 0x55;
const PORT_TEST_OK = 0x00;
/**
 * AUX interface test answer "clock line stuck high": there is no mouse, and Linux reads this as
 * "no AUX port" at once instead of probing a PS/2 mouse through timeouts.
 */
const AUX_TEST_NO_DEVICE = 0x02;
/** Input port: bit 7 = keyboard not inhibited. */
const INPORT_VALUE = 0x80;

/** Commands whose parameter is the next byte written to port 0x60. */
const NO_PENDING = 0;
const PENDING_DISCARD = 0x61; // "write controller RAM" 0x61..0x7F: we keep no RAM beyond CTR
const PENDING_COMMANDS = [
  NO_PENDING,
  CMD_WRITE_CTR,
  PENDING_DISCARD,
  CMD_WRITE_OUTPORT,
  CMD_WRITE_KBD_OUTBUF,
  CMD_WRITE_AUX_OUTBUF,
  CMD_WRITE_AUX,
] as const;

const u8 = Type.Integer({ minimum: 0, maximum: 0xff });

export const I8042StateSchema = Type.Object(
  {
    ctr: u8,
    outputPort: u8,
    outByte: u8,
    outFull: Type.Boolean(),
    lastWasCommand: Type.Boolean(),
    pending: Type.Union(PENDING_COMMANDS.map((c) => Type.Literal(c))),
  },
  { additionalProperties: false },
);
export type I8042State = Static<typeof I8042StateSchema>;

export interface I8042Options {
  /** The guest pulsed the reset line: the VMM stops the VM with reason 'reset'. */
  onReset: () => void;
  /** IRQ 1, raised when a byte reaches the output buffer with CTR's keyboard interrupt on. */
  kbdInterrupt?: InterruptLine;
}

export class I8042 implements BusDevice, Persist<I8042State> {
  private readonly onReset: () => void;
  private readonly kbdInterrupt: InterruptLine | undefined;
  private ctr = CTR_DEFAULT;
  private outputPort = OUTPORT_DEFAULT;
  private outByte = 0;
  private outFull = false;
  private lastWasCommand = false;
  private pending: I8042State['pending'] = NO_PENDING;
  /** Reset pulses seen (a rebooting Linux sends several before it gives up). */
  resetRequests = 0;
  /** Bytes for the absent keyboard or mouse, dropped. */
  droppedDeviceBytes = 0;

  constructor(opts: I8042Options) {
    this.onReset = opts.onReset;
    this.kbdInterrupt = opts.kbdInterrupt;
  }

  static restore(opts: I8042Options, state: unknown): I8042 {
    const s = validateState('i8042', I8042StateSchema, state);
    const dev = new I8042(opts);
    dev.ctr = s.ctr;
    dev.outputPort = s.outputPort;
    dev.outByte = s.outByte;
    dev.outFull = s.outFull;
    dev.lastWasCommand = s.lastWasCommand;
    dev.pending = s.pending;
    return dev;
  }

  save(): I8042State {
    return {
      ctr: this.ctr,
      outputPort: this.outputPort,
      outByte: this.outByte,
      outFull: this.outFull,
      lastWasCommand: this.lastWasCommand,
      pending: this.pending,
    };
  }

  /** Controller configuration byte (for tests and debugging). */
  get commandByte(): number {
    return this.ctr;
  }

  get a20Enabled(): boolean {
    return (this.outputPort & OUTPORT_A20) !== 0;
  }

  read(offset: number, data: Uint8Array): void {
    for (let i = 0; i < data.length; i++) data[i] = this.readPort(offset + i);
  }

  write(offset: number, data: Uint8Array): void {
    for (let i = 0; i < data.length; i++) this.writePort(offset + i, data[i]!);
  }

  private readPort(offset: number): number {
    if (offset === OFF_DATA) {
      // Real controllers return the stale byte when the buffer is empty.
      this.outFull = false;
      return this.outByte;
    }
    if (offset === OFF_STATUS_COMMAND) {
      // Input buffer full (bit 1) is never set: every write is consumed at once, so Linux's
      // kb_wait() and i8042_wait_write() never spin.
      let s = STS_UNLOCKED;
      if (this.outFull) s |= STS_OBF;
      if (this.ctr & CTR_SYS) s |= STS_SYS;
      if (this.lastWasCommand) s |= STS_CMD;
      return s;
    }
    return 0xff;
  }

  private writePort(offset: number, v: number): void {
    if (offset === OFF_DATA) {
      this.lastWasCommand = false;
      this.writeData(v);
    } else if (offset === OFF_STATUS_COMMAND) {
      this.lastWasCommand = true;
      this.command(v);
    }
  }

  private writeData(v: number): void {
    const cmd = this.pending;
    this.pending = NO_PENDING;
    switch (cmd) {
      case CMD_WRITE_CTR:
        this.ctr = v;
        break;
      case CMD_WRITE_OUTPORT:
        this.outputPort = v;
        if (!(v & OUTPORT_RESET)) this.reset(); // reset line driven low
        break;
      case CMD_WRITE_KBD_OUTBUF:
        this.output(v);
        break;
      case CMD_WRITE_AUX_OUTBUF:
        // Echoed without the AUX-data status bit: Linux's AUX loop test fails at once and it
        // falls back to the AUX interface test, whose answer below says "no mouse".
        this.output(v);
        break;
      case PENDING_DISCARD:
        break;
      case CMD_WRITE_AUX:
      case NO_PENDING:
        // A byte for the mouse or the keyboard: neither exists, so it goes unanswered.
        this.droppedDeviceBytes++;
        break;
    }
  }

  private command(cmd: number): void {
    this.pending = NO_PENDING;
    if ((cmd & 0xf0) === 0xf0) {
      // 0xF0..0xFF pulse the output-port lines whose bit is 0; bit 0 is the reset line.
      if (!(cmd & OUTPORT_RESET)) this.reset();
      return;
    }
    if (cmd >= 0x21 && cmd <= 0x3f) {
      this.output(0); // read controller RAM: only the CTR (0x20) is modelled
      return;
    }
    if (cmd >= 0x61 && cmd <= 0x7f) {
      this.pending = PENDING_DISCARD;
      return;
    }
    switch (cmd) {
      case CMD_READ_CTR:
        this.output(this.ctr);
        break;
      case CMD_WRITE_CTR:
      case CMD_WRITE_OUTPORT:
      case CMD_WRITE_KBD_OUTBUF:
      case CMD_WRITE_AUX_OUTBUF:
      case CMD_WRITE_AUX:
        this.pending = cmd;
        break;
      case CMD_AUX_DISABLE:
        this.ctr |= CTR_AUXDIS;
        break;
      case CMD_AUX_ENABLE:
        this.ctr &= ~CTR_AUXDIS;
        break;
      case CMD_AUX_TEST:
        this.output(AUX_TEST_NO_DEVICE);
        break;
      case CMD_SELF_TEST:
        this.ctr |= CTR_SYS;
        this.output(SELF_TEST_OK);
        break;
      case CMD_KBD_TEST:
        this.output(PORT_TEST_OK);
        break;
      case CMD_KBD_DISABLE:
        this.ctr |= CTR_KBDDIS;
        break;
      case CMD_KBD_ENABLE:
        this.ctr &= ~CTR_KBDDIS;
        break;
      case CMD_READ_INPORT:
        this.output(INPORT_VALUE);
        break;
      case CMD_READ_OUTPORT:
        this.output(this.outputPort);
        break;
      case CMD_A20_DISABLE:
        this.outputPort &= ~OUTPORT_A20;
        break;
      case CMD_A20_ENABLE:
        this.outputPort |= OUTPORT_A20;
        break;
      case CMD_READ_TEST_INPUTS:
        this.output(0);
        break;
      default:
        break; // unknown commands are ignored, as most controllers do
    }
  }

  /** One-byte output buffer: a new byte replaces an unread one, as on the real chip. */
  private output(b: number): void {
    this.outByte = b & 0xff;
    this.outFull = true;
    if (this.ctr & CTR_KBDINT) this.kbdInterrupt?.trigger();
  }

  private reset(): void {
    this.resetRequests++;
    this.onReset();
  }
}
