// Micro-guests (guest/micro/*.S, ABI.md): where their images are, how to encode their
// parameter blobs, and independent re-implementations of what they compute, so tests can
// check a run's output without trusting the guest. Pure: no I/O, no native code.

import { dirname, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

import { FaasnapError } from '../../common/errors.js';

export const MICRO_GUESTS = [
  'hello',
  'touch',
  'virtio-blk',
  'bench',
  'triple-fault',
  'hang',
] as const;
export type MicroGuestName = (typeof MICRO_GUESTS)[number];

export function isMicroGuestName(name: string): name is MicroGuestName {
  return (MICRO_GUESTS as readonly string[]).includes(name);
}

// Guest-physical layout from ABI.md.
export const MICRO_IMAGE_GPA = 0x100000;
export const MICRO_IMAGE_MAX_BYTES = 0x100000;
export const MICRO_PARAM_GPA = 0x200000;
export const MICRO_PARAM_MAX_BYTES = 0x200000;
export const MICRO_DATA_GPA = 0x400000;
export const MICRO_PAGE_SIZE = 4096;
export const MICRO_VIRTIO_MMIO_BASE = 0xd0000000;
export const MICRO_VIRTIO_MMIO_STRIDE = 0x1000;
export const MICRO_VIRTIO_GSI_BASE = 5;
/** hello: the u64 the other vCPUs `lock incq` (data area; relies on zeroed RAM at boot). */
export const MICRO_HELLO_COUNTER_GPA = 0x400000;

/** MMIO base and GSI of virtio-mmio device n (ABI.md "Devices"). */
export function microVirtioDevice(n: number): { mmioBase: number; gsi: number } {
  return {
    mmioBase: MICRO_VIRTIO_MMIO_BASE + n * MICRO_VIRTIO_MMIO_STRIDE,
    gsi: MICRO_VIRTIO_GSI_BASE + n,
  };
}

/** Repository root: this file runs as dist/guest/micro/index.js (or from source in guest/micro). */
export function microRepoRoot(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const compiled = here.endsWith(`${sep}dist${sep}guest${sep}micro`);
  return resolve(here, compiled ? '../../..' : '../..');
}

/** Absolute path of a built image, guest/micro/build/<name>.bin (built by `make -C guest/micro`). */
export function microGuestPath(name: MicroGuestName): string {
  if (!isMicroGuestName(name)) {
    throw new FaasnapError('GUEST_IMAGE_INVALID', `unknown micro-guest ${String(name)}`);
  }
  return resolve(microRepoRoot(), 'guest', 'micro', 'build', `${name}.bin`);
}

// ---------------------------------------------------------------------------------------
// 64-bit helpers. BigInt for the reference/scalar paths; the bulk paths (page patterns,
// checksums over MiBs) work on two uint32 halves, which is ~50x faster in V8.

const U64_MASK = (1n << 64n) - 1n;
const TWO_32 = 4294967296;

function u64(v: bigint | number, what: string): bigint {
  const b = typeof v === 'bigint' ? v : Number.isSafeInteger(v) ? BigInt(v) : -1n;
  if (b < 0n || b > U64_MASK) {
    throw new FaasnapError('INVALID_VM_CONFIG', `${what} must be a u64, got ${String(v)}`);
  }
  return b;
}

function encodeU64s(values: readonly bigint[]): Uint8Array {
  const out = new Uint8Array(values.length * 8);
  const view = new DataView(out.buffer);
  values.forEach((v, i) => view.setBigUint64(i * 8, v, true));
  if (out.length > MICRO_PARAM_MAX_BYTES) {
    throw new FaasnapError(
      'INVALID_VM_CONFIG',
      `parameter blob of ${out.length} bytes exceeds 2 MiB`,
    );
  }
  return out;
}

/** Low 64 bits of a*b for uint32 halves; returns [lo, hi] as uint32. */
function mul64(aLo: number, aHi: number, bLo: number, bHi: number): [number, number] {
  // aLo*bLo exactly: split aLo into 16-bit halves so each partial product is < 2^48.
  const p0 = (aLo & 0xffff) * bLo;
  const p1 = (aLo >>> 16) * bLo;
  const low = p0 + (p1 % 65536) * 65536; // < 2^49, exact
  const lo = low >>> 0;
  const carry = Math.floor(low / TWO_32);
  const hi = (Math.floor(p1 / 65536) + carry + Math.imul(aHi, bLo) + Math.imul(aLo, bHi)) >>> 0;
  return [lo, hi];
}

// ---------------------------------------------------------------------------------------
// hello

export const HELLO_ITERATIONS = 10_000_000;
export const HELLO_LCG_A = 6364136223846793005n;
export const HELLO_LCG_C = 1442695040888963407n;

type Mat3 = bigint[][];

function mat3Mul(p: Mat3, q: Mat3): Mat3 {
  return [0, 1, 2].map((i) =>
    [0, 1, 2].map((j) =>
      BigInt.asUintN(64, p[i]![0]! * q[0]![j]! + p[i]![1]! * q[1]![j]! + p[i]![2]! * q[2]![j]!),
    ),
  );
}

/**
 * hello's CPL3 result, mod 2^64: x_0 = s_0 = 0; x_i = A*x_{i-1} + C; s_i = s_{i-1} + x_i;
 * returns s_N. Computed by raising the affine step on (x, s, 1) to the N-th power, O(log N).
 */
export function helloSum(iterations: number = HELLO_ITERATIONS): bigint {
  const A = HELLO_LCG_A;
  const C = HELLO_LCG_C;
  let result: Mat3 = [
    [1n, 0n, 0n],
    [0n, 1n, 0n],
    [0n, 0n, 1n],
  ];
  let base: Mat3 = [
    [A, 0n, C],
    [A, 1n, C],
    [0n, 0n, 1n],
  ];
  for (let n = iterations; n > 0; n = Math.floor(n / 2)) {
    if (n % 2 === 1) result = mat3Mul(base, result);
    base = mat3Mul(base, base);
  }
  return result[1]![2]!; // s_N from (x_0, s_0, 1) = (0, 0, 1)
}

/** The same sum by direct iteration (reference for small N; slow for the real 10M). */
export function helloSumLoop(iterations: number): bigint {
  let x = 0n;
  let s = 0n;
  for (let i = 0; i < iterations; i++) {
    x = BigInt.asUintN(64, x * HELLO_LCG_A + HELLO_LCG_C);
    s = BigInt.asUintN(64, s + x);
  }
  return s;
}

// ---------------------------------------------------------------------------------------
// Word checksum (touch, virtio-blk): FNV-1a over little-endian 64-bit words.

export const FNV64_OFFSET = 0xcbf29ce484222325n;
export const FNV64_PRIME = 0x100000001b3n;

/** Incremental h = (h XOR word) * 0x100000001b3 (mod 2^64) over LE u64 words. */
export class WordChecksum {
  private lo: number;
  private hi: number;

  constructor(init: bigint = FNV64_OFFSET) {
    this.lo = Number(init & 0xffffffffn);
    this.hi = Number((init >> 32n) & 0xffffffffn);
  }

  /** Folds every word of `bytes` (length a multiple of 8). */
  update(bytes: Uint8Array): this {
    if (bytes.length % 8 !== 0) {
      throw new FaasnapError('INVALID_VM_CONFIG', 'checksum input must be whole 64-bit words');
    }
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    let lo = this.lo;
    let hi = this.hi;
    for (let off = 0; off < bytes.length; off += 8) {
      lo = (lo ^ view.getUint32(off, true)) >>> 0;
      hi = (hi ^ view.getUint32(off + 4, true)) >>> 0;
      // * (2^40 + 0x1b3): lo*0x1b3 < 2^41 is exact; 2^40 moves lo << 8 into the high half.
      const t = lo * 0x1b3;
      hi = (Math.imul(hi, 0x1b3) + Math.floor(t / TWO_32) + (lo << 8)) >>> 0;
      lo = t >>> 0;
    }
    this.lo = lo;
    this.hi = hi;
    return this;
  }

  digest(): bigint {
    return (BigInt(this.hi) << 32n) | BigInt(this.lo);
  }
}

/** Checksum of one buffer from the FNV offset basis. */
export function wordChecksum(bytes: Uint8Array): bigint {
  return new WordChecksum().update(bytes).digest();
}

/** BigInt reference of the same fold over given words (for tests). */
export function wordChecksumOfWords(words: readonly bigint[], init: bigint = FNV64_OFFSET): bigint {
  let h = init;
  for (const w of words) h = BigInt.asUintN(64, (h ^ w) * FNV64_PRIME);
  return h;
}

// ---------------------------------------------------------------------------------------
// touch

export const TOUCH_FLAG_WRITE = 1;
export const TOUCH_FLAG_PROGRESS = 2;
export const TOUCH_PATTERN_MULTIPLIER = 0x9e3779b97f4a7c15n;
export const TOUCH_WORDS_PER_PAGE = MICRO_PAGE_SIZE / 8;
/** touch prints a progress line before list entries 0, 256, 512, ... */
export const TOUCH_PROGRESS_EVERY = 256;

export interface TouchParams {
  /** TOUCH_FLAG_WRITE | TOUCH_FLAG_PROGRESS */
  flags: number;
  seed: bigint | number;
  /** Page indices in touch order; page p is at GPA 0x400000 + p*4096. */
  pages: readonly number[];
}

/** Blob: u64 flags, u64 seed, u64 count, count x u64 page index (little-endian). */
export function encodeTouchParams(params: TouchParams): Uint8Array {
  return encodeU64s([
    u64(params.flags, 'flags'),
    u64(params.seed, 'seed'),
    BigInt(params.pages.length),
    ...params.pages.map((p) => u64(p, 'page index')),
  ]);
}

export function touchPageGpa(page: number): number {
  return MICRO_DATA_GPA + page * MICRO_PAGE_SIZE;
}

/** Word w of page p: m = (seed XOR (p*512 + w)) * 0x9e3779b97f4a7c15; m XOR (m >> 32). */
export function touchPattern(seed: bigint | number, page: number, word: number): bigint {
  const g = BigInt(page) * BigInt(TOUCH_WORDS_PER_PAGE) + BigInt(word);
  const m = BigInt.asUintN(64, (BigInt(seed) ^ g) * TOUCH_PATTERN_MULTIPLIER);
  return m ^ (m >> 32n);
}

const K_LO = Number(TOUCH_PATTERN_MULTIPLIER & 0xffffffffn);
const K_HI = Number(TOUCH_PATTERN_MULTIPLIER >> 32n);

/** The 4096 bytes touch writes into page p (flag bit 0). */
export function touchPagePattern(seed: bigint | number, page: number): Uint8Array {
  const s = u64(seed, 'seed');
  const sLo = Number(s & 0xffffffffn);
  const sHi = Number(s >> 32n);
  const out = new Uint8Array(MICRO_PAGE_SIZE);
  const view = new DataView(out.buffer);
  const g0 = page * TOUCH_WORDS_PER_PAGE;
  for (let w = 0; w < TOUCH_WORDS_PER_PAGE; w++) {
    const g = g0 + w;
    const [mLo, mHi] = mul64((sLo ^ g) >>> 0, (sHi ^ Math.floor(g / TWO_32)) >>> 0, K_LO, K_HI);
    view.setUint32(w * 8, (mLo ^ mHi) >>> 0, true);
    view.setUint32(w * 8 + 4, mHi, true);
  }
  return out;
}

/** Page contents: guest RAM from GPA 0, or a function returning page p's 4096 bytes. */
export type TouchMemory = Uint8Array | ((page: number) => Uint8Array);

/** Fold the given pages, in list order, as touch does. */
export function touchChecksum(pages: readonly number[], memory: TouchMemory): bigint {
  const sum = new WordChecksum();
  for (const p of pages) {
    if (typeof memory === 'function') {
      sum.update(memory(p));
    } else {
      const gpa = touchPageGpa(p);
      if (gpa + MICRO_PAGE_SIZE > memory.length) {
        throw new FaasnapError('GUEST_MEMORY_ACCESS', `touch page ${p} outside the memory image`);
      }
      sum.update(memory.subarray(gpa, gpa + MICRO_PAGE_SIZE));
    }
  }
  return sum.digest();
}

/**
 * What touch prints as checksum: with TOUCH_FLAG_WRITE the pattern pages; otherwise the
 * pages' existing contents from `memory` (zero pages if omitted: fresh guest RAM).
 */
export function touchExpectedChecksum(params: TouchParams, memory?: TouchMemory): bigint {
  if (params.flags & TOUCH_FLAG_WRITE) {
    return touchChecksum(params.pages, (p) => touchPagePattern(params.seed, p));
  }
  const zero = new Uint8Array(MICRO_PAGE_SIZE);
  return touchChecksum(params.pages, memory ?? (() => zero));
}

// ---------------------------------------------------------------------------------------
// virtio-blk

export const BLK_MAX_READ_SECTORS = 8;
export const BLK_SECTOR_SIZE = 512;

export interface BlkParams {
  mmioBase: number | bigint;
  gsi: number;
  /** Sectors read from sector 0, 1..8. */
  readSectors: number;
  /** Sector the guest overwrites with blkWritePattern(). */
  writeSector: number | bigint;
}

/** Blob: u64 mmio base, u64 GSI, u64 sectors to read, u64 sector to write. */
export function encodeBlkParams(params: BlkParams): Uint8Array {
  const { readSectors, gsi } = params;
  if (!Number.isInteger(readSectors) || readSectors < 1 || readSectors > BLK_MAX_READ_SECTORS) {
    throw new FaasnapError('INVALID_VM_CONFIG', `readSectors must be 1..8, got ${readSectors}`);
  }
  if (!Number.isInteger(gsi) || gsi < 0 || gsi >= 24) {
    throw new FaasnapError('INVALID_VM_CONFIG', `gsi must be an IOAPIC pin 0..23, got ${gsi}`);
  }
  const base = u64(params.mmioBase, 'mmioBase');
  if (base >= 1n << 32n || base % 4096n !== 0n) {
    throw new FaasnapError('INVALID_VM_CONFIG', 'mmioBase must be page-aligned below 4 GiB');
  }
  return encodeU64s([
    base,
    BigInt(gsi),
    BigInt(readSectors),
    u64(params.writeSector, 'writeSector'),
  ]);
}

/** The sector the guest writes: byte i = i & 0xff. */
export function blkWritePattern(): Uint8Array {
  return Uint8Array.from({ length: BLK_SECTOR_SIZE }, (_, i) => i & 0xff);
}

/** Checksum the guest prints for a read of the first `sectors` sectors of `disk`. */
export function blkReadChecksum(disk: Uint8Array, sectors: number): bigint {
  return wordChecksum(disk.subarray(0, sectors * BLK_SECTOR_SIZE));
}

// ---------------------------------------------------------------------------------------
// bench

export const BENCH_OPS = { pio: 1, irq: 2 } as const;
export type BenchOp = keyof typeof BENCH_OPS;

export interface BenchParams {
  op: BenchOp;
  iterations: number | bigint;
  port: number;
  /** irq only: the GSI the host signals (via its irqfd) in answer to each write to `port`. */
  gsi?: number;
}

/** Blob: u64 op (1 pio, 2 irq), u64 iterations, u64 port, u64 GSI. */
export function encodeBenchParams(params: BenchParams): Uint8Array {
  const op = BENCH_OPS[params.op];
  if (op === undefined) {
    throw new FaasnapError('INVALID_VM_CONFIG', `unknown bench op ${String(params.op)}`);
  }
  if (!Number.isInteger(params.port) || params.port < 0 || params.port > 0xffff) {
    throw new FaasnapError('INVALID_VM_CONFIG', `port must be 0..0xffff, got ${params.port}`);
  }
  const gsi = params.gsi ?? 0;
  if (
    params.op === 'irq' &&
    (params.gsi === undefined || !Number.isInteger(gsi) || gsi < 0 || gsi >= 24)
  ) {
    throw new FaasnapError('INVALID_VM_CONFIG', 'bench irq needs a gsi 0..23');
  }
  return encodeU64s([
    BigInt(op),
    u64(params.iterations, 'iterations'),
    BigInt(params.port),
    u64(gsi, 'gsi'),
  ]);
}

// ---------------------------------------------------------------------------------------
// Output parsers. Each takes the whole UART text; fields are undefined when their line is
// missing, so `assert.equal(parsed.checksum, expected)` fails with both values shown.

export const TRIPLE_FAULT_LINE = 'about to fault';
export const HANG_LINE = 'hanging';
export const HELLO_CPL0_LINE = 'hello from CPL0';

export interface GuestException {
  vector: number;
  rip?: bigint;
  errorCode?: bigint;
  cr2?: bigint;
}

export interface ParsedCommon {
  /** Set when an exception handler reported (virtio-blk, bench irq). */
  exception?: GuestException;
  /** The reason of an "<x> error <reason>" line. */
  error?: string;
}

function lines(text: string): string[] {
  return text.split(/\r?\n/);
}

function hex(s: string): bigint {
  return BigInt(`0x${s}`);
}

function match(text: string, re: RegExp): RegExpMatchArray | undefined {
  for (const line of lines(text)) {
    const m = re.exec(line);
    if (m) return m;
  }
  return undefined;
}

function parseCommon(text: string, prefix: string): ParsedCommon {
  const out: ParsedCommon = {};
  const e = match(text, /^exception (\d+)$/);
  if (e) {
    out.exception = { vector: Number(e[1]) };
    const f = match(text, /^fault rip=([0-9a-f]{16}) error=([0-9a-f]{16}) cr2=([0-9a-f]{16})$/i);
    if (f) {
      out.exception.rip = hex(f[1]!);
      out.exception.errorCode = hex(f[2]!);
      out.exception.cr2 = hex(f[3]!);
    }
  }
  const err = match(text, new RegExp(`^${prefix} error (\\S+)$`));
  if (err) out.error = err[1]!;
  return out;
}

export interface HelloOutput {
  cpl0: boolean;
  sum?: bigint;
  /** vCPUs checked in, vCPU 0 included, or 'timeout'. */
  vcpus?: number | 'timeout';
}

export function parseHelloOutput(text: string): HelloOutput {
  const out: HelloOutput = { cpl0: lines(text).includes(HELLO_CPL0_LINE) };
  const sum = match(text, /^hello from CPL3 sum=([0-9a-f]{16})$/i);
  if (sum) out.sum = hex(sum[1]!);
  const v = match(text, /^vcpus=(\d+|timeout)$/);
  if (v) out.vcpus = v[1] === 'timeout' ? 'timeout' : Number(v[1]);
  return out;
}

export interface TouchOutput extends ParsedCommon {
  /** Values of the progress lines (list positions 0, 256, ...), in order. */
  progress: number[];
  cycles?: bigint;
  pages?: number;
  checksum?: bigint;
}

export function parseTouchOutput(text: string): TouchOutput {
  const out: TouchOutput = { ...parseCommon(text, 'touch'), progress: [] };
  for (const line of lines(text)) {
    const p = /^progress ([0-9a-f]{16})$/i.exec(line);
    if (p) out.progress.push(Number(hex(p[1]!)));
  }
  const c = match(text, /^cycles=([0-9a-f]{16})$/i);
  if (c) out.cycles = hex(c[1]!);
  const t = match(text, /^touch pages=([0-9a-f]{16}) checksum=([0-9a-f]{16})$/i);
  if (t) {
    out.pages = Number(hex(t[1]!));
    out.checksum = hex(t[2]!);
  }
  return out;
}

export interface BlkOutput extends ParsedCommon {
  read?: { sectors: number; status: number; checksum: bigint };
  writeStatus?: number;
  flushStatus?: number;
}

export function parseBlkOutput(text: string): BlkOutput {
  const out: BlkOutput = parseCommon(text, 'blk');
  const r = match(
    text,
    /^blk read sectors=([0-9a-f]{16}) status=([0-9a-f]{2}) checksum=([0-9a-f]{16})$/i,
  );
  if (r)
    out.read = { sectors: Number(hex(r[1]!)), status: Number(hex(r[2]!)), checksum: hex(r[3]!) };
  const w = match(text, /^blk write status=([0-9a-f]{2})$/i);
  if (w) out.writeStatus = Number(hex(w[1]!));
  const f = match(text, /^blk flush status=([0-9a-f]{2})$/i);
  if (f) out.flushStatus = Number(hex(f[1]!));
  return out;
}

export interface BenchOutput extends ParsedCommon {
  /** Which op reported completion. */
  done?: BenchOp;
  /** irq: interrupts the guest counted (>= iterations). */
  count?: bigint;
}

export function parseBenchOutput(text: string): BenchOutput {
  const out: BenchOutput = parseCommon(text, 'bench');
  if (lines(text).includes('bench pio done')) out.done = 'pio';
  const irq = match(text, /^bench irq done count=([0-9a-f]{16})$/i);
  if (irq) {
    out.done = 'irq';
    out.count = hex(irq[1]!);
  }
  return out;
}
