// The x86 "zero page" (struct boot_params, Documentation/x86/boot.rst and zero-page.rst) for the
// 64-bit boot protocol with an uncompressed vmlinux: no real-mode setup code ran, so the loader
// fills the setup-header fields the kernel reads itself. Plus the e820 memory map and the
// setup_data record that hands the guest a random seed. Pure: returns bytes.

import { FaasnapError } from '../../common/errors.js';

export const BOOT_PARAMS_SIZE = 4096;
/** COMMAND_LINE_SIZE of x86 Linux, including the terminating NUL. */
export const CMDLINE_MAX = 2048;
/** struct boot_params has room for this many e820 entries (E820_MAX_ENTRIES_ZEROPAGE). */
export const E820_MAX_ENTRIES = 128;

export const E820_RAM = 1;
export const E820_RESERVED = 2;

// Offsets into struct boot_params (checked against <asm/bootparam.h>).
const OFF = {
  extRamdiskImage: 0x0c0,
  extRamdiskSize: 0x0c4,
  extCmdLinePtr: 0x0c8,
  e820Entries: 0x1e8,
  rootFlags: 0x1f2,
  vidMode: 0x1fa,
  bootFlag: 0x1fe,
  header: 0x202,
  version: 0x206,
  typeOfLoader: 0x210,
  loadFlags: 0x211,
  ramdiskImage: 0x218,
  ramdiskSize: 0x21c,
  cmdLinePtr: 0x228,
  initrdAddrMax: 0x22c,
  kernelAlignment: 0x230,
  cmdlineSize: 0x238,
  setupData: 0x250,
  e820Table: 0x2d0,
} as const;
const E820_ENTRY_SIZE = 20;

const BOOT_FLAG = 0xaa55;
const HDRS_MAGIC = 0x53726448; // "HdrS"
/** Boot protocol 2.15 (Linux 5.5+): every field written here exists. */
const PROTOCOL_VERSION = 0x020f;
/** "Undefined" loader type: we are not one of the registered boot loaders. */
const LOADER_UNDEFINED = 0xff;
const LOADED_HIGH = 0x01;
const VID_MODE_NORMAL = 0xffff;
/** CONFIG_PHYSICAL_ALIGN of the default x86_64 config. */
const KERNEL_ALIGNMENT = 0x20_0000;

export const SETUP_RNG_SEED = 9;
const SETUP_DATA_HEADER = 16; // next u64, type u32, len u32

export interface E820Entry {
  addr: number;
  size: number;
  type: number;
}

export interface Range {
  addr: number;
  size: number;
}

export interface BootParamsOptions {
  /** Guest physical address of the NUL-terminated command line. */
  cmdlineAddr: number;
  e820: readonly E820Entry[];
  initrd?: Range;
  /** Guest physical address of the first setup_data record (0 = none). */
  setupData?: number;
  /** Mount the root file system read-only unless the command line says `rw` (default true). */
  rootReadOnly?: boolean;
}

function checkU32(v: number, what: string): number {
  if (!Number.isSafeInteger(v) || v < 0 || v > 0xffff_ffff) {
    throw new FaasnapError('INVALID_VM_CONFIG', `${what} 0x${v.toString(16)} must be below 4 GiB`);
  }
  return v;
}

export function buildBootParams(o: BootParamsOptions): Uint8Array {
  if (o.e820.length === 0 || o.e820.length > E820_MAX_ENTRIES) {
    throw new FaasnapError('INVALID_VM_CONFIG', `${o.e820.length} e820 entries`);
  }
  const b = new Uint8Array(BOOT_PARAMS_SIZE);
  const v = new DataView(b.buffer);
  v.setUint16(OFF.rootFlags, o.rootReadOnly === false ? 0 : 1, true);
  v.setUint16(OFF.vidMode, VID_MODE_NORMAL, true);
  v.setUint16(OFF.bootFlag, BOOT_FLAG, true);
  v.setUint32(OFF.header, HDRS_MAGIC, true);
  v.setUint16(OFF.version, PROTOCOL_VERSION, true);
  v.setUint8(OFF.typeOfLoader, LOADER_UNDEFINED);
  v.setUint8(OFF.loadFlags, LOADED_HIGH);
  v.setUint32(OFF.kernelAlignment, KERNEL_ALIGNMENT, true);
  // All our boot structures live below 4 GiB, so the ext_* high halves stay zero.
  v.setUint32(OFF.cmdLinePtr, checkU32(o.cmdlineAddr, 'command line address'), true);
  v.setUint32(OFF.cmdlineSize, CMDLINE_MAX - 1, true);
  v.setUint32(OFF.initrdAddrMax, 0x7fff_ffff, true);
  if (o.initrd && o.initrd.size > 0) {
    v.setUint32(OFF.ramdiskImage, checkU32(o.initrd.addr, 'initrd address'), true);
    v.setUint32(OFF.ramdiskSize, checkU32(o.initrd.size, 'initrd size'), true);
  }
  if (o.setupData) v.setBigUint64(OFF.setupData, BigInt(o.setupData), true);
  v.setUint8(OFF.e820Entries, o.e820.length);
  o.e820.forEach((e, i) => {
    const at = OFF.e820Table + i * E820_ENTRY_SIZE;
    v.setBigUint64(at, BigInt(e.addr), true);
    v.setBigUint64(at + 8, BigInt(e.size), true);
    v.setUint32(at + 16, e.type, true);
  });
  return b;
}

/** A setup_data record (type SETUP_RNG_SEED) carrying `seed`; `next` chains another record. */
export function rngSeedSetupData(seed: Uint8Array, next = 0): Uint8Array {
  const b = new Uint8Array(SETUP_DATA_HEADER + seed.length);
  const v = new DataView(b.buffer);
  v.setBigUint64(0, BigInt(next), true);
  v.setUint32(8, SETUP_RNG_SEED, true);
  v.setUint32(12, seed.length, true);
  b.set(seed, SETUP_DATA_HEADER);
  return b;
}

/**
 * The e820 map for `ram` (the VM's RAM regions): RAM minus `holes` (ranges that are not RAM to
 * the guest although backed, e.g. the legacy VGA/BIOS window), with `reserved` ranges carved
 * out as E820_RESERVED. Sorted, non-overlapping, adjacent RAM not merged (Linux merges).
 */
export function e820Map(
  ram: readonly Range[],
  holes: readonly Range[],
  reserved: readonly Range[],
): E820Entry[] {
  const cut = [...holes, ...reserved].sort((a, b) => a.addr - b.addr);
  const out: E820Entry[] = [];
  for (const r of [...ram].sort((a, b) => a.addr - b.addr)) {
    let at = r.addr;
    const end = r.addr + r.size;
    for (const c of cut) {
      const cEnd = c.addr + c.size;
      if (cEnd <= at || c.addr >= end) continue;
      if (c.addr > at) out.push({ addr: at, size: c.addr - at, type: E820_RAM });
      at = Math.max(at, Math.min(cEnd, end));
    }
    if (at < end) out.push({ addr: at, size: end - at, type: E820_RAM });
  }
  for (const r of reserved) out.push({ addr: r.addr, size: r.size, type: E820_RESERVED });
  return out.sort((a, b) => a.addr - b.addr);
}
