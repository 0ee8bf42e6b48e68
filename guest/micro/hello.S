/*
 * hello: smoke test of entry state, CPL0 -> CPL3, a native-speed CPL3 loop and SMP start.
 *
 * No parameters. Output of vCPU 0 (other vCPUs print nothing):
 *   hello from CPL0\n
 *   hello from CPL3 sum=<16 lowercase hex digits>\n
 *   vcpus=<n>\n             n in decimal = vCPUs checked in, vCPU 0 included (= rdx)
 *   (or vcpus=timeout\n if they did not all check in within HELLO_WAIT_SPINS pauses)
 * then shutdown (port 0x64 <- 0xfe).
 *
 * Sum (all arithmetic mod 2^64; Knuth's MMIX LCG constants):
 *   A = 6364136223846793005, C = 1442695040888963407, N = 10,000,000
 *   x_0 = 0, s_0 = 0; for i = 1..N: x_i = A*x_{i-1} + C, s_i = s_{i-1} + x_i
 *   printed value: s_N
 *
 * SMP: vCPU i != 0 does `lock incq` on the u64 at 0x400000 (VAR_HELLO_COUNTER) and parks
 * (cli; hlt). vCPU 0 waits at CPL3 until the counter reaches rdx-1. The counter is not
 * cleared by the guest (that would race with the other vCPUs): it relies on guest RAM
 * being zero at boot.
 */
#include "common.h"

#define HELLO_ITERATIONS 10000000
#define HELLO_WAIT_SPINS 0x4000000       /* 64M `pause`: ~2 s on the dev host (AMD EPYC) */

	.section .text.entry, "ax"
	.globl _start
_start:
	test %rdi, %rdi
	jnz secondary
	PUTS "hello from CPL0\n"
	mov %rdx, %r12                  /* vCPU count, survives the switch to CPL3 */
	ENTER_USER user_main

secondary:
	lock incq VAR_HELLO_COUNTER
	jmp park

	.text
user_main:
	xor %eax, %eax                  /* x */
	xor %edx, %edx                  /* s */
	movabs $6364136223846793005, %rbx
	movabs $1442695040888963407, %rcx
	mov $HELLO_ITERATIONS, %esi
1:	imul %rbx, %rax
	add %rcx, %rax
	add %rax, %rdx
	dec %esi
	jnz 1b

	PUTS "hello from CPL3 sum="
	PUT_HEX64 %rdx
	PUTC 0x0a

	lea -1(%r12), %rbx              /* expected check-ins */
	mov $HELLO_WAIT_SPINS, %ecx
2:	mov VAR_HELLO_COUNTER, %rax
	cmp %rbx, %rax
	jae 3f
	pause
	dec %ecx
	jnz 2b
	PUTS "vcpus=timeout\n"
	jmp shutdown
3:	PUTS "vcpus="
	inc %rax                        /* + vCPU 0 itself */
	call put_dec
	PUTC 0x0a
	jmp shutdown
