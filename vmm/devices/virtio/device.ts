// The contract between one virtio transport (virtio-mmio here) and the device models behind it
// (rust-vmm's `VirtioDevice`). The transport owns registers, feature negotiation and the queues'
// configuration; the device owns its config space and what a request means.

import type { GuestMemory } from '../../guest-memory.js';
import type { InterruptLine } from '../../interrupt.js';
import type { Persist } from '../../persist.js';
import type { Queue } from './queue.js';

/** What a device gets when the driver sets DRIVER_OK. */
export interface VirtioActivation {
  memory: GuestMemory;
  /** One per `queueMaxSizes` entry; a queue the driver did not set up is not `ready`. */
  queues: readonly Queue[];
  /** Signals "used ring updated" (the transport sets InterruptStatus bit 0 and raises the IRQ). */
  interrupt: InterruptLine;
  /** Features the driver accepted (a subset of the offered ones). */
  ackedFeatures: bigint;
  /**
   * Runs `processQueue(queueIndex)` through the transport, exactly as a driver notification
   * would (errors end in DEVICE_NEEDS_RESET, nothing throws). For devices whose backend produces
   * data on its own, e.g. console input arriving from the host.
   */
  notify(queueIndex: number): void;
}

/**
 * Each model also has a static `restore(options, state)` (vmm/persist.ts's Restorer), reached
 * through the factory's `restoreVirtioDevice`.
 */
export interface VirtioDevice extends Persist<unknown> {
  /** Virtio device id (§5), e.g. VIRTIO_ID_BLOCK. */
  readonly deviceType: number;
  /** Maximum size of each queue; the length is the number of queues. */
  readonly queueMaxSizes: readonly number[];
  /**
   * Device-specific feature bits offered to the driver. The transport adds the ones the shared
   * queue code implements (TRANSPORT_FEATURES).
   */
  readonly availFeatures: bigint;

  /** Fills `data` from config space at `offset`; bytes past the end of config space read 0. */
  readConfig(offset: number, data: Uint8Array): void;
  /** Applies a driver write to config space; writes to read-only fields are ignored. */
  writeConfig(offset: number, data: Uint8Array): void;

  /** Starts the device; from now on `processQueue` may be called. */
  activate(activation: VirtioActivation): void;
  /**
   * Handles a notification for queue `index`: consume available chains, add used ones, signal.
   * May throw VIRTQUEUE_INVALID for a malformed queue; the transport then stops the device.
   */
  processQueue(index: number): void;
  /** Back to the pre-activation state (the driver wrote 0 to Status). */
  reset(): void;

  /** Device-specific state as plain JSON (the transport saves queues and registers). */
  save(): unknown;
}
