// A microVM on /dev/kvm. Boot order is explicit (DESIGN.md §3): kvm → VM → memory →
// irqchip/PIT → vCPUs (CPUID, MSRs, FPU, LAPIC) → legacy devices → virtio devices → image.
// Lifecycle: created → running ⇄ paused → stopped; stop() releases every thread, fd and
// mapping, also after a failure half-way through create().

import { FaasnapError } from '../common/errors.js';
import { PhaseTimer } from '../common/phases.js';
import { native } from '../native/index.js';
import { Bus, type BusDevice } from './bus.js';
import { bootMsrs, wireLapicLints } from './cpu/boot-state.js';
import { buildCpuid, detectCpuTemplate, type CpuTemplateName } from './cpu/template.js';
import { I8042 } from './devices/legacy/i8042.js';
import { Serial } from './devices/legacy/serial.js';
import type { VirtioDevice } from './devices/virtio/device.js';
import { VirtioMmioTransport } from './devices/virtio/mmio.js';
import type { InterruptLine } from './interrupt.js';
import { Kvm } from './kvm/system.js';
import { initialFpu } from './kvm/structs.js';
import { GuestRam } from './memory.js';
import { Vcpu, type VcpuOutcome } from './vcpu.js';

const K = native.kvmConstants;

export const SERIAL_PORT = 0x3f8;
export const SERIAL_GSI = 4;
export const I8042_PORT = 0x60;
export const VIRTIO_MMIO_BASE = 0xd000_0000;
export const VIRTIO_MMIO_SIZE = 0x1000;
export const VIRTIO_FIRST_GSI = 5;
/** Highest GSI routed to the IOAPIC by KVM's default routing. */
const MAX_GSI = 23;
/** KVM needs three pages for the TSS and one for the identity map, just below the BIOS area. */
const TSS_ADDR = 0xfffb_d000;
const IDENTITY_MAP_ADDR = 0xfffb_c000;
/** virtio-mmio QueueNotify register offset (the ioeventfd address). */
const QUEUE_NOTIFY = 0x50;

export interface VmConfig {
  memMiB: number;
  vcpus: number;
  /** Defaults to the host's template (`pvm-safe` on PVM hosts, `host` otherwise). */
  cpuTemplate?: CpuTemplateName;
  /** Cap of the console log kept in memory. */
  consoleLogBytes?: number;
}

export type VmState = 'created' | 'running' | 'paused' | 'stopped';

export interface VmExit {
  /** reset/shutdown/crash come from the guest; `stopped` means the host stopped it. */
  reason: 'reset' | 'shutdown' | 'crash' | 'stopped' | 'error';
  error?: FaasnapError;
}

export interface IoEventFdOptions {
  addr: number;
  /** Port I/O (true) or MMIO (false). */
  pio: boolean;
  len: 1 | 2 | 4 | 8;
  /** Fire only when the guest writes this value. */
  datamatch?: number;
}

interface Releasable {
  release(): void;
}

export class Vm {
  readonly config: Required<VmConfig>;
  readonly phases = new PhaseTimer();
  readonly pio = new Bus();
  readonly mmio = new Bus();
  readonly vcpus: Vcpu[] = [];
  readonly console: Serial;
  readonly virtio: VirtioMmioTransport[] = [];
  /** Milliseconds from create() to start(). */
  startedMs: number | undefined;
  /** Milliseconds from create() to the first exit of any vCPU (the guest has run). */
  firstExitMs: number | undefined;

  private readonly kvm: Kvm;
  private readonly ownsKvm: boolean;
  private vmFd = -1;
  private ram: GuestRam | undefined;
  private readonly releasables: Releasable[] = [];
  private _state: VmState = 'created';
  private exitInfo: VmExit | undefined;
  private readonly exitWaiters: ((e: VmExit) => void)[] = [];
  private pauseWaiters: (() => void)[] = [];

  private constructor(config: VmConfig, kvm: Kvm | undefined) {
    validateConfig(config);
    this.config = {
      memMiB: config.memMiB,
      vcpus: config.vcpus,
      cpuTemplate: config.cpuTemplate ?? detectCpuTemplate(),
      consoleLogBytes: config.consoleLogBytes ?? 1 << 20,
    };
    this.ownsKvm = kvm === undefined;
    this.kvm = this.phases.measure('kvm-open', () => kvm ?? Kvm.open());
    // The console exists before the VM so a failed create() still has a (empty) log to show.
    this.console = new Serial({
      interrupt: { trigger: () => this.irqLines.get(SERIAL_GSI)?.trigger() },
      logCapacity: this.config.consoleLogBytes,
    });
  }

  private readonly irqLines = new Map<number, InterruptLine>();

  /** Creates the VM with memory, irqchip, vCPUs and legacy devices. Nothing runs yet. */
  static create(config: VmConfig, kvm?: Kvm): Vm {
    const vm = new Vm(config, kvm);
    try {
      vm.build();
    } catch (e) {
      vm.releaseAll();
      throw e;
    }
    return vm;
  }

