// userfaultfd: one function per UFFDIO_* ioctl, preadDirect (an O_DIRECT read into memory the
// caller mapped page-aligned), and the helpers the fault server (uffd_server.cc) shares: the
// UFFDIO_COPY loop with its EEXIST/EAGAIN handling, UFFDIO_WAKE, argument parsing.
//
// The userfaultfd uapi structs have no flexible array members (unlike KVM's, see kvm_abi.h), so
// sizeof here equals the C layout; the static_asserts pin the sizes the request codes encode.
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

#include "common.h"
#include "uffd.h"

namespace faasnap {

namespace {

static_assert(sizeof(struct uffdio_api) == 24, "uffdio_api layout");
static_assert(sizeof(struct uffdio_range) == 16, "uffdio_range layout");
static_assert(sizeof(struct uffdio_register) == 32, "uffdio_register layout");
static_assert(sizeof(struct uffdio_copy) == 40, "uffdio_copy layout");
static_assert(sizeof(struct uffdio_zeropage) == 32, "uffdio_zeropage layout");
static_assert(sizeof(struct uffd_msg) == 32, "uffd_msg layout");

// EAGAIN from UFFDIO_COPY means the address space is changing under a non-cooperative event;
// it settles quickly. Give up after ~1 s so a stuck copy becomes an error instead of a hang.
constexpr int kMaxEagain = 10000;

void Backoff(int attempt) {
  if (attempt < 16) {
    sched_yield();
  } else {
    struct timespec ts = {0, 100000};  // 100 µs
    nanosleep(&ts, nullptr);
  }
}

}  // namespace

namespace uffd {

uint64_t NowNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

uint64_t ValueU64(Napi::Env env, Napi::Value v, const char* what) {
  if (v.IsBigInt()) {
    bool lossless = false;
    uint64_t r = v.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) ThrowArg(env, std::string(what) + " must fit in a uint64");
    return r;
  }
  if (!v.IsNumber()) ThrowArg(env, std::string(what) + " must be a number or bigint");
  double d = v.As<Napi::Number>().DoubleValue();
  if (d < 0 || d > 9007199254740991.0 || static_cast<double>(static_cast<uint64_t>(d)) != d)
    ThrowArg(env, std::string(what) + " must be a non-negative safe integer");
  return static_cast<uint64_t>(d);
}

// Raw bytes of an ArrayBuffer or a typed array (Buffer included).
void BytesArg(const Napi::CallbackInfo& info, size_t i, uint8_t** data, size_t* len) {
  if (i < info.Length() && info[i].IsArrayBuffer()) {
    auto ab = info[i].As<Napi::ArrayBuffer>();
    *data = static_cast<uint8_t*>(ab.Data());
    *len = ab.ByteLength();
    return;
  }
  if (i < info.Length() && info[i].IsTypedArray()) {
    auto ta = info[i].As<Napi::TypedArray>();
    *data = static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
    *len = ta.ByteLength();
    return;
  }
  ThrowArg(info.Env(), "argument " + std::to_string(i) + " must be an ArrayBuffer or a typed array");
}

int Wake(int fd, uint64_t start, uint64_t len) {
  struct uffdio_range r = {start, len};
  return ioctl(fd, UFFDIO_WAKE, &r) < 0 ? errno : 0;
}

// UFFDIO_COPY of [src, src+len) to dst, page by page where needed. The kernel reports a partial
// copy as EAGAIN with `copy` = bytes done, so the rest is retried from there. EEXIST means the
// page was installed meanwhile (a concurrent fault on the same page, or installPages racing the
// server): the page is skipped, and its waiters are woken explicitly because a failed copy does
// not wake anyone. Returns 0 or the errno that stopped it.
int CopyRange(int fd, uint64_t dst, const uint8_t* src, uint64_t len, CopyOutcome& out,
              const std::atomic<bool>* stop) {
  uint64_t done = 0;
  int attempts = 0;
  while (done < len) {
    struct uffdio_copy c = {};
    c.dst = dst + done;
    c.src = reinterpret_cast<uintptr_t>(src + done);
    c.len = len - done;
    c.mode = 0;
    if (ioctl(fd, UFFDIO_COPY, &c) == 0) {
      out.copied += len - done;
      return 0;
    }
    int err = errno;
    if (c.copy > 0) {
      done += static_cast<uint64_t>(c.copy);
      out.copied += static_cast<uint64_t>(c.copy);
      continue;
    }
    if (err == EEXIST) {
      Wake(fd, dst + done, kPage);
      out.existed += kPage;
      done += kPage;
      continue;
    }
    if (err == EAGAIN || err == EINTR) {
      out.eagain++;
      if (++attempts > kMaxEagain || (stop != nullptr && stop->load(std::memory_order_relaxed))) return EAGAIN;
      Backoff(attempts);
      continue;
    }
    return err;
  }
  return 0;
}

}  // namespace uffd

