// A microVM on /dev/kvm. Boot order is explicit (docs/architecture.md, "Boot order"): kvm → VM → memory →
// irqchip/PIT → vCPUs (CPUID, MSRs, FPU, LAPIC) → legacy devices → virtio devices → image.
// Lifecycle: created → running ⇄ paused → stopped; stop() releases every thread, fd and
// mapping, also after a failure half-way through create().

import { FaasnapError } from '../common/errors.js';
import { PhaseTimer } from '../common/phases.js';
import { native } from '../native/index.js';
import { Bus, type BusDevice } from './bus.js';
import { bootMsrs, wireLapicLints } from './cpu/boot-state.js';
import { buildCpuid, detectCpuTemplate, type CpuTemplateName } from './cpu/template.js';
import { ConsoleLog } from './devices/console-log.js';
import { CMOS_PORT_BASE, CMOS_PORT_LEN, Cmos } from './devices/legacy/cmos.js';
import { I8042 } from './devices/legacy/i8042.js';
import { Serial } from './devices/legacy/serial.js';
import type { VirtioDevice } from './devices/virtio/device.js';
import {
  createVirtioDevice,
  restoreVirtioDevice,
  type CreatedDevice,
  type VirtioDeviceSpec,
} from './devices/virtio/factory.js';
import { VirtioMmioTransport, type VirtioMmioArgs } from './devices/virtio/mmio.js';
import type { InterruptLine } from './interrupt.js';
import { Kvm } from './kvm/system.js';
import { LAYOUTS, decodeStructBlob, initialFpu } from './kvm/structs.js';
import { GuestRam } from './guest-ram.js';
import { validateState } from '../common/state.js';
import { captureVcpu, restoreVcpu, type VcpuCaps } from './snapshot/vcpu-state.js';
import { VmSavedStateSchema, type VmSavedState } from './snapshot/vm-state.js';
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
  /** The guest's console output (what the UART transmits). */
  readonly console: ConsoleLog;
  readonly virtio: VirtioMmioTransport[] = [];
  /** Config of the virtio devices added with addDevice(), in slot order (saved in snapshots). */
  readonly deviceSpecs: VirtioDeviceSpec[] = [];
  /** How guest memory was restored, and the loader's progress (set by snapshot restore). */
  loader:
    | {
        mode: string;
        /** Guest RAM is (partly) a private mapping of snapshot files. */
        fileBacked: boolean;
        prefetch?: Promise<{
          bytes: number;
          ms: number;
          cancelled: boolean;
          populated?: number;
          populateMs?: number;
        }>;
        /** REAP: the working set installed before resume and the faults served since. */
        reap?: { stats(): { pagesPrefetched: number; faultsServed: number } };
        /** The loader's failure so far (SNAPSHOT_IO): the guest may have seen wrong memory. */
        failure(): FaasnapError | undefined;
      }
    | undefined;
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
  private serial!: Serial;
  private i8042!: I8042;
  private vcpuCaps!: VcpuCaps;

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
    // The console log exists before the VM so a failed create() still has a (empty) log to show.
    this.console = new ConsoleLog(this.config.consoleLogBytes);
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

  /**
   * Creates a VM from saved state (untrusted: validated completely before use) in the `paused`
   * state. Guest memory is left anonymous: the caller's memory loader fills or maps it before
   * resume(). Devices are re-created from their saved specs with the same backends.
   */
  /**
   * `attachMemory` gives guest RAM its contents (a memory backend: a copy, file mappings, a
   * userfaultfd) right after the RAM exists and before any saved state is applied: restoring
   * vCPU and device state makes KVM and the devices touch guest memory (kvmclock's page is
   * pinned by its MSR, virtio queues are read), and anonymous RAM touched before the backend is
   * attached would keep zeros where the snapshot has data (docs/architecture.md, "Boot order").
   */
  static restore(
    config: VmConfig,
    untrusted: unknown,
    kvm?: Kvm,
    attachMemory?: (vm: Vm) => void,
  ): Vm {
    const saved = validateState('VM', VmSavedStateSchema, untrusted);
    if (saved.vcpus.length !== config.vcpus) {
      throw new FaasnapError(
        'STATE_INVALID',
        `state has ${saved.vcpus.length} vCPUs, config ${config.vcpus}`,
      );
    }
    const vm = new Vm(config, kvm);
    try {
      vm.build(saved, attachMemory);
      vm._state = 'paused';
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

  private build(saved?: VmSavedState, attachMemory?: (vm: Vm) => void): void {
    const p = this.phases;
    this.vmFd = p.measure('vm-create', () => native.kvm.CreateVm(this.kvm.fd, 0));
    p.measure('vm-setup', () => {
      native.kvm.SetTssAddr(this.vmFd, TSS_ADDR);
      native.kvm.SetIdentityMapAddr(this.vmFd, IDENTITY_MAP_ADDR);
    });
    this.ram = p.measure('memory', () => new GuestRam(this.vmFd, this.config.memMiB * 1024 * 1024));
    attachMemory?.(this);
    p.measure('irqchip', () => {
      native.kvm.CreateIrqchip(this.vmFd);
      native.kvm.CreatePit2(this.vmFd, K.KVM_PIT_SPEAKER_DUMMY!);
    });
    if (saved) p.measure('irqchip-state', () => this.restoreVmState(saved));
    p.measure('vcpus', () => this.createVcpus());
    if (saved) {
      p.measure('vcpu-state', () => {
        this.vcpus.forEach((v, i) => restoreVcpu(v, saved.vcpus[i], this.vcpuCaps));
        if (this.kvm.hasCap('KVM_CAP_KVMCLOCK_CTRL'))
          for (const v of this.vcpus) v.markClockStopped();
      });
    }
    p.measure('legacy-devices', () => {
      this.irqLines.set(SERIAL_GSI, this.createIrqLine(SERIAL_GSI));
      const serialOpts = { interrupt: this.irqLines.get(SERIAL_GSI)!, output: this.console };
      this.serial = saved ? Serial.restore(serialOpts, saved.serial) : new Serial(serialOpts);
      const i8042Opts = { onReset: () => this.terminate({ reason: 'reset' }) };
      this.i8042 = saved ? I8042.restore(i8042Opts, saved.i8042) : new I8042(i8042Opts);
      this.pio.insert(this.serial, SERIAL_PORT, 8);
      this.pio.insert(this.i8042, I8042_PORT, 5);
      // Linux reads the time of day from the RTC at boot (and polls for ~5 s if it is absent).
      // Not in the saved state: a restored guest reads the host clock again, which is right.
      this.pio.insert(new Cmos(), CMOS_PORT_BASE, CMOS_PORT_LEN);
    });
    if (saved) {
      p.measure('virtio-devices', () => {
        for (const d of saved.virtio) this.addDevice(d.spec, d.transport);
      });
    }
  }

  /** irqchip (both PICs, IOAPIC), PIT and KVM clock, before the vCPUs exist (Firecracker's order). */
  private restoreVmState(saved: VmSavedState): void {
    const chips = [
      [K.KVM_IRQCHIP_PIC_MASTER!, saved.irqchip.picMaster],
      [K.KVM_IRQCHIP_PIC_SLAVE!, saved.irqchip.picSlave],
      [K.KVM_IRQCHIP_IOAPIC!, saved.irqchip.ioapic],
    ] as const;
    const blobs = chips.map(([id, b64]) => {
      const b = decodeStructBlob(b64, 'kvm_irqchip');
      if (b.readUInt32LE(LAYOUTS.kvm_irqchip.fields.chip_id) !== id) {
        throw new FaasnapError('STATE_INVALID', `irqchip blob for chip ${id} has another chip id`);
      }
      return b;
    });
    const pit = decodeStructBlob(saved.pit, 'kvm_pit_state2');
    const clock = decodeStructBlob(saved.clock, 'kvm_clock_data');
    // Only the clock value is restored; flags like KVM_CLOCK_REALTIME would make KVM reinterpret it.
    clock.writeUInt32LE(0, LAYOUTS.kvm_clock_data.fields.flags);
    for (const b of blobs) native.kvm.SetIrqchip(this.vmFd, b);
    native.kvm.SetPit2(this.vmFd, pit);
    native.kvm.SetClock(this.vmFd, clock);
  }

  /**
   * Everything but guest memory, as plain JSON. The VM must be paused; pending I/O exits are
   * completed first so the registers are consistent.
   */
  async saveState(): Promise<VmSavedState> {
    this.requireState('paused');
    for (const v of this.vcpus) await v.completePendingExit();
    const irqchip = (id: number): string => {
      const b = Buffer.alloc(LAYOUTS.kvm_irqchip.size);
      b.writeUInt32LE(id, LAYOUTS.kvm_irqchip.fields.chip_id);
      native.kvm.GetIrqchip(this.vmFd, b);
      return b.toString('base64');
    };
    const blob = (
      struct: 'kvm_pit_state2' | 'kvm_clock_data',
      get: 'GetPit2' | 'GetClock',
    ): string => {
      const b = Buffer.alloc(LAYOUTS[struct].size);
      native.kvm[get](this.vmFd, b);
      return b.toString('base64');
    };
    return {
      vcpus: this.vcpus.map((v) => captureVcpu(v, this.vcpuCaps)),
      irqchip: {
        picMaster: irqchip(K.KVM_IRQCHIP_PIC_MASTER!),
        picSlave: irqchip(K.KVM_IRQCHIP_PIC_SLAVE!),
        ioapic: irqchip(K.KVM_IRQCHIP_IOAPIC!),
      },
      pit: blob('kvm_pit_state2', 'GetPit2'),
      clock: blob('kvm_clock_data', 'GetClock'),
      serial: this.serial.save(),
      i8042: this.i8042.save(),
      virtio: this.deviceSpecs.map((spec, i) => ({ spec, transport: this.virtio[i]!.save() })),
    };
  }

  private createVcpus(): void {
    const supported = this.kvm.getSupportedCpuid();
    const msrIndices = this.kvm.getMsrIndexList();
    const msrs = bootMsrs(msrIndices);
    this.vcpuCaps = {
      xsave: this.kvm.hasCap('KVM_CAP_XSAVE'),
      xcrs: this.kvm.hasCap('KVM_CAP_XCRS'),
      msrIndices: [...msrIndices],
    };
    const host = {
      pio: this.pio,
      mmio: this.mmio,
      onOutcome: (_v: Vcpu, o: VcpuOutcome) => this.onVcpuOutcome(o),
      onParked: () => this.onVcpuParked(),
      onFirstExit: () => {
        this.firstExitMs ??= this.phases.elapsed();
      },
      fileBackedMemory: () => this.loader?.fileBacked === true,
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
      vcpu.setBlob('fpu', initialFpu());
      const lapic = vcpu.getBlob('lapic');
      wireLapicLints(lapic);
      vcpu.setBlob('lapic', lapic);
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

  /**
   * Adds a virtio device described by `spec` (its config is kept for snapshots); with
   * `savedTransport` (untrusted), restores the device and its transport from it.
   */
  addDevice(spec: VirtioDeviceSpec, savedTransport?: unknown): { base: number; gsi: number } {
    // Backends are the VM's from the moment they open: a restore that fails later releases them.
    const owned = ({ device, resources }: CreatedDevice): VirtioDevice => {
      for (const r of resources) this.own(r);
      return device;
    };
    const slot =
      savedTransport === undefined
        ? this.addVirtioDevice(owned(createVirtioDevice(spec)))
        : this.attachVirtio((args) =>
            VirtioMmioTransport.restore(
              { ...args, restoreDevice: (state) => owned(restoreVirtioDevice(spec, state)) },
              savedTransport,
            ),
          );
    this.deviceSpecs.push(spec);
    return slot;
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
  addVirtioDevice(device: VirtioDevice): AttachedVirtio {
    return this.attachVirtio((args) => new VirtioMmioTransport({ ...args, device }));
  }

  /** addVirtioDevice with the transport made by `make`: new, or restored with its device. */
  private attachVirtio(
    make: (args: Omit<VirtioMmioArgs, 'device'>) => VirtioMmioTransport,
  ): AttachedVirtio {
    this.requireState('created');
    const { base, gsi } = virtioSlot(this.virtio.length);
    const transport = make({ memory: this.memory, interrupt: this.createIrqLine(gsi) });
    this.mmio.insert(transport, base, VIRTIO_MMIO_SIZE);
    transport.device.queueMaxSizes.forEach((_, q) => {
      this.addIoEventFd({ addr: base + QUEUE_NOTIFY, pio: false, len: 4, datamatch: q }, () =>
        transport.notify(q),
      );
    });
    this.virtio.push(transport);
    return { base, gsi, transport };
  }

  /** Where each attached virtio device sits, in attach order (a Linux guest's cmdline names them). */
  virtioSlots(): { base: number; gsi: number }[] {
    return this.virtio.map((_, n) => virtioSlot(n));
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
    // A VM that never ran can be paused too: snapshots of it start at the first instruction.
    this.requireState('running', 'created');
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
    this.startedMs ??= this.phases.elapsed();
    // Requests queued while paused (or before a snapshot) are processed before the vCPUs run.
    for (const t of this.virtio) t.kick();
    for (const v of this.vcpus) if (v.runState === 'parked' || v.runState === 'created') v.start();
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

  /**
   * Stops the VM because something outside the guest failed under it (a memory loader that
   * could not read the snapshot): its exit reports `error`. Idempotent, like stop().
   */
  fail(error: FaasnapError): void {
    this.terminate({ reason: 'error', error });
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
    this.console.flush(); // listeners see all output before anyone learns the VM exited
    // A guest that ran on memory its loader failed to read may have stopped "normally": its
    // exit is that failure, so no caller takes what it computed for a result.
    const failure = info.error ? undefined : this.loader?.failure();
    this.exitInfo ??= failure ? { reason: 'error', error: failure } : info;
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

interface AttachedVirtio {
  base: number;
  gsi: number;
  transport: VirtioMmioTransport;
}

/** MMIO window and GSI of the n-th virtio device. */
function virtioSlot(n: number): { base: number; gsi: number } {
  return { base: VIRTIO_MMIO_BASE + n * VIRTIO_MMIO_SIZE, gsi: VIRTIO_FIRST_GSI + n };
}

function validateConfig(c: VmConfig): void {
  if (!Number.isInteger(c.memMiB) || c.memMiB < 8 || c.memMiB > 64 * 1024) {
    throw new FaasnapError('INVALID_VM_CONFIG', `memory must be 8..65536 MiB, got ${c.memMiB}`);
  }
  if (!Number.isInteger(c.vcpus) || c.vcpus < 1 || c.vcpus > 8) {
    throw new FaasnapError('INVALID_VM_CONFIG', `vcpus must be 1..8, got ${c.vcpus}`);
  }
}
