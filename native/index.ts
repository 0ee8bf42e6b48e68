// Typed entry point of the native addon (native/src). The addon is thin: one function per ioctl
// or syscall; every failure throws an Error carrying {op, errno, code}.

import { createRequire } from 'node:module';

export interface NativeError extends Error {
  op: string;
  errno: number;
  code: string;
}

type Fd = number;
type Addr = bigint;
type U64 = number | bigint;

export interface KvmIoctls {
  // system
  GetApiVersion(kvm: Fd): number;
  CreateVm(kvm: Fd, type: number): Fd;
  CheckExtension(fd: Fd, cap: number): number;
  GetVcpuMmapSize(kvm: Fd): number;
  GetSupportedCpuid(kvm: Fd, cpuid2: Buffer): number;
  GetMsrIndexList(kvm: Fd, list: Buffer): number;
  // vm
  SetTssAddr(vm: Fd, addr: U64): number;
  SetIdentityMapAddr(vm: Fd, addr: U64): void;
  CreateIrqchip(vm: Fd): number;
  CreatePit2(vm: Fd, flags: number): void;
  CreateVcpu(vm: Fd, id: number): Fd;
  SetUserMemoryRegion(
    vm: Fd,
    slot: number,
    flags: number,
    gpa: U64,
    size: U64,
    hostAddr: U64,
  ): void;
  Ioeventfd(vm: Fd, addr: U64, len: number, eventFd: Fd, flags: number, datamatch: U64): void;
  Irqfd(vm: Fd, eventFd: Fd, gsi: number, flags: number): void;
  IrqLine(vm: Fd, irq: number, level: number): void;
  GetIrqchip(vm: Fd, buf: Buffer): number;
  SetIrqchip(vm: Fd, buf: Buffer): number;
  GetPit2(vm: Fd, buf: Buffer): number;
  SetPit2(vm: Fd, buf: Buffer): number;
  GetClock(vm: Fd, buf: Buffer): number;
  SetClock(vm: Fd, buf: Buffer): number;
  // vcpu
  GetRegs(vcpu: Fd, buf: Buffer): number;
  SetRegs(vcpu: Fd, buf: Buffer): number;
  GetSregs(vcpu: Fd, buf: Buffer): number;
  SetSregs(vcpu: Fd, buf: Buffer): number;
  GetFpu(vcpu: Fd, buf: Buffer): number;
  SetFpu(vcpu: Fd, buf: Buffer): number;
  GetLapic(vcpu: Fd, buf: Buffer): number;
  SetLapic(vcpu: Fd, buf: Buffer): number;
  GetMpState(vcpu: Fd, buf: Buffer): number;
  SetMpState(vcpu: Fd, buf: Buffer): number;
  GetVcpuEvents(vcpu: Fd, buf: Buffer): number;
  SetVcpuEvents(vcpu: Fd, buf: Buffer): number;
  GetDebugRegs(vcpu: Fd, buf: Buffer): number;
  SetDebugRegs(vcpu: Fd, buf: Buffer): number;
  GetXsave(vcpu: Fd, buf: Buffer): number;
  SetXsave(vcpu: Fd, buf: Buffer): number;
  GetXcrs(vcpu: Fd, buf: Buffer): number;
  SetXcrs(vcpu: Fd, buf: Buffer): number;
  SetCpuid2(vcpu: Fd, buf: Buffer): number;
  /** Returns the number of MSRs read. */
  GetMsrs(vcpu: Fd, buf: Buffer): number;
  /** Returns the number of MSRs written. */
  SetMsrs(vcpu: Fd, buf: Buffer): number;
  GetTscKhz(vcpu: Fd): number;
  SetTscKhz(vcpu: Fd, khz: number): number;
  KvmclockCtrl(vcpu: Fd): number;
}

export interface StructLayout {
  size: number;
  fields: Record<string, number>;
}

export interface VcpuRunnerHandle {
  /** The vCPU's kvm_run mapping (exit information, port I/O data page). Detached on close. */
  runView(): ArrayBuffer;
  /**
   * Starts one KVM_RUN on the vCPU thread; the result arrives at the onExit callback.
   * With `immediateExit` the call only completes a pending I/O exit and returns -EINTR.
   */
  run(immediateExit?: boolean): void;
  /** Makes the current or next KVM_RUN return -EINTR. */
  kick(): void;
  /** Stops and joins the thread and unmaps kvm_run. Idempotent. */
  close(): void;
}

export interface FdWatcherHandle {
  close(): void;
}

/** Guest RAM served by a UffdServer: host mapping and where its bytes are in the memory file. */
export interface UffdRegion {
  hostAddr: U64;
  size: number;
  /** Byte offset of the region's first page in the memory file (4 KiB aligned). */
  fileOffset: number;
}

export interface UffdServerStats {
  /** Page-fault messages read from the userfaultfd. */
  faults: number;
  /** Faults resolved by the server's own UFFDIO_COPY. */
  faultsServed: number;
  /** Faults whose page was already installed (EEXIST: concurrent fault or installPages). */
  faultsExisting: number;
  /** Bytes the server read from the memory file. */
  bytesRead: number;
  /** Bytes the server installed with UFFDIO_COPY. */
  bytesCopied: number;
  /** Pages installPages() installed, and pages it found already present. */
  pagesInstalled: number;
  pagesInstallExisting: number;
  eagainRetries: number;
  /** Time the server spent serving faults (read + copy), and in each part, nanoseconds. */
  serveNs: number;
  readNs: number;
  copyNs: number;
  /** Distinct pages recorded (record mode). */
  recorded: number;
  /** Faults the server could not serve; each got a zero page so no thread stays blocked. */
  errors: number;
  lastError?: UffdServeError;
}