  get state(): VmState {
    return this._state;
  }

  get memory() {
    if (!this.ram) throw new FaasnapError('INVALID_VM_STATE', 'VM has no memory (stopped)');
    return this.ram.memory;
  }

  get guestRam(): GuestRam {
    if (!this.ram) throw new FaasnapError('INVALID_VM_STATE', 'VM has no memory (stopped)');
    return this.ram;
  }

  private build(): void {
    const p = this.phases;
    this.vmFd = p.measure('vm-create', () => native.kvm.CreateVm(this.kvm.fd, 0));
    p.measure('vm-setup', () => {
      native.kvm.SetTssAddr(this.vmFd, TSS_ADDR);
      native.kvm.SetIdentityMapAddr(this.vmFd, IDENTITY_MAP_ADDR);
    });
    this.ram = p.measure('memory', () => new GuestRam(this.vmFd, this.config.memMiB * 1024 * 1024));
    p.measure('irqchip', () => {
      native.kvm.CreateIrqchip(this.vmFd);
      native.kvm.CreatePit2(this.vmFd, K.KVM_PIT_SPEAKER_DUMMY!);
    });
    p.measure('vcpus', () => this.createVcpus());
    p.measure('legacy-devices', () => {
      this.irqLines.set(SERIAL_GSI, this.createIrqLine(SERIAL_GSI));
      this.pio.insert(this.console, SERIAL_PORT, 8);
      this.pio.insert(
        new I8042({ onReset: () => this.terminate({ reason: 'reset' }) }),
        I8042_PORT,
        5,
      );
    });
  }

  private createVcpus(): void {
    const supported = this.kvm.getSupportedCpuid();
    const msrs = bootMsrs(this.kvm.getMsrIndexList());
    const host = {
      pio: this.pio,
      mmio: this.mmio,
      onOutcome: (_v: Vcpu, o: VcpuOutcome) => this.onVcpuOutcome(o),
      onParked: () => this.onVcpuParked(),
      onFirstExit: () => {
        this.firstExitMs ??= this.phases.elapsed();
      },
    };
    for (let i = 0; i < this.config.vcpus; i++) {
      const vcpu = new Vcpu(this.vmFd, i, this.kvm.vcpuMmapSize, host);
      this.vcpus.push(vcpu);
      const tscKhz = vcpu.tscKhz();
      vcpu.setCpuid(
        buildCpuid(this.config.cpuTemplate, supported, {
          vcpuIndex: i,
          vcpuCount: this.config.vcpus,
          tscKhz,
        }),
      );
      vcpu.setMsrs(msrs);
      vcpu.setFpu(initialFpu());
      const lapic = vcpu.getLapic();
      wireLapicLints(lapic);
      vcpu.setLapic(lapic);
    }
  }

  /** An interrupt line for `gsi`, delivered through KVM_IRQFD (no VM exit). */
  createIrqLine(gsi: number): InterruptLine {
    if (!Number.isInteger(gsi) || gsi < 0 || gsi > MAX_GSI) {
      throw new FaasnapError('INVALID_VM_CONFIG', `GSI ${gsi} out of range 0..${MAX_GSI}`);
    }
    const fd = native.eventfd(0, native.fdConstants.EFD_NONBLOCK!);
    this.releasables.push({ release: () => native.close(fd) });
    native.kvm.Irqfd(this.vmFd, fd, gsi, 0);
    return { trigger: () => native.eventfdWrite(fd, 1) };
  }

  /**
   * Registers a KVM_IOEVENTFD: guest writes to `addr` signal an eventfd inside KVM (no exit to
   * the VMM); `onNotify` runs on the JS event loop once per wake-up with the number of writes.
   */
  addIoEventFd(opts: IoEventFdOptions, onNotify: (count: bigint) => void): void {
    const fd = native.eventfd(0, native.fdConstants.EFD_NONBLOCK!);
    this.releasables.push({ release: () => native.close(fd) });
    let flags = opts.pio ? K.KVM_IOEVENTFD_FLAG_PIO! : 0;
    if (opts.datamatch !== undefined) flags |= K.KVM_IOEVENTFD_FLAG_DATAMATCH!;
    native.kvm.Ioeventfd(this.vmFd, opts.addr, opts.len, fd, flags, opts.datamatch ?? 0);
    const watcher = new native.FdWatcher(fd, () => {
      const n = native.eventfdRead(fd);
      if (n > 0n) onNotify(n);
    });
    // Released in reverse order: the watcher stops before its fd is closed.
    this.releasables.push({ release: () => watcher.close() });
  }

  /** Ties a host resource (a disk backend, a socket) to the VM: closed when the VM stops. */
  own(resource: { close(): void }): void {
    this.releasables.push({ release: () => resource.close() });
  }

  /** Adds a device on the I/O port bus. */
  addPioDevice(device: BusDevice, port: number, len: number): void {
    this.pio.insert(device, port, len);
  }

