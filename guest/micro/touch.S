/*
 * touch: touch data-area pages in a given order at CPL3 (native speed) and checksum them;
 * the workload for the memory loaders and snapshot tests.
 *
 * Parameters (rsi, length rcx), little-endian u64s:
 *   +0  flags   bit 0: write the pattern into each page before reading it
 *               bit 1: print a progress line every 256 pages
 *   +8  seed
 *   +16 count
 *   +24 count page indices p; page p is at GPA 0x400000 + p*4096 (the VMM checks RAM)
 *
 * Pattern (mod 2^64), for word w (0..511) of page p, g = p*512 + w:
 *   m = (seed XOR g) * 0x9e3779b97f4a7c15;  word = m XOR (m >> 32)
 * Checksum: FNV-1a over 64-bit words, in list order (a page listed twice counts twice):
 *   h = 0xcbf29ce484222325; for each word: h = (h XOR word) * 0x100000001b3
 *
 * Output (vCPU 0 only; other vCPUs park):
 *   progress <i hex16>\n     (bit 1 only) before list entry i, for i = 0, 256, 512, ... < count
 *   cycles=<hex16>\n         rdtsc delta around the page loop
 *   touch pages=<count hex16> checksum=<hex16>\n
 *   touch error params\n     if the blob is too short for its count
 * then shutdown.
 */
#include "common.h"

#define TOUCH_FLAG_WRITE    1
#define TOUCH_FLAG_PROGRESS 2

	.section .text.entry, "ax"
	.globl _start
_start:
	test %rdi, %rdi
	jnz park
	mov %rsi, %r12                  /* blob */
	mov %rcx, %r13                  /* blob length */
	ENTER_USER user_main

	.text
user_main:
	cmp $24, %r13
	jb bad_params
	mov 16(%r12), %rbx              /* count */
	lea -24(%r13), %rax
	shr $3, %rax                    /* indices that fit in the blob */
	cmp %rax, %rbx
	ja bad_params
	mov (%r12), %r14                /* flags */
	mov 8(%r12), %r15               /* seed */
	movabs $0xcbf29ce484222325, %r8 /* h */
	movabs $0x100000001b3, %r10     /* FNV prime */
	movabs $0x9e3779b97f4a7c15, %r11 /* pattern multiplier */
	rdtsc
	shl $32, %rdx
	or %rdx, %rax
	mov %rax, %rbp                  /* start TSC */
	xor %r9d, %r9d                  /* i */

next_page:
	cmp %rbx, %r9
	jae done
	test $TOUCH_FLAG_PROGRESS, %r14
	jz 1f
	test $255, %r9
	jnz 1f
	PUTS "progress "
	PUT_HEX64 %r9
	PUTC 0x0a
1:	mov 24(%r12,%r9,8), %rax        /* p */
	mov %rax, %rdi
	shl $12, %rdi
	add $DATA_BASE, %rdi            /* page address */
	test $TOUCH_FLAG_WRITE, %r14
	jz read_page

	mov %rax, %rsi
	shl $9, %rsi                    /* g = p*512 */
	mov %rdi, %rdx
	mov $512, %ecx
2:	mov %r15, %rax
	xor %rsi, %rax
	imul %r11, %rax
	mov %rax, %r13
	shr $32, %r13
	xor %r13, %rax
	mov %rax, (%rdx)
	inc %rsi
	add $8, %rdx
	dec %ecx
	jnz 2b

read_page:
	mov %rdi, %rdx
	mov $512, %ecx
3:	xor (%rdx), %r8
	imul %r10, %r8
	add $8, %rdx
	dec %ecx
	jnz 3b
	inc %r9
	jmp next_page

done:
	rdtsc
	shl $32, %rdx
	or %rdx, %rax
	sub %rbp, %rax
	PUTS "cycles="
	call put_hex64
	PUTC 0x0a
	PUTS "touch pages="
	PUT_HEX64 %rbx
	PUTS " checksum="
	PUT_HEX64 %r8
	PUTC 0x0a
	jmp shutdown

bad_params:
	PUTS "touch error params\n"
	jmp shutdown
