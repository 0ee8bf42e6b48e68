// Creates a VM ready to run one micro-guest with sensible default parameters: used by the CLI
// (`faasnap vm run`), the KVM test tier and the benchmarks, so all three run guests one way.

import { FaasnapError } from '../../common/errors.js';
import { bootFlatImage, readFlatImage } from '../../vmm/boot/flat.js';
import type { Kvm } from '../../vmm/kvm/system.js';
import { Vm, type VmConfig } from '../../vmm/vm.js';
import {
  MICRO_DATA_GPA,
  MICRO_PAGE_SIZE,
  TOUCH_FLAG_WRITE,
  encodeBenchParams,
  encodeBlkParams,
  encodeTouchParams,
  isMicroGuestName,
  microGuestPath,
} from './index.js';

export interface MicroLaunchOptions extends VmConfig {
  /** A micro-guest name (guest/micro/build/<name>.bin) or a path to a flat image. */
  guest: string;
  /** Parameter blob; defaults per guest (see defaultParams). */
  params?: Uint8Array;
  /** Raw disk image for a virtio-blk device (required by the virtio-blk guest). */
  disk?: string;
  /** Attach the disk writable (default read-only). */
  diskWritable?: boolean;
  /** An open /dev/kvm handle to reuse (VMM processes open it once). */
  kvm?: Kvm;
}

/** Pages of the data area that fit in `memMiB`. */
export function dataPages(memMiB: number): number {
  return Math.max(0, Math.floor((memMiB * 1024 * 1024 - MICRO_DATA_GPA) / MICRO_PAGE_SIZE));
}

/** Default parameters: touch writes every data page once, bench does 1000 port writes. */
export function defaultParams(guest: string, memMiB: number): Uint8Array {
  switch (guest) {
    case 'touch':
      return encodeTouchParams({
        flags: TOUCH_FLAG_WRITE,
        seed: 1,
        pages: Array.from({ length: dataPages(memMiB) }, (_, i) => i),
      });
    case 'bench':
      return encodeBenchParams({ op: 'pio', iterations: 1000, port: 0x80 });
    default:
      return new Uint8Array();
  }
}

/** The flat image of a micro-guest name (guest/micro/build/<name>.bin), or `guest` as a path. */
export function microImagePath(guest: string): string {
  return isMicroGuestName(guest)
    ? microGuestPath(guest as Parameters<typeof microGuestPath>[0])
    : guest;
}

/**
 * What a VMM process's `boot-micro` action needs besides the VM's size: the image path and the
 * parameter blob, the guest's defaults filled in (the VMM process knows no guest).
 */
export function microBootImage(
  guest: string,
  memMiB: number,
  params?: Uint8Array,
): { image: string; params: Uint8Array } {
  return { image: microImagePath(guest), params: params ?? defaultParams(guest, memMiB) };
}

/** Creates and boots (but does not start) a VM for a micro-guest. */
export function createMicroVm(opts: MicroLaunchOptions): Vm {
  const image = readFlatImage(microImagePath(opts.guest));
  if (opts.guest === 'virtio-blk' && !opts.disk) {
    throw new FaasnapError('INVALID_VM_CONFIG', 'the virtio-blk guest needs a disk image');
  }
  const vm = Vm.create(opts, opts.kvm);
  try {
    let params = opts.params;
    if (opts.disk) {
      const writable = opts.diskWritable ?? false;
      const { base, gsi } = vm.addDevice({
        kind: 'virtio-blk',
        path: opts.disk,
        writable,
        serial: 'micro-disk',
      });
      if (opts.guest === 'virtio-blk') {
        params ??= encodeBlkParams({ mmioBase: base, gsi, readSectors: 8, writeSector: 8 });
      }
    }
    bootFlatImage(vm, image, params ?? defaultParams(opts.guest, opts.memMiB));
    return vm;
  } catch (e) {
    vm.stop();
    throw e;
  }
}
