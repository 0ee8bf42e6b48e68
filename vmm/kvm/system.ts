// The /dev/kvm system handle: API version and capability checks, and the host-wide queries a
// VM needs (supported CPUID, MSR list, vCPU mmap size). Opened once per process and shared.

import { existsSync } from 'node:fs';
import { FaasnapError } from '../../common/errors.js';
import { native, isNativeError } from '../../native/index.js';
import type { CpuidEntry } from '../cpu/cpuid.js';
import { LAYOUTS, allocCpuid2, decodeCpuid2 } from './structs.js';

const K = native.kvmConstants;

/** Capabilities every VM of ours needs; checked once at open so failures are early and clear. */
const REQUIRED_CAPS = [
  'KVM_CAP_IRQCHIP',
  'KVM_CAP_IRQFD',
  'KVM_CAP_IOEVENTFD',
  'KVM_CAP_PIT2',
  'KVM_CAP_USER_MEMORY',
  'KVM_CAP_SET_TSS_ADDR',
  'KVM_CAP_EXT_CPUID',
  'KVM_CAP_MP_STATE',
  'KVM_CAP_IMMEDIATE_EXIT',
] as const;

export class Kvm {
  readonly fd: number;
  readonly vcpuMmapSize: number;
  private supportedCpuid: CpuidEntry[] | undefined;
  private msrIndexList: Set<number> | undefined;

  private constructor(fd: number) {
    this.fd = fd;
    try {
      const version = native.kvm.GetApiVersion(fd);
      if (version !== K.KVM_API_VERSION) {
        throw new FaasnapError('KVM_API_VERSION', `got ${version}, need ${K.KVM_API_VERSION}`);
      }
      for (const cap of REQUIRED_CAPS) {
        if (native.kvm.CheckExtension(fd, K[cap]!) <= 0) {
          throw new FaasnapError('KVM_CAPABILITY_MISSING', cap, { cap });
        }
      }
      this.vcpuMmapSize = native.kvm.GetVcpuMmapSize(fd);
    } catch (e) {
      native.close(fd);
      throw e;
    }
  }

  static open(path = '/dev/kvm'): Kvm {
    try {
      return new Kvm(native.open(path, native.fdConstants.O_RDWR!));
    } catch (e) {
      if (isNativeError(e)) throw new FaasnapError('KVM_UNAVAILABLE', `${path}: ${e.message}`);
      throw e;
    }
  }

  /** /dev/kvm opened by someone else: a jailed VMM process inherits it (process/jail.ts). */
  static fromFd(fd: number): Kvm {
    return new Kvm(fd);
  }

  static available(path = '/dev/kvm'): boolean {
    return existsSync(path);
  }

  hasCap(name: string): boolean {
    const cap = K[name];
    return cap !== undefined && native.kvm.CheckExtension(this.fd, cap) > 0;
  }

  getSupportedCpuid(): CpuidEntry[] {
    if (!this.supportedCpuid) {
      let capacity = 64;
      for (;;) {
        const buf = allocCpuid2(capacity);
        try {
          native.kvm.GetSupportedCpuid(this.fd, buf);
          this.supportedCpuid = decodeCpuid2(buf);
          break;
        } catch (e) {
          // E2BIG: the host has more leaves than we made room for.
          if (isNativeError(e) && e.code === 'E2BIG' && capacity < 4096) capacity *= 2;
          else throw e;
        }
      }
    }
    return this.supportedCpuid.map((e) => ({ ...e }));
  }

  /** MSRs KVM can save and restore for a vCPU (KVM_GET_MSR_INDEX_LIST). */
  getMsrIndexList(): Set<number> {
    if (!this.msrIndexList) {
      let capacity = 256;
      for (;;) {
        const buf = Buffer.alloc(LAYOUTS.kvm_msr_list.size + capacity * 4);
        buf.writeUInt32LE(capacity, LAYOUTS.kvm_msr_list.fields.nmsrs);
        try {
          native.kvm.GetMsrIndexList(this.fd, buf);
        } catch (e) {
          if (isNativeError(e) && e.code === 'E2BIG' && capacity < 65536) {
            capacity *= 4;
            continue;
          }
          throw e;
        }
        const n = buf.readUInt32LE(0);
        this.msrIndexList = new Set(
          Array.from({ length: n }, (_, i) =>
            buf.readUInt32LE(LAYOUTS.kvm_msr_list.fields.indices + i * 4),
          ),
        );
        break;
      }
    }
    return this.msrIndexList;
  }

  close(): void {
    native.close(this.fd);
  }
}
