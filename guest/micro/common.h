/*
 * Shared definitions for the micro-guests (see ABI.md). Included at the top of every
 * guest .S file; the guest's entry must be in section .text.entry (micro.ld puts it
 * first), the library routines below live in .text.lib after it.
 *
 * Register convention of the library routines: arguments in the registers named in
 * each comment, every register (and the flags' meaning for the caller) preserved
 * unless stated otherwise. They work at CPL0 and at CPL3 (port I/O needs IOPL=3 there).
 *
 * CPL0 code is emulated on PVM hosts (~1-2 us per instruction): keep it to plain
 * integer instructions, no SSE/x87, no string instructions.
 */
#ifndef MICRO_COMMON_H
#define MICRO_COMMON_H

/* Devices (ABI.md "Devices"). */
#define UART_PORT        0x3f8
#define RESET_PORT       0x64
#define RESET_VALUE      0xfe
#define PIC1_DATA        0x21
#define PIC2_DATA        0xa1

/* GDT selectors set up by the VMM (ABI.md). */
#define KERNEL_CS        0x08
#define KERNEL_DS        0x10
#define USER_DS          0x1b
#define USER_CS          0x23

/* RFLAGS for CPL3: IOPL=3 (bits 12-13) so in/out work, IF=0, bit 1 always set. */
#define RFLAGS_USER      0x3002

/* Memory map (ABI.md "Memory map"). */
#define IMAGE_BASE       0x100000
#define PARAM_BASE       0x200000
#define DATA_BASE        0x400000
#define PAGE_SIZE        4096

/*
 * Data-area layout shared by the guests that take interrupts (virtio-blk, bench).
 * hello uses VAR_HELLO_COUNTER; touch uses the whole data area for its pages.
 */
#define VARS_BASE        DATA_BASE              /* one page of variables */
#define VAR_HELLO_COUNTER (VARS_BASE + 0x00)    /* hello: check-in counter (u64) */
#define VAR_IRQ_COUNT    (VARS_BASE + 0x08)     /* interrupts seen on IRQ_VECTOR (u64) */
#define VAR_VIRTIO_BASE  (VARS_BASE + 0x10)     /* virtio-mmio base the handler ACKs, 0 = none */
#define VAR_NEXT_PT_PAGE (VARS_BASE + 0x18)     /* bump pointer for page-table pages */
#define IDT_BASE         (DATA_BASE + 0x1000)   /* 256 gates x 16 bytes */
#define IDTR_ADDR        (DATA_BASE + 0x0f00)   /* 10-byte IDTR image for lidt */
#define PT_SPARE_BASE    (DATA_BASE + 0x2000)   /* up to 4 page directories for MMIO */
#define PT_SPARE_END     (DATA_BASE + 0x6000)

/* Interrupt controllers (in-kernel KVM irqchip). */
#define LAPIC_BASE       0xfee00000
#define LAPIC_EOI        0xb0
#define LAPIC_SVR        0xf0
#define LAPIC_LVT_TIMER  0x320
#define LAPIC_LVT_LINT0  0x350
#define LAPIC_TIMER_INIT 0x380
#define LAPIC_TIMER_DIV  0x3e0
#define IOAPIC_BASE      0xfec00000
#define IOAPIC_REGSEL    0x00
#define IOAPIC_WIN       0x10
#define IOAPIC_PINS      24

#define IRQ_VECTOR       0x30   /* device interrupt (routed from the GSI) */
#define TIMER_VECTOR     0x31   /* LAPIC one-shot watchdog */
#define SPURIOUS_VECTOR  0xff

/*
 * Macros. Note: addresses >= 2 GiB must go through a register (a 32-bit absolute
 * displacement is sign-extended in 64-bit mode).
 */

/* Print a string literal; preserves all registers. */
.macro PUTS s
	.pushsection .rodata.str, "a"
.Lputs_str\@:
	.asciz "\s"
	.popsection
	push %rsi
	lea .Lputs_str\@(%rip), %rsi
	call puts
	pop %rsi
.endm

/* Print one character given as a number (e.g. 0x0a); preserves all registers. */
.macro PUTC c
	push %rax
	mov $\c, %eax
	call putc
	pop %rax
