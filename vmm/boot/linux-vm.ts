// Creates a VM ready to boot a Linux guest: memory and vCPUs, an optional root disk on
// virtio-blk, the kernel and initramfs loaded and the command line composed. Used by the CLI
// (`faasnap vm boot`) and the tier-3 tests, so both boot Linux one way. The VM is returned
// created but not started; run it with runLinuxVm (vmm/boot/linux-run.ts).

import { readFileSync } from 'node:fs';
import { FaasnapError } from '../../common/errors.js';
import type { Kvm } from '../kvm/system.js';
import { Vm, type VmConfig } from '../vm.js';
import { bootLinux, linuxCmdline, type LinuxBootInfo } from './linux.js';

/**
 * Sanitised guest pages: the kernel zeroes every page it frees (init_on_free), so free memory in
 * a snapshot is zero and the loaders skip it (docs/architecture.md, "Non-zero regions"). Guest
 * RAM is a fresh anonymous mapping at boot, so the kernel is told it starts zeroed and does not
 * clear it again (faasnap_ram_zeroed, guest/kernel/patches/0005): that took ~65 s per 256 MiB
 * on PVM.
 */
export const SANITISED_PAGES_PARAMS: readonly string[] = ['init_on_free=1', 'faasnap_ram_zeroed=1'];

/** Appended after the defaults to boot without sanitised pages (the kernel takes the last). */
export const UNSANITISED_PAGES_PARAMS: readonly string[] = ['init_on_free=0'];

/**
 * Parameters every faasnap Linux guest gets before the caller's (which may override them):
 *  - reboot=k: a reset through the i8042 is how a guest without ACPI stops the VM;
 *  - panic=-1: a panicked kernel resets at once instead of spinning (emulated) forever;
 *  - quiet: only errors reach the console (each byte is a port-I/O exit; no boot-time
 *    difference was measurable, but the log stays readable);
 *  - tsc=reliable: the TSC (frequency from CPUID) stays the clocksource: no watchdog may demote
 *    it when a snapshot restore makes time jump (boot time unchanged, measured);
 *  - rcupdate.rcu_cpu_stall_suppress=1: the same jump looks like a stalled RCU grace period; the
 *    stall report then prints over the emulated UART and sends NMIs for CPU backtraces (on PVM
 *    one of those NMIs crashed restored guests: see nofsgsbase in vmm/cpu/template.ts);
 *  - SANITISED_PAGES_PARAMS.
 */
export const DEFAULT_LINUX_PARAMS: readonly string[] = [
  'reboot=k',
  'panic=-1',
  'quiet',
  'tsc=reliable',
  'rcupdate.rcu_cpu_stall_suppress=1',
  ...SANITISED_PAGES_PARAMS,
];

/** The agent channel's port name: the agent finds its device under /sys/class/virtio-ports. */
export const AGENT_PORT_NAME = 'faasnap.agent';

export interface LinuxVmOptions extends VmConfig {
  /** Path of an uncompressed vmlinux (guest/kernel/build.sh). */
  kernel: string;
  /** Path of an uncompressed cpio initramfs. */
  initrd?: string;
  /** Raw ext4 image attached as the first virtio-blk device (/dev/vda). */
  rootDisk?: string;
  rootDiskWritable?: boolean;
  /**
   * Where the VMM listens for the host end of the agent channel: the second virtio device, a
   * virtio-console whose one port the guest sees as /dev/vportNp0 named AGENT_PORT_NAME. No
   * channel when absent.
   */
  agentSocket?: string;
  /** Extra kernel parameters, appended after the defaults. */
  cmdline?: string | readonly string[];
  /** Replace DEFAULT_LINUX_PARAMS (e.g. [] for a verbose boot). */
  defaultParams?: readonly string[];
  /** An open /dev/kvm (a pooled VMM process has one); opened when absent. */
  kvm?: Kvm;
}

export interface LinuxVm {
  vm: Vm;
  cmdline: string;
  boot: LinuxBootInfo;
}

function readImage(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new FaasnapError('GUEST_IMAGE_INVALID', `${what} ${path}: ${(e as Error).message}`);
  }
}

function splitParams(p: string | readonly string[] | undefined): string[] {
  if (p === undefined) return [];
  return (typeof p === 'string' ? p.split(/\s+/) : [...p]).filter((s) => s.length > 0);
}

/** Creates and loads (but does not start) a Linux VM. */
export function createLinuxVm(opts: LinuxVmOptions): LinuxVm {
  const kernel = readImage(opts.kernel, 'kernel');
  const initrd = opts.initrd ? readImage(opts.initrd, 'initramfs') : undefined;
  const vm = Vm.create(opts, opts.kvm);
  try {
    const writable = opts.rootDiskWritable ?? false;
    const rootParams: string[] = [];
    if (opts.rootDisk) {
      // Through the device factory (as the console below), so snapshots carry the device.
      vm.addDevice({ kind: 'virtio-blk', path: opts.rootDisk, writable, serial: 'rootfs' });
      // /dev/vda: the root disk is always the first virtio device we attach.
      rootParams.push('root=/dev/vda', 'rootfstype=ext4', writable ? 'rw' : 'ro');
    }
    if (opts.agentSocket)
      vm.addDevice({ kind: 'virtio-console', socket: opts.agentSocket, portName: AGENT_PORT_NAME });
    const cmdline = linuxCmdline({
      template: vm.config.cpuTemplate,
      virtio: vm.virtioSlots(),
      extra: [
        ...(opts.defaultParams ?? DEFAULT_LINUX_PARAMS),
        ...rootParams,
        ...splitParams(opts.cmdline),
      ],
    });
    const boot = bootLinux(vm, { kernel, initrd, cmdline, rootReadOnly: !writable });
    return { vm, cmdline, boot };
  } catch (e) {
    vm.stop();
    throw e;
  }
}
