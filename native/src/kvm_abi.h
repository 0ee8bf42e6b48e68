/* The KVM ABI numbers the addon uses: ioctl request codes, struct sizes and field offsets.
 * They are computed in a C translation unit (kvm_abi.c) on purpose: the uapi headers declare
 * flexible array members with __DECLARE_FLEX_ARRAY, which in C++ inserts a 1-byte empty struct
 * and shifts offsets and sizes -- and the size is encoded in every _IOW/_IOR request code. */
#pragma once

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FAASNAP_KVM_IOCTLS(X)                                                                     \
  X(KVM_GET_API_VERSION) X(KVM_CREATE_VM) X(KVM_CHECK_EXTENSION) X(KVM_GET_VCPU_MMAP_SIZE)       \
  X(KVM_GET_SUPPORTED_CPUID) X(KVM_GET_MSR_INDEX_LIST) X(KVM_SET_TSS_ADDR)                      \
  X(KVM_SET_IDENTITY_MAP_ADDR) X(KVM_CREATE_IRQCHIP) X(KVM_CREATE_PIT2) X(KVM_CREATE_VCPU)      \
  X(KVM_SET_USER_MEMORY_REGION) X(KVM_IOEVENTFD) X(KVM_IRQFD) X(KVM_IRQ_LINE) X(KVM_GET_IRQCHIP) \
  X(KVM_SET_IRQCHIP) X(KVM_GET_PIT2) X(KVM_SET_PIT2) X(KVM_GET_CLOCK) X(KVM_SET_CLOCK)           \
  X(KVM_GET_REGS) X(KVM_SET_REGS) X(KVM_GET_SREGS) X(KVM_SET_SREGS) X(KVM_GET_FPU) X(KVM_SET_FPU) \
  X(KVM_GET_LAPIC) X(KVM_SET_LAPIC) X(KVM_GET_MP_STATE) X(KVM_SET_MP_STATE)                      \
  X(KVM_GET_VCPU_EVENTS) X(KVM_SET_VCPU_EVENTS) X(KVM_GET_DEBUGREGS) X(KVM_SET_DEBUGREGS)        \
  X(KVM_GET_XSAVE) X(KVM_SET_XSAVE) X(KVM_GET_XCRS) X(KVM_SET_XCRS) X(KVM_SET_CPUID2)            \
  X(KVM_GET_MSRS) X(KVM_SET_MSRS) X(KVM_GET_TSC_KHZ) X(KVM_SET_TSC_KHZ) X(KVM_KVMCLOCK_CTRL)     \
  X(KVM_RUN)

#define FAASNAP_DECLARE_IOCTL(name) extern const unsigned long faasnap_##name;
FAASNAP_KVM_IOCTLS(FAASNAP_DECLARE_IOCTL)
#undef FAASNAP_DECLARE_IOCTL

struct faasnap_struct_size {
  const char* name;
  size_t size;
};
struct faasnap_field_offset {
  const char* strct;
  const char* field;
  size_t offset;
};

extern const struct faasnap_struct_size faasnap_struct_sizes[];
extern const size_t faasnap_struct_sizes_count;
extern const struct faasnap_field_offset faasnap_field_offsets[];
extern const size_t faasnap_field_offsets_count;

/* Returns the size of a struct by name, or 0 if it is not in the table. */
size_t faasnap_sizeof(const char* name);

#ifdef __cplusplus
}
#endif