namespace {

using namespace uffd;

// ---------------------------------------------------------------------------------------------
// Thin ioctl wrappers.

// uffdApi(fd, features = 0) -> {api, features, ioctls}
Napi::Value UffdApi(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  struct uffdio_api api = {};
  api.api = UFFD_API;
  api.features = info.Length() > 1 ? ArgU64(info, 1) : 0;
  if (ioctl(ArgInt(info, 0), UFFDIO_API, &api) < 0) ThrowErrno(env, "UFFDIO_API", errno);
  Napi::Object r = Napi::Object::New(env);
  r.Set("api", Napi::Number::New(env, static_cast<double>(api.api)));
  r.Set("features", Napi::BigInt::New(env, static_cast<uint64_t>(api.features)));
  r.Set("ioctls", Napi::BigInt::New(env, static_cast<uint64_t>(api.ioctls)));
  return r;
}

// uffdRegister(fd, addr, len, mode) -> ioctls available on the range (bit n = _UFFDIO_* n)
Napi::Value UffdRegister(const Napi::CallbackInfo& info) {
  struct uffdio_register reg = {};
  reg.range.start = ArgU64(info, 1);
  reg.range.len = ArgU64(info, 2);
  reg.mode = ArgU64(info, 3);
  if (ioctl(ArgInt(info, 0), UFFDIO_REGISTER, &reg) < 0) ThrowErrno(info.Env(), "UFFDIO_REGISTER", errno);
  return Napi::BigInt::New(info.Env(), static_cast<uint64_t>(reg.ioctls));
}

Napi::Value UffdUnregister(const Napi::CallbackInfo& info) {
  struct uffdio_range r = {ArgU64(info, 1), ArgU64(info, 2)};
  if (ioctl(ArgInt(info, 0), UFFDIO_UNREGISTER, &r) < 0) ThrowErrno(info.Env(), "UFFDIO_UNREGISTER", errno);
  return info.Env().Undefined();
}

// uffdCopy(fd, dst, src, srcOffset, len, mode = 0) -> bytes copied. One ioctl, no retries; a
// failure after a partial copy throws with `copied` set.
Napi::Value UffdCopy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint8_t* data = nullptr;
  size_t size = 0;
  BytesArg(info, 2, &data, &size);
  uint64_t off = ArgU64(info, 3);
  uint64_t len = ArgU64(info, 4);
  if (off > size || len > size - off) ThrowArg(env, "uffdCopy: source range outside the buffer");
  struct uffdio_copy c = {};
  c.dst = ArgU64(info, 1);
  c.src = reinterpret_cast<uintptr_t>(data + off);
  c.len = len;
  c.mode = info.Length() > 5 ? ArgU64(info, 5) : 0;
  if (ioctl(ArgInt(info, 0), UFFDIO_COPY, &c) < 0) {
    int err = errno;
    try {
      ThrowErrno(env, "UFFDIO_COPY", err);
    } catch (Napi::Error& e) {
      e.Set("copied", Napi::Number::New(env, c.copy > 0 ? static_cast<double>(c.copy) : 0));
      throw;
    }
  }
  return Napi::Number::New(env, static_cast<double>(c.copy));
}

// uffdZeropage(fd, addr, len, mode = 0) -> bytes zero-mapped
Napi::Value UffdZeropage(const Napi::CallbackInfo& info) {
  struct uffdio_zeropage z = {};
  z.range.start = ArgU64(info, 1);
  z.range.len = ArgU64(info, 2);
  z.mode = info.Length() > 3 ? ArgU64(info, 3) : 0;
  if (ioctl(ArgInt(info, 0), UFFDIO_ZEROPAGE, &z) < 0) ThrowErrno(info.Env(), "UFFDIO_ZEROPAGE", errno);
  return Napi::Number::New(info.Env(), static_cast<double>(z.zeropage));
}

