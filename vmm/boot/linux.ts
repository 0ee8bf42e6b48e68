// Boots an uncompressed x86_64 Linux `vmlinux` with the 64-bit boot protocol
// (Documentation/x86/boot.rst): PT_LOAD segments at their physical addresses, long-mode page
// tables and GDT, the zero page with the e820 map and command line, an optional uncompressed
// initramfs, an MP table for the CPUs and interrupt routing, and the bootstrap processor at the
// ELF entry with RSI pointing at the zero page. Application processors stay in KVM's initial
// UNINITIALIZED state: the guest starts them with INIT/SIPI, as on a PC.
//
// Guest-physical layout below 1 MiB (Linux keeps the first MiB reserved):
//   0x0500 GDT · 0x6000 setup_data (RNG seed) · 0x7000 zero page · 0x8ff0 boot stack top ·
//   0x9000.. page tables · 0x20000 command line · 0x9fc00 MP table
// The kernel sits at its link address (16 MiB for the default config); the initramfs at the top
// of RAM below the 32-bit MMIO hole.

import { randomBytes } from 'node:crypto';
import { FaasnapError } from '../../common/errors.js';
import { templateKernelParams, type CpuTemplateName } from '../cpu/template.js';
import type { GuestMemory } from '../guest-memory.js';
import { PAGE_SIZE } from '../../common/page.js';
import { MMIO_HOLE_START } from '../guest-ram.js';
import { VIRTIO_MMIO_SIZE, type Vm } from '../vm.js';
import {
  CMDLINE_MAX,
  buildBootParams,
  e820Map,
  rngSeedSetupData,
  type E820Entry,
  type Range,
} from './bootparams.js';
import { loadElf, parseElf, type ElfImage } from './elf.js';
import { entryRegs, longModeSregs, writeLongModeTables } from './long-mode.js';
import { ISA_IRQS, MPTABLE_ADDR, MPTABLE_MAX, buildMpTable } from './mptable.js';

export const SETUP_DATA_ADDR = 0x6000;
export const ZERO_PAGE_ADDR = 0x7000;
const BOOT_STACK_TOP = 0x8ff0;
export const CMDLINE_ADDR = 0x2_0000;
/** The legacy VGA window and BIOS area: backed by our RAM slot but not RAM to a PC guest. */
const LEGACY_HOLE: Range = { addr: 0xa_0000, size: 0x6_0000 };
/** Bytes of host randomness handed to the guest RNG (it credits them at boot). */
const RNG_SEED_BYTES = 32;

export interface LinuxBootOptions {
  /** The vmlinux file contents. */
  kernel: Uint8Array;
  /** An uncompressed cpio archive (decompressing in the guest is pathological under PVM). */
  initrd?: Uint8Array;
  /** The complete kernel command line (see linuxCmdline). */
  cmdline: string;
  /** Root file system read-only unless the command line says `rw` (default true). */
  rootReadOnly?: boolean;
  /** Seed for the guest's RNG (SETUP_RNG_SEED); default fresh host randomness, null = none. */
  rngSeed?: Uint8Array | null;
}

export interface LinuxBootInfo {
  entry: number;
  kernelEnd: number;
  initrd?: Range;
  e820: E820Entry[];
}

export interface CmdlineOptions {
  template: CpuTemplateName;
  /** The VM's virtio devices (Vm.virtioSlots()). */
  virtio: readonly { base: number; gsi: number }[];
  /** Caller parameters, appended last so they win over earlier ones. */
  extra?: readonly string[];
}

/** console=ttyS0, the CPU template's parameters, one virtio_mmio.device= per device, extras. */
export function linuxCmdline(o: CmdlineOptions): string {
  const size = `${VIRTIO_MMIO_SIZE / 1024}K`;
  const devices = o.virtio.map((d) => {
    // The MP table routes ISA IRQs only; Linux could not request a higher GSI here.
    if (d.gsi >= ISA_IRQS) {
      throw new FaasnapError(
        'INVALID_VM_CONFIG',
        `virtio device at GSI ${d.gsi}: a Linux guest supports GSIs below ${ISA_IRQS}`,
      );
    }
    return `virtio_mmio.device=${size}@0x${d.base.toString(16)}:${d.gsi}`;
  });
  return ['console=ttyS0', ...templateKernelParams(o.template), ...devices, ...(o.extra ?? [])]
    .filter((p) => p.length > 0)
    .join(' ');
}

