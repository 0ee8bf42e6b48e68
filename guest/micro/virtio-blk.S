/*
 * virtio-blk: drive a virtio-mmio version 2 (modern) block device with one split
 * virtqueue, interrupts through IOAPIC -> LAPIC. Runs entirely at CPL0 (it needs the
 * interrupt), so it is kept short.
 *
 * Parameters (rsi, length rcx >= 32), little-endian u64s:
 *   +0  virtio-mmio base (below 4 GiB)
 *   +8  GSI of the device (< 24, the IOAPIC pin)
 *   +16 sectors to read from sector 0 (1..8)
 *   +24 sector to write
 *
 * Sequence: IDT (exceptions 0-31 print and shut down, 0x30 device, 0x31 watchdog,
 * 0xff spurious), LAPIC on, IOAPIC pin GSI -> vector 0x30 (edge, high, APIC 0); virtio
 * init (magic, version 2, device 2, reset, ACK, DRIVER, VERSION_1 only, FEATURES_OK,
 * queue 0 size 8, DRIVER_OK); then three requests, each a descriptor chain
 * header(16 B) [-> data] -> status(1 B), notify, `sti; hlt` until the handler counted an
 * interrupt (LAPIC timer watchdog ~4.3 s per request), then check used.idx and used id:
 *   1. IN    sector 0, sectors*512 bytes
 *   2. OUT   sector <write sector>, 512 bytes, byte i = i & 0xff (00 01 .. ff 00 01 .. ff)
 *   3. FLUSH (type 4), no data
 *
 * Output (vCPU 0; other vCPUs park):
 *   blk read sectors=<hex16> status=<hex2> checksum=<hex16>\n
 *   blk write status=<hex2>\n
 *   blk flush status=<hex2>\n
 * checksum: FNV-1a over the read data's 64-bit words, as in touch.S
 * (h = 0xcbf29ce484222325; per LE u64 word: h = (h XOR word) * 0x100000001b3 mod 2^64).
 * A read status other than 0 ends the run after the read line with "blk error read-status".
 * Any failed check prints "blk error <reason>\n" (reasons: params, gsi, sectors,
 * mmio-base, magic, version, device-id, reset, version-1, features-ok, queue-busy,
 * queue-size, timeout, used-idx, used-id, read-status); an exception prints
 * "exception <n>\n" plus a "fault ..." line. All end with shutdown.
 */
#include "common.h"

/* virtio-mmio v2 registers */
#define VIRTIO_MAGIC          0x000
#define VIRTIO_VERSION        0x004
#define VIRTIO_DEVICE_ID      0x008
#define VIRTIO_DEV_FEATURES   0x010
#define VIRTIO_DEV_FEAT_SEL   0x014
#define VIRTIO_DRV_FEATURES   0x020
#define VIRTIO_DRV_FEAT_SEL   0x024
#define VIRTIO_QUEUE_SEL      0x030
#define VIRTIO_QUEUE_NUM_MAX  0x034
#define VIRTIO_QUEUE_NUM      0x038
#define VIRTIO_QUEUE_READY    0x044
#define VIRTIO_QUEUE_NOTIFY   0x050
#define VIRTIO_STATUS         0x070
#define VIRTIO_QUEUE_DESC_LO  0x080
#define VIRTIO_QUEUE_DESC_HI  0x084
#define VIRTIO_QUEUE_AVAIL_LO 0x090
#define VIRTIO_QUEUE_AVAIL_HI 0x094
#define VIRTIO_QUEUE_USED_LO  0x0a0
#define VIRTIO_QUEUE_USED_HI  0x0a4

#define STATUS_ACK            1
#define STATUS_DRIVER         2
#define STATUS_DRIVER_OK      4
#define STATUS_FEATURES_OK    8

#define VIRTQ_DESC_F_NEXT     1
#define VIRTQ_DESC_F_WRITE    2

#define BLK_T_IN              0
#define BLK_T_OUT             1
#define BLK_T_FLUSH           4

#define QUEUE_SIZE            8

/* Data-area layout (after the common vars/IDT/spare page-table pages). */
#define DESC_TABLE  (DATA_BASE + 0x6000)    /* 8 x 16 B */
#define AVAIL_RING  (DATA_BASE + 0x6400)    /* flags, idx, ring[8], used_event */
#define USED_RING   (DATA_BASE + 0x6800)    /* flags, idx, ring[8] {id, len}, avail_event */
#define REQ_HEADER  (DATA_BASE + 0x6c00)    /* type u32, reserved u32, sector u64 */
#define REQ_STATUS  (DATA_BASE + 0x6c10)
#define DATA_BUF    (DATA_BASE + 0x7000)    /* 4 KiB */

#define WATCHDOG_COUNT 0xffffffff           /* LAPIC timer, divide 1: ~4.3 s at KVM's 1 GHz */

.macro ERR label, text
\label:
	PUTS "blk error \text\n"
	jmp shutdown
