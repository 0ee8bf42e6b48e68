/*
 * bench: exit-path micro-benchmarks; the host times the run.
 *
 * Parameters (rsi, length rcx >= 32), little-endian u64s:
 *   +0  op          1 = pio, 2 = irq ping-pong
 *   +8  iterations
 *   +16 port        (< 0x10000)
 *   +24 GSI         (op 2 only, < 24)
 *
 * op 1 (pio): at CPL3 with IOPL=3, `iterations` x `outb %al, (port)` (al = 0), then
 *   bench pio done\n
 * op 2 (irq): at CPL0 (interrupts need it), IDT/LAPIC/IOAPIC as in virtio-blk.S with the
 *   GSI on vector 0x30, whose handler counts and EOIs. For each iteration i (1-based):
 *   `outb %al, (port)` (al = 0; the VMM makes it an ioeventfd and answers on the GSI's
 *   irqfd), then `sti; hlt` until the count is >= i. Then
 *   bench irq done count=<interrupts counted, hex16>\n
 * Errors: "bench error params|op|port|gsi|map\n". Always ends with shutdown; vCPUs other
 * than 0 park.
 */
#include "common.h"

#define BENCH_OP_PIO 1
#define BENCH_OP_IRQ 2

	.section .text.entry, "ax"
	.globl _start
_start:
	test %rdi, %rdi
	jnz park
	jmp main

	.text
main:
	cmp $32, %rcx
	jb err_params
	mov (%rsi), %rbx                /* op */
	mov 8(%rsi), %r14               /* iterations */
	mov 16(%rsi), %r15              /* port */
	mov 24(%rsi), %r13              /* GSI */
	cmp $0xffff, %r15
	ja err_port
	cmp $BENCH_OP_PIO, %rbx
	je pio
	cmp $BENCH_OP_IRQ, %rbx
	je irq
	PUTS "bench error op\n"
	jmp shutdown

pio:
	ENTER_USER pio_user
pio_user:
	mov %r15d, %edx
	xor %eax, %eax
	mov %r14, %rcx
	test %rcx, %rcx
	jz 2f
1:	out %al, %dx
	dec %rcx
	jnz 1b
2:	PUTS "bench pio done\n"
	jmp shutdown

irq:
	cmp $IOAPIC_PINS, %r13
	jae err_gsi
	movq $0, VAR_IRQ_COUNT
	movq $0, VAR_VIRTIO_BASE        /* no device to acknowledge */
	movq $0, VAR_NEXT_PT_PAGE
	mov $IOAPIC_BASE, %eax
	call map_mmio_2m
	jc err_map
	mov $LAPIC_BASE, %eax
	call map_mmio_2m
	jc err_map
	call idt_init
	mov %r13d, %eax
	call irq_init
	mov %r15d, %edx
	xor %ebx, %ebx                  /* i */
1:	cmp %r14, %rbx
	jae 3f
	inc %rbx
	xor %eax, %eax
	out %al, %dx
2:	cli
	cmp VAR_IRQ_COUNT, %rbx
	jbe 1b                          /* count >= i */
	sti
	hlt
	jmp 2b
3:	cli
	PUTS "bench irq done count="
	PUT_HEX64 VAR_IRQ_COUNT
	PUTC 0x0a
	jmp shutdown

err_params:
	PUTS "bench error params\n"
	jmp shutdown
err_port:
	PUTS "bench error port\n"
	jmp shutdown
err_gsi:
	PUTS "bench error gsi\n"
	jmp shutdown
err_map:
	PUTS "bench error map\n"
	jmp shutdown