.endm

/* Print a 64-bit register as 16 lowercase hex digits; preserves all registers. */
.macro PUT_HEX64 reg
	push %rax
	mov \reg, %rax
	call put_hex64
	pop %rax
.endm

/*
 * Leave CPL0 for good: iretq to `target` at CPL3 with IOPL=3 and interrupts off,
 * continuing on the current stack (all RAM is mapped user-accessible, and nothing
 * ever returns to CPL0: there is no TSS). Clobbers rax; other registers carry over.
 * iretq pops RIP, CS, RFLAGS, RSP, SS, so they are pushed in the reverse order.
 */
.macro ENTER_USER target
	mov %rsp, %rax
	and $-16, %rax
	pushq $USER_DS
	push %rax
	pushq $RFLAGS_USER
	pushq $USER_CS
	lea \target(%rip), %rax
	push %rax
	iretq
.endm

/*
 * Library routines. Emitted into every guest; unused ones cost a few bytes.
 */
	.pushsection .text.lib, "ax"

/* putc: print the byte in al. */
putc:
	push %rdx
	mov $UART_PORT, %edx
	out %al, %dx
	pop %rdx
	ret

/* puts: print the NUL-terminated string at rsi. No LSR polling: the VMM's UART always accepts. */
puts:
	push %rax
	push %rdx
	push %rsi
	mov $UART_PORT, %edx
1:	movzbl (%rsi), %eax
	test %eax, %eax
	jz 2f
	out %al, %dx
	inc %rsi
	jmp 1b
2:	pop %rsi
	pop %rdx
	pop %rax
	ret

/* put_hex64: print rax as 16 hex digits. put_hex8: print al as 2 hex digits. */
put_hex64:
	push %rcx
	push %rbx
	mov %rax, %rbx
	mov $16, %ecx
	jmp put_hex_digits
put_hex8:
	push %rcx
	push %rbx
	mov %rax, %rbx
	shl $56, %rbx
	mov $2, %ecx
	/* fall through: rbx = digits left-aligned, ecx = digit count */
put_hex_digits:
	push %rax
	push %rdx
	mov $UART_PORT, %edx
1:	rol $4, %rbx
	mov %ebx, %eax
	and $15, %eax
	cmp $10, %eax
	jb 2f
	add $0x27, %eax         /* '0' + 10 + 0x27 = 'a' */
2:	add $0x30, %eax
	out %al, %dx
	dec %ecx
	jnz 1b
	pop %rdx
	pop %rax
	pop %rbx
	pop %rcx
	ret

/* put_dec: print rax as an unsigned decimal number. */
put_dec:
	push %rax
	push %rbx
	push %rdx
	push %rsi
	sub $24, %rsp           /* up to 20 digits + NUL */
	lea 23(%rsp), %rsi
	movb $0, (%rsi)
	mov $10, %ebx
1:	xor %edx, %edx
	div %rbx
	add $0x30, %dl
	dec %rsi
	mov %dl, (%rsi)
	test %rax, %rax
	jnz 1b
	call puts
	add $24, %rsp
	pop %rsi
	pop %rdx
	pop %rbx
	pop %rax
	ret

/*
 * shutdown: i8042 CPU reset (the VMM stops the VM with reason "reset"). Never returns;
 * should the VMM keep running us anyway, halt at CPL0 or spin at CPL3 (hlt would #GP).
 */
shutdown:
	mov $RESET_VALUE, %al
	out %al, $RESET_PORT
	mov %cs, %ax
	test $3, %al
	jnz 2f
park:
	/* park: CPL0 only; stop this vCPU for good without exiting to the VMM. */
	cli
1:	hlt
	jmp 1b
2:	pause
	jmp 2b

/*
 * fnv_words: fold rcx (> 0) little-endian u64 words at rsi into the checksum in r8:
 *   h = (h XOR word) * 0x100000001b3  (mod 2^64)    -- FNV-1a over 64-bit words
 * Clobbers rcx, rsi (advanced past the data), r8 (the result).
 */
fnv_words:
	push %rax
	movabs $0x100000001b3, %rax
