// The virtio-mmio transport (virtio spec §4.2, version 2 "modern" layout): the register window
// the guest driver programs, feature negotiation, queue setup, status and interrupt status. One
// class serves every virtio device model. Nothing the guest writes may throw into the bus
// caller (the vCPU exit path): a misbehaving driver or device ends in DEVICE_NEEDS_RESET.

import { Type, type Static } from '@sinclair/typebox';
import { FaasnapError } from '../../../common/errors.js';
import type { BusDevice } from '../../bus.js';
import type { GuestMemory } from '../../guest-memory.js';
import type { InterruptLine } from '../../interrupt.js';
import { validateState } from '../../../common/state.js';
import type { Persist } from '../../persist.js';
import type { VirtioDevice } from './device.js';
import { Queue } from './queue.js';
import {
  MMIO_CONFIG,
  MMIO_CONFIG_GENERATION,
  MMIO_DEVICE_FEATURES,
  MMIO_DEVICE_FEATURES_SEL,
  MMIO_DEVICE_ID,
  MMIO_DRIVER_FEATURES,
  MMIO_DRIVER_FEATURES_SEL,
  MMIO_INTERRUPT_ACK,
  MMIO_INTERRUPT_STATUS,
  MMIO_INT_CONFIG,
  MMIO_INT_VRING,
  MMIO_MAGIC,
  MMIO_MAGIC_VALUE,
  MMIO_QUEUE_DESC_HIGH,
  MMIO_QUEUE_DESC_LOW,
  MMIO_QUEUE_DEVICE_HIGH,
  MMIO_QUEUE_DEVICE_LOW,
  MMIO_QUEUE_DRIVER_HIGH,
  MMIO_QUEUE_DRIVER_LOW,
  MMIO_QUEUE_NOTIFY,
  MMIO_QUEUE_NUM,
  MMIO_QUEUE_NUM_MAX,
  MMIO_QUEUE_READY,
  MMIO_QUEUE_RESET,
  MMIO_QUEUE_SEL,
  MMIO_SHM_BASE_HIGH,
  MMIO_SHM_BASE_LOW,
  MMIO_SHM_LEN_HIGH,
  MMIO_SHM_LEN_LOW,
  MMIO_SHM_SEL,
  MMIO_STATUS,
  MMIO_VENDOR_ID,
  MMIO_VENDOR_ID_REG,
  MMIO_VERSION,
  MMIO_VERSION_REG,
  STATUS_ACKNOWLEDGE,
  STATUS_DEVICE_NEEDS_RESET,
  STATUS_DRIVER,
  STATUS_DRIVER_OK,
  STATUS_FAILED,
  STATUS_FEATURES_OK,
  TRANSPORT_FEATURES,
  VIRTIO_F_VERSION_1,
  featureBit,
} from './constants.js';

export interface VirtioMmioArgs {
  device: VirtioDevice;
  memory: GuestMemory;
  /** The device's interrupt (its irqfd in a VM). */
  interrupt: InterruptLine;
}

/** Restore's args: no device yet, since the device's saved state is part of the transport's. */
export interface VirtioMmioRestoreArgs extends Omit<VirtioMmioArgs, 'device'> {
  /**
   * Restores the device model from its part of the saved state (untrusted), after the transport
   * has validated its own. What it opens is the caller's to release if restore throws later.
   */
  restoreDevice(state: unknown): VirtioDevice;
}

const U32 = { minimum: 0, maximum: 0xffffffff };
const FeatureString = Type.String({ pattern: '^(0|[1-9][0-9]{0,19})$' });

export const VirtioMmioStateSchema = Type.Object(
  {
    deviceType: Type.Integer(U32),
    /** Offered features, to refuse a state saved against a differently configured device. */
    offeredFeatures: FeatureString,
    driverFeatures: FeatureString,
    /** The driver acked a feature beyond bit 63 (never offered, so FEATURES_OK is refused). */
    driverFeaturesBeyond64: Type.Boolean(),
    deviceFeaturesSel: Type.Integer(U32),
    driverFeaturesSel: Type.Integer(U32),
    queueSel: Type.Integer(U32),
    status: Type.Integer({ minimum: 0, maximum: 0xff }),
    interruptStatus: Type.Integer({ minimum: 0, maximum: MMIO_INT_VRING | MMIO_INT_CONFIG }),
    configGeneration: Type.Integer(U32),
    queues: Type.Array(Type.Unknown(), { maxItems: 1024 }),
    device: Type.Unknown(),
  },
  { additionalProperties: false },
);
export type VirtioMmioState = Static<typeof VirtioMmioStateSchema>;