.endm

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
	mov (%rsi), %r12                /* mmio base */
	mov 8(%rsi), %r13               /* GSI */
	mov 16(%rsi), %r14              /* sectors to read */
	mov 24(%rsi), %r15              /* sector to write */
	cmp $IOAPIC_PINS, %r13
	jae err_gsi
	lea -1(%r14), %rax
	cmp $7, %rax
	ja err_sectors
	test $0xfff, %r12w
	jnz err_mmio_base

	movq $0, VAR_IRQ_COUNT
	movq $0, VAR_NEXT_PT_PAGE
	mov %r12, %rax
	call map_mmio_2m
	jc err_mmio_base
	mov $IOAPIC_BASE, %eax
	call map_mmio_2m
	jc err_mmio_base
	mov $LAPIC_BASE, %eax
	call map_mmio_2m
	jc err_mmio_base
	mov %r12, VAR_VIRTIO_BASE

	call idt_init
	mov $TIMER_VECTOR, %eax
	lea watchdog_handler(%rip), %rdx
	call idt_set_gate
	mov %r13d, %eax
	call irq_init
	mov $LAPIC_BASE, %eax
	movl $0xb, LAPIC_TIMER_DIV(%rax)                /* divide by 1 */
	movl $TIMER_VECTOR, LAPIC_LVT_TIMER(%rax)       /* one-shot, unmasked */

	/* virtio init (virtio 1.x, 3.1.1 and 4.2.3) */
	mov VIRTIO_MAGIC(%r12), %eax
	cmp $0x74726976, %eax
	jne err_magic
	mov VIRTIO_VERSION(%r12), %eax
	cmp $2, %eax
	jne err_version
	mov VIRTIO_DEVICE_ID(%r12), %eax
	cmp $2, %eax
	jne err_device_id
	xor %eax, %eax
	mov %eax, VIRTIO_STATUS(%r12)               /* reset */
	mov $1000, %ecx
1:	mov VIRTIO_STATUS(%r12), %eax
	test %eax, %eax
	jz 2f
	dec %ecx
	jnz 1b
	jmp err_reset
2:	mov $STATUS_ACK, %eax
	mov %eax, VIRTIO_STATUS(%r12)
	mov $(STATUS_ACK | STATUS_DRIVER), %eax
	mov %eax, VIRTIO_STATUS(%r12)
	mov $1, %eax
	mov %eax, VIRTIO_DEV_FEAT_SEL(%r12)
	mov VIRTIO_DEV_FEATURES(%r12), %eax
	test $1, %eax                               /* VIRTIO_F_VERSION_1 = bit 32 */
	jz err_version_1
	xor %eax, %eax
	mov %eax, VIRTIO_DRV_FEAT_SEL(%r12)
	mov %eax, VIRTIO_DRV_FEATURES(%r12)
	mov $1, %eax
	mov %eax, VIRTIO_DRV_FEAT_SEL(%r12)
	mov %eax, VIRTIO_DRV_FEATURES(%r12)         /* VERSION_1 only */
	mov $(STATUS_ACK | STATUS_DRIVER | STATUS_FEATURES_OK), %eax
	mov %eax, VIRTIO_STATUS(%r12)
	mov VIRTIO_STATUS(%r12), %eax
	test $STATUS_FEATURES_OK, %eax
	jz err_features_ok

	xor %eax, %eax
	mov %eax, VIRTIO_QUEUE_SEL(%r12)
	mov VIRTIO_QUEUE_READY(%r12), %eax
	test %eax, %eax
	jnz err_queue_busy
	mov VIRTIO_QUEUE_NUM_MAX(%r12), %eax
	cmp $QUEUE_SIZE, %eax
	jb err_queue_size
	movl $0, AVAIL_RING                         /* flags = 0 (want interrupts), idx = 0 */
	movl $0, USED_RING
	mov $QUEUE_SIZE, %eax
	mov %eax, VIRTIO_QUEUE_NUM(%r12)
	xor %edx, %edx
	mov $DESC_TABLE, %eax
	mov %eax, VIRTIO_QUEUE_DESC_LO(%r12)
	mov %edx, VIRTIO_QUEUE_DESC_HI(%r12)
	mov $AVAIL_RING, %eax
	mov %eax, VIRTIO_QUEUE_AVAIL_LO(%r12)
	mov %edx, VIRTIO_QUEUE_AVAIL_HI(%r12)
	mov $USED_RING, %eax
	mov %eax, VIRTIO_QUEUE_USED_LO(%r12)
	mov %edx, VIRTIO_QUEUE_USED_HI(%r12)
	mov $1, %eax
	mov %eax, VIRTIO_QUEUE_READY(%r12)
	mov $(STATUS_ACK | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK), %eax
	mov %eax, VIRTIO_STATUS(%r12)
	xor %ebp, %ebp                              /* requests submitted */

	/* 1. read */
	mov $BLK_T_IN, %eax
	xor %edx, %edx
	mov %r14d, %ecx
	shl $9, %ecx
	call blk_request
	mov %eax, %ebx                              /* status */
	movabs $0xcbf29ce484222325, %r8
	mov $DATA_BUF, %esi
	mov %r14d, %ecx
	shl $6, %ecx                                /* 64 words per sector */
	call fnv_words
	PUTS "blk read sectors="
	PUT_HEX64 %r14
	PUTS " status="
	mov %ebx, %eax
	call put_hex8
	PUTS " checksum="
	PUT_HEX64 %r8
	PUTC 0x0a
	test %bl, %bl
	jnz err_read_status

	/* 2. write one sector of 00 01 .. ff 00 01 .. ff; qword k holds bytes 8k..8k+7 */
	mov $DATA_BUF, %edi
	movabs $0x0706050403020100, %rdx
	movabs $0x0808080808080808, %rsi
	xor %ecx, %ecx
