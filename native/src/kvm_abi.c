/* See kvm_abi.h: KVM ABI numbers computed in C, where the uapi headers mean what the kernel means. */
#include "kvm_abi.h"

#include <linux/kvm.h>
#include <string.h>

#define FAASNAP_DEFINE_IOCTL(name) const unsigned long faasnap_##name = name;
FAASNAP_KVM_IOCTLS(FAASNAP_DEFINE_IOCTL)

#define S(t) {#t, sizeof(struct t)},
const struct faasnap_struct_size faasnap_struct_sizes[] = {
    S(kvm_run) S(kvm_regs) S(kvm_segment) S(kvm_dtable) S(kvm_sregs) S(kvm_fpu) S(kvm_cpuid2)
    S(kvm_cpuid_entry2) S(kvm_msrs) S(kvm_msr_entry) S(kvm_msr_list) S(kvm_mp_state)
    S(kvm_lapic_state) S(kvm_vcpu_events) S(kvm_debugregs) S(kvm_xsave) S(kvm_xcrs)
    S(kvm_irqchip) S(kvm_pit_state2) S(kvm_clock_data)};
#undef S
const size_t faasnap_struct_sizes_count = sizeof faasnap_struct_sizes / sizeof faasnap_struct_sizes[0];

#define F(t, m) {#t, #m, offsetof(struct t, m)},
const struct faasnap_field_offset faasnap_field_offsets[] = {
    F(kvm_run, request_interrupt_window) F(kvm_run, immediate_exit) F(kvm_run, exit_reason)
    F(kvm_run, ready_for_interrupt_injection) F(kvm_run, if_flag) F(kvm_run, cr8) F(kvm_run, apic_base)
    F(kvm_run, io.direction) F(kvm_run, io.size) F(kvm_run, io.port) F(kvm_run, io.count)
    F(kvm_run, io.data_offset) F(kvm_run, mmio.phys_addr) F(kvm_run, mmio.data) F(kvm_run, mmio.len)
    F(kvm_run, mmio.is_write) F(kvm_run, fail_entry.hardware_entry_failure_reason) F(kvm_run, fail_entry.cpu)
    F(kvm_run, internal.suberror) F(kvm_run, internal.ndata) F(kvm_run, internal.data)
    F(kvm_run, system_event.type) F(kvm_run, system_event.ndata) F(kvm_run, system_event.data)
    F(kvm_run, ex.exception) F(kvm_run, ex.error_code)
    F(kvm_regs, rax) F(kvm_regs, rbx) F(kvm_regs, rcx) F(kvm_regs, rdx) F(kvm_regs, rsi) F(kvm_regs, rdi)
    F(kvm_regs, rsp) F(kvm_regs, rbp) F(kvm_regs, r8) F(kvm_regs, r9) F(kvm_regs, r10) F(kvm_regs, r11)
    F(kvm_regs, r12) F(kvm_regs, r13) F(kvm_regs, r14) F(kvm_regs, r15) F(kvm_regs, rip) F(kvm_regs, rflags)
    F(kvm_segment, base) F(kvm_segment, limit) F(kvm_segment, selector) F(kvm_segment, type)
    F(kvm_segment, present) F(kvm_segment, dpl) F(kvm_segment, db) F(kvm_segment, s) F(kvm_segment, l)
    F(kvm_segment, g) F(kvm_segment, avl) F(kvm_segment, unusable)
    F(kvm_dtable, base) F(kvm_dtable, limit)
    F(kvm_sregs, cs) F(kvm_sregs, ds) F(kvm_sregs, es) F(kvm_sregs, fs) F(kvm_sregs, gs) F(kvm_sregs, ss)
    F(kvm_sregs, tr) F(kvm_sregs, ldt) F(kvm_sregs, gdt) F(kvm_sregs, idt) F(kvm_sregs, cr0) F(kvm_sregs, cr2)
    F(kvm_sregs, cr3) F(kvm_sregs, cr4) F(kvm_sregs, cr8) F(kvm_sregs, efer) F(kvm_sregs, apic_base)
    F(kvm_sregs, interrupt_bitmap)
    F(kvm_fpu, fpr) F(kvm_fpu, fcw) F(kvm_fpu, fsw) F(kvm_fpu, ftwx) F(kvm_fpu, last_opcode)
    F(kvm_fpu, last_ip) F(kvm_fpu, last_dp) F(kvm_fpu, xmm) F(kvm_fpu, mxcsr)
    F(kvm_cpuid2, nent) F(kvm_cpuid2, entries)
    F(kvm_cpuid_entry2, function) F(kvm_cpuid_entry2, index) F(kvm_cpuid_entry2, flags)
    F(kvm_cpuid_entry2, eax) F(kvm_cpuid_entry2, ebx) F(kvm_cpuid_entry2, ecx) F(kvm_cpuid_entry2, edx)
    F(kvm_msrs, nmsrs) F(kvm_msrs, entries) F(kvm_msr_entry, index) F(kvm_msr_entry, data)
    F(kvm_msr_list, nmsrs) F(kvm_msr_list, indices) F(kvm_mp_state, mp_state) F(kvm_lapic_state, regs)
    F(kvm_vcpu_events, exception) F(kvm_vcpu_events, interrupt) F(kvm_vcpu_events, nmi)
    F(kvm_vcpu_events, sipi_vector) F(kvm_vcpu_events, flags)
    F(kvm_debugregs, db) F(kvm_debugregs, dr6) F(kvm_debugregs, dr7) F(kvm_debugregs, flags)
    F(kvm_xsave, region) F(kvm_xcrs, nr_xcrs) F(kvm_xcrs, flags) F(kvm_xcrs, xcrs)
    F(kvm_irqchip, chip_id) F(kvm_irqchip, chip) F(kvm_pit_state2, channels) F(kvm_pit_state2, flags)
    F(kvm_clock_data, clock) F(kvm_clock_data, flags) F(kvm_clock_data, realtime) F(kvm_clock_data, host_tsc)};
#undef F
const size_t faasnap_field_offsets_count = sizeof faasnap_field_offsets / sizeof faasnap_field_offsets[0];

size_t faasnap_sizeof(const char* name) {
  for (size_t i = 0; i < faasnap_struct_sizes_count; i++)
    if (strcmp(faasnap_struct_sizes[i].name, name) == 0) return faasnap_struct_sizes[i].size;
  return 0;
}