const DRIVER_STATUS_BITS =
  STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK;
const KNOWN_STATUS_BITS = DRIVER_STATUS_BITS | STATUS_DEVICE_NEEDS_RESET | STATUS_FAILED;
const TWO_32 = 2 ** 32;

// 64-bit queue addresses arrive as two 32-bit halves; see queue.ts for why numbers suffice.
function withLow(addr: number, lo: number): number {
  return Math.floor(addr / TWO_32) * TWO_32 + lo;
}
function withHigh(addr: number, hi: number): number {
  return hi * TWO_32 + (addr % TWO_32);
}

export class VirtioMmioTransport implements BusDevice, Persist<VirtioMmioState> {
  readonly device: VirtioDevice;
  readonly queues: Queue[];
  /** Register accesses dropped for their width, alignment, or an undefined/write-only offset. */
  invalidAccesses = 0;
  /** Well-formed writes the current state forbids (e.g. queue setup after DRIVER_OK). */
  ignoredWrites = 0;
  /** Notifications dropped because the device was not running or the queue does not exist. */
  droppedNotifications = 0;
  /** Why the device last set DEVICE_NEEDS_RESET (diagnostics; the guest only sees the bit). */
  lastError: unknown;

  private readonly memory: GuestMemory;
  private readonly interrupt: InterruptLine;
  private readonly usedLine: InterruptLine;
  private driverFeatures = 0n;
  private driverFeaturesBeyond64 = false;
  private deviceFeaturesSel = 0;
  private driverFeaturesSel = 0;
  private queueSel = 0;
  private _status = 0;
  private _interruptStatus = 0;
  private configGeneration = 0;
  private activated = false;

  constructor(args: VirtioMmioArgs) {
    this.device = args.device;
    this.memory = args.memory;
    this.interrupt = args.interrupt;
    this.usedLine = { trigger: () => this.signalUsedBuffer() };
    this.queues = args.device.queueMaxSizes.map((n) => new Queue(n));
  }

  /** Device status as the driver reads it. */
  get status(): number {
    return this._status;
  }

  get interruptStatus(): number {
    return this._interruptStatus;
  }

  /** Features offered to the driver: the device's plus the transport's own. */
  get offeredFeatures(): bigint {
    return this.device.availFeatures | TRANSPORT_FEATURES;
  }

  /** Features the driver has written (final once FEATURES_OK is set). */
  get ackedFeatures(): bigint {
    return this.driverFeatures;
  }

  /** True while the device is activated and has neither failed nor been marked for reset. */
  get running(): boolean {
    return this.activated && (this._status & (STATUS_DEVICE_NEEDS_RESET | STATUS_FAILED)) === 0;
  }

  read(offset: number, data: Uint8Array): void {
    if (offset >= MMIO_CONFIG) {
      this.device.readConfig(offset - MMIO_CONFIG, data);
      return;
    }
    const v = data.length === 4 && offset % 4 === 0 ? this.readRegister(offset) : undefined;
    if (v === undefined) {
      this.invalidAccesses++;
      data.fill(0);
      return;
    }
    new DataView(data.buffer, data.byteOffset, 4).setUint32(0, v >>> 0, true);
  }

  write(offset: number, data: Uint8Array): void {
    if (offset >= MMIO_CONFIG) {
      this.device.writeConfig(offset - MMIO_CONFIG, data);
      return;
    }
    if (data.length !== 4 || offset % 4 !== 0) {
      this.invalidAccesses++;
      return;
    }
    this.writeRegister(offset, new DataView(data.buffer, data.byteOffset, 4).getUint32(0, true));
  }

  /**
   * A driver notification for `queueIndex`. In a VM this comes from the queue's ioeventfd
   * (KVM_IOEVENTFD on QueueNotify), so it is public; a QueueNotify MMIO write lands here too.
   */
  notify(queueIndex: number): void {
    if (
      !this.running ||
      !Number.isInteger(queueIndex) ||
      queueIndex < 0 ||
      queueIndex >= this.queues.length
    ) {
      this.droppedNotifications++;
      return;
    }
    try {
      this.device.processQueue(queueIndex);
    } catch (e) {
      // Whatever went wrong (malformed queue, backend bug), the vCPU exit path must not throw.
      this.fail(e);
    }
  }