/** RAM below the MMIO hole: where boot structures and the initramfs may go. */
function lowRamEnd(mem: GuestMemory): number {
  const first = mem.regions[0];
  if (!first || first.gpa !== 0) throw new FaasnapError('INVALID_VM_CONFIG', 'no RAM at 0');
  return Math.min(first.gpa + first.bytes.length, MMIO_HOLE_START);
}

/** The initramfs goes at the top of low RAM, page-aligned, above the kernel. */
export function placeInitrd(size: number, kernelEnd: number, lowEnd: number): Range {
  const addr = Math.floor((lowEnd - size) / PAGE_SIZE) * PAGE_SIZE;
  const kernelTop = Math.ceil(kernelEnd / PAGE_SIZE) * PAGE_SIZE;
  if (addr < kernelTop) {
    throw new FaasnapError(
      'INVALID_VM_CONFIG',
      `initramfs of ${size} bytes does not fit between the kernel and the end of RAM ` +
        `(more memory needed)`,
    );
  }
  return { addr, size };
}

/** Loads everything and sets the bootstrap processor's registers. The VM must not have run. */
export function bootLinux(vm: Vm, o: LinuxBootOptions): LinuxBootInfo {
  const cmd = Buffer.from(o.cmdline, 'utf8');
  if (cmd.length >= CMDLINE_MAX || cmd.includes(0)) {
    throw new FaasnapError(
      'INVALID_VM_CONFIG',
      `kernel command line is ${cmd.length} bytes (max ${CMDLINE_MAX - 1}, no NUL)`,
    );
  }
  const mem = vm.memory;
  const image: ElfImage = parseElf(o.kernel);
  const lowEnd = lowRamEnd(mem);
  const initrd = o.initrd?.length ? placeInitrd(o.initrd.length, image.end, lowEnd) : undefined;
  const e820 = e820Map(
    mem.regions.map((r) => ({ addr: r.gpa, size: r.bytes.length })),
    [LEGACY_HOLE],
    [{ addr: MPTABLE_ADDR, size: MPTABLE_MAX }],
  );
  const seed = o.rngSeed === undefined ? randomBytes(RNG_SEED_BYTES) : o.rngSeed;

  vm.phases.measure('load-kernel', () => {
    loadElf(mem, o.kernel, image);
    if (initrd && o.initrd) mem.write(initrd.addr, o.initrd);
  });
  vm.phases.measure('boot-tables', () => {
    writeLongModeTables(mem);
    mem.write(MPTABLE_ADDR, buildMpTable({ vcpus: vm.vcpus.length }));
    mem.write(CMDLINE_ADDR, Buffer.concat([cmd, Buffer.of(0)]));
    if (seed) mem.write(SETUP_DATA_ADDR, rngSeedSetupData(seed));
    mem.write(
      ZERO_PAGE_ADDR,
      buildBootParams({
        cmdlineAddr: CMDLINE_ADDR,
        e820,
        initrd,
        setupData: seed ? SETUP_DATA_ADDR : 0,
        rootReadOnly: o.rootReadOnly,
      }),
    );
  });
  vm.phases.measure('vcpu-regs', () => {
    const bsp = vm.vcpus[0];
    if (!bsp) throw new FaasnapError('INVALID_VM_CONFIG', 'VM has no vCPUs');
    bsp.setSregs(longModeSregs(bsp.getSregs()));
    bsp.setRegs(
      entryRegs(image.entry, { rsi: BigInt(ZERO_PAGE_ADDR), rsp: BigInt(BOOT_STACK_TOP) }),
    );
  });
  return { entry: image.entry, kernelEnd: image.end, initrd, e820 };
}
