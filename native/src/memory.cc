// Memory syscalls: mmap/munmap/mprotect/madvise/mincore/posix_fadvise, and zero-copy views of
// mapped memory as external ArrayBuffers (guest RAM, kvm_run). A view must be detached before
// the mapping goes away so stale JS references fail safely instead of touching unmapped memory.
#include <fcntl.h>
#include <sys/mman.h>

#include <cerrno>

#include "common.h"

namespace faasnap {

static Napi::Value Mmap(const Napi::CallbackInfo& info) {
  // mmap(len, prot, flags, fd, offset, addr = 0) -> BigInt address
  uint64_t len = ArgU64(info, 0);
  int prot = ArgInt(info, 1);
  int flags = ArgInt(info, 2);
  int fd = ArgInt(info, 3);
  uint64_t off = ArgU64(info, 4);
  uint64_t hint = info.Length() > 5 ? ArgU64(info, 5) : 0;
  void* p = mmap(reinterpret_cast<void*>(hint), len, prot, flags, fd, static_cast<off_t>(off));
  if (p == MAP_FAILED) ThrowErrno(info.Env(), "mmap", errno);
  return Napi::BigInt::New(info.Env(), static_cast<uint64_t>(reinterpret_cast<uintptr_t>(p)));
}

static Napi::Value Munmap(const Napi::CallbackInfo& info) {
  if (munmap(reinterpret_cast<void*>(ArgU64(info, 0)), ArgU64(info, 1)) < 0) ThrowErrno(info.Env(), "munmap", errno);
  return info.Env().Undefined();
}

static Napi::Value Mprotect(const Napi::CallbackInfo& info) {
  if (mprotect(reinterpret_cast<void*>(ArgU64(info, 0)), ArgU64(info, 1), ArgInt(info, 2)) < 0)
    ThrowErrno(info.Env(), "mprotect", errno);
  return info.Env().Undefined();
}

static Napi::Value Madvise(const Napi::CallbackInfo& info) {
  if (madvise(reinterpret_cast<void*>(ArgU64(info, 0)), ArgU64(info, 1), ArgInt(info, 2)) < 0)
    ThrowErrno(info.Env(), "madvise", errno);
  return info.Env().Undefined();
}

// mincore(addr, len, out): out gets one byte per page (bit 0 = resident).
static Napi::Value Mincore(const Napi::CallbackInfo& info) {
  uint64_t len = ArgU64(info, 1);
  auto out = ArgBuffer(info, 2);
  uint64_t pages = (len + 4095) / 4096;
  if (out.Length() < pages) ThrowArg(info.Env(), "mincore: output buffer too small");
  if (mincore(reinterpret_cast<void*>(ArgU64(info, 0)), len, out.Data()) < 0) ThrowErrno(info.Env(), "mincore", errno);
  return info.Env().Undefined();
}

static Napi::Value PosixFadvise(const Napi::CallbackInfo& info) {
  int r = posix_fadvise(ArgInt(info, 0), static_cast<off_t>(ArgU64(info, 1)), static_cast<off_t>(ArgU64(info, 2)), ArgInt(info, 3));
  if (r != 0) ThrowErrno(info.Env(), "posix_fadvise", r);
  return info.Env().Undefined();
}

// A zero-copy ArrayBuffer over [addr, addr+len). The caller owns the mapping.
static Napi::Value MemoryView(const Napi::CallbackInfo& info) {
  uint64_t addr = ArgU64(info, 0);
  uint64_t len = ArgU64(info, 1);
  if (addr == 0 || len == 0) ThrowArg(info.Env(), "memoryView: empty range");
  return Napi::ArrayBuffer::New(info.Env(), reinterpret_cast<void*>(addr), len);
}

static Napi::Value DetachView(const Napi::CallbackInfo& info) {
  if (!info[0].IsArrayBuffer()) ThrowArg(info.Env(), "detachView: expected an ArrayBuffer");
  auto ab = info[0].As<Napi::ArrayBuffer>();
  if (!ab.IsDetached()) ab.Detach();
  return info.Env().Undefined();
}

void InitMemory(Napi::Env env, Napi::Object exports) {
  exports.Set("mmap", Napi::Function::New(env, Mmap));
  exports.Set("munmap", Napi::Function::New(env, Munmap));
  exports.Set("mprotect", Napi::Function::New(env, Mprotect));
  exports.Set("madvise", Napi::Function::New(env, Madvise));
  exports.Set("mincore", Napi::Function::New(env, Mincore));
  exports.Set("posixFadvise", Napi::Function::New(env, PosixFadvise));
  exports.Set("memoryView", Napi::Function::New(env, MemoryView));
  exports.Set("detachView", Napi::Function::New(env, DetachView));
  Napi::Object c = Napi::Object::New(env);
  c.Set("PROT_NONE", Napi::Number::New(env, PROT_NONE));
  c.Set("PROT_READ", Napi::Number::New(env, PROT_READ));
  c.Set("PROT_WRITE", Napi::Number::New(env, PROT_WRITE));
  c.Set("MAP_SHARED", Napi::Number::New(env, MAP_SHARED));
  c.Set("MAP_PRIVATE", Napi::Number::New(env, MAP_PRIVATE));
  c.Set("MAP_ANONYMOUS", Napi::Number::New(env, MAP_ANONYMOUS));
  c.Set("MAP_FIXED", Napi::Number::New(env, MAP_FIXED));
  c.Set("MAP_NORESERVE", Napi::Number::New(env, MAP_NORESERVE));
  c.Set("MAP_POPULATE", Napi::Number::New(env, MAP_POPULATE));
  c.Set("MADV_DONTNEED", Napi::Number::New(env, MADV_DONTNEED));
  c.Set("MADV_WILLNEED", Napi::Number::New(env, MADV_WILLNEED));
  c.Set("MADV_RANDOM", Napi::Number::New(env, MADV_RANDOM));
  c.Set("MADV_SEQUENTIAL", Napi::Number::New(env, MADV_SEQUENTIAL));
  c.Set("MADV_DONTFORK", Napi::Number::New(env, MADV_DONTFORK));
  c.Set("MADV_HUGEPAGE", Napi::Number::New(env, MADV_HUGEPAGE));
  c.Set("MADV_NOHUGEPAGE", Napi::Number::New(env, MADV_NOHUGEPAGE));
#ifdef MADV_POPULATE_READ
  c.Set("MADV_POPULATE_READ", Napi::Number::New(env, MADV_POPULATE_READ));
#endif
  c.Set("POSIX_FADV_NORMAL", Napi::Number::New(env, POSIX_FADV_NORMAL));
  c.Set("POSIX_FADV_RANDOM", Napi::Number::New(env, POSIX_FADV_RANDOM));
  c.Set("POSIX_FADV_SEQUENTIAL", Napi::Number::New(env, POSIX_FADV_SEQUENTIAL));
  c.Set("POSIX_FADV_WILLNEED", Napi::Number::New(env, POSIX_FADV_WILLNEED));
  c.Set("POSIX_FADV_DONTNEED", Napi::Number::New(env, POSIX_FADV_DONTNEED));
  exports.Set("memConstants", c);
}

}  // namespace faasnap