  /** Processes every ready queue: after a restore, requests posted before the snapshot. */
  kick(): void {
    this.queues.forEach((q, i) => {
      if (q.ready && this.running) this.notify(i);
    });
  }

  /** Raises the used-buffer interrupt (InterruptStatus bit 0). */
  signalUsedBuffer(): void {
    this._interruptStatus |= MMIO_INT_VRING;
    this.interrupt.trigger();
  }

  /** Announces a config space change (InterruptStatus bit 1, new ConfigGeneration). */
  signalConfigChange(): void {
    this.configGeneration = (this.configGeneration + 1) >>> 0;
    this._interruptStatus |= MMIO_INT_CONFIG;
    this.interrupt.trigger();
  }

  save(): VirtioMmioState {
    return {
      deviceType: this.device.deviceType,
      offeredFeatures: this.offeredFeatures.toString(),
      driverFeatures: this.driverFeatures.toString(),
      driverFeaturesBeyond64: this.driverFeaturesBeyond64,
      deviceFeaturesSel: this.deviceFeaturesSel,
      driverFeaturesSel: this.driverFeaturesSel,
      queueSel: this.queueSel,
      status: this._status,
      interruptStatus: this._interruptStatus,
      configGeneration: this.configGeneration,
      queues: this.queues.map((q) => q.save()),
      device: this.device.save(),
    };
  }

  /**
   * Validates untrusted state, restores the device from it, builds the transport around that
   * device and re-activates it if it was running. Throws STATE_INVALID.
   */
  static restore(args: VirtioMmioRestoreArgs, state: unknown): VirtioMmioTransport {
    const s = validateState('virtio-mmio transport', VirtioMmioStateSchema, state);
    const bad = (detail: string): FaasnapError =>
      new FaasnapError('STATE_INVALID', `virtio-mmio transport ${detail}`);
    // What needs no device is checked before the device (and its backend) is restored.
    const driverFeatures = BigInt(s.driverFeatures);
    if (driverFeatures >= 1n << 64n) throw bad('driver features exceed 64 bits');
    if ((s.status & ~KNOWN_STATUS_BITS) !== 0) throw bad(`status 0x${s.status.toString(16)}`);
    // Each driver status bit implies the ones before it in the init sequence.
    const order = [STATUS_ACKNOWLEDGE, STATUS_DRIVER, STATUS_FEATURES_OK, STATUS_DRIVER_OK];
    for (let i = 1; i < order.length; i++) {
      if (s.status & order[i]! && !(s.status & order[i - 1]!)) {
        throw bad(`status 0x${s.status.toString(16)} skips a step`);
      }
    }
    const device = args.restoreDevice(s.device);
    const t = new VirtioMmioTransport({ device, memory: args.memory, interrupt: args.interrupt });
    if (s.deviceType !== device.deviceType) {
      throw bad(`device type ${s.deviceType}, device is ${device.deviceType}`);
    }
    if (BigInt(s.offeredFeatures) !== t.offeredFeatures) {
      throw bad('offered features differ from the device');
    }
    if (
      s.status & STATUS_FEATURES_OK &&
      (driverFeatures & ~t.offeredFeatures || s.driverFeaturesBeyond64)
    ) {
      throw bad('accepted features that were not offered');
    }
    if (s.queues.length !== t.queues.length) {
      throw bad(`has ${s.queues.length} queues, device has ${t.queues.length}`);
    }
    s.queues.forEach((qs, i) => {
      t.queues[i] = Queue.restore({ memory: args.memory, maxSize: t.queues[i]!.maxSize }, qs);
    });
    t.driverFeatures = driverFeatures;
    t.driverFeaturesBeyond64 = s.driverFeaturesBeyond64;
    t.deviceFeaturesSel = s.deviceFeaturesSel;
    t.driverFeaturesSel = s.driverFeaturesSel;
    t.queueSel = s.queueSel;
    t._status = s.status;
    t._interruptStatus = s.interruptStatus;
    t.configGeneration = s.configGeneration;
    if (s.status & STATUS_DRIVER_OK && !(s.status & (STATUS_DEVICE_NEEDS_RESET | STATUS_FAILED))) {
      t.activateDevice();
      t.activated = true;
    }
    return t;
  }

  private get selectedQueue(): Queue | undefined {
    return this.queues[this.queueSel];
  }