1:	xor (%rsi), %r8
	imul %rax, %r8
	add $8, %rsi
	dec %rcx
	jnz 1b
	pop %rax
	ret

/*
 * Exception stubs for vectors 0-31, 16 bytes apart so the IDT setup can compute their
 * addresses. Each leaves [vector][error code] on the stack (0 when the CPU pushes none).
 */
	.balign 16
exception_stubs:
	.set vec, 0
	.rept 32
	.balign 16
	.if (vec == 8) || (vec >= 10 && vec <= 14) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
	.else
	pushq $0
	.endif
	pushq $vec
	jmp exception_common
	.set vec, vec + 1
	.endr

/* Print "exception <n>\n" (decimal) and a diagnostics line, then shut down. */
exception_common:
	PUTS "exception "
	mov (%rsp), %rax
	call put_dec
	PUTC 0x0a
	PUTS "fault rip="
	mov 16(%rsp), %rax
	call put_hex64
	PUTS " error="
	mov 8(%rsp), %rax
	call put_hex64
	PUTS " cr2="
	mov %cr2, %rax
	call put_hex64
	PUTC 0x0a
	jmp shutdown

/*
 * Device interrupt (IRQ_VECTOR): acknowledge a virtio-mmio device if VAR_VIRTIO_BASE is
 * set (read InterruptStatus, write it to InterruptACK), count, EOI the LAPIC.
 */
irq_handler:
	push %rax
	push %rdx
	mov VAR_VIRTIO_BASE, %rdx
	test %rdx, %rdx
	jz 1f
	mov 0x60(%rdx), %eax
	mov %eax, 0x64(%rdx)
1:	lock incq VAR_IRQ_COUNT
	mov $LAPIC_BASE, %edx
	movl $0, LAPIC_EOI(%rdx)
	pop %rdx
	pop %rax
	iretq

/* Spurious LAPIC vector: no EOI by definition. */
spurious_handler:
	iretq

/*
 * idt_set_gate: IDT entry al (vector) -> handler rdx, 64-bit interrupt gate, DPL0,
 * selector KERNEL_CS, IST 0. Handlers are below 4 GiB, so offset[63:32] = 0.
 */
idt_set_gate:
	push %rax
	push %rbx
	push %rcx
	movzbl %al, %ecx
	shl $4, %ecx
	add $IDT_BASE, %ecx
	/* low qword: offset[15:0] | sel << 16 | 0x8e << 40 | offset[31:16] << 48 */
	mov %edx, %eax
	and $0xffff, %eax
	or $(KERNEL_CS << 16), %eax
	mov %edx, %ebx
	shr $16, %ebx
	shl $16, %ebx
	or $0x8e00, %ebx
	shl $32, %rbx
	or %rbx, %rax
	mov %rax, (%rcx)
	movq $0, 8(%rcx)
	pop %rcx
	pop %rbx
	pop %rax
	ret

/*
 * idt_init: clear the IDT, install the exception stubs (0-31), irq_handler on IRQ_VECTOR,
 * spurious_handler on SPURIOUS_VECTOR, and lidt it. Other vectors stay not-present.
 */
idt_init:
	push %rax
	push %rcx
	push %rdx
	mov $IDT_BASE, %eax
	mov $512, %ecx
1:	movq $0, (%rax)
	add $8, %rax
	dec %ecx
	jnz 1b
	xor %eax, %eax
	lea exception_stubs(%rip), %rdx
2:	call idt_set_gate
	add $16, %rdx
	inc %eax
	cmp $32, %eax
	jb 2b
	mov $IRQ_VECTOR, %eax
	lea irq_handler(%rip), %rdx
	call idt_set_gate
	mov $SPURIOUS_VECTOR, %eax
	lea spurious_handler(%rip), %rdx
	call idt_set_gate
	movw $(256 * 16 - 1), IDTR_ADDR
	movq $IDT_BASE, IDTR_ADDR + 2
	lidt IDTR_ADDR
	pop %rdx
	pop %rcx
	pop %rax
	ret

