// One vCPU: its KVM fd, the native runner thread, register set-up, and the exit dispatcher.
//
// Every KVM_RUN result comes back here on the JS thread. Port I/O and MMIO exits go to the I/O
// buses and the vCPU re-enters the guest at once; anything else ends this vCPU's run and is
// reported to the VM as an outcome. Pausing is cooperative with the runner: kick() forces the
// current KVM_RUN to return, and a vCPU with a pause request parks instead of re-entering.

import { FaasnapError } from '../common/errors.js';
import { isNativeError, native } from '../native/index.js';
import type { Bus } from './bus.js';
import type { CpuidEntry } from './cpu/cpuid.js';
import {
  KVM_RUN,
  LAYOUTS,
  decodeMsrs,
  decodeRegs,
  decodeSregs,
  encodeCpuid2,
  encodeMpState,
  encodeMsrs,
  encodeRegs,
  encodeSregs,
  type MsrEntry,
  type Regs,
  type Sregs,
} from './kvm/structs.js';

const K = native.kvmConstants;

/** Opaque per-vCPU KVM state structs, saved and restored as they are. */
const BLOBS = {
  fpu: { struct: 'kvm_fpu', get: 'GetFpu', set: 'SetFpu' },
  xsave: { struct: 'kvm_xsave', get: 'GetXsave', set: 'SetXsave' },
  xcrs: { struct: 'kvm_xcrs', get: 'GetXcrs', set: 'SetXcrs' },
  lapic: { struct: 'kvm_lapic_state', get: 'GetLapic', set: 'SetLapic' },
  mpState: { struct: 'kvm_mp_state', get: 'GetMpState', set: 'SetMpState' },
  events: { struct: 'kvm_vcpu_events', get: 'GetVcpuEvents', set: 'SetVcpuEvents' },
  debugRegs: { struct: 'kvm_debugregs', get: 'GetDebugRegs', set: 'SetDebugRegs' },
} as const;
export type VcpuBlob = keyof typeof BLOBS;
const EINTR = 4;
const EAGAIN = 11;
const EFAULT = 14;

/** Why a vCPU stopped running for good. */
export type VcpuOutcome =
  | { kind: 'system-event'; event: 'shutdown' | 'reset' | 'crash' }
  | { kind: 'error'; error: FaasnapError };

export interface VcpuHost {
  pio: Bus;
  mmio: Bus;
  /** Called once when the vCPU can no longer run (guest event or fatal exit). */
  onOutcome(vcpu: Vcpu, outcome: VcpuOutcome): void;
  /** Called when the vCPU parked after a pause request. */
  onParked(vcpu: Vcpu): void;
  /** Called on the first exit of this vCPU (time to first guest instruction). */
  onFirstExit?(vcpu: Vcpu): void;
  /** True when guest RAM is mapped from snapshot files (a KVM_RUN EFAULT is then their I/O). */
  fileBackedMemory?(): boolean;
}

export type VcpuRunState = 'created' | 'running' | 'completing' | 'parked' | 'finished' | 'closed';

export class Vcpu {
  readonly index: number;
  readonly fd: number;
  private readonly runner;
  private readonly run: DataView;
  private readonly runBytes: Uint8Array;
  private state: VcpuRunState = 'created';
  private pauseRequested = false;
  private sawExit = false;
  private completed: (() => void) | undefined;
  /** Exits by kind since creation; cheap counters for tests and benches. */
  readonly exitCounts = { io: 0, mmio: 0, intr: 0 };

  constructor(
    vmFd: number,
    index: number,
    mmapSize: number,
    private readonly host: VcpuHost,
  ) {
    this.index = index;
    this.fd = native.kvm.CreateVcpu(vmFd, index);
    try {
      this.runner = new native.VcpuRunner(this.fd, mmapSize, (r) => this.onRunResult(r));
    } catch (e) {
      native.close(this.fd);
      throw e;
    }
    const view = this.runner.runView();
    this.run = new DataView(view);
    this.runBytes = new Uint8Array(view);
  }

  get runState(): VcpuRunState {
    return this.state;
  }

  // ---- register access (valid while the vCPU is not running) ----

  /**
   * Tells a guest on kvmclock that it was stopped (KVM_KVMCLOCK_CTRL): its soft-lockup and RCU
   * watchdogs then do not count the time a snapshot spent on disk. False when the guest has
   * not enabled kvmclock (pvm-safe hides it; a micro-guest never turns it on: KVM's EINVAL) or
   * KVM refuses for another reason: the hint is never worth failing a restore for.
   */
  markClockStopped(): boolean {
    try {
      native.kvm.KvmclockCtrl(this.fd);
      return true;
    } catch (e) {
      if (isNativeError(e)) return false;
      throw e;
    }
  }

