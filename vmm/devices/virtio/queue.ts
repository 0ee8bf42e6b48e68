// Device side of a virtio 1.x split virtqueue (spec §2.7). Everything read from the rings comes
// from the guest and is untrusted: a malformed ring or chain is reported as VIRTQUEUE_INVALID
// (the transport then marks the device DEVICE_NEEDS_RESET) and never crashes the VMM.
//
// Memory ordering: device models run on the Node main thread while vCPU threads run the guest.
// The driver writes a ring entry before it bumps avail.idx; we must read avail.idx before the
// entry, and on the used side write the element before we publish used.idx. The two indices are
// accessed with Atomics (sequentially consistent), so neither V8 nor the CPU may move the ring
// accesses across them: correctness does not rest on x86's store order or on what the JIT keeps.
//
// Addresses are JS numbers, not bigints: guest RAM lives far below 2^53, so every address that
// can be valid is exact as a number. A guest-written address at or above 2^53 is saturated to
// Number.MAX_SAFE_INTEGER, which is just as invalid, and the registers it came from are
// write-only, so nothing ever needs the lost bits.

import { Type, type Static } from '@sinclair/typebox';
import { FaasnapError, isFaasnapError } from '../../../common/errors.js';
import type { GuestMemory } from '../../guest-memory.js';
import { validateState } from '../../../common/state.js';
import type { Persist } from '../../persist.js';
import {
  VIRTQ_AVAIL_ALIGN,
  VIRTQ_DESC_ALIGN,
  VIRTQ_DESC_F_INDIRECT,
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_WRITE,
  VIRTQ_DESC_SIZE,
  VIRTQ_MAX_SIZE,
  VIRTQ_USED_ALIGN,
  VIRTQ_USED_ELEM_SIZE,
} from './constants.js';

/** One guest buffer of a descriptor chain. */
export interface GuestBuffer {
  readonly gpa: number;
  readonly len: number;
}

function invalid(detail: string, details: Record<string, unknown> = {}): FaasnapError {
  return new FaasnapError('VIRTQUEUE_INVALID', detail, details);
}

/**
 * Host views of [gpa, gpa+len), split where guest memory regions meet; undefined when any byte
 * lies outside guest RAM. Splitting lets a buffer span two adjacent regions.
 */
export function guestRangeViews(
  memory: GuestMemory,
  gpa: number,
  len: number,
): Uint8Array[] | undefined {
  if (!Number.isSafeInteger(gpa) || !Number.isSafeInteger(len) || gpa < 0 || len < 0) {
    return undefined;
  }
  if (!Number.isSafeInteger(gpa + len)) return undefined;
  const out: Uint8Array[] = [];
  let cur = gpa;
  let left = len;
  while (left > 0) {
    const r = memory.regions.find((m) => cur >= m.gpa && cur < m.gpa + m.bytes.length);
    if (!r) return undefined;
    const off = cur - r.gpa;
    const n = Math.min(left, r.bytes.length - off);
    out.push(r.bytes.subarray(off, off + n));
    cur += n;
    left -= n;
  }
  return out;
}

/** The sub-views covering [offset, offset+len) of the concatenation of `views`. */
function subViews(views: readonly Uint8Array[], offset: number, len: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let skip = Math.max(0, offset);
  let left = len;
  for (const v of views) {
    if (left <= 0) break;
    if (skip >= v.length) {
      skip -= v.length;
      continue;
    }
    const n = Math.min(v.length - skip, left);
    out.push(v.subarray(skip, skip + n));
    skip = 0;
    left -= n;
  }
  return out;
}

/**
 * A parsed descriptor chain: the driver→device (readable) buffers, then the device→driver
 * (writable) ones, each with host views that alias guest memory. Indirect tables are already
 * flattened into these lists.
 */
export class DescriptorChain {
  /** Total bytes the device may read. */
  readonly readableLength: number;
  /** Total bytes the device may write. */
  readonly writableLength: number;

  constructor(
    /** Head descriptor index: what `Queue.addUsed` must be given back. */
    readonly head: number,
    readonly readable: readonly GuestBuffer[],
    readonly writable: readonly GuestBuffer[],
    private readonly readViews: readonly Uint8Array[],
    private readonly writeViews: readonly Uint8Array[],
  ) {
    this.readableLength = readable.reduce((n, b) => n + b.len, 0);
    this.writableLength = writable.reduce((n, b) => n + b.len, 0);
  }

