/*
 * hang: vCPU 0 prints "hanging\n"; then every vCPU enters CPL3 and spins (`jmp .`) with
 * interrupts off, never exiting to the VMM, which must stop the VM by a timeout (kick the
 * vCPU threads out of KVM_RUN). No parameters.
 */
#include "common.h"

	.section .text.entry, "ax"
	.globl _start
_start:
	test %rdi, %rdi
	jnz 1f
	PUTS "hanging\n"
1:	ENTER_USER spin

	.text
spin:
	jmp spin
