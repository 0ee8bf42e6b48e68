// The driver side of a split virtqueue and of the virtio-mmio register handshake, for tests:
// lays out a descriptor table, avail ring and used ring in a GuestMemory made of plain Buffers,
// lets a test post well-formed or deliberately malformed chains, kick, and read the used ring.
// It plays the guest's role, so it writes raw bytes and checks nothing it is told to write.

import { GuestMemory } from '../../guest-memory.js';
import type { BusDevice } from '../../bus.js';
import type { Queue } from './queue.js';
import {
  MMIO_DRIVER_FEATURES,
  MMIO_DRIVER_FEATURES_SEL,
  MMIO_DEVICE_FEATURES,
  MMIO_DEVICE_FEATURES_SEL,
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
  MMIO_QUEUE_SEL,
  MMIO_STATUS,
  MMIO_CONFIG,
  STATUS_ACKNOWLEDGE,
  STATUS_DRIVER,
  STATUS_DRIVER_OK,
  STATUS_FEATURES_OK,
  VIRTQ_DESC_F_INDIRECT,
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_WRITE,
  VIRTQ_DESC_SIZE,
  VIRTQ_USED_ELEM_SIZE,
} from './constants.js';

/** Guest memory of `size` zeroed bytes at `gpa`, backed by a plain Buffer. */
export function createTestMemory(size: number, gpa = 0): GuestMemory {
  return new GuestMemory([{ gpa, bytes: Buffer.alloc(size) }]);
}

/** A raw descriptor, written exactly as given (bigint addresses allow values ≥ 2^53). */
export interface MockDescriptor {
  addr: number | bigint;
  len: number;
  flags?: number;
  next?: number;
}

/** One buffer of a chain to post: `data` is copied in; `len` alone reserves zeroed space. */
export interface MockBuffer {
  data?: Uint8Array;
  len?: number;
  /** Device-writable (VIRTQ_DESC_F_WRITE). */
  write?: boolean;
  /** Use this address instead of allocating one (for out-of-range tests). */
  gpa?: number | bigint;
}

export interface MockChain {
  head: number;
  /** Where each buffer was placed, in order. */
  buffers: { gpa: number; len: number }[];
}

export interface UsedElem {
  id: number;
  len: number;
}

function alignUp(v: number, a: number): number {
  return Math.ceil(v / a) * a;
}

export class MockVirtqueue {
  readonly size: number;
  readonly descTable: number;
  readonly availRing: number;
  readonly usedRing: number;
  /** Called by `kick()`; `MmioDriverMock.setUpQueue` wires it to a QueueNotify write. */
  onKick: (() => void) | undefined;

  private dataNext: number;
  private readonly dataEnd: number;
  private nextDesc = 0;
  private availIdx = 0;
  private lastUsed = 0;

  constructor(
    readonly memory: GuestMemory,
    opts: { base?: number; size?: number; dataBase?: number; dataEnd?: number } = {},
  ) {
    this.size = opts.size ?? 16;
    const base = opts.base ?? memory.regions[0]?.gpa ?? 0;
    this.descTable = alignUp(base, 16);
    this.availRing = this.descTable + VIRTQ_DESC_SIZE * this.size;
    this.usedRing = alignUp(this.availRing + 6 + 2 * this.size, 4);
    const ringsEnd = this.usedRing + 6 + VIRTQ_USED_ELEM_SIZE * this.size;
    this.dataNext = opts.dataBase ?? alignUp(ringsEnd, 4096);
    const region = memory.regions.find(
      (r) => this.dataNext >= r.gpa && this.dataNext < r.gpa + r.bytes.length,
    );
    this.dataEnd = opts.dataEnd ?? (region ? region.gpa + region.bytes.length : this.dataNext);
  }

  /** Reserves `len` bytes of data space (never reused). */
  alloc(len: number, align = 16): number {
    const gpa = alignUp(this.dataNext, align);
    if (gpa + len > this.dataEnd) throw new Error('MockVirtqueue: data area exhausted');
    this.dataNext = gpa + len;
    return gpa;
  }

  writeDescriptor(index: number, d: MockDescriptor): void {
    this.writeDescriptorAt(this.descTable + VIRTQ_DESC_SIZE * index, d);
  }