  /** Views aliasing guest memory for readable bytes [offset, offset+len) (clipped at the end). */
  readableSlices(offset: number, len: number): Uint8Array[] {
    return subViews(this.readViews, offset, len);
  }

  /** Views aliasing guest memory for writable bytes [offset, offset+len) (clipped at the end). */
  writableSlices(offset: number, len: number): Uint8Array[] {
    return subViews(this.writeViews, offset, len);
  }

  /** Copies readable bytes from `offset` into `out`; returns how many were available. */
  gather(out: Uint8Array, offset = 0): number {
    let n = 0;
    for (const v of this.readableSlices(offset, out.length)) {
      out.set(v, n);
      n += v.length;
    }
    return n;
  }

  /** Copies `data` into the writable side from `offset`; returns how many bytes fitted. */
  scatter(data: Uint8Array, offset = 0): number {
    let n = 0;
    for (const v of this.writableSlices(offset, data.length)) {
      v.set(data.subarray(n, n + v.length));
      n += v.length;
    }
    return n;
  }
}

export const QueueStateSchema = Type.Object(
  {
    maxSize: Type.Integer({ minimum: 1, maximum: VIRTQ_MAX_SIZE }),
    // QueueNum as the driver wrote it; only a ready queue must have a valid size.
    size: Type.Integer({ minimum: 0, maximum: 0xffffffff }),
    ready: Type.Boolean(),
    descTable: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }),
    availRing: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }),
    usedRing: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }),
    nextAvail: Type.Integer({ minimum: 0, maximum: 0xffff }),
    nextUsed: Type.Integer({ minimum: 0, maximum: 0xffff }),
  },
  { additionalProperties: false },
);
export type QueueState = Static<typeof QueueStateSchema>;

interface RingViews {
  memory: GuestMemory;
  desc: DataView;
  avail: DataView;
  used: DataView;
  /** avail.idx and used.idx, for Atomics (the rings are 2- and 4-byte aligned). */
  availIdx: Uint16Array;
  usedIdx: Uint16Array;
}

