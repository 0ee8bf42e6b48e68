// Tier 2: VM lifecycle on real KVM — pause/resume keeps the guest's running state, stop releases
// every fd, thread and mapping, and guests that crash or hang end with a clear error.

import { scaledMs } from '../../common/time-scale.js';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { isFaasnapError } from '../../common/errors.js';
import {
  TOUCH_FLAG_PROGRESS,
  TOUCH_FLAG_WRITE,
  encodeTouchParams,
  parseTouchOutput,
  touchExpectedChecksum,
} from '../../guest/micro/index.js';
import { createMicroVm, dataPages } from '../../guest/micro/launch.js';
import { Vm } from '../../vmm/vm.js';
import { kvmTest, openFds, threads, threadsSettled, vmMappings } from './support.js';

kvmTest('pause parks every vCPU mid-computation and resume finishes it correctly', async () => {
  const pages = Array.from({ length: dataPages(128) }, (_, i) => i);
  const params = { flags: TOUCH_FLAG_WRITE | TOUCH_FLAG_PROGRESS, seed: 7, pages };
  const vm = createMicroVm({
    guest: 'touch',
    memMiB: 128,
    vcpus: 2,
    params: encodeTouchParams(params),
  });
  const done = vm.runToCompletion(scaledMs(60_000));
  await vm.console.waitFor(/progress 0000000000000[1-9a-f]00/, scaledMs(30_000));
  await vm.pause();
  assert.equal(vm.state, 'paused');
  assert.ok(vm.vcpus.every((v) => v.runState === 'parked'));
  const rip = vm.vcpus[0]!.getRegs().rip;
  const outputWhilePaused = vm.console.text().length;
  await sleep(200);
  // Parked vCPUs do not run: no output and the same instruction pointer.
  assert.equal(vm.console.text().length, outputWhilePaused);
  assert.equal(vm.vcpus[0]!.getRegs().rip, rip);
  assert.throws(
    () => vm.start(),
    (e) => isFaasnapError(e, 'INVALID_VM_STATE'),
  );
  vm.resume();
  assert.equal(vm.state, 'running');
  const exit = await done;
  assert.equal(exit.reason, 'reset');
  const out = parseTouchOutput(vm.console.text());
  assert.equal(out.checksum, touchExpectedChecksum(params));
  assert.ok(out.progress.length > 2);
});

kvmTest('stop releases every fd, thread and mapping, also mid-run and with a disk', async () => {
  // Warm-up: lets Node create its lazily started threads and mappings before we count.
  await createMicroVm({ guest: 'hello', memMiB: 16, vcpus: 2 }).runToCompletion(scaledMs(30_000));
  // Sizes V8 does not use, so guest RAM is told apart from Node's own mappings.
  const sizes = [40, 24];
  // Mappings first: their async read starts libuv's thread pool (Node 24 starts it lazily).
  const maps = await vmMappings(sizes);
  const before = { fds: openFds(), threads: threads(), maps };

  const finished = createMicroVm({ guest: 'hello', memMiB: 40, vcpus: 2 });
  await finished.runToCompletion(scaledMs(30_000));

  const midRun = createMicroVm({ guest: 'hang', memMiB: 40, vcpus: 2 });
  midRun.start();
  await midRun.console.waitFor('hanging', scaledMs(10_000));
  assert.ok(threads() >= before.threads + 2, 'each vCPU has its own thread while running');
  midRun.stop();
  assert.equal(midRun.state, 'stopped');
  assert.equal((await midRun.wait()).reason, 'stopped');

  const never = Vm.create({ memMiB: 24, vcpus: 1 });
  never.stop();

  assert.deepEqual(
    {
      fds: openFds(),
      threads: await threadsSettled(before.threads),
      maps: await vmMappings(sizes),
    },
    before,
  );
});

kvmTest('a guest that triple-faults is reported as GUEST_TRIPLE_FAULT and released', async () => {
  const before = openFds();
  const vm = createMicroVm({ guest: 'triple-fault', memMiB: 16, vcpus: 1 });
  await assert.rejects(vm.runToCompletion(scaledMs(30_000)), (e) =>
    isFaasnapError(e, 'GUEST_TRIPLE_FAULT'),
  );
  assert.equal(vm.state, 'stopped');
  assert.match(vm.console.text(), /about to fault/);
  assert.equal(openFds(), before);
});

kvmTest('a guest that never exits is stopped by the timeout with GUEST_TIMEOUT', async () => {
  const before = openFds();
  const vm = createMicroVm({ guest: 'hang', memMiB: 16, vcpus: 2 });
  const t0 = performance.now();
  await assert.rejects(vm.runToCompletion(500), (e) => isFaasnapError(e, 'GUEST_TIMEOUT'));
  assert.ok(performance.now() - t0 < 5_000, 'the timeout interrupts KVM_RUN promptly');
  assert.equal(vm.state, 'stopped');
  assert.equal(openFds(), before);
});

kvmTest('invalid configurations and images are refused before anything is created', () => {
  const before = openFds();
  assert.throws(
    () => Vm.create({ memMiB: 0, vcpus: 1 }),
    (e) => isFaasnapError(e, 'INVALID_VM_CONFIG'),
  );
  assert.throws(
    () => Vm.create({ memMiB: 16, vcpus: 0 }),
    (e) => isFaasnapError(e, 'INVALID_VM_CONFIG'),
  );
  assert.throws(
    () => Vm.create({ memMiB: 16, vcpus: 99 }),
    (e) => isFaasnapError(e, 'INVALID_VM_CONFIG'),
  );
  assert.throws(
    () => createMicroVm({ guest: '/nonexistent/image.bin', memMiB: 16, vcpus: 1 }),
    (e) => isFaasnapError(e, 'GUEST_IMAGE_INVALID'),
  );
  assert.throws(
    () => createMicroVm({ guest: 'virtio-blk', memMiB: 16, vcpus: 1 }),
    (e) => isFaasnapError(e, 'INVALID_VM_CONFIG'),
  );
  assert.equal(openFds(), before);
});
