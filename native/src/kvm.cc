// Thin wrappers over the KVM ioctls: one JS function per ioctl. Structs are passed as Buffers
// that TypeScript encodes (layouts checked against these headers by layouts.cc + a test); the
// only thing checked here is that a Buffer is exactly as large as the kernel will read/write.
#include <linux/kvm.h>
#include <sys/ioctl.h>

#include <cerrno>

#include "common.h"
#include "kvm_abi.h"

namespace faasnap {

static int DoIoctl(Napi::Env env, const char* op, int fd, unsigned long req, unsigned long arg) {
  int r;
  do {
    r = ioctl(fd, req, arg);
  } while (r < 0 && errno == EINTR);
  if (r < 0) ThrowErrno(env, op, errno);
  return r;
}

static Napi::Value NoArg(const Napi::CallbackInfo& info, const char* op, unsigned long req) {
  return Napi::Number::New(info.Env(), DoIoctl(info.Env(), op, ArgInt(info, 0), req, 0));
}

static Napi::Value IntArg(const Napi::CallbackInfo& info, const char* op, unsigned long req) {
  return Napi::Number::New(info.Env(), DoIoctl(info.Env(), op, ArgInt(info, 0), req, ArgU64(info, 1)));
}

// fd, Buffer of exactly `size` bytes.
static Napi::Value FixedBuf(const Napi::CallbackInfo& info, const char* op, unsigned long req, size_t size) {
  auto buf = ArgBuffer(info, 1);
  if (buf.Length() != size)
    ThrowArg(info.Env(), std::string(op) + ": buffer must be " + std::to_string(size) + " bytes, got " + std::to_string(buf.Length()));
  return Napi::Number::New(info.Env(), DoIoctl(info.Env(), op, ArgInt(info, 0), req, reinterpret_cast<unsigned long>(buf.Data())));
}

// fd, Buffer holding a header with a u32 element count followed by `elem`-sized entries.
static Napi::Value VarBuf(const Napi::CallbackInfo& info, const char* op, unsigned long req, size_t header, size_t elem) {
  auto buf = ArgBuffer(info, 1);
  if (buf.Length() < header) ThrowArg(info.Env(), std::string(op) + ": buffer smaller than its header");
  uint32_t n = *reinterpret_cast<const uint32_t*>(buf.Data());
  if (buf.Length() < header + static_cast<size_t>(n) * elem) ThrowArg(info.Env(), std::string(op) + ": buffer smaller than its entry count");
  return Napi::Number::New(info.Env(), DoIoctl(info.Env(), op, ArgInt(info, 0), req, reinterpret_cast<unsigned long>(buf.Data())));
}

// Request codes and sizes come from kvm_abi.c (C), never from sizeof in this C++ file.
#define NOARG(name, req) \
  static Napi::Value name(const Napi::CallbackInfo& info) { return NoArg(info, #req, faasnap_##req); }
#define INTARG(name, req) \
  static Napi::Value name(const Napi::CallbackInfo& info) { return IntArg(info, #req, faasnap_##req); }
#define FIXED(name, req, type) \
  static Napi::Value name(const Napi::CallbackInfo& info) { return FixedBuf(info, #req, faasnap_##req, faasnap_sizeof(#type)); }
#define VAR(name, req, type, elem) \
  static Napi::Value name(const Napi::CallbackInfo& info) { return VarBuf(info, #req, faasnap_##req, faasnap_sizeof(#type), elem); }

// System ioctls (on the /dev/kvm fd).
NOARG(GetApiVersion, KVM_GET_API_VERSION)
INTARG(CreateVm, KVM_CREATE_VM)
INTARG(CheckExtension, KVM_CHECK_EXTENSION)
NOARG(GetVcpuMmapSize, KVM_GET_VCPU_MMAP_SIZE)
VAR(GetSupportedCpuid, KVM_GET_SUPPORTED_CPUID, kvm_cpuid2, faasnap_sizeof("kvm_cpuid_entry2"))
VAR(GetMsrIndexList, KVM_GET_MSR_INDEX_LIST, kvm_msr_list, sizeof(uint32_t))

// VM ioctls.
INTARG(SetTssAddr, KVM_SET_TSS_ADDR)
NOARG(CreateIrqchip, KVM_CREATE_IRQCHIP)
INTARG(CreateVcpu, KVM_CREATE_VCPU)
FIXED(GetIrqchip, KVM_GET_IRQCHIP, kvm_irqchip)
FIXED(SetIrqchip, KVM_SET_IRQCHIP, kvm_irqchip)
FIXED(GetPit2, KVM_GET_PIT2, kvm_pit_state2)
FIXED(SetPit2, KVM_SET_PIT2, kvm_pit_state2)
FIXED(GetClock, KVM_GET_CLOCK, kvm_clock_data)
FIXED(SetClock, KVM_SET_CLOCK, kvm_clock_data)

// vCPU ioctls.
FIXED(GetRegs, KVM_GET_REGS, kvm_regs)
FIXED(SetRegs, KVM_SET_REGS, kvm_regs)
FIXED(GetSregs, KVM_GET_SREGS, kvm_sregs)
FIXED(SetSregs, KVM_SET_SREGS, kvm_sregs)
FIXED(GetFpu, KVM_GET_FPU, kvm_fpu)
FIXED(SetFpu, KVM_SET_FPU, kvm_fpu)
FIXED(GetLapic, KVM_GET_LAPIC, kvm_lapic_state)
FIXED(SetLapic, KVM_SET_LAPIC, kvm_lapic_state)
FIXED(GetMpState, KVM_GET_MP_STATE, kvm_mp_state)
FIXED(SetMpState, KVM_SET_MP_STATE, kvm_mp_state)
FIXED(GetVcpuEvents, KVM_GET_VCPU_EVENTS, kvm_vcpu_events)
FIXED(SetVcpuEvents, KVM_SET_VCPU_EVENTS, kvm_vcpu_events)
FIXED(GetDebugRegs, KVM_GET_DEBUGREGS, kvm_debugregs)
FIXED(SetDebugRegs, KVM_SET_DEBUGREGS, kvm_debugregs)
FIXED(GetXsave, KVM_GET_XSAVE, kvm_xsave)
FIXED(SetXsave, KVM_SET_XSAVE, kvm_xsave)
FIXED(GetXcrs, KVM_GET_XCRS, kvm_xcrs)
FIXED(SetXcrs, KVM_SET_XCRS, kvm_xcrs)
VAR(SetCpuid2, KVM_SET_CPUID2, kvm_cpuid2, faasnap_sizeof("kvm_cpuid_entry2"))
VAR(GetMsrs, KVM_GET_MSRS, kvm_msrs, faasnap_sizeof("kvm_msr_entry"))
VAR(SetMsrs, KVM_SET_MSRS, kvm_msrs, faasnap_sizeof("kvm_msr_entry"))
NOARG(GetTscKhz, KVM_GET_TSC_KHZ)
INTARG(SetTscKhz, KVM_SET_TSC_KHZ)
NOARG(KvmclockCtrl, KVM_KVMCLOCK_CTRL)

// Structs small enough to take as scalars: no Buffer encoding needed in TypeScript.
static Napi::Value SetUserMemoryRegion(const Napi::CallbackInfo& info) {
  // (vmFd, slot, flags, guestPhysAddr, size, userspaceAddr)
  struct kvm_userspace_memory_region r = {};
  r.slot = ArgU32(info, 1);
  r.flags = ArgU32(info, 2);
  r.guest_phys_addr = ArgU64(info, 3);
  r.memory_size = ArgU64(info, 4);
  r.userspace_addr = ArgU64(info, 5);
  DoIoctl(info.Env(), "KVM_SET_USER_MEMORY_REGION", ArgInt(info, 0), faasnap_KVM_SET_USER_MEMORY_REGION, reinterpret_cast<unsigned long>(&r));
  return info.Env().Undefined();
}

static Napi::Value SetIdentityMapAddr(const Napi::CallbackInfo& info) {
  uint64_t addr = ArgU64(info, 1);
  DoIoctl(info.Env(), "KVM_SET_IDENTITY_MAP_ADDR", ArgInt(info, 0), faasnap_KVM_SET_IDENTITY_MAP_ADDR, reinterpret_cast<unsigned long>(&addr));
  return info.Env().Undefined();
}

static Napi::Value CreatePit2(const Napi::CallbackInfo& info) {
  struct kvm_pit_config c = {};
  c.flags = ArgU32(info, 1);
  DoIoctl(info.Env(), "KVM_CREATE_PIT2", ArgInt(info, 0), faasnap_KVM_CREATE_PIT2, reinterpret_cast<unsigned long>(&c));
  return info.Env().Undefined();
}

static Napi::Value Ioeventfd(const Napi::CallbackInfo& info) {
  // (vmFd, addr, len, eventFd, flags, datamatch)
  struct kvm_ioeventfd e = {};
  e.addr = ArgU64(info, 1);
  e.len = ArgU32(info, 2);
  e.fd = ArgInt(info, 3);
  e.flags = ArgU32(info, 4);
  e.datamatch = ArgU64(info, 5);
  DoIoctl(info.Env(), "KVM_IOEVENTFD", ArgInt(info, 0), faasnap_KVM_IOEVENTFD, reinterpret_cast<unsigned long>(&e));
  return info.Env().Undefined();
}

static Napi::Value Irqfd(const Napi::CallbackInfo& info) {
  // (vmFd, eventFd, gsi, flags)
  struct kvm_irqfd f = {};
  f.fd = ArgU32(info, 1);
  f.gsi = ArgU32(info, 2);
  f.flags = ArgU32(info, 3);
  DoIoctl(info.Env(), "KVM_IRQFD", ArgInt(info, 0), faasnap_KVM_IRQFD, reinterpret_cast<unsigned long>(&f));
  return info.Env().Undefined();
}

static Napi::Value IrqLine(const Napi::CallbackInfo& info) {
  struct kvm_irq_level l = {};
  l.irq = ArgU32(info, 1);
  l.level = ArgU32(info, 2);
  DoIoctl(info.Env(), "KVM_IRQ_LINE", ArgInt(info, 0), faasnap_KVM_IRQ_LINE, reinterpret_cast<unsigned long>(&l));
  return info.Env().Undefined();
}

void InitKvm(Napi::Env env, Napi::Object exports) {
  Napi::Object k = Napi::Object::New(env);
#define EXPORT(name) k.Set(#name, Napi::Function::New(env, name));
  EXPORT(GetApiVersion) EXPORT(CreateVm) EXPORT(CheckExtension) EXPORT(GetVcpuMmapSize)
  EXPORT(GetSupportedCpuid) EXPORT(GetMsrIndexList)
  EXPORT(SetTssAddr) EXPORT(SetIdentityMapAddr) EXPORT(CreateIrqchip) EXPORT(CreatePit2) EXPORT(CreateVcpu)
  EXPORT(SetUserMemoryRegion) EXPORT(Ioeventfd) EXPORT(Irqfd) EXPORT(IrqLine)
  EXPORT(GetIrqchip) EXPORT(SetIrqchip) EXPORT(GetPit2) EXPORT(SetPit2) EXPORT(GetClock) EXPORT(SetClock)
  EXPORT(GetRegs) EXPORT(SetRegs) EXPORT(GetSregs) EXPORT(SetSregs) EXPORT(GetFpu) EXPORT(SetFpu)
  EXPORT(GetLapic) EXPORT(SetLapic) EXPORT(GetMpState) EXPORT(SetMpState)
  EXPORT(GetVcpuEvents) EXPORT(SetVcpuEvents) EXPORT(GetDebugRegs) EXPORT(SetDebugRegs)
  EXPORT(GetXsave) EXPORT(SetXsave) EXPORT(GetXcrs) EXPORT(SetXcrs)
  EXPORT(SetCpuid2) EXPORT(GetMsrs) EXPORT(SetMsrs) EXPORT(GetTscKhz) EXPORT(SetTscKhz) EXPORT(KvmclockCtrl)
#undef EXPORT
  exports.Set("kvm", k);

  Napi::Object c = Napi::Object::New(env);
#define CONST(x) c.Set(#x, Napi::Number::New(env, static_cast<double>(x)));
  CONST(KVM_API_VERSION)
  CONST(KVM_CAP_IRQCHIP) CONST(KVM_CAP_IRQFD) CONST(KVM_CAP_IOEVENTFD) CONST(KVM_CAP_PIT2)
  CONST(KVM_CAP_USER_MEMORY) CONST(KVM_CAP_SET_TSS_ADDR) CONST(KVM_CAP_EXT_CPUID) CONST(KVM_CAP_MP_STATE)
  CONST(KVM_CAP_XSAVE) CONST(KVM_CAP_XCRS) CONST(KVM_CAP_VCPU_EVENTS) CONST(KVM_CAP_DEBUGREGS)
  CONST(KVM_CAP_ADJUST_CLOCK) CONST(KVM_CAP_IMMEDIATE_EXIT) CONST(KVM_CAP_NR_VCPUS) CONST(KVM_CAP_MAX_VCPUS)
  CONST(KVM_CAP_GET_TSC_KHZ) CONST(KVM_CAP_TSC_CONTROL) CONST(KVM_CAP_KVMCLOCK_CTRL) CONST(KVM_CAP_READONLY_MEM)
  CONST(KVM_MEM_READONLY)
  CONST(KVM_PIT_SPEAKER_DUMMY)
  CONST(KVM_IOEVENTFD_FLAG_DATAMATCH) CONST(KVM_IOEVENTFD_FLAG_PIO) CONST(KVM_IOEVENTFD_FLAG_DEASSIGN)
  CONST(KVM_IRQFD_FLAG_DEASSIGN)
  CONST(KVM_EXIT_UNKNOWN) CONST(KVM_EXIT_EXCEPTION) CONST(KVM_EXIT_IO) CONST(KVM_EXIT_HYPERCALL)
  CONST(KVM_EXIT_DEBUG) CONST(KVM_EXIT_HLT) CONST(KVM_EXIT_MMIO) CONST(KVM_EXIT_SHUTDOWN)
  CONST(KVM_EXIT_FAIL_ENTRY) CONST(KVM_EXIT_INTR) CONST(KVM_EXIT_INTERNAL_ERROR) CONST(KVM_EXIT_SYSTEM_EVENT)
  CONST(KVM_EXIT_IRQ_WINDOW_OPEN) CONST(KVM_EXIT_X86_RDMSR) CONST(KVM_EXIT_X86_WRMSR)
  CONST(KVM_EXIT_IO_IN) CONST(KVM_EXIT_IO_OUT)
  CONST(KVM_MP_STATE_RUNNABLE) CONST(KVM_MP_STATE_UNINITIALIZED) CONST(KVM_MP_STATE_HALTED)
  CONST(KVM_SYSTEM_EVENT_SHUTDOWN) CONST(KVM_SYSTEM_EVENT_RESET) CONST(KVM_SYSTEM_EVENT_CRASH)
  CONST(KVM_INTERNAL_ERROR_EMULATION) CONST(KVM_INTERNAL_ERROR_SIMUL_EX) CONST(KVM_INTERNAL_ERROR_DELIVERY_EV)
  CONST(KVM_NR_INTERRUPTS)
  CONST(KVM_CPUID_FLAG_SIGNIFCANT_INDEX)
  CONST(KVM_IRQCHIP_PIC_MASTER) CONST(KVM_IRQCHIP_PIC_SLAVE) CONST(KVM_IRQCHIP_IOAPIC)
#undef CONST
  exports.Set("kvmConstants", c);
}

}  // namespace faasnap