function isPowerOfTwo(n: number): boolean {
  return Number.isSafeInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

function saturateAddress(v: number): number {
  return Number.isSafeInteger(v) && v >= 0 ? v : Number.MAX_SAFE_INTEGER;
}

function viewOf(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

export class Queue implements Persist<QueueState> {
  readonly maxSize: number;
  /** Index (mod 2^16) of the next avail-ring entry the device will consume. */
  nextAvail = 0;
  /** Index (mod 2^16) of the next used-ring entry the device will publish. */
  nextUsed = 0;

  private _size: number;
  private _ready = false;
  private _descTable = 0;
  private _availRing = 0;
  private _usedRing = 0;
  // Ring views resolved once per memory object: the hot path then skips region lookups.
  private rings: RingViews | undefined;

  constructor(maxSize: number) {
    if (!isPowerOfTwo(maxSize) || maxSize > VIRTQ_MAX_SIZE) {
      throw new FaasnapError('INVALID_VM_CONFIG', `virtqueue max size ${maxSize}`);
    }
    this.maxSize = maxSize;
    this._size = maxSize;
  }

  get ready(): boolean {
    return this._ready;
  }

  get size(): number {
    return this._size;
  }
  set size(v: number) {
    this._size = Number.isSafeInteger(v) && v >= 0 && v <= 0xffffffff ? v : 0;
    this.rings = undefined;
  }

  /** GPA of the descriptor table. */
  get descTable(): number {
    return this._descTable;
  }
  set descTable(v: number) {
    this._descTable = saturateAddress(v);
    this.rings = undefined;
  }

  /** GPA of the available ring (the "driver area"). */
  get availRing(): number {
    return this._availRing;
  }
  set availRing(v: number) {
    this._availRing = saturateAddress(v);
    this.rings = undefined;
  }

  /** GPA of the used ring (the "device area"). */
  get usedRing(): number {
    return this._usedRing;
  }
  set usedRing(v: number) {
    this._usedRing = saturateAddress(v);
    this.rings = undefined;
  }

  /** Throws VIRTQUEUE_INVALID unless size, alignment and placement in `memory` are valid. */
  validate(memory: GuestMemory): void {
    this.layout(memory);
  }

  /** QueueReady=1: validates the layout first, so a ready queue is always a usable one. */
  enable(memory: GuestMemory): void {
    this.rings = this.layout(memory);
    this._ready = true;
  }

  /** QueueReady=0. */
  disable(): void {
    this._ready = false;
    this.rings = undefined;
  }

  /** Back to the power-on state (device reset). */
  reset(): void {
    this._ready = false;
    this._size = this.maxSize;
    this._descTable = 0;
    this._availRing = 0;
    this._usedRing = 0;
    this.nextAvail = 0;
    this.nextUsed = 0;
    this.rings = undefined;
  }

  /** True when the driver has made chains available that the device has not consumed. */
  hasAvail(memory: GuestMemory): boolean {
    if (!this._ready) return false;
    return Atomics.load(this.views(memory).availIdx, 0) !== this.nextAvail;
  }

  /**
   * Takes the next available chain, or undefined when there is none (or the queue is not
   * ready). Throws VIRTQUEUE_INVALID for a malformed ring or chain; the entry is then left
   * unconsumed, as the device stops using the queue anyway.
   */
  popAvail(memory: GuestMemory): DescriptorChain | undefined {
    if (!this._ready) return undefined;
    const r = this.views(memory);
    const availIdx = Atomics.load(r.availIdx, 0);
    const pending = (availIdx - this.nextAvail) & 0xffff;
    if (pending === 0) return undefined;
    if (pending > this._size) {
      throw invalid(
        `avail.idx ${availIdx} is ${pending} entries ahead of a ${this._size}-entry queue`,
      );
    }
    // size is a power of two dividing 2^16, so the free-running index maps to a slot by modulo.
    const head = r.avail.getUint16(4 + 2 * (this.nextAvail % this._size), true);
    const chain = this.parseChain(memory, r.desc, head);
    this.nextAvail = (this.nextAvail + 1) & 0xffff;
    return chain;
  }

  /** Returns chain `head` to the driver with `len` bytes written into its writable buffers. */
  addUsed(memory: GuestMemory, head: number, len: number): void {
    if (!this._ready) throw invalid('used buffer on a queue that is not ready');
    if (!Number.isInteger(head) || head < 0 || head >= this._size) {
      throw invalid(`used head ${head} out of range`);
    }
    if (!Number.isInteger(len) || len < 0 || len > 0xffffffff) {
      throw invalid(`used length ${len} out of range`);
    }
    const r = this.views(memory);
    const elem = 4 + VIRTQ_USED_ELEM_SIZE * (this.nextUsed % this._size);
    r.used.setUint32(elem, head, true);
    r.used.setUint32(elem + 4, len, true);
    this.nextUsed = (this.nextUsed + 1) & 0xffff;
    // Publish only after the element is in place: the driver reads up to used.idx.
    Atomics.store(r.usedIdx, 0, this.nextUsed);
  }

  save(): QueueState {
    return {
      maxSize: this.maxSize,
      size: this._size,
      ready: this._ready,
      descTable: this._descTable,
      availRing: this._availRing,
      usedRing: this._usedRing,
      nextAvail: this.nextAvail,
      nextUsed: this.nextUsed,
    };
  }

  /**
   * Rebuilds a queue from untrusted saved state. `maxSize` is what the device offers now; a
   * ready queue must still be valid against `memory`. Throws STATE_INVALID.
   */
  static restore(args: { memory: GuestMemory; maxSize: number }, state: unknown): Queue {
    const s = validateState('virtqueue', QueueStateSchema, state);
    if (s.maxSize !== args.maxSize) {
      throw new FaasnapError(
        'STATE_INVALID',
        `virtqueue max size ${s.maxSize} differs from the device's ${args.maxSize}`,
      );
    }
    const q = new Queue(args.maxSize);
    q.size = s.size;
    q.descTable = s.descTable;
    q.availRing = s.availRing;
    q.usedRing = s.usedRing;
    q.nextAvail = s.nextAvail;
    q.nextUsed = s.nextUsed;
    if (s.ready) {
      try {
        q.enable(args.memory);
      } catch (e) {
        if (!isFaasnapError(e, 'VIRTQUEUE_INVALID')) throw e;
        throw new FaasnapError('STATE_INVALID', `ready virtqueue: ${e.message}`);
      }
    }
    return q;
  }

  private views(memory: GuestMemory): RingViews {
    if (!this.rings || this.rings.memory !== memory) this.rings = this.layout(memory);
    return this.rings;
  }

  private layout(memory: GuestMemory): RingViews {
    const n = this._size;
    if (!isPowerOfTwo(n) || n > this.maxSize) {
      throw invalid(`queue size ${n} (max ${this.maxSize}, must be a power of two)`);
    }
    // Each part must sit inside one memory region so it can be one DataView.
    const part = (what: string, gpa: number, len: number, align: number): DataView => {
      if (gpa % align !== 0) throw invalid(`${what} 0x${gpa.toString(16)} not ${align}-aligned`);
      if (!memory.contains(gpa, len)) {
        throw invalid(`${what} [0x${gpa.toString(16)}, +0x${len.toString(16)}) outside guest RAM`);
      }
      return viewOf(memory.slice(gpa, len));
    };
    // flags, idx, ring[n], used_event
    const avail = part('avail ring', this._availRing, 6 + 2 * n, VIRTQ_AVAIL_ALIGN);
    // flags, idx, ring[n] of {id, len}, avail_event
    const used = part('used ring', this._usedRing, 6 + VIRTQ_USED_ELEM_SIZE * n, VIRTQ_USED_ALIGN);
    // The host is x86 (little-endian), so a native Uint16Array reads the rings' LE indices.
    const idx = (v: DataView) => new Uint16Array(v.buffer, v.byteOffset + 2, 1);
    return {
      memory,
      desc: part('descriptor table', this._descTable, VIRTQ_DESC_SIZE * n, VIRTQ_DESC_ALIGN),
      avail,
      used,
      availIdx: idx(avail),
      usedIdx: idx(used),
    };
  }

  private parseChain(memory: GuestMemory, desc: DataView, head: number): DescriptorChain {
    const readable: GuestBuffer[] = [];
    const writable: GuestBuffer[] = [];
    const readViews: Uint8Array[] = [];
    const writeViews: Uint8Array[] = [];
    let table = desc;
    let count = this._size;
    let index = head;
    let steps = 0;
    let indirect = false;
    for (;;) {
      if (index >= count) {
        throw invalid(`descriptor index ${index} out of range (table of ${count})`, { head });
      }
      // A table of `count` entries cannot hold a longer loop-free chain.
      if (++steps > count) {
        throw invalid(`descriptor chain from head ${head} loops or exceeds ${count} entries`, {
          head,
        });
      }
      const off = index * VIRTQ_DESC_SIZE;
      const addr = table.getBigUint64(off, true);
      const len = table.getUint32(off + 8, true);
      const flags = table.getUint16(off + 12, true);
      const next = table.getUint16(off + 14, true);
      // Saturated like queue addresses: never inside guest RAM, so any use of it is rejected.
      const gpa = addr > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(addr);

      if (flags & VIRTQ_DESC_F_INDIRECT) {
        if (indirect) throw invalid('indirect descriptor inside an indirect table', { head });
        if (flags & VIRTQ_DESC_F_NEXT) {
          throw invalid('indirect descriptor with NEXT set', { head });
        }
        if (len === 0 || len % VIRTQ_DESC_SIZE !== 0) {
          throw invalid(`indirect table length ${len} is not a nonzero multiple of 16`, { head });
        }
        const entries = len / VIRTQ_DESC_SIZE;
        // The spec bounds any chain, indirect ones included, by the queue size.
        if (entries > this._size) {
          throw invalid(`indirect table of ${entries} entries exceeds queue size ${this._size}`, {
            head,
          });
        }
        // Copy the table so the guest cannot change it while we walk it.
        const views = guestRangeViews(memory, gpa, len);
        if (!views) throw invalid(`indirect table 0x${gpa.toString(16)} outside guest RAM`);
        const copy = new Uint8Array(len);
        let at = 0;
        for (const v of views) {
          copy.set(v, at);
          at += v.length;
        }
        table = viewOf(copy);
        count = entries;
        index = 0;
        steps = 0;
        indirect = true;
        continue;
      }

      // A zero-length buffer carries nothing, so its address is never used or checked.
      const views = len === 0 ? [] : guestRangeViews(memory, gpa, len);
      if (!views) {
        throw invalid(`buffer [0x${gpa.toString(16)}, +0x${len.toString(16)}) outside guest RAM`, {
          head,
        });
      }
      if (flags & VIRTQ_DESC_F_WRITE) {
        writable.push({ gpa, len });
        writeViews.push(...views);
      } else {
        // §2.7.4.2: readable buffers come before writable ones.
        if (writable.length > 0) throw invalid('readable buffer after a writable one', { head });
        readable.push({ gpa, len });
        readViews.push(...views);
      }
      if (!(flags & VIRTQ_DESC_F_NEXT)) break;
      index = next;
    }
    return new DescriptorChain(head, readable, writable, readViews, writeViews);
  }
}