/*
 * map_mmio_2m: make sure the 2 MiB page holding the address in rax (< 4 GiB) is mapped
 * identity, uncached, CPL0-only. ABI.md only promises an identity map of guest RAM, so
 * MMIO holes (virtio-mmio, IOAPIC, LAPIC) may be missing; present entries are left alone.
 * A missing page directory is taken from PT_SPARE_BASE.. (zeroed first).
 * Returns CF=1 if it cannot (address >= 4 GiB, no PML4 entry 0, out of spare pages).
 * Preserves all registers except flags.
 */
map_mmio_2m:
	push %rax
	push %rbx
	push %rcx
	push %rdx
	mov %rax, %rdx                  /* rdx = address */
	shr $32, %rax
	jnz 9f
	movabs $0x000ffffffffff000, %rcx
	mov %cr3, %rbx
	and %rcx, %rbx                  /* PML4 */
	mov (%rbx), %rax                /* PML4[0] covers 0-512 GiB */
	test $1, %al
	jz 9f
	and %rcx, %rax                  /* PDPT */
	mov %edx, %ebx
	shr $30, %ebx
	lea (%rax,%rbx,8), %rbx         /* &PDPT[addr >> 30] */
	mov (%rbx), %rax
	test $1, %al
	jz 3f
	test $0x80, %al                 /* a 1 GiB page: already mapped */
	jnz 8f
	and %rcx, %rax                  /* PD */
	jmp 5f
3:	/* no page directory for this GiB yet: take a spare one */
	mov VAR_NEXT_PT_PAGE, %rax
	test %rax, %rax
	jnz 4f
	mov $PT_SPARE_BASE, %eax
4:	cmp $PT_SPARE_END, %rax
	jae 9f
	lea PAGE_SIZE(%rax), %rcx
	mov %rcx, VAR_NEXT_PT_PAGE
	mov $512, %ecx
41:	dec %ecx
	movq $0, (%rax,%rcx,8)
	jnz 41b
	mov %rax, %rcx
	or $3, %rcx                     /* present, writable */
	mov %rcx, (%rbx)
5:	mov %edx, %ebx
	shr $21, %ebx
	and $511, %ebx
	lea (%rax,%rbx,8), %rbx         /* &PD[(addr >> 21) & 511] */
	mov (%rbx), %rax
	test $1, %al
	jnz 8f
	mov %edx, %eax
	and $0xffe00000, %eax
	or $0x9b, %eax                  /* present, writable, PWT, PCD, 2 MiB */
	mov %rax, (%rbx)
	mov %cr3, %rax                  /* flush; a shadow-paging host resyncs here too */
	mov %rax, %cr3
8:	clc
	jmp 10f
9:	stc
10:	pop %rdx
	pop %rcx
	pop %rbx
	pop %rax
	ret

/*
 * irq_init: route GSI eax (< 24) to IRQ_VECTOR on APIC 0 and enable the LAPIC.
 * Masks the legacy PIC and LINT0 first: KVM resets the BSP's LINT0 to ExtINT and the
 * default GSI routing also feeds the PIC, which would deliver a second, bogus vector.
 * Needs LAPIC and IOAPIC mapped (map_mmio_2m). Clobbers nothing.
 */
irq_init:
	push %rax
	push %rcx
	push %rdx
	mov %eax, %ecx
	mov $0xff, %al
	out %al, $PIC1_DATA
	out %al, $PIC2_DATA
	mov $LAPIC_BASE, %edx
	movl $(0x100 | SPURIOUS_VECTOR), LAPIC_SVR(%rdx)    /* APIC software enable */
	movl $0x10000, LAPIC_LVT_LINT0(%rdx)                /* masked */
	mov $IOAPIC_BASE, %edx
	/* high dword first, so the entry is complete when the low write unmasks it */
	lea 0x11(,%rcx,2), %eax
	mov %eax, IOAPIC_REGSEL(%rdx)
	movl $0, IOAPIC_WIN(%rdx)               /* destination APIC ID 0 (bits 56-63) */
	dec %eax
	mov %eax, IOAPIC_REGSEL(%rdx)
	/* fixed delivery, physical, active high, edge, unmasked */
	movl $IRQ_VECTOR, IOAPIC_WIN(%rdx)
	pop %rdx
	pop %rcx
	pop %rax
	ret

	.popsection

#endif /* MICRO_COMMON_H */