  private readRegister(offset: number): number | undefined {
    switch (offset) {
      case MMIO_MAGIC:
        return MMIO_MAGIC_VALUE;
      case MMIO_VERSION_REG:
        return MMIO_VERSION;
      case MMIO_DEVICE_ID:
        return this.device.deviceType;
      case MMIO_VENDOR_ID_REG:
        return MMIO_VENDOR_ID;
      case MMIO_DEVICE_FEATURES:
        // Bounded selector: a huge bigint shift would be a guest-triggered allocation.
        if (this.deviceFeaturesSel > 1) return 0;
        return Number((this.offeredFeatures >> BigInt(32 * this.deviceFeaturesSel)) & 0xffffffffn);
      case MMIO_QUEUE_NUM_MAX:
        return this.selectedQueue?.maxSize ?? 0;
      case MMIO_QUEUE_READY:
        return this.selectedQueue?.ready ? 1 : 0;
      case MMIO_INTERRUPT_STATUS:
        return this._interruptStatus;
      case MMIO_STATUS:
        return this._status;
      case MMIO_CONFIG_GENERATION:
        return this.configGeneration;
      case MMIO_SHM_LEN_LOW:
      case MMIO_SHM_LEN_HIGH:
      case MMIO_SHM_BASE_LOW:
      case MMIO_SHM_BASE_HIGH:
        // No shared memory regions: the spec's "does not exist" answer is all ones.
        return 0xffffffff;
      case MMIO_QUEUE_RESET:
        return 0;
      default:
        return undefined;
    }
  }

  private writeRegister(offset: number, v: number): void {
    switch (offset) {
      case MMIO_DEVICE_FEATURES_SEL:
        this.deviceFeaturesSel = v;
        return;
      case MMIO_DRIVER_FEATURES:
        return this.writeDriverFeatures(v);
      case MMIO_DRIVER_FEATURES_SEL:
        this.driverFeaturesSel = v;
        return;
      case MMIO_QUEUE_SEL:
        this.queueSel = v;
        return;
      case MMIO_QUEUE_NUM:
        return this.configureQueue((q) => (q.size = v));
      case MMIO_QUEUE_DESC_LOW:
        return this.configureQueue((q) => (q.descTable = withLow(q.descTable, v)));
      case MMIO_QUEUE_DESC_HIGH:
        return this.configureQueue((q) => (q.descTable = withHigh(q.descTable, v)));
      case MMIO_QUEUE_DRIVER_LOW:
        return this.configureQueue((q) => (q.availRing = withLow(q.availRing, v)));
      case MMIO_QUEUE_DRIVER_HIGH:
        return this.configureQueue((q) => (q.availRing = withHigh(q.availRing, v)));
      case MMIO_QUEUE_DEVICE_LOW:
        return this.configureQueue((q) => (q.usedRing = withLow(q.usedRing, v)));
      case MMIO_QUEUE_DEVICE_HIGH:
        return this.configureQueue((q) => (q.usedRing = withHigh(q.usedRing, v)));
      case MMIO_QUEUE_READY:
        return this.writeQueueReady(v);
      case MMIO_QUEUE_NOTIFY:
        // Without VIRTIO_F_NOTIFICATION_DATA the value is just the queue index.
        return this.notify(v);
      case MMIO_INTERRUPT_ACK:
        this._interruptStatus &= ~v;
        return;
      case MMIO_STATUS:
        return this.writeStatus(v);
      case MMIO_SHM_SEL:
      case MMIO_QUEUE_RESET:
        // Neither shared memory nor VIRTIO_F_RING_RESET is offered.
        this.ignoredWrites++;
        return;
      default:
        this.invalidAccesses++;
    }
  }

  private writeDriverFeatures(v: number): void {
    // Features are fixed from FEATURES_OK on, and negotiated only after DRIVER (§3.1.1).
    if (!(this._status & STATUS_DRIVER) || this._status & STATUS_FEATURES_OK) {
      this.ignoredWrites++;
      return;
    }
    const sel = this.driverFeaturesSel;
    if (sel > 1) {
      // Nothing is offered above bit 63; remember a nonzero ack so FEATURES_OK fails.
      if (v !== 0) this.driverFeaturesBeyond64 = true;
      return;
    }
    const shift = BigInt(32 * sel);
    this.driverFeatures =
      (this.driverFeatures & ~(0xffffffffn << shift)) | (BigInt(v >>> 0) << shift);
  }

