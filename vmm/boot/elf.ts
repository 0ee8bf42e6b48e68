// Just enough ELF64 to load an x86_64 `vmlinux`: validate the header, list the PT_LOAD segments
// and copy them to their physical addresses in guest memory. The file comes from the user, so
// every offset and size is checked before use. Pure: reads a buffer, writes GuestMemory.

import { FaasnapError } from '../../common/errors.js';
import type { GuestMemory } from '../guest-memory.js';

const ELF_MAGIC = 0x464c457f; // "\x7fELF" read little-endian
const ELFCLASS64 = 2;
const ELFDATA2LSB = 1;
const ET_EXEC = 2;
const EM_X86_64 = 62;
const PT_LOAD = 1;
const EHDR_SIZE = 64;
const PHDR_SIZE = 56;

export interface ElfSegment {
  /** Physical load address (p_paddr; vmlinux links its virtual addresses elsewhere). */
  paddr: number;
  fileOffset: number;
  fileSize: number;
  memSize: number;
}

export interface ElfImage {
  /** e_entry: for vmlinux the physical address of startup_64. */
  entry: number;
  segments: ElfSegment[];
  /** First byte above every segment (bss included). */
  end: number;
}

function invalid(detail: string): FaasnapError {
  return new FaasnapError('GUEST_IMAGE_INVALID', `kernel ELF: ${detail}`);
}

function u64(view: DataView, off: number, what: string): number {
  const v = view.getBigUint64(off, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw invalid(`${what} 0x${v.toString(16)} too large`);
  return Number(v);
}

/** Parses and validates an ELF64 x86_64 executable; does not copy anything. */
export function parseElf(file: Uint8Array): ElfImage {
  if (file.length < EHDR_SIZE) throw invalid(`file is ${file.length} bytes`);
  const v = new DataView(file.buffer, file.byteOffset, file.byteLength);
  if (v.getUint32(0, true) !== ELF_MAGIC) throw invalid('no ELF magic (is this a bzImage?)');
  if (v.getUint8(4) !== ELFCLASS64 || v.getUint8(5) !== ELFDATA2LSB) {
    throw invalid('not a little-endian 64-bit ELF');
  }
  if (v.getUint16(16, true) !== ET_EXEC || v.getUint16(18, true) !== EM_X86_64) {
    throw invalid('not an x86_64 executable');
  }
  const entry = u64(v, 24, 'entry');
  const phoff = u64(v, 32, 'program header offset');
  const phentsize = v.getUint16(54, true);
  const phnum = v.getUint16(56, true);
  if (phentsize < PHDR_SIZE) throw invalid(`program header size ${phentsize}`);
  if (phoff + phnum * phentsize > file.length) throw invalid('program headers past end of file');

  const segments: ElfSegment[] = [];
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    if (v.getUint32(at, true) !== PT_LOAD) continue;
    const seg: ElfSegment = {
      fileOffset: u64(v, at + 8, 'segment offset'),
      paddr: u64(v, at + 24, 'segment address'),
      fileSize: u64(v, at + 32, 'segment file size'),
      memSize: u64(v, at + 40, 'segment memory size'),
    };
    if (seg.fileSize > seg.memSize) throw invalid(`segment ${i} file size exceeds memory size`);
    if (seg.fileOffset + seg.fileSize > file.length) throw invalid(`segment ${i} past end of file`);
    if (seg.memSize > 0) segments.push(seg);
  }
  if (segments.length === 0) throw invalid('no loadable segments');
  segments.sort((a, b) => a.paddr - b.paddr);
  for (let i = 1; i < segments.length; i++) {
    const prev = segments[i - 1]!;
    if (prev.paddr + prev.memSize > segments[i]!.paddr) throw invalid('segments overlap');
  }
  const last = segments[segments.length - 1]!;
  const end = last.paddr + last.memSize;
  if (!segments.some((s) => entry >= s.paddr && entry < s.paddr + s.memSize)) {
    throw invalid(`entry 0x${entry.toString(16)} is outside every segment`);
  }
  return { entry, segments, end };
}

/**
 * Copies every segment's file bytes to its physical address. The bss tail (memSize beyond
 * fileSize) is not written: guest RAM starts zeroed and Linux clears its own bss anyway.
 */
export function loadElf(mem: GuestMemory, file: Uint8Array, image: ElfImage): void {
  for (const s of image.segments) {
    if (!mem.contains(s.paddr, s.memSize)) {
      throw new FaasnapError(
        'INVALID_VM_CONFIG',
        `kernel segment [0x${s.paddr.toString(16)}, +0x${s.memSize.toString(16)}) does not fit ` +
          'in guest RAM (more memory needed)',
      );
    }
    mem.write(s.paddr, file.subarray(s.fileOffset, s.fileOffset + s.fileSize));
  }
}
