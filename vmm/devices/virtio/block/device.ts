// virtio-blk (spec §5.2) on a synchronous backend. Every request the guest can form ends in a
// status byte (OK / IOERR / UNSUPP), never in an exception: out-of-range sectors, writes to a
// read-only disk and backend failures are the guest's problem to see, not the VMM's to crash on.

import * as fs from 'node:fs';
import { Type, type Static } from '@sinclair/typebox';
import { FaasnapError } from '../../../../common/errors.js';
import { validateState } from '../../../../common/state.js';
import type { Persist } from '../../../persist.js';
import type { VirtioActivation, VirtioDevice } from '../device.js';
import type { DescriptorChain } from '../queue.js';
import {
  VIRTIO_BLK_F_FLUSH,
  VIRTIO_BLK_F_RO,
  VIRTIO_BLK_F_SEG_MAX,
  VIRTIO_BLK_HEADER_SIZE,
  VIRTIO_BLK_ID_BYTES,
  VIRTIO_BLK_SECTOR_SIZE,
  VIRTIO_BLK_S_IOERR,
  VIRTIO_BLK_S_OK,
  VIRTIO_BLK_S_UNSUPP,
  VIRTIO_BLK_T_FLUSH,
  VIRTIO_BLK_T_GET_ID,
  VIRTIO_BLK_T_IN,
  VIRTIO_BLK_T_OUT,
  VIRTIO_ID_BLOCK,
  featureBit,
} from '../constants.js';

/** Where the disk's bytes live. Calls are synchronous and may throw; the device maps to IOERR. */
export interface BlockBackend {
  /** Size in bytes; the guest sees floor(size / 512) sectors. */
  readonly size: number;
  /** Fills all of `buf` from byte `offset`. */
  read(buf: Uint8Array, offset: number): void;
  /** Writes all of `buf` at byte `offset`. */
  write(buf: Uint8Array, offset: number): void;
  /** Makes completed writes durable. */
  flush(): void;
}

/** A disk image file accessed with pread/pwrite/fsync on one fd; read-only unless `writable`. */
export class FileBlockBackend implements BlockBackend {
  readonly size: number;
  readonly writable: boolean;
  private fd: number | undefined;

  constructor(
    readonly path: string,
    opts: { writable?: boolean } = {},
  ) {
    this.writable = opts.writable ?? false;
    try {
      this.fd = fs.openSync(path, this.writable ? 'r+' : 'r');
      this.size = fs.fstatSync(this.fd).size;
    } catch (e) {
      if (this.fd !== undefined) fs.closeSync(this.fd);
      throw new FaasnapError('INVALID_VM_CONFIG', `block image ${path}: ${(e as Error).message}`, {
        path,
      });
    }
  }

  read(buf: Uint8Array, offset: number): void {
    const fd = this.openFd();
    let done = 0;
    while (done < buf.length) {
      const n = fs.readSync(fd, buf, done, buf.length - done, offset + done);
      // EOF inside the advertised size: the file shrank under us.
      if (n === 0) throw new FaasnapError('DEVICE_IO', `short read at ${offset + done}`);
      done += n;
    }
  }

  write(buf: Uint8Array, offset: number): void {
    const fd = this.openFd();
    if (!this.writable) throw new FaasnapError('DEVICE_IO', `${this.path} is read-only`);
    let done = 0;
    while (done < buf.length) {
      done += fs.writeSync(fd, buf, done, buf.length - done, offset + done);
    }
  }

  flush(): void {
    fs.fsyncSync(this.openFd());
  }

  close(): void {
    if (this.fd === undefined) return;
    fs.closeSync(this.fd);
    this.fd = undefined;
  }

  private openFd(): number {
    if (this.fd === undefined) throw new FaasnapError('DEVICE_IO', `${this.path} is closed`);
    return this.fd;
  }
}

export interface VirtioBlockOptions {
  backend: BlockBackend;
  /** Offer VIRTIO_BLK_F_RO and fail writes with IOERR. */
  readOnly?: boolean;
  /** Answer to GET_ID: at most 20 bytes of ASCII. */
  serial?: string;
  /** Size of the one request queue (a power of two); default 256. */
  queueSize?: number;
}

