/*
 * triple-fault: vCPU 0 prints "about to fault\n", loads an empty IDT (limit 0) and
 * executes ud2: the #UD cannot be delivered (#GP), nor can the #GP (#DF), nor the #DF,
 * so the CPU shuts down and the VMM must report KVM_EXIT_SHUTDOWN. No parameters.
 * Other vCPUs park.
 *
 * Not int3: on the PVM host, int3 at CPL0 is not handled by KVM's instruction emulator
 * and ends in KVM_EXIT_INTERNAL_ERROR (emulation failure) instead of a triple fault;
 * ud2 triple-faults there as on hardware KVM (measured).
 * Should ud2 somehow return, it prints "triple-fault: still alive\n" and resets
 * (reason "reset", which a test must treat as failure).
 */
#include "common.h"

	.section .text.entry, "ax"
	.globl _start
_start:
	test %rdi, %rdi
	jnz park
	PUTS "about to fault\n"
	lea empty_idtr(%rip), %rax
	lidt (%rax)
	ud2
	PUTS "triple-fault: still alive\n"
	jmp shutdown

	.section .rodata
	.balign 16
empty_idtr:
	.word 0         /* limit */
	.quad 0         /* base */
