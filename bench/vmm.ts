// VMM micro-benchmarks (issue: VMM foundation): VM create → first guest exit, a port-I/O exit
// round trip through the TypeScript bus, and an ioeventfd → TypeScript → irqfd round trip.
// Every sample is kept; callers get raw data plus summaries.

import {
  MICRO_DATA_GPA,
  encodeBenchParams,
  parseBenchOutput,
  parseHelloOutput,
} from '../guest/micro/index.js';
import { createMicroVm } from '../guest/micro/launch.js';
import { summarize, type Summary } from './stats.js';
import { scaledMs } from '../common/time-scale.js';

export interface VmmBenchOptions {
  repeats: number;
  pioIterations: number;
  irqIterations: number;
  onProgress?: (what: string) => void;
}

export interface VmmBenchResult {
  createToFirstExitMs: { samples: number[]; summary: Summary };
  createPhasesMs: Record<string, number[]>;
  pioRoundTripUs: { samples: number[]; summary: Summary };
  irqRoundTripUs: { samples: number[]; summary: Summary };
}

const BENCH_PORT = 0x80;
const NOTIFY_PORT = 0x510;
const BENCH_GSI = 10;

/** hello's first instruction path prints at once, so its first exit ≈ its first instructions. */
async function createToFirstExit(): Promise<{
  firstExitMs: number;
  phases: Record<string, number>;
}> {
  const vm = createMicroVm({ guest: 'hello', memMiB: 64, vcpus: 1 });
  await vm.runToCompletion(scaledMs(30_000));
  if (!parseHelloOutput(vm.console.text()).cpl0 || vm.firstExitMs === undefined) {
    throw new Error(`hello did not run: ${vm.console.text()}`);
  }
  return {
    firstExitMs: vm.firstExitMs,
    phases: Object.fromEntries(vm.phases.phases.map((p) => [p.name, p.durationMs])),
  };
}

/** Mean time per exit between the first and the last of `iterations` guest port writes. */
async function pioRoundTrip(iterations: number): Promise<number> {
  const vm = createMicroVm({
    guest: 'bench',
    memMiB: 16,
    vcpus: 1,
    params: encodeBenchParams({ op: 'pio', iterations, port: BENCH_PORT }),
  });
  let count = 0;
  let first = 0;
  let last = 0;
  vm.addPioDevice(
    {
      read: (_o, d) => d.fill(0),
      write: () => {
        last = performance.now();
        if (count++ === 0) first = last;
      },
    },
    BENCH_PORT,
    1,
  );
  await vm.runToCompletion(scaledMs(60_000));
  if (!parseBenchOutput(vm.console.text()).done || count !== iterations) {
    throw new Error(`pio bench saw ${count}/${iterations} exits: ${vm.console.text()}`);
  }
  return ((last - first) / (iterations - 1)) * 1000;
}

/** Mean round trip: guest write to an ioeventfd port → JS handler → irqfd → guest interrupt. */
async function irqRoundTrip(iterations: number): Promise<number> {
  const vm = createMicroVm({
    guest: 'bench',
    memMiB: 16,
    vcpus: 1,
    params: encodeBenchParams({ op: 'irq', iterations, port: NOTIFY_PORT, gsi: BENCH_GSI }),
  });
  const irq = vm.createIrqLine(BENCH_GSI);
  let count = 0;
  let first = 0;
  let last = 0;
  vm.addIoEventFd({ addr: NOTIFY_PORT, pio: true, len: 1 }, (n) => {
    last = performance.now();
    if (count === 0) first = last;
    count += Number(n);
    irq.trigger();
  });
  // Where a ping-pong stalls says who lost it: the guest's interrupt count (its variable page)
  // one behind the notifications means the interrupt was lost; equal, the notification.
  let guestCount: bigint | undefined;
  let seen = -1;
  const watch = setInterval(() => {
    if (count === seen && vm.state === 'running')
      guestCount = vm.memory.readU64(MICRO_DATA_GPA + 8);
    seen = count;
  }, 2000);
  try {
    await vm.runToCompletion(scaledMs(60_000));
  } catch (e) {
    throw new Error(
      `irq bench stalled after ${count} of ${iterations} notifications (guest counted ${guestCount} interrupts)`,
      { cause: e },
    );
  } finally {
    clearInterval(watch);
  }
  const out = parseBenchOutput(vm.console.text());
  if (!out.done || out.count === undefined || out.count < BigInt(iterations)) {
    throw new Error(`irq bench incomplete (${count} notifications): ${vm.console.text()}`);
  }
  return ((last - first) / (count - 1)) * 1000;
}

export async function runVmmBench(opts: VmmBenchOptions): Promise<VmmBenchResult> {
  const progress = opts.onProgress ?? (() => undefined);
  const first: number[] = [];
  const phases: Record<string, number[]> = {};
  const pio: number[] = [];
  const irq: number[] = [];
  // Interleave the three measurements so drift in machine load hits all of them alike.
  for (let i = 0; i < opts.repeats; i++) {
    progress(`repeat ${i + 1}/${opts.repeats}: create → first exit`);
    const c = await createToFirstExit();
    first.push(c.firstExitMs);
    for (const [k, v] of Object.entries(c.phases)) (phases[k] ??= []).push(v);
    progress(`repeat ${i + 1}/${opts.repeats}: port I/O × ${opts.pioIterations}`);
    pio.push(await pioRoundTrip(opts.pioIterations));
    progress(`repeat ${i + 1}/${opts.repeats}: ioeventfd → irqfd × ${opts.irqIterations}`);
    irq.push(await irqRoundTrip(opts.irqIterations));
  }
  return {
    createToFirstExitMs: { samples: first, summary: summarize(first) },
    createPhasesMs: phases,
    pioRoundTripUs: { samples: pio, summary: summarize(pio) },
    irqRoundTripUs: { samples: irq, summary: summarize(irq) },
  };
}