Napi::Value UffdWake(const Napi::CallbackInfo& info) {
  int err = Wake(ArgInt(info, 0), ArgU64(info, 1), ArgU64(info, 2));
  if (err != 0) ThrowErrno(info.Env(), "UFFDIO_WAKE", err);
  return info.Env().Undefined();
}

// preadDirect(fd, target, fileOffset) -> bytes read. Reads until `target` is full or EOF. The
// target must start and end on a 4 KiB boundary (what O_DIRECT needs on every filesystem we
// use; Node's Buffers are not aligned, so the caller maps the target with mmap).
Napi::Value PreadDirect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgInt(info, 0);
  uint8_t* data = nullptr;
  size_t len = 0;
  BytesArg(info, 1, &data, &len);
  uint64_t off = ArgU64(info, 2);
  if (reinterpret_cast<uintptr_t>(data) % kPage != 0 || len % kPage != 0 || off % kPage != 0)
    ThrowArg(env, "preadDirect: target address, length and file offset must be 4 KiB aligned");
  size_t done = 0;
  while (done < len) {
    ssize_t n = pread(fd, data + done, len - done, static_cast<off_t>(off + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      ThrowErrno(env, "pread", errno);
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
    // O_DIRECT reads stop short only at EOF or on an unaligned tail; either way the next
    // call (if any) starts on a page boundary again or returns 0.
    if (done % kPage != 0) break;
  }
  return Napi::Number::New(env, static_cast<double>(done));
}

}  // namespace

void InitUffd(Napi::Env env, Napi::Object exports) {
  exports.Set("uffdApi", Napi::Function::New(env, UffdApi));
  exports.Set("uffdRegister", Napi::Function::New(env, UffdRegister));
  exports.Set("uffdUnregister", Napi::Function::New(env, UffdUnregister));
  exports.Set("uffdCopy", Napi::Function::New(env, UffdCopy));
  exports.Set("uffdZeropage", Napi::Function::New(env, UffdZeropage));
  exports.Set("uffdWake", Napi::Function::New(env, UffdWake));
  exports.Set("preadDirect", Napi::Function::New(env, PreadDirect));
  InitUffdServer(env, exports);
  Napi::Object c = Napi::Object::New(env);
  auto set = [&](const char* name, uint64_t v) { c.Set(name, Napi::Number::New(env, static_cast<double>(v))); };
  set("UFFD_API", UFFD_API);
  set("UFFD_USER_MODE_ONLY", UFFD_USER_MODE_ONLY);
  set("UFFDIO_REGISTER_MODE_MISSING", UFFDIO_REGISTER_MODE_MISSING);
  set("UFFDIO_REGISTER_MODE_WP", UFFDIO_REGISTER_MODE_WP);
  set("UFFDIO_REGISTER_MODE_MINOR", UFFDIO_REGISTER_MODE_MINOR);
  set("UFFDIO_COPY_MODE_DONTWAKE", UFFDIO_COPY_MODE_DONTWAKE);
  set("UFFDIO_ZEROPAGE_MODE_DONTWAKE", UFFDIO_ZEROPAGE_MODE_DONTWAKE);
  set("UFFD_EVENT_PAGEFAULT", UFFD_EVENT_PAGEFAULT);
  set("UFFD_FEATURE_THREAD_ID", UFFD_FEATURE_THREAD_ID);
  set("UFFD_FEATURE_EXACT_ADDRESS", UFFD_FEATURE_EXACT_ADDRESS);
  // Bit numbers of the `ioctls` masks returned by uffdApi / uffdRegister.
  set("_UFFDIO_REGISTER", _UFFDIO_REGISTER);
  set("_UFFDIO_UNREGISTER", _UFFDIO_UNREGISTER);
  set("_UFFDIO_WAKE", _UFFDIO_WAKE);
  set("_UFFDIO_COPY", _UFFDIO_COPY);
  set("_UFFDIO_ZEROPAGE", _UFFDIO_ZEROPAGE);
  set("_UFFDIO_API", _UFFDIO_API);
  exports.Set("uffdConstants", c);
}

}  // namespace faasnap
