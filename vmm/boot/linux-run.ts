// Runs a booted Linux guest to its end while reading its console: phase times (first output,
// first line, a caller's marker such as "init started"), and the two ways a guest without ACPI
// ends that only its console tells apart:
//  - power-off: Linux has no way to turn a PC without ACPI off; `poweroff -f` prints
//    "reboot: Power down" (and would then panic with "Attempted to kill init"). That line is
//    taken as the guest's request to stop: the VM stops at once and the exit is `shutdown`.
//    (`reboot -f` needs no help: it resets through the i8042 and the VM exits with `reset`.)
//  - kernel panic: "Kernel panic - not syncing: <why>" makes the exit a `crash` with a
//    GUEST_KERNEL_PANIC error. With `panic=-1` the guest resets itself right after the message;
//    otherwise it would spin forever, so the VM is stopped once the panic report has ended (or
//    after a grace period that lets the backtrace reach the log).

import { FaasnapError } from '../../common/errors.js';
import type { Vm, VmExit } from '../vm.js';

export const POWER_OFF_LINES = ['reboot: Power down', 'reboot: System halted'];
const PANIC_PREFIX = 'Kernel panic - not syncing: ';
const PANIC_END = '---[ end Kernel panic';
const PANIC_GRACE_MS = 3000;
/** Bytes of console kept for matching across output chunks. */
const TAIL_BYTES = 4096;

export interface LinuxRunOptions {
  timeoutMs: number;
  /** Console text whose first appearance is timed (e.g. what /init prints first). */
  marker?: string;
}

export interface LinuxRunResult {
  exit: VmExit;
  /** Milliseconds since the VM was created (Vm.phases' origin). */
  startedMs?: number;
  firstOutputMs?: number;
  firstLineMs?: number;
  markerMs?: number;
  powerOffMs?: number;
  /** The panic reason, when the kernel panicked. */
  panic?: string;
}

/** Watches a VM's console for the events above. Pure apart from calling `vm.stop()`. */
export class LinuxConsoleMonitor {
  firstOutputMs: number | undefined;
  firstLineMs: number | undefined;
  markerMs: number | undefined;
  powerOffMs: number | undefined;
  panic: string | undefined;
  private tail = '';
  private panicTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly unsubscribe: () => void;

  constructor(
    private readonly vm: Vm,
    private readonly marker?: string,
  ) {
    this.unsubscribe = vm.console.onOutput((chunk) => this.onChunk(chunk));
  }

  close(): void {
    this.unsubscribe();
    if (this.panicTimer) clearTimeout(this.panicTimer);
  }

  private onChunk(chunk: Uint8Array): void {
    const now = this.vm.phases.elapsed();
    const text = Buffer.from(chunk).toString('latin1');
    this.firstOutputMs ??= now;
    if (this.firstLineMs === undefined && text.includes('\n')) this.firstLineMs = now;
    // Search the new text plus enough of the old to catch a pattern split between chunks.
    const keep = Math.max(PANIC_PREFIX.length, this.marker?.length ?? 0, 32);
    const window = this.tail.slice(-keep) + text;
    this.tail = (this.tail + text).slice(-TAIL_BYTES);

    if (this.marker && this.markerMs === undefined && window.includes(this.marker)) {
      this.markerMs = now;
    }
    if (this.powerOffMs === undefined && POWER_OFF_LINES.some((l) => window.includes(l))) {
      this.powerOffMs = now;
      this.vm.stop();
      return;
    }
    if (this.powerOffMs !== undefined) return; // what follows a power-off is not a crash
    if (this.panic === undefined && this.tail.includes(PANIC_PREFIX)) {
      this.panic = '';
      this.panicTimer = setTimeout(() => this.vm.stop(), PANIC_GRACE_MS);
    }
    if (this.panic !== undefined) {
      const at = this.tail.lastIndexOf(PANIC_PREFIX);
      const rest = this.tail.slice(at + PANIC_PREFIX.length);
      const eol = rest.indexOf('\n');
      if (at >= 0 && eol >= 0) this.panic = rest.slice(0, eol).trim();
      if (this.tail.includes(PANIC_END)) this.vm.stop();
    }
  }
}

/**
 * Starts the VM (if not yet) and resolves when the guest has stopped, with the exit classified
 * as described above. Never rejects for guest behaviour: errors are in `exit.error`.
 */
export async function runLinuxVm(vm: Vm, o: LinuxRunOptions): Promise<LinuxRunResult> {
  const monitor = new LinuxConsoleMonitor(vm, o.marker);
  let exit: VmExit;
  try {
    exit = await vm.runToCompletion(o.timeoutMs);
  } catch (e) {
    exit = {
      reason: 'error',
      error: e instanceof FaasnapError ? e : new FaasnapError('GUEST_UNHANDLED_EXIT', String(e)),
    };
  } finally {
    vm.stop(); // idempotent; covers a failure before the VM ran
    monitor.close();
  }
  if (monitor.powerOffMs !== undefined) {
    exit = { reason: 'shutdown' };
  } else if (monitor.panic !== undefined) {
    exit = {
      reason: 'crash',
      error: new FaasnapError('GUEST_KERNEL_PANIC', monitor.panic || 'unknown reason', {
        panic: monitor.panic,
      }),
    };
  }
  return {
    exit,
    startedMs: vm.startedMs,
    firstOutputMs: monitor.firstOutputMs,
    firstLineMs: monitor.firstLineMs,
    markerMs: monitor.markerMs,
    powerOffMs: monitor.powerOffMs,
    panic: monitor.panic,
  };
}
