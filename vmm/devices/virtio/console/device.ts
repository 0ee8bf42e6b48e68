// virtio-console (spec §5.3) with one port: a raw byte pipe to the host (our agent channel,
// docs/agent-protocol.md). Where the bytes go on the host is the backend's business
// (unix-socket-backend.ts), so the device stays pure and testable with the driver mock.
//
// Two shapes. Without a port name: no features, the guest sees port 0 as the console /dev/hvc0
// (every byte through the tty layer and the hvc poll thread). With `portName`: MULTIPORT with
// one *generic* port, which the guest sees as /dev/vportNp0 with that name in
// /sys/class/virtio-ports/: reads and writes go straight to the virtqueues, several context
// switches fewer per message than the tty path (the agent's round trip is what every
// invocation pays). The port is announced over the control queues (§5.3.6.2): the driver says
// DEVICE_READY, we add port 0, it says PORT_READY, we send its name and "host connected"
// (the backend buffers output while no client is connected, so the host side is always open).
//
//   const backend = await UnixSocketConsoleBackend.listen({ path });
//   vm.own(backend);
//   vm.addVirtioDevice(new VirtioConsole({ backend }));
//
// Transmit chains are always completed at once: Linux's hvc path spins on the transmit queue,
// with a lock held, until the host returns each buffer, so holding one back would stall a vCPU.
// Flow control therefore lives in the backend. Receive chains are taken only when the backend
// has input, and filled with as much as fits.

import { Type, type Static } from '@sinclair/typebox';
import { FaasnapError } from '../../../../common/errors.js';
import { validateState } from '../../../../common/state.js';
import type { Persist } from '../../../persist.js';
import type { VirtioActivation, VirtioDevice } from '../device.js';
import {
  VIRTIO_CONSOLE_F_MULTIPORT,
  VIRTIO_CONSOLE_RX_QUEUE,
  VIRTIO_CONSOLE_TX_QUEUE,
  VIRTIO_ID_CONSOLE,
} from '../constants.js';

/** With MULTIPORT: the control queues follow port 0's two. */
export const CONTROL_RX_QUEUE = 2; // device → driver
export const CONTROL_TX_QUEUE = 3; // driver → device

/** struct virtio_console_control events. */
export const CONSOLE_EVENT = {
  DEVICE_READY: 0,
  DEVICE_ADD: 1,
  PORT_READY: 3,
  PORT_OPEN: 6,
  PORT_NAME: 7,
} as const;
const CONTROL_HEADER = 8; // le32 id, le16 event, le16 value
const MAX_PORT_NAME = 64;

function controlMessage(id: number, event: number, value: number, name?: string): Buffer {
  const tail = name === undefined ? Buffer.alloc(0) : Buffer.from(name, 'utf8');
  const m = Buffer.alloc(CONTROL_HEADER + tail.length);
  m.writeUInt32LE(id, 0);
  m.writeUInt16LE(event, 4);
  m.writeUInt16LE(value, 6);
  tail.copy(m, CONTROL_HEADER);
  return m;
}

/** The host end of the console. Calls come from the device on the VMM's main thread. */
export interface ConsoleBackend {
  /**
   * Bytes the guest transmitted. `data` aliases guest memory and is only valid during the
   * call: copy what you keep. Must not throw and must not block.
   */
  write(data: Uint8Array): void;
  /** Bytes waiting to be delivered to the guest. */
  readonly pendingInput: number;
  /** Moves up to `dst.length` pending bytes into `dst` (guest memory); returns the count. */
  readInto(dst: Uint8Array): number;
  /** Called (with no arguments) whenever input arrives; `undefined` unregisters. */
  setInputListener(listener: (() => void) | undefined): void;
}

export interface VirtioConsoleOptions {
  backend: ConsoleBackend;
  /** Size of each queue (a power of two); default 256. */
  queueSize?: number;
  /** A generic named port instead of the console (see above); ASCII, at most 64 bytes. */
  portName?: string;
}