export const VirtioBlockStateSchema = Type.Object(
  {
    capacitySectors: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }),
    readOnly: Type.Boolean(),
    serial: Type.String({ maxLength: VIRTIO_BLK_ID_BYTES }),
  },
  { additionalProperties: false },
);
export type VirtioBlockState = Static<typeof VirtioBlockStateSchema>;

// struct virtio_blk_config up to num_queues; fields we do not offer stay zero.
const CONFIG_SIZE = 36;
const CONFIG_CAPACITY = 0;
const CONFIG_SEG_MAX = 12;
const CONFIG_NUM_QUEUES = 34;
const SECTOR = BigInt(VIRTIO_BLK_SECTOR_SIZE);

export class VirtioBlock implements VirtioDevice, Persist<VirtioBlockState> {
  readonly deviceType = VIRTIO_ID_BLOCK;
  readonly queueMaxSizes: readonly number[];
  readonly availFeatures: bigint;
  readonly capacitySectors: number;
  readonly readOnly: boolean;
  readonly serial: string;
  /** Completed requests by status, for tests and metrics. */
  readonly stats = { ok: 0, ioerr: 0, unsupp: 0 };

  private readonly backend: BlockBackend;
  private readonly config = new Uint8Array(CONFIG_SIZE);
  private readonly serialBytes = new Uint8Array(VIRTIO_BLK_ID_BYTES);
  private active: VirtioActivation | undefined;
  // Without a negotiated FLUSH the driver assumes a write-through disk (§5.2.6.3).
  private writeThrough = true;

  constructor(opts: VirtioBlockOptions) {
    this.backend = opts.backend;
    this.readOnly = opts.readOnly ?? false;
    this.serial = opts.serial ?? '';
    const queueSize = opts.queueSize ?? 256;
    if (!/^[\x20-\x7e]*$/.test(this.serial) || this.serial.length > VIRTIO_BLK_ID_BYTES) {
      throw new FaasnapError('INVALID_VM_CONFIG', `block serial must be ≤ 20 ASCII characters`);
    }
    if (!Number.isSafeInteger(opts.backend.size) || opts.backend.size < 0) {
      throw new FaasnapError('INVALID_VM_CONFIG', `block backend size ${opts.backend.size}`);
    }
    this.serialBytes.set(Buffer.from(this.serial, 'ascii'));
    this.queueMaxSizes = [queueSize];
    this.capacitySectors = Math.floor(opts.backend.size / VIRTIO_BLK_SECTOR_SIZE);
    this.availFeatures =
      featureBit(VIRTIO_BLK_F_SEG_MAX) |
      featureBit(VIRTIO_BLK_F_FLUSH) |
      (this.readOnly ? featureBit(VIRTIO_BLK_F_RO) : 0n);
    const cfg = new DataView(this.config.buffer);
    cfg.setBigUint64(CONFIG_CAPACITY, BigInt(this.capacitySectors), true);
    // Header and status take one descriptor each; the rest of a chain may be data.
    cfg.setUint32(CONFIG_SEG_MAX, Math.max(1, queueSize - 2), true);
    cfg.setUint16(CONFIG_NUM_QUEUES, 1, true);
  }

  readConfig(offset: number, data: Uint8Array): void {
    data.fill(0);
    if (offset < 0 || offset >= CONFIG_SIZE) return;
    data.set(this.config.subarray(offset, Math.min(CONFIG_SIZE, offset + data.length)));
  }

  writeConfig(_offset: number, _data: Uint8Array): void {
    // Only `writeback` is writable, and only with VIRTIO_BLK_F_CONFIG_WCE, which is not offered.
  }

  activate(activation: VirtioActivation): void {
    this.active = activation;
    this.writeThrough = (activation.ackedFeatures & featureBit(VIRTIO_BLK_F_FLUSH)) === 0n;
  }

  processQueue(index: number): void {
    const a = this.active;
    const q = a?.queues[index];
    if (!a || !q || index !== 0) return;
    let used = 0;
    try {
      for (let chain = q.popAvail(a.memory); chain; chain = q.popAvail(a.memory)) {
        q.addUsed(a.memory, chain.head, this.handle(chain));
        used++;
      }
    } finally {
      // Signal what completed even when a later chain turned out malformed.
      if (used > 0) a.interrupt.trigger();
    }
  }

  reset(): void {
    this.active = undefined;
    this.writeThrough = true;
  }

