import assert from 'node:assert/strict';
import { test } from 'node:test';
import { native } from '../../native/index.js';
import {
  LAYOUTS,
  REG_NAMES,
  decodeCpuid2,
  decodeMsrs,
  decodeRegs,
  decodeSregs,
  encodeCpuid2,
  encodeMsrs,
  encodeRegs,
  encodeSregs,
  initialFpu,
} from './structs.js';

test('every struct layout used from TypeScript matches the kernel headers', () => {
  const fromHeaders = native.layouts();
  assert.deepEqual(Object.keys(LAYOUTS).sort(), Object.keys(fromHeaders).sort());
  for (const [name, layout] of Object.entries(LAYOUTS)) {
    const h = fromHeaders[name]!;
    assert.equal(layout.size, h.size, `sizeof(struct ${name})`);
    assert.deepEqual(layout.fields, h.fields, `field offsets of struct ${name}`);
  }
});

test('flexible-array headers have their C sizes (not the C++ ones)', () => {
  // __DECLARE_FLEX_ARRAY adds a byte in C++; the ioctl request codes encode the C size.
  assert.equal(LAYOUTS.kvm_cpuid2.size, 8);
  assert.equal(LAYOUTS.kvm_cpuid2.fields.entries, 8);
  assert.equal(LAYOUTS.kvm_msrs.fields.entries, 8);
  assert.equal(LAYOUTS.kvm_msr_list.fields.indices, 4);
  assert.equal(LAYOUTS.kvm_xsave.size, 4096);
});

test('kvm_regs round-trips and places rip/rflags at their offsets', () => {
  const regs = Object.fromEntries(
    REG_NAMES.map((n, i) => [n, (BigInt(i + 1) << 32n) | 0xabn]),
  ) as ReturnType<typeof decodeRegs>;
  const b = encodeRegs(regs);
  assert.equal(b.length, 144);
  assert.equal(b.readBigUInt64LE(128), regs.rip);
  assert.deepEqual(decodeRegs(b), regs);
});

test('kvm_sregs round-trips segments, tables and control registers', () => {
  const raw = Buffer.alloc(LAYOUTS.kvm_sregs.size);
  for (let i = 0; i < raw.length; i++) raw[i] = (i * 7) & 0xff;
  // Padding bytes are not modelled, so compare after one normalising round trip.
  const once = encodeSregs(decodeSregs(raw));
  const s = decodeSregs(once);
  assert.deepEqual(decodeSregs(encodeSregs(s)), s);
  assert.equal(s.cr3, raw.readBigUInt64LE(240));
  assert.equal(s.cs.selector, raw.readUInt16LE(12));
});

test('kvm_cpuid2 and kvm_msrs encode counts and entries', () => {
  const entries = [
    {
      function: 0,
      index: 0,
      flags: 0,
      eax: 0xd,
      ebx: 0x756e6547,
      ecx: 0x6c65746e,
      edx: 0x49656e69,
    },
    { function: 7, index: 1, flags: 1, eax: 1, ebx: 2, ecx: 3, edx: 0xffffffff },
  ];
  const c = encodeCpuid2(entries);
  assert.equal(c.length, 8 + 2 * 40);
  assert.equal(c.readUInt32LE(0), 2);
  assert.deepEqual(decodeCpuid2(c), entries);
  const msrs = [{ index: 0xc0000080, data: 0xd01n }];
  const m = encodeMsrs(msrs);
  assert.equal(m.readUInt32LE(0), 1);
  assert.deepEqual(decodeMsrs(m, 1), msrs);
});

test('initial FPU state has the reset control word and MXCSR', () => {
  const f = initialFpu();
  assert.equal(f.readUInt16LE(LAYOUTS.kvm_fpu.fields.fcw), 0x37f);
  assert.equal(f.readUInt32LE(LAYOUTS.kvm_fpu.fields.mxcsr), 0x1f80);
});