/** A fault the userfaultfd server could not serve (the operation that failed and where). */
export interface UffdServeError {
  op: string;
  errno: number;
  message: string;
  address: bigint;
  /** Where in the memory file the page was to be read from; -1 when no read was involved. */
  fileOffset: number;
}

export interface UffdServerHandle {
  /**
   * UFFDIO_COPY page `pageIndices[i]` (memory-file page index) from `data[i*4096..]`,
   * synchronously on the calling thread; consecutive pages go in one ioctl.
   */
  installPages(
    pageIndices: Uint32Array | Float64Array,
    data: ArrayBuffer | ArrayBufferView,
  ): { installed: number; existing: number };
  /** Faulting memory-file page indices, in fault order, each once (record mode). */
  recorded(): Uint32Array;
  stats(): UffdServerStats;
  /** Stops and joins the thread; does not close the uffd or the memory file. Idempotent. */
  close(): void;
}

export interface Native {
  kvm: KvmIoctls;
  kvmConstants: Record<string, number>;
  fdConstants: Record<string, number>;
  memConstants: Record<string, number>;
  kickSignal: number;
  open(path: string, flags: number, mode?: number): Fd;
  close(fd: Fd): void;
  eventfd(initval: number, flags: number): Fd;
  eventfdWrite(fd: Fd, value: U64): void;
  /** Returns 0n when a non-blocking eventfd is not signalled. */
  eventfdRead(fd: Fd): bigint;
  userfaultfd(flags: number): Fd;
  mmap(len: U64, prot: number, flags: number, fd: Fd, offset: U64, addr?: U64): Addr;
  munmap(addr: U64, len: U64): void;
  mprotect(addr: U64, len: U64, prot: number): void;
  madvise(addr: U64, len: U64, advice: number): void;
  mincore(addr: U64, len: U64, out: Buffer): void;
  posixFadvise(fd: Fd, offset: U64, len: U64, advice: number): void;
  memoryView(addr: U64, len: U64): ArrayBuffer;
  detachView(view: ArrayBuffer): void;
  layouts(): Record<string, StructLayout>;
  VcpuRunner: new (
    vcpuFd: Fd,
    mmapSize: number,
    onExit: (result: number) => void,
  ) => VcpuRunnerHandle;
  FdWatcher: new (fd: Fd, onReadable: () => void) => FdWatcherHandle;
  // userfaultfd (native/src/uffd.cc; the fault server in uffd_server.cc)
  uffdConstants: Record<string, number>;
  /** UFFDIO_API handshake; `features` and `ioctls` are bit masks. */
  uffdApi(uffd: Fd, features?: U64): { api: number; features: bigint; ioctls: bigint };
  /** Returns the mask of ioctls available on the range (bit n = _UFFDIO_* n). */
  uffdRegister(uffd: Fd, addr: U64, len: U64, mode: U64): bigint;
  uffdUnregister(uffd: Fd, addr: U64, len: U64): void;
  /** One UFFDIO_COPY; returns bytes copied. A failure after a partial copy carries `copied`. */
  uffdCopy(
    uffd: Fd,
    dst: U64,
    src: ArrayBuffer | ArrayBufferView,
    srcOffset: U64,
    len: U64,
    mode?: U64,
  ): number;
  uffdZeropage(uffd: Fd, addr: U64, len: U64, mode?: U64): number;
  uffdWake(uffd: Fd, addr: U64, len: U64): void;
  /**
   * pread into `target` until it is full or EOF; target address, length and offset must be
   * 4 KiB aligned (for O_DIRECT fds). Returns bytes read.
   */
  preadDirect(fd: Fd, target: ArrayBuffer | ArrayBufferView, fileOffset: U64): number;
  UffdServer: new (
    uffd: Fd,
    regions: UffdRegion[],
    memoryFileFd: Fd,
    /** onError: called once on the JS thread for the first fault that could not be served. */
    options?: { record?: boolean; onError?: (e: UffdServeError) => void },
  ) => UffdServerHandle;
  // seccomp (native/src/seccomp.cc; the list in process/seccomp.ts)
  /**
   * Installs an allowlist filter on every thread of this process, for good; socket(2) is allowed
   * for `socketDomains` only. Enforcing, a call outside it writes "seccomp <nr>\n" to `reportFd`
   * and ends the process with SECCOMP_EXIT_CODE; not enforcing, everything is allowed (a marker
   * for measuring the list).
   */
  InstallSeccompFilter(
    allowed: number[],
    socketDomains: number[],
    reportFd: Fd,
    enforce: boolean,
  ): void;
  SECCOMP_EXIT_CODE: number;
}

const require = createRequire(import.meta.url);
// Compiled to dist/native/index.js; the addon is built in native/build by node-gyp.
export const native = require('../../native/build/Release/faasnap_native.node') as Native;

export function isNativeError(e: unknown): e is NativeError {
  return e instanceof Error && typeof (e as Partial<NativeError>).errno === 'number';
}