  setCpuid(entries: readonly CpuidEntry[]): void {
    native.kvm.SetCpuid2(this.fd, encodeCpuid2(entries));
  }

  setMsrs(entries: readonly MsrEntry[]): void {
    const n = native.kvm.SetMsrs(this.fd, encodeMsrs(entries));
    if (n !== entries.length) {
      const bad = entries[n]!;
      throw new FaasnapError('INVALID_VM_CONFIG', `KVM refused MSR 0x${bad.index.toString(16)}`);
    }
  }

  getRegs(): Regs {
    const b = Buffer.alloc(LAYOUTS.kvm_regs.size);
    native.kvm.GetRegs(this.fd, b);
    return decodeRegs(b);
  }

  setRegs(r: Regs): void {
    native.kvm.SetRegs(this.fd, encodeRegs(r));
  }

  getSregs(): Sregs {
    const b = Buffer.alloc(LAYOUTS.kvm_sregs.size);
    native.kvm.GetSregs(this.fd, b);
    return decodeSregs(b);
  }

  setSregs(s: Sregs): void {
    native.kvm.SetSregs(this.fd, encodeSregs(s));
  }

  setMpState(state: number): void {
    native.kvm.SetMpState(this.fd, encodeMpState(state));
  }

  /** Reads a fixed-size KVM state struct into a fresh buffer (snapshot capture). */
  getBlob(kind: VcpuBlob): Buffer {
    const b = Buffer.alloc(LAYOUTS[BLOBS[kind].struct].size);
    native.kvm[BLOBS[kind].get](this.fd, b);
    return b;
  }

  setBlob(kind: VcpuBlob, b: Buffer): void {
    native.kvm[BLOBS[kind].set](this.fd, b);
  }

  /**
   * Reads the MSRs in `indices` that KVM can read; MSRs it refuses are skipped (KVM_GET_MSRS
   * stops at the first one it cannot read, so retry after it).
   */
  getMsrs(indices: readonly number[]): MsrEntry[] {
    const out: MsrEntry[] = [];
    let rest = indices.map((index) => ({ index, data: 0n }));
    while (rest.length > 0) {
      const b = encodeMsrs(rest);
      const n = native.kvm.GetMsrs(this.fd, b);
      out.push(...decodeMsrs(b, n));
      rest = rest.slice(n + 1);
    }
    return out;
  }

  tscKhz(): number {
    return native.kvm.GetTscKhz(this.fd);
  }

  // ---- run control ----

  start(): void {
    if (this.state !== 'created' && this.state !== 'parked') {
      throw new FaasnapError(
        'INVALID_VM_STATE',
        `vCPU ${this.index} cannot start from ${this.state}`,
      );
    }
    this.pauseRequested = false;
    this.state = 'running';
    this.runner.run();
  }

  /**
   * Applies an exit we answered but KVM has not (an IN's data reaches RAX only on the next
   * KVM_RUN) without entering the guest: KVM_RUN with immediate_exit. Needed before saving.
   */
  completePendingExit(): Promise<void> {
    if (this.state === 'created') return Promise.resolve();
    if (this.state !== 'parked') {
      throw new FaasnapError('INVALID_VM_STATE', `vCPU ${this.index} is ${this.state}, not parked`);
    }
    return new Promise((resolve) => {
      this.state = 'completing';
      this.completed = resolve;
      this.runner.run(true);
    });
  }

  /** Asks a running vCPU to park; host.onParked fires once it has. */
  requestPause(): void {
    if (this.state !== 'running') return;
    this.pauseRequested = true;
    this.runner.kick();
  }

  /** Stops the thread, unmaps kvm_run and closes the fd. Safe in any state; idempotent. */
  close(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.runner.close();
    native.close(this.fd);
  }

  private onRunResult(result: number): void {
    if (this.state === 'completing') {
      this.state = 'parked';
      this.completed?.();
      this.completed = undefined;
      return;
    }
    if (this.state !== 'running') return;
    if (!this.sawExit) {
      this.sawExit = true;
      this.host.onFirstExit?.(this);
    }
    if (result === -EINTR || result === -EAGAIN) {
      this.exitCounts.intr++;
      this.continueOrPark();
      return;
    }
    if (result < 0) {
      // EFAULT: KVM could not fault in guest RAM's host page. With RAM mapped from a snapshot
      // file that is a read error of the file (the kernel's EIO reaches KVM as EFAULT).
      const error =
        result === -EFAULT && this.host.fileBackedMemory?.()
          ? new FaasnapError(
              'SNAPSHOT_IO',
              'KVM could not read guest memory from the snapshot files (KVM_RUN: EFAULT)',
              { errno: 'EFAULT' },
            )
          : new FaasnapError('GUEST_ENTRY_FAILED', `KVM_RUN failed with errno ${-result}`, {
              errno: -result,
            });
      this.finish({ kind: 'error', error });
      return;
    }
    try {
      if (this.dispatchExit()) this.continueOrPark();
    } catch (e) {
      const error =
        e instanceof FaasnapError ? e : new FaasnapError('GUEST_UNHANDLED_EXIT', String(e));
      this.finish({ kind: 'error', error });
    }
  }