3:	test $31, %ecx
	jnz 4f
	mov %rdx, %rax                              /* restart every 256 bytes */
4:	mov %rax, (%rdi,%rcx,8)
	add %rsi, %rax
	inc %ecx
	cmp $64, %ecx
	jb 3b
	mov $BLK_T_OUT, %eax
	mov %r15, %rdx
	mov $512, %ecx
	call blk_request
	PUTS "blk write status="
	call put_hex8
	PUTC 0x0a

	/* 3. flush */
	mov $BLK_T_FLUSH, %eax
	xor %edx, %edx
	xor %ecx, %ecx
	call blk_request
	PUTS "blk flush status="
	call put_hex8
	PUTC 0x0a
	jmp shutdown

/*
 * blk_request: submit one request on queue 0 and wait for its completion interrupt.
 * eax = type, rdx = sector, ecx = data length at DATA_BUF (0: no data descriptor).
 * Returns the status byte in eax. rbp counts submissions (= expected used.idx).
 * Clobbers rax, rbx, rcx, rdx, rsi, rdi.
 */
blk_request:
	mov %eax, REQ_HEADER
	movl $0, REQ_HEADER + 4
	mov %rdx, REQ_HEADER + 8
	movb $0xff, REQ_STATUS                      /* detects a device that never writes it */
	mov %eax, %esi                              /* type */
	mov $DESC_TABLE, %edi
	/* desc 0: header, device-readable */
	movq $REQ_HEADER, (%rdi)
	movl $16, 8(%rdi)
	movw $VIRTQ_DESC_F_NEXT, 12(%rdi)
	movw $2, 14(%rdi)
	test %ecx, %ecx
	jz 1f
	movw $1, 14(%rdi)
	/* desc 1: data, device-writable for IN */
	movq $DATA_BUF, 16(%rdi)
	mov %ecx, 24(%rdi)
	mov $VIRTQ_DESC_F_NEXT, %eax
	cmp $BLK_T_IN, %esi
	jne 2f
	or $VIRTQ_DESC_F_WRITE, %eax
2:	mov %ax, 28(%rdi)
	movw $2, 30(%rdi)
1:	/* desc 2: status, device-writable */
	movq $REQ_STATUS, 32(%rdi)
	movl $1, 40(%rdi)
	movw $VIRTQ_DESC_F_WRITE, 44(%rdi)
	movw $0, 46(%rdi)
	/* publish head 0; x86 keeps these stores in order, and the notify is an exit */
	mov %ebp, %eax
	and $(QUEUE_SIZE - 1), %eax
	movw $0, AVAIL_RING + 4(,%rax,2)
	inc %ebp
	mov %bp, AVAIL_RING + 2
	mov VAR_IRQ_COUNT, %rbx
	mov $LAPIC_BASE, %edi
	movl $WATCHDOG_COUNT, LAPIC_TIMER_INIT(%rdi)
	xor %eax, %eax
	mov %eax, VIRTIO_QUEUE_NOTIFY(%r12)
3:	cli
	cmp VAR_IRQ_COUNT, %rbx
	jne 4f
	sti
	hlt
	jmp 3b
4:	movl $0, LAPIC_TIMER_INIT(%rdi)             /* disarm the watchdog */
	movzwl USED_RING + 2, %eax
	cmp %bp, %ax
	jne err_used_idx
	lea -1(%ebp), %eax
	and $(QUEUE_SIZE - 1), %eax
	mov USED_RING + 4(,%rax,8), %eax            /* used elem id */
	test %eax, %eax
	jnz err_used_id
	movzbl REQ_STATUS, %eax
	ret

watchdog_handler:
	PUTS "blk error timeout\n"
	jmp shutdown

	ERR err_params, params
	ERR err_gsi, gsi
	ERR err_sectors, sectors
	ERR err_mmio_base, mmio-base
	ERR err_magic, magic
	ERR err_version, version
	ERR err_device_id, device-id
	ERR err_reset, reset
	ERR err_version_1, version-1
	ERR err_features_ok, features-ok
	ERR err_queue_busy, queue-busy
	ERR err_queue_size, queue-size
	ERR err_used_idx, used-idx
	ERR err_used_id, used-id
	ERR err_read_status, read-status