  /**
   * Attaches a virtio device behind a virtio-mmio transport: next free MMIO slot and GSI, an
   * irqfd for its interrupt and one ioeventfd per queue for notifications.
   */
  addVirtioDevice(device: VirtioDevice): {
    base: number;
    gsi: number;
    transport: VirtioMmioTransport;
  } {
    this.requireState('created');
    const n = this.virtio.length;
    const base = VIRTIO_MMIO_BASE + n * VIRTIO_MMIO_SIZE;
    const gsi = VIRTIO_FIRST_GSI + n;
    const transport = new VirtioMmioTransport({
      device,
      memory: this.memory,
      interrupt: this.createIrqLine(gsi),
    });
    this.mmio.insert(transport, base, VIRTIO_MMIO_SIZE);
    device.queueMaxSizes.forEach((_, q) => {
      this.addIoEventFd({ addr: base + QUEUE_NOTIFY, pio: false, len: 4, datamatch: q }, () =>
        transport.notify(q),
      );
    });
    this.virtio.push(transport);
    return { base, gsi, transport };
  }

  // ---- lifecycle ----

  start(): void {
    this.requireState('created');
    this._state = 'running';
    this.startedMs = this.phases.elapsed();
    for (const v of this.vcpus) v.start();
  }

  /** Parks every vCPU outside KVM_RUN; resolves when all have parked. */
  async pause(): Promise<void> {
    this.requireState('running');
    this._state = 'paused';
    const running = this.vcpus.filter((v) => v.runState === 'running');
    if (running.length === 0) return;
    await new Promise<void>((resolve) => {
      this.pauseWaiters.push(resolve);
      for (const v of running) v.requestPause();
    });
  }

  resume(): void {
    this.requireState('paused');
    this._state = 'running';
    for (const v of this.vcpus) if (v.runState === 'parked') v.start();
  }

  /** Resolves when the guest stops by itself or the VM is stopped. */
  wait(): Promise<VmExit> {
    if (this.exitInfo) return Promise.resolve(this.exitInfo);
    return new Promise((resolve) => this.exitWaiters.push(resolve));
  }

  /**
   * Runs until the guest stops; if it has not after `timeoutMs`, stops it and rejects with
   * GUEST_TIMEOUT. Guest errors (triple fault, emulation failure) reject with their code.
   */
  async runToCompletion(timeoutMs: number): Promise<VmExit> {
    if (this._state === 'created') this.start();
    const timer = setTimeout(() => {
      this.terminate({
        reason: 'error',
        error: new FaasnapError('GUEST_TIMEOUT', `${timeoutMs} ms`, { timeoutMs }),
      });
    }, timeoutMs);
    try {
      const exit = await this.wait();
      if (exit.error) throw exit.error;
      return exit;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Stops the guest and releases every resource. Idempotent; safe in any state. */
  stop(): void {
    this.terminate({ reason: 'stopped' });
  }

  /** Releases everything and reports `info` as the VM's exit, unless it already stopped. */
  private terminate(info: VmExit): void {
    if (this._state === 'stopped') return;
    this.releaseAll();
    this.settle(info);
  }

  private releaseAll(): void {
    this._state = 'stopped';
    // Threads first (they use vCPU fds and guest memory), then event sources, then the VM.
    for (const v of this.vcpus) v.close();
    for (const r of this.releasables.splice(0).reverse()) r.release();
    if (this.vmFd >= 0) {
      native.close(this.vmFd);
      this.vmFd = -1;
    }
    this.ram?.release();
    this.ram = undefined;
    if (this.ownsKvm) this.kvm.close();
    for (const w of this.pauseWaiters.splice(0)) w();
  }

  private onVcpuOutcome(o: VcpuOutcome): void {
    this.terminate(
      o.kind === 'system-event' ? { reason: o.event } : { reason: 'error', error: o.error },
    );
  }

  private onVcpuParked(): void {
    if (this.vcpus.some((v) => v.runState === 'running')) return;
    for (const w of this.pauseWaiters.splice(0)) w();
  }

  private settle(info: VmExit): void {
    this.console.log.flush(); // listeners see all output before anyone learns the VM exited
    this.exitInfo ??= info;
    for (const w of this.exitWaiters.splice(0)) w(this.exitInfo);
  }

  private requireState(...allowed: VmState[]): void {
    if (!allowed.includes(this._state)) {
      throw new FaasnapError(
        'INVALID_VM_STATE',
        `VM is ${this._state}, need ${allowed.join(' or ')}`,
        {
          state: this._state,
        },
      );
    }
  }
}

function validateConfig(c: VmConfig): void {
  if (!Number.isInteger(c.memMiB) || c.memMiB < 8 || c.memMiB > 64 * 1024) {
    throw new FaasnapError('INVALID_VM_CONFIG', `memory must be 8..65536 MiB, got ${c.memMiB}`);
  }
  if (!Number.isInteger(c.vcpus) || c.vcpus < 1 || c.vcpus > 8) {
    throw new FaasnapError('INVALID_VM_CONFIG', `vcpus must be 1..8, got ${c.vcpus}`);
  }
}