  private continueOrPark(): void {
    if (this.state !== 'running') return; // a device may have stopped the VM meanwhile
    if (this.pauseRequested) {
      this.pauseRequested = false;
      this.state = 'parked';
      this.host.onParked(this);
      return;
    }
    this.runner.run();
  }

  private finish(outcome: VcpuOutcome): void {
    if (this.state !== 'running') return;
    this.state = 'finished';
    this.host.onOutcome(this, outcome);
  }

  /** Handles one exit; returns true when the vCPU should re-enter the guest. */
  private dispatchExit(): boolean {
    const reason = this.run.getUint32(KVM_RUN.exitReason, true);
    switch (reason) {
      case K.KVM_EXIT_IO: {
        this.exitCounts.io++;
        const out = this.run.getUint8(KVM_RUN.ioDirection) === K.KVM_EXIT_IO_OUT;
        const size = this.run.getUint8(KVM_RUN.ioSize);
        const port = this.run.getUint16(KVM_RUN.ioPort, true);
        const count = this.run.getUint32(KVM_RUN.ioCount, true);
        let off = Number(this.run.getBigUint64(KVM_RUN.ioDataOffset, true));
        for (let i = 0; i < count; i++, off += size) {
          const data = this.runBytes.subarray(off, off + size);
          if (out) this.host.pio.write(port, data);
          else this.host.pio.read(port, data);
        }
        return true;
      }
      case K.KVM_EXIT_MMIO: {
        this.exitCounts.mmio++;
        const addr = Number(this.run.getBigUint64(KVM_RUN.mmioPhysAddr, true));
        const len = this.run.getUint32(KVM_RUN.mmioLen, true);
        const data = this.runBytes.subarray(KVM_RUN.mmioData, KVM_RUN.mmioData + Math.min(len, 8));
        if (this.run.getUint8(KVM_RUN.mmioIsWrite)) this.host.mmio.write(addr, data);
        else this.host.mmio.read(addr, data);
        return true;
      }
      case K.KVM_EXIT_INTR:
        this.exitCounts.intr++;
        return true;
      case K.KVM_EXIT_SHUTDOWN:
        this.finish({
          kind: 'error',
          error: new FaasnapError('GUEST_TRIPLE_FAULT', `vCPU ${this.index}`),
        });
        return false;
      case K.KVM_EXIT_SYSTEM_EVENT: {
        const type = this.run.getUint32(KVM_RUN.systemEventType, true);
        const event =
          type === K.KVM_SYSTEM_EVENT_RESET
            ? 'reset'
            : type === K.KVM_SYSTEM_EVENT_CRASH
              ? 'crash'
              : 'shutdown';
        this.finish({ kind: 'system-event', event });
        return false;
      }
      case K.KVM_EXIT_FAIL_ENTRY: {
        const hw = this.run.getBigUint64(KVM_RUN.failEntryReason, true);
        this.finish({
          kind: 'error',
          error: new FaasnapError('GUEST_ENTRY_FAILED', `hardware reason 0x${hw.toString(16)}`),
        });
        return false;
      }
      case K.KVM_EXIT_INTERNAL_ERROR: {
        const sub = this.run.getUint32(KVM_RUN.internalSuberror, true);
        const code =
          sub === K.KVM_INTERNAL_ERROR_EMULATION
            ? 'GUEST_EMULATION_FAILURE'
            : 'GUEST_UNHANDLED_EXIT';
        const regs = this.safeRip();
        this.finish({
          kind: 'error',
          error: new FaasnapError(code, `vCPU ${this.index} internal error suberror=${sub}${regs}`),
        });
        return false;
      }
      default:
        this.finish({
          kind: 'error',
          error: new FaasnapError(
            'GUEST_UNHANDLED_EXIT',
            `exit reason ${reason} on vCPU ${this.index}`,
          ),
        });
        return false;
    }
  }

  private safeRip(): string {
    try {
      return ` rip=0x${this.getRegs().rip.toString(16)}`;
    } catch {
      return '';
    }
  }
}
