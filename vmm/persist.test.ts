// The persist contract holds for every stateful device: the compiler checks the static side
// (`restore(args, state)`) and the instance side (`save(): State`) of each class here.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Cmos, type CmosOptions, type CmosState } from './devices/legacy/cmos.js';
import { I8042, type I8042Options, type I8042State } from './devices/legacy/i8042.js';
import { Serial, type SerialOptions, type SerialState } from './devices/legacy/serial.js';
import {
  VirtioMmioTransport,
  type VirtioMmioRestoreArgs,
  type VirtioMmioState,
} from './devices/virtio/mmio.js';
import { Queue, type QueueState } from './devices/virtio/queue.js';
import {
  VirtioBlock,
  type VirtioBlockOptions,
  type VirtioBlockState,
} from './devices/virtio/block/device.js';
import {
  VirtioConsole,
  type VirtioConsoleOptions,
  type VirtioConsoleState,
} from './devices/virtio/console/device.js';
import type { GuestMemory } from './guest-memory.js';
import type { Persist, Restorer } from './persist.js';

test('every device follows the persist contract (typed save, restore from args and state)', () => {
  const restorers: [
    Restorer<CmosOptions, Cmos & Persist<CmosState>>,
    Restorer<I8042Options, I8042 & Persist<I8042State>>,
    Restorer<SerialOptions, Serial & Persist<SerialState>>,
    Restorer<VirtioBlockOptions, VirtioBlock & Persist<VirtioBlockState>>,
    Restorer<VirtioConsoleOptions, VirtioConsole & Persist<VirtioConsoleState>>,
    Restorer<VirtioMmioRestoreArgs, VirtioMmioTransport & Persist<VirtioMmioState>>,
    Restorer<{ memory: GuestMemory; maxSize: number }, Queue & Persist<QueueState>>,
  ] = [Cmos, I8042, Serial, VirtioBlock, VirtioConsole, VirtioMmioTransport, Queue];
  for (const r of restorers) assert.equal(typeof r.restore, 'function');
});