export const VirtioConsoleStateSchema = Type.Object(
  {
    // The guest driver took its configuration from this: the other shape would be another
    // device to it (different queues, control messages).
    multiport: Type.Boolean(),
    /** Control messages the guest has not taken yet (base64), in order. */
    pendingControl: Type.Array(Type.String({ maxLength: 1024 }), { maxItems: 16 }),
    /** The guest has the port open. */
    guestOpen: Type.Boolean(),
  },
  { additionalProperties: false },
);
export type VirtioConsoleState = Static<typeof VirtioConsoleStateSchema>;

export class VirtioConsole implements VirtioDevice, Persist<VirtioConsoleState> {
  readonly deviceType = VIRTIO_ID_CONSOLE;
  readonly queueMaxSizes: readonly number[];
  // No SIZE (the guest need not know a terminal size), no EMERG_WRITE; MULTIPORT with a name.
  readonly availFeatures: bigint;
  /** Traffic counters, for tests and metrics. */
  readonly stats = { rxBytes: 0, txBytes: 0, rxChains: 0, txChains: 0, backendErrors: 0 };

  private readonly backend: ConsoleBackend;
  private readonly portName: string | undefined;
  private active: VirtioActivation | undefined;
  private pendingControl: Buffer[] = [];
  private guestOpenFlag = false;

  constructor(opts: VirtioConsoleOptions) {
    this.backend = opts.backend;
    const size = opts.queueSize ?? 256;
    const name = opts.portName;
    if (name !== undefined && !/^[\x21-\x7e]{1,64}$/.test(name))
      throw new FaasnapError(
        'INVALID_VM_CONFIG',
        `console port name must be 1..${MAX_PORT_NAME} printable ASCII characters`,
      );
    this.portName = name;
    this.queueMaxSizes = name === undefined ? [size, size] : [size, size, size, size];
    this.availFeatures = name === undefined ? 0n : 1n << BigInt(VIRTIO_CONSOLE_F_MULTIPORT);
  }

  /** The guest has the named port open (always false for the console shape). */
  get guestOpen(): boolean {
    return this.guestOpenFlag;
  }

  readConfig(offset: number, data: Uint8Array): void {
    // struct virtio_console_config: cols, rows (no SIZE: 0), max_nr_ports (le32 at 4, read only
    // with MULTIPORT: 1), emerg_wr (0). Anything past it reads 0.
    const config = Buffer.alloc(12);
    if (this.portName !== undefined) config.writeUInt32LE(1, 4);
    data.fill(0);
    const from = Math.min(offset, config.length);
    Buffer.from(data.buffer, data.byteOffset, data.length).set(
      config.subarray(from, Math.min(config.length, offset + data.length)),
    );
  }

  writeConfig(_offset: number, _data: Uint8Array): void {
    // emerg_wr is the only writable field, and only with VIRTIO_CONSOLE_F_EMERG_WRITE.
  }

  activate(activation: VirtioActivation): void {
    this.active = activation;
    // Input that arrives from now on is pushed into the receive queue right away. Input that
    // is already pending goes in when the driver posts receive buffers (it notifies), or at the
    // VM's kick after a restore.
    this.backend.setInputListener(() => activation.notify(VIRTIO_CONSOLE_RX_QUEUE));
  }

  processQueue(index: number): void {
    if (index === VIRTIO_CONSOLE_RX_QUEUE) this.fillReceiveQueue();
    else if (index === VIRTIO_CONSOLE_TX_QUEUE) this.drainTransmitQueue();
    else if (index === CONTROL_RX_QUEUE) this.flushControl();
    else if (index === CONTROL_TX_QUEUE) this.readControl();
  }

  reset(): void {
    this.backend.setInputListener(undefined);
    this.active = undefined;
    this.pendingControl = [];
    this.guestOpenFlag = false;
  }

  save(): VirtioConsoleState {
    return {
      multiport: this.portName !== undefined,
      pendingControl: this.pendingControl.map((m) => m.toString('base64')),
      guestOpen: this.guestOpenFlag,
    };
  }

  /**
   * Rebuilds the device on `opts.backend` from untrusted state, before the transport
   * re-activates it. Throws STATE_INVALID when the state was saved with the other shape.
   */
  static restore(opts: VirtioConsoleOptions, state: unknown): VirtioConsole {
    const s = validateState('virtio-console', VirtioConsoleStateSchema, state);
    const d = new VirtioConsole(opts);
    if (s.multiport !== (d.portName !== undefined))
      throw new FaasnapError(
        'STATE_INVALID',
        `virtio-console: saved ${s.multiport ? 'with' : 'without'} a named port, configured otherwise`,
      );
    d.pendingControl = s.pendingControl.map((m) => Buffer.from(m, 'base64'));
    d.guestOpenFlag = s.guestOpen;
    return d;
  }