  /** Writes an indirect descriptor table into data space; returns its address. */
  writeIndirectTable(entries: MockDescriptor[]): number {
    const gpa = this.alloc(VIRTQ_DESC_SIZE * entries.length);
    entries.forEach((d, i) => this.writeDescriptorAt(gpa + VIRTQ_DESC_SIZE * i, d));
    return gpa;
  }

  /** Posts `buffers` as one direct chain and makes it available; does not kick. */
  addChain(buffers: MockBuffer[]): MockChain {
    if (buffers.length === 0) throw new Error('MockVirtqueue: empty chain');
    const indices = buffers.map(() => this.takeDescriptor());
    const placed = buffers.map((b) => this.place(b));
    placed.forEach((p, i) => {
      const last = i === placed.length - 1;
      this.writeDescriptor(indices[i]!, {
        addr: p.addr,
        len: p.len,
        flags: (buffers[i]!.write ? VIRTQ_DESC_F_WRITE : 0) | (last ? 0 : VIRTQ_DESC_F_NEXT),
        next: last ? 0 : indices[i + 1]!,
      });
    });
    const head = indices[0]!;
    this.publish(head);
    return { head, buffers: placed.map((p) => ({ gpa: Number(p.addr), len: p.len })) };
  }

  /**
   * Posts `buffers` through one indirect table and makes it available. `tableLen` overrides the
   * length written into the indirect descriptor (for malformed-length tests).
   */
  addIndirectChain(buffers: MockBuffer[], opts: { tableLen?: number } = {}): MockChain {
    const placed = buffers.map((b) => this.place(b));
    const table = this.writeIndirectTable(
      placed.map((p, i) => {
        const last = i === placed.length - 1;
        return {
          addr: p.addr,
          len: p.len,
          flags: (buffers[i]!.write ? VIRTQ_DESC_F_WRITE : 0) | (last ? 0 : VIRTQ_DESC_F_NEXT),
          next: last ? 0 : i + 1,
        };
      }),
    );
    const head = this.takeDescriptor();
    this.writeDescriptor(head, {
      addr: table,
      len: opts.tableLen ?? VIRTQ_DESC_SIZE * placed.length,
      flags: VIRTQ_DESC_F_INDIRECT,
    });
    this.publish(head);
    return { head, buffers: placed.map((p) => ({ gpa: Number(p.addr), len: p.len })) };
  }

  /** Puts `head` in the next avail slot, then bumps avail.idx (entry before index). */
  publish(head: number): void {
    this.memory.writeU16(this.availRing + 4 + 2 * (this.availIdx % this.size), head);
    this.availIdx = (this.availIdx + 1) & 0xffff;
    this.memory.writeU16(this.availRing + 2, this.availIdx);
  }

  /** Writes avail.idx directly (for "index ran ahead" tests). */
  setAvailIdx(idx: number): void {
    this.availIdx = idx & 0xffff;
    this.memory.writeU16(this.availRing + 2, this.availIdx);
  }

  kick(): void {
    this.onKick?.();
  }

  usedIdx(): number {
    return this.memory.readU16(this.usedRing + 2);
  }

  usedElem(slot: number): UsedElem {
    const at = this.usedRing + 4 + VIRTQ_USED_ELEM_SIZE * (slot % this.size);
    return { id: this.memory.readU32(at), len: this.memory.readU32(at + 4) };
  }

  /** Used elements published since the previous call. */
  takeUsed(): UsedElem[] {
    const out: UsedElem[] = [];
    const idx = this.usedIdx();
    while (this.lastUsed !== idx) {
      out.push(this.usedElem(this.lastUsed));
      this.lastUsed = (this.lastUsed + 1) & 0xffff;
    }
    return out;
  }

  /** A copy of guest bytes. */
  read(gpa: number, len: number): Uint8Array {
    return Uint8Array.from(this.memory.slice(gpa, len));
  }

  /** Points a device-side queue at this layout and enables it (queue-only tests). */
  attach(queue: Queue): void {
    queue.size = this.size;
    queue.descTable = this.descTable;
    queue.availRing = this.availRing;
    queue.usedRing = this.usedRing;
    queue.enable(this.memory);
  }

  private takeDescriptor(): number {
    const i = this.nextDesc;
    this.nextDesc = (this.nextDesc + 1) % this.size;
    return i;
  }

  private place(b: MockBuffer): { addr: number | bigint; len: number } {
    const len = b.len ?? b.data?.length ?? 0;
    if (b.gpa !== undefined) return { addr: b.gpa, len };
    const gpa = this.alloc(len);
    if (b.data) this.memory.write(gpa, b.data);
    return { addr: gpa, len };
  }