  /** Queue setup is allowed between FEATURES_OK and DRIVER_OK, on a queue not yet ready. */
  private configureQueue(apply: (q: Queue) => void): void {
    const q = this.selectedQueue;
    const s = this._status;
    if (
      !q ||
      q.ready ||
      !(s & STATUS_FEATURES_OK) ||
      s & (STATUS_DRIVER_OK | STATUS_DEVICE_NEEDS_RESET | STATUS_FAILED)
    ) {
      this.ignoredWrites++;
      return;
    }
    apply(q);
  }

  private writeQueueReady(v: number): void {
    const q = this.selectedQueue;
    if (!q) {
      this.ignoredWrites++;
      return;
    }
    if (v === 0) {
      q.disable();
      return;
    }
    this.configureQueue((queue) => {
      try {
        queue.enable(this.memory);
      } catch (e) {
        this.fail(e);
      }
    });
  }

  private writeStatus(v: number): void {
    if (v === 0) {
      this.resetDevice();
      return;
    }
    const cur = this._status;
    if (v & STATUS_FAILED) {
      // The driver gave up on the device: stop it until the driver resets it.
      this._status = cur | STATUS_FAILED | STATUS_DEVICE_NEEDS_RESET;
      return;
    }
    // Once marked for reset, only a reset (or FAILED) changes anything; clearing bits is not
    // allowed either (§2.1.1: the driver never clears a status bit except by reset).
    if (cur & STATUS_DEVICE_NEEDS_RESET || cur & DRIVER_STATUS_BITS & ~v) {
      this.ignoredWrites++;
      return;
    }
    const added = v & ~cur & DRIVER_STATUS_BITS;
    let next = cur;
    if (added & STATUS_ACKNOWLEDGE) next |= STATUS_ACKNOWLEDGE;
    if (added & STATUS_DRIVER) {
      if (!(next & STATUS_ACKNOWLEDGE)) return this.ignoreStatus();
      next |= STATUS_DRIVER;
    }
    if (added & STATUS_FEATURES_OK) {
      if (!(next & STATUS_DRIVER)) return this.ignoreStatus();
      // Refusing means leaving the bit clear: the driver reads Status back and gives up.
      if (!this.featuresAcceptable()) {
        this._status = next;
        return;
      }
      next |= STATUS_FEATURES_OK;
    }
    if (added & STATUS_DRIVER_OK) {
      if (!(next & STATUS_FEATURES_OK)) return this.ignoreStatus();
      this._status = next | STATUS_DRIVER_OK;
      try {
        this.activateDevice();
        this.activated = true;
      } catch (e) {
        this.fail(e);
      }
      return;
    }
    this._status = next;
  }

  private ignoreStatus(): void {
    this.ignoredWrites++;
  }

  private featuresAcceptable(): boolean {
    const f = this.driverFeatures;
    // Only offered features, and VERSION_1: this transport has no legacy mode.
    return (
      !this.driverFeaturesBeyond64 &&
      (f & ~this.offeredFeatures) === 0n &&
      (f & featureBit(VIRTIO_F_VERSION_1)) !== 0n
    );
  }

  private activateDevice(): void {
    this.device.activate({
      memory: this.memory,
      queues: this.queues,
      interrupt: this.usedLine,
      ackedFeatures: this.driverFeatures,
      notify: (queueIndex) => this.notify(queueIndex),
    });
  }

  private resetDevice(): void {
    try {
      this.device.reset();
    } catch (e) {
      this.lastError = e;
    }
    this.activated = false;
    this._status = 0;
    this._interruptStatus = 0;
    this.driverFeatures = 0n;
    this.driverFeaturesBeyond64 = false;
    this.deviceFeaturesSel = 0;
    this.driverFeaturesSel = 0;
    this.queueSel = 0;
    for (const q of this.queues) q.reset();
  }

  /** DEVICE_NEEDS_RESET: stop processing; tell a running driver via a config interrupt. */
  private fail(e: unknown): void {
    this.lastError = e;
    const wasSet = (this._status & STATUS_DEVICE_NEEDS_RESET) !== 0;
    this._status |= STATUS_DEVICE_NEEDS_RESET;
    // §2.1.2: after DRIVER_OK, setting DEVICE_NEEDS_RESET must come with a config notification.
    if (!wasSet && this._status & STATUS_DRIVER_OK) this.signalConfigChange();
  }
}