  save(): VirtioBlockState {
    return { capacitySectors: this.capacitySectors, readOnly: this.readOnly, serial: this.serial };
  }

  /**
   * Rebuilds the device on `opts.backend` from untrusted state, before the transport
   * re-activates it. Throws STATE_INVALID when the state does not match this disk.
   */
  static restore(opts: VirtioBlockOptions, state: unknown): VirtioBlock {
    const s = validateState('virtio-blk', VirtioBlockStateSchema, state);
    const d = new VirtioBlock(opts);
    // The guest has cached capacity and mode: a different disk under it would corrupt data.
    if (s.capacitySectors !== d.capacitySectors) {
      throw new FaasnapError(
        'STATE_INVALID',
        `virtio-blk capacity ${s.capacitySectors} sectors, disk has ${d.capacitySectors}`,
      );
    }
    if (s.readOnly !== d.readOnly || s.serial !== d.serial) {
      throw new FaasnapError('STATE_INVALID', 'virtio-blk read-only flag or serial differ');
    }
    return d;
  }

  /** Executes one request; returns the number of bytes written into the chain. */
  private handle(chain: DescriptorChain): number {
    // The status byte is the last writable byte; without one there is no way to answer.
    if (chain.writableLength === 0) {
      this.stats.ioerr++;
      return 0;
    }
    const statusAt = chain.writableLength - 1;
    const header = new Uint8Array(VIRTIO_BLK_HEADER_SIZE);
    let status: number = VIRTIO_BLK_S_IOERR;
    let written = 0;
    if (chain.gather(header) === VIRTIO_BLK_HEADER_SIZE) {
      const h = new DataView(header.buffer);
      const type = h.getUint32(0, true);
      const sector = h.getBigUint64(8, true);
      try {
        switch (type) {
          case VIRTIO_BLK_T_IN:
            status = this.transfer(chain, sector, statusAt, 'in');
            if (status === VIRTIO_BLK_S_OK) written = statusAt;
            break;
          case VIRTIO_BLK_T_OUT: {
            const len = chain.readableLength - VIRTIO_BLK_HEADER_SIZE;
            status = this.readOnly ? VIRTIO_BLK_S_IOERR : this.transfer(chain, sector, len, 'out');
            break;
          }
          case VIRTIO_BLK_T_FLUSH:
            this.backend.flush();
            status = VIRTIO_BLK_S_OK;
            break;
          case VIRTIO_BLK_T_GET_ID:
            written = chain.scatter(
              this.serialBytes.subarray(0, Math.min(VIRTIO_BLK_ID_BYTES, statusAt)),
            );
            status = VIRTIO_BLK_S_OK;
            break;
          default:
            status = VIRTIO_BLK_S_UNSUPP;
        }
      } catch {
        // Backend failure (EIO, file shrank, ...): the guest sees an I/O error.
        status = VIRTIO_BLK_S_IOERR;
        written = 0;
      }
    }
    chain.scatter(Uint8Array.of(status), statusAt);
    if (status === VIRTIO_BLK_S_OK) this.stats.ok++;
    else if (status === VIRTIO_BLK_S_UNSUPP) this.stats.unsupp++;
    else this.stats.ioerr++;
    return written + 1;
  }

  /** Moves `len` data bytes between the chain and the disk at `sector`, zero-copy. */
  private transfer(chain: DescriptorChain, sector: bigint, len: number, dir: 'in' | 'out'): number {
    if (len % VIRTIO_BLK_SECTOR_SIZE !== 0) return VIRTIO_BLK_S_IOERR;
    // bigint: a guest sector number times 512 can exceed 2^53.
    if (sector * SECTOR + BigInt(len) > BigInt(this.capacitySectors) * SECTOR) {
      return VIRTIO_BLK_S_IOERR;
    }
    let pos = Number(sector * SECTOR);
    const slices =
      dir === 'in'
        ? chain.writableSlices(0, len)
        : chain.readableSlices(VIRTIO_BLK_HEADER_SIZE, len);
    for (const s of slices) {
      if (dir === 'in') this.backend.read(s, pos);
      else this.backend.write(s, pos);
      pos += s.length;
    }
    if (dir === 'out' && this.writeThrough) this.backend.flush();
    return VIRTIO_BLK_S_OK;
  }
}