  private writeDescriptorAt(at: number, d: MockDescriptor): void {
    this.memory.writeU64(at, BigInt(d.addr));
    this.memory.writeU32(at + 8, d.len);
    this.memory.writeU16(at + 12, d.flags ?? 0);
    this.memory.writeU16(at + 14, d.next ?? 0);
  }
}

/** The driver's view of a virtio-mmio register window (32-bit accesses, little endian). */
export class MmioDriverMock {
  constructor(readonly device: BusDevice) {}

  read32(offset: number): number {
    const b = new Uint8Array(4);
    this.device.read(offset, b);
    return new DataView(b.buffer).getUint32(0, true);
  }

  write32(offset: number, value: number): void {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, value >>> 0, true);
    this.device.write(offset, b);
  }

  readConfig(offset: number, len: number): Uint8Array {
    const b = new Uint8Array(len);
    this.device.read(MMIO_CONFIG + offset, b);
    return b;
  }

  status(): number {
    return this.read32(MMIO_STATUS);
  }

  deviceFeatures(): bigint {
    this.write32(MMIO_DEVICE_FEATURES_SEL, 0);
    const lo = this.read32(MMIO_DEVICE_FEATURES);
    this.write32(MMIO_DEVICE_FEATURES_SEL, 1);
    const hi = this.read32(MMIO_DEVICE_FEATURES);
    return (BigInt(hi) << 32n) | BigInt(lo);
  }

  writeDriverFeatures(features: bigint): void {
    this.write32(MMIO_DRIVER_FEATURES_SEL, 0);
    this.write32(MMIO_DRIVER_FEATURES, Number(features & 0xffffffffn));
    this.write32(MMIO_DRIVER_FEATURES_SEL, 1);
    this.write32(MMIO_DRIVER_FEATURES, Number((features >> 32n) & 0xffffffffn));
  }

  /** Programs queue `index` with `q`'s layout, sets it ready, and wires `q.kick()`. */
  setUpQueue(index: number, q: MockVirtqueue): void {
    this.write32(MMIO_QUEUE_SEL, index);
    this.write32(MMIO_QUEUE_NUM, q.size);
    this.write32(MMIO_QUEUE_DESC_LOW, q.descTable % 2 ** 32);
    this.write32(MMIO_QUEUE_DESC_HIGH, Math.floor(q.descTable / 2 ** 32));
    this.write32(MMIO_QUEUE_DRIVER_LOW, q.availRing % 2 ** 32);
    this.write32(MMIO_QUEUE_DRIVER_HIGH, Math.floor(q.availRing / 2 ** 32));
    this.write32(MMIO_QUEUE_DEVICE_LOW, q.usedRing % 2 ** 32);
    this.write32(MMIO_QUEUE_DEVICE_HIGH, Math.floor(q.usedRing / 2 ** 32));
    this.write32(MMIO_QUEUE_READY, 1);
    q.onKick = () => this.write32(MMIO_QUEUE_NOTIFY, index);
  }

  /**
   * The §3.1.1 initialisation sequence: reset, ACKNOWLEDGE, DRIVER, features (device's ∩
   * `wanted`), FEATURES_OK, queues, DRIVER_OK. Returns the accepted features; throws if the
   * device refused FEATURES_OK or a queue is larger than its QueueNumMax.
   */
  init(queues: MockVirtqueue[], wanted: bigint = ~0n): bigint {
    this.write32(MMIO_STATUS, 0);
    this.write32(MMIO_STATUS, STATUS_ACKNOWLEDGE);
    this.write32(MMIO_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
    const features = this.deviceFeatures() & wanted;
    this.writeDriverFeatures(features);
    this.write32(MMIO_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK);
    if (!(this.status() & STATUS_FEATURES_OK)) throw new Error('device refused FEATURES_OK');
    queues.forEach((q, i) => {
      this.write32(MMIO_QUEUE_SEL, i);
      const max = this.read32(MMIO_QUEUE_NUM_MAX);
      if (q.size > max) throw new Error(`queue ${i}: size ${q.size} > QueueNumMax ${max}`);
      this.setUpQueue(i, q);
    });
    this.write32(
      MMIO_STATUS,
      STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK,
    );
    return features;
  }
}
