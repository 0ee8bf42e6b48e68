import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MSR } from '../cpu/boot-state.js';
import { msrRestoreOrder } from './vcpu-state.js';

const m = (index: number) => ({ index, data: 1n });

test('restore order: no wall-clock MSRs, the async-PF vector before enabling, the rest as KVM lists', () => {
  // KVM_GET_MSR_INDEX_LIST's order: architectural MSRs first, then its emulated list.
  const listed = [
    MSR.STAR,
    MSR.IA32_TSC,
    MSR.KVM_WALL_CLOCK,
    MSR.KVM_SYSTEM_TIME_NEW,
    MSR.KVM_WALL_CLOCK_NEW,
    MSR.KVM_ASYNC_PF_EN,
    0x4b564d03, // steal time
    MSR.KVM_ASYNC_PF_INT,
    0x6e0, // TSC_DEADLINE
  ].map(m);
  assert.deepEqual(
    msrRestoreOrder(listed).map((e) => e.index),
    [
      MSR.STAR,
      MSR.IA32_TSC,
      MSR.KVM_SYSTEM_TIME_NEW,
      MSR.KVM_ASYNC_PF_INT,
      MSR.KVM_ASYNC_PF_EN,
      0x4b564d03,
      0x6e0,
    ],
  );
});

test('restore order leaves lists without paravirt MSRs (pvm-safe) untouched', () => {
  const listed = [MSR.STAR, MSR.LSTAR, MSR.IA32_TSC].map(m);
  assert.deepEqual(msrRestoreOrder(listed), listed);
  // INT already before EN stays so.
  const ok = [MSR.KVM_ASYNC_PF_INT, MSR.KVM_ASYNC_PF_EN].map(m);
  assert.deepEqual(msrRestoreOrder(ok), ok);
});
