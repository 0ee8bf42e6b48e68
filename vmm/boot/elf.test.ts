import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isFaasnapError } from '../../common/errors.js';
import { GuestMemory } from '../guest-memory.js';
import { loadElf, parseElf } from './elf.js';

interface Seg {
  type?: number;
  offset: number;
  paddr: number;
  vaddr?: number;
  filesz: number;
  memsz: number;
}

/** A hand-made ELF64 x86_64 executable with the given program headers and file size. */
function elf(entry: number, segs: Seg[], size = 0x3000, patch?: (v: DataView) => void): Buffer {
  const b = Buffer.alloc(size);
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  b.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], 0);
  v.setUint16(16, 2, true); // ET_EXEC
  v.setUint16(18, 62, true); // EM_X86_64
  v.setBigUint64(24, BigInt(entry), true);
  v.setBigUint64(32, 64n, true); // phoff
  v.setUint16(54, 56, true);
  v.setUint16(56, segs.length, true);
  segs.forEach((s, i) => {
    const p = 64 + i * 56;
    v.setUint32(p, s.type ?? 1, true);
    v.setBigUint64(p + 8, BigInt(s.offset), true);
    v.setBigUint64(p + 16, BigInt(s.vaddr ?? 0xffffffff80000000 + s.paddr), true);
    v.setBigUint64(p + 24, BigInt(s.paddr), true);
    v.setBigUint64(p + 32, BigInt(s.filesz), true);
    v.setBigUint64(p + 40, BigInt(s.memsz), true);
  });
  patch?.(v);
  return b;
}

const invalid = (e: unknown): boolean => isFaasnapError(e, 'GUEST_IMAGE_INVALID');

test('PT_LOAD segments by physical address, others skipped, end includes bss', () => {
  const f = elf(0x100000, [
    { offset: 0x2000, paddr: 0x200000, vaddr: 0, filesz: 0x100, memsz: 0x1000 }, // percpu-like
    { type: 4, offset: 0, paddr: 0, filesz: 0x10, memsz: 0x10 }, // PT_NOTE
    { offset: 0x1000, paddr: 0x100000, filesz: 0x800, memsz: 0x800 },
  ]);
  const img = parseElf(f);
  assert.equal(img.entry, 0x100000);
  assert.deepEqual(
    img.segments.map((s) => [s.paddr, s.fileOffset]),
    [
      [0x100000, 0x1000],
      [0x200000, 0x2000],
    ],
  );
  assert.equal(img.end, 0x201000);
});

test('loadElf copies file bytes to physical addresses', () => {
  const f = elf(0x1000, [{ offset: 0x1000, paddr: 0x1000, filesz: 4, memsz: 0x100 }]);
  f.set([1, 2, 3, 4], 0x1000);
  const mem = new GuestMemory([{ gpa: 0, bytes: new Uint8Array(0x4000) }]);
  loadElf(mem, f, parseElf(f));
  assert.deepEqual([...mem.slice(0x1000, 5)], [1, 2, 3, 4, 0]);
  const big = elf(0x1000, [{ offset: 0x1000, paddr: 0x1000, filesz: 4, memsz: 0x8000 }]);
  assert.throws(
    () => loadElf(mem, big, parseElf(big)),
    (e) => isFaasnapError(e, 'INVALID_VM_CONFIG'),
  );
});

test('malformed images are rejected with GUEST_IMAGE_INVALID', () => {
  const ok: Seg = { offset: 0x1000, paddr: 0x1000, filesz: 0x10, memsz: 0x10 };
  const cases: Buffer[] = [
    Buffer.alloc(10),
    Buffer.from('MZ not an elf at all, padding padding padding padding padding padding.'),
    elf(0x1000, [ok], 0x3000, (v) => v.setUint8(4, 1)), // 32-bit
    elf(0x1000, [ok], 0x3000, (v) => v.setUint16(18, 3, true)), // i386
    elf(0x1000, [ok], 0x3000, (v) => v.setUint16(56, 500, true)), // phdrs past EOF
    elf(0x1000, [{ ...ok, offset: 0x2ff0, filesz: 0x100, memsz: 0x100 }]), // data past EOF
    elf(0x1000, [{ ...ok, filesz: 0x20 }]), // filesz > memsz
    elf(0x9000, [ok]), // entry outside
    elf(0x1000, [ok, { ...ok, paddr: 0x1008 }]), // overlap
    elf(0x1000, [{ ...ok, type: 4 }]), // nothing loadable
  ];
  for (const f of cases) assert.throws(() => parseElf(f), invalid);
});
