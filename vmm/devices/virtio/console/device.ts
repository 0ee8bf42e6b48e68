// virtio-console (spec §5.3) with a single port and no optional features: the guest sees it as
// /dev/hvc0, a raw byte pipe to the host (our agent channel, docs/agent-protocol.md). Where the
// bytes go on the host is the backend's business (unix-socket-backend.ts), so the device stays
// pure and testable with the driver mock.
//
//   const backend = await UnixSocketConsoleBackend.listen({ path });
//   vm.own(backend);
//   vm.addVirtioDevice(new VirtioConsole({ backend }));
//
// Transmit chains are always completed at once: Linux's hvc path spins on the transmit queue,
// with a lock held, until the host returns each buffer, so holding one back would stall a vCPU.
// Flow control therefore lives in the backend. Receive chains are taken only when the backend
// has input, and filled with as much as fits.

import { Type } from '@sinclair/typebox';
import { validateState } from '../../../persist.js';
import type { VirtioActivation, VirtioDevice } from '../device.js';
import {
  VIRTIO_CONSOLE_RX_QUEUE,
  VIRTIO_CONSOLE_TX_QUEUE,
  VIRTIO_ID_CONSOLE,
} from '../constants.js';

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
  /** Size of each of the two queues (a power of two); default 256. */
  queueSize?: number;
}

export const VirtioConsoleStateSchema = Type.Object(
  {
    // The guest driver took its configuration from this: a multiport device would be another
    // device to it (different queues, control messages).
    multiport: Type.Literal(false),
  },
  { additionalProperties: false },
);

export class VirtioConsole implements VirtioDevice {
  readonly deviceType = VIRTIO_ID_CONSOLE;
  readonly queueMaxSizes: readonly number[];
  // No SIZE (the guest need not know a terminal size), no MULTIPORT, no EMERG_WRITE.
  readonly availFeatures = 0n;
  /** Traffic counters, for tests and metrics. */
  readonly stats = { rxBytes: 0, txBytes: 0, rxChains: 0, txChains: 0, backendErrors: 0 };

  private readonly backend: ConsoleBackend;
  private active: VirtioActivation | undefined;

  constructor(opts: VirtioConsoleOptions) {
    this.backend = opts.backend;
    const size = opts.queueSize ?? 256;
    this.queueMaxSizes = [size, size];
  }

  readConfig(_offset: number, data: Uint8Array): void {
    // struct virtio_console_config (cols, rows, max_nr_ports, emerg_wr) only means something
    // with features we do not offer: all of it, and anything past it, reads 0.
    data.fill(0);
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
  }

  reset(): void {
    this.backend.setInputListener(undefined);
    this.active = undefined;
  }

  save(): unknown {
    return { multiport: false };
  }

  restore(state: unknown): void {
    validateState('virtio-console', VirtioConsoleStateSchema, state);
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
