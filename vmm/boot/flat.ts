// Boots a flat 64-bit image (our micro-guests, guest/micro/ABI.md): long-mode tables, the image
// at 1 MiB, an optional parameter blob at 2 MiB, and every vCPU at the entry point with its own
// stack and the ABI's argument registers.

import { readFileSync } from 'node:fs';
import { FaasnapError } from '../../common/errors.js';
import { native } from '../../native/index.js';
import type { Vm } from '../vm.js';
import { entryRegs, longModeSregs, writeLongModeTables } from './long-mode.js';

export const IMAGE_ADDR = 0x10_0000;
export const IMAGE_MAX = 0x10_0000;
export const PARAMS_ADDR = 0x20_0000;
export const PARAMS_MAX = 0x20_0000;
export const DATA_ADDR = 0x40_0000;
const STACK_TOP = 0x9_0000;
const STACK_SIZE = 0x1_0000;

/** Reads a flat image from `path`; a missing or unreadable file is GUEST_IMAGE_INVALID. */
export function readFlatImage(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new FaasnapError('GUEST_IMAGE_INVALID', `${path}: ${(e as Error).message}`);
  }
}

export function bootFlatImage(
  vm: Vm,
  image: Uint8Array,
  params: Uint8Array = new Uint8Array(),
): void {
  if (image.length === 0 || image.length > IMAGE_MAX) {
    throw new FaasnapError(
      'GUEST_IMAGE_INVALID',
      `image is ${image.length} bytes, must be 1..${IMAGE_MAX}`,
    );
  }
  if (params.length > PARAMS_MAX) {
    throw new FaasnapError(
      'GUEST_IMAGE_INVALID',
      `parameters are ${params.length} bytes, max ${PARAMS_MAX}`,
    );
  }
  const mem = vm.memory;
  if (mem.size < DATA_ADDR) {
    throw new FaasnapError(
      'INVALID_VM_CONFIG',
      'a flat image needs at least 4 MiB of guest memory',
    );
  }
  vm.phases.measure('load-image', () => {
    writeLongModeTables(mem);
    mem.write(IMAGE_ADDR, image);
    if (params.length > 0) mem.write(PARAMS_ADDR, params);
  });
  vm.phases.measure('vcpu-regs', () => {
    for (const v of vm.vcpus) {
      v.setSregs(longModeSregs(v.getSregs()));
      v.setRegs(
        entryRegs(IMAGE_ADDR, {
          rdi: BigInt(v.index),
          rsi: BigInt(PARAMS_ADDR),
          rdx: BigInt(vm.vcpus.length),
          rcx: BigInt(params.length),
          rsp: BigInt(STACK_TOP - v.index * STACK_SIZE),
        }),
      );
      // Application processors would otherwise wait for INIT/SIPI; micro-guests start them all.
      if (v.index > 0) v.setMpState(native.kvmConstants.KVM_MP_STATE_RUNNABLE!);
    }
  });
}
