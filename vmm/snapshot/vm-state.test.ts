import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isFaasnapError } from '../../common/errors.js';
import { LAYOUTS, decodeStructBlob } from '../kvm/structs.js';
import { validateState } from '../../common/state.js';
import { VmConfigSchema, VmSavedStateSchema } from './vm-state.js';
import { VcpuStateSchema } from './vcpu-state.js';

const blob = (struct: keyof typeof LAYOUTS): string =>
  Buffer.alloc(LAYOUTS[struct].size).toString('base64');

function validVm(): Record<string, unknown> {
  return {
    vcpus: [{}],
    irqchip: {
      picMaster: blob('kvm_irqchip'),
      picSlave: blob('kvm_irqchip'),
      ioapic: blob('kvm_irqchip'),
    },
    pit: blob('kvm_pit_state2'),
    clock: blob('kvm_clock_data'),
    serial: {},
    i8042: {},
    virtio: [
      { spec: { kind: 'virtio-blk', path: '/d.img', writable: false, serial: 's' }, transport: {} },
    ],
  };
}

test('a well-formed VM state passes and each malformed field is named', () => {
  assert.doesNotThrow(() => validateState('VM', VmSavedStateSchema, validVm()));
  const cases: [string, (s: Record<string, unknown>) => void][] = [
    ['no vCPUs', (s) => (s.vcpus = [])],
    ['non-base64 pit', (s) => (s.pit = 'not base64!')],
    [
      'unknown device kind',
      (s) => ((s.virtio as { spec: { kind: string } }[])[0]!.spec.kind = 'virtio-gpu'),
    ],
    ['extra field', (s) => (s.extra = 1)],
  ];
  for (const [name, mutate] of cases) {
    const s = validVm();
    mutate(s);
    assert.throws(
      () => validateState('VM', VmSavedStateSchema, s),
      (e) => isFaasnapError(e, 'STATE_INVALID'),
      name,
    );
  }
});

test('VM config and vCPU state schemas refuse out-of-range values', () => {
  const config = { memMiB: 64, vcpus: 2, cpuTemplate: 'pvm-safe', consoleLogBytes: 1 << 20 };
  assert.doesNotThrow(() => validateState('config', VmConfigSchema, config));
  assert.throws(
    () => validateState('config', VmConfigSchema, { ...config, vcpus: 9 }),
    (e) => isFaasnapError(e, 'STATE_INVALID'),
  );
  assert.throws(() => validateState('config', VmConfigSchema, { ...config, cpuTemplate: 'amd' }));
  assert.throws(
    () => validateState('vcpu', VcpuStateSchema, { index: 0, regs: { rax: '0x1' } }),
    (e) => isFaasnapError(e, 'STATE_INVALID'),
  );
});

test('struct blobs of the wrong size are refused before they reach KVM', () => {
  assert.equal(decodeStructBlob(blob('kvm_lapic_state'), 'kvm_lapic_state').length, 1024);
  const short = Buffer.alloc(1023).toString('base64');
  assert.throws(
    () => decodeStructBlob(short, 'kvm_lapic_state', 'lapic'),
    (e) => isFaasnapError(e, 'STATE_INVALID'),
  );
});