  /** Driver → device control messages: the port handshake, and the guest opening the port. */
  private readControl(): void {
    const a = this.active;
    const q = a?.queues[CONTROL_TX_QUEUE];
    if (!a || !q || this.portName === undefined) return;
    let used = 0;
    try {
      for (let chain = q.popAvail(a.memory); chain; chain = q.popAvail(a.memory)) {
        const m = Buffer.alloc(CONTROL_HEADER);
        if (chain.gather(m) === CONTROL_HEADER) {
          const id = m.readUInt32LE(0);
          const event = m.readUInt16LE(4);
          const value = m.readUInt16LE(6);
          if (event === CONSOLE_EVENT.DEVICE_READY && value === 1) {
            this.pendingControl.push(controlMessage(0, CONSOLE_EVENT.DEVICE_ADD, 1));
          } else if (event === CONSOLE_EVENT.PORT_READY && id === 0 && value === 1) {
            this.pendingControl.push(
              controlMessage(0, CONSOLE_EVENT.PORT_NAME, 1, this.portName),
              controlMessage(0, CONSOLE_EVENT.PORT_OPEN, 1),
            );
          } else if (event === CONSOLE_EVENT.PORT_OPEN && id === 0) {
            this.guestOpenFlag = value === 1;
          }
          // Anything else (a failed port, an unknown event) needs no answer.
        }
        q.addUsed(a.memory, chain.head, 0);
        used++;
      }
    } finally {
      if (used > 0) a.interrupt.trigger();
    }
    this.flushControl();
  }

  /** Device → driver control messages, as far as the driver has posted buffers. */
  private flushControl(): void {
    const a = this.active;
    const q = a?.queues[CONTROL_RX_QUEUE];
    if (!a || !q) return;
    let used = 0;
    try {
      while (this.pendingControl.length > 0 && q.hasAvail(a.memory)) {
        const chain = q.popAvail(a.memory);
        if (!chain) break;
        const n = chain.scatter(this.pendingControl.shift()!);
        q.addUsed(a.memory, chain.head, n);
        used++;
      }
    } finally {
      if (used > 0) a.interrupt.trigger();
    }
  }

  /** Host → guest: fills receive buffers while there is input and the guest has buffers. */
  private fillReceiveQueue(): void {
    const a = this.active;
    const q = a?.queues[VIRTIO_CONSOLE_RX_QUEUE];
    if (!a || !q) return;
    let used = 0;
    try {
      while (this.backend.pendingInput > 0 && q.hasAvail(a.memory)) {
        const chain = q.popAvail(a.memory);
        if (!chain) break;
        let n = 0;
        for (const slice of chain.writableSlices(0, chain.writableLength)) {
          const got = this.backend.readInto(slice);
          n += got;
          if (got < slice.length) break;
        }
        q.addUsed(a.memory, chain.head, n);
        this.stats.rxBytes += n;
        this.stats.rxChains++;
        used++;
      }
    } finally {
      if (used > 0) a.interrupt.trigger();
    }
  }

  /** Guest → host: hands every transmitted buffer to the backend and returns it at once. */
  private drainTransmitQueue(): void {
    const a = this.active;
    const q = a?.queues[VIRTIO_CONSOLE_TX_QUEUE];
    if (!a || !q) return;
    let used = 0;
    try {
      for (let chain = q.popAvail(a.memory); chain; chain = q.popAvail(a.memory)) {
        for (const slice of chain.readableSlices(0, chain.readableLength)) {
          try {
            this.backend.write(slice);
          } catch {
            // The contract says write() does not throw; if it does, the guest must not stall.
            this.stats.backendErrors++;
          }
        }
        q.addUsed(a.memory, chain.head, 0);
        this.stats.txBytes += chain.readableLength;
        this.stats.txChains++;
        used++;
      }
    } finally {
      if (used > 0) a.interrupt.trigger();
    }
  }
}
