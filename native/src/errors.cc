#include <cerrno>
#include <cmath>
#include <cstring>

#include "common.h"

namespace faasnap {

static const char* ErrnoName(int err) {
  switch (err) {
#define E(x) \
  case x:    \
    return #x;
    E(EPERM) E(ENOENT) E(EINTR) E(EIO) E(EBADF) E(EAGAIN) E(ENOMEM) E(EACCES) E(EFAULT)
    E(EBUSY) E(EEXIST) E(ENODEV) E(EINVAL) E(ENFILE) E(EMFILE) E(ENOTTY) E(ENOSPC) E(ENOSYS)
    E(ERANGE) E(E2BIG) E(EOPNOTSUPP) E(ENXIO) E(ESRCH) E(ENOEXEC)
#undef E
    default:
      return "EUNKNOWN";
  }
}

void ThrowErrno(Napi::Env env, const char* op, int err) {
  std::string msg = std::string(op) + ": " + strerror(err);
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("op", Napi::String::New(env, op));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("code", Napi::String::New(env, ErrnoName(err)));
  throw e;
}

void ThrowArg(Napi::Env env, const std::string& msg) { throw Napi::TypeError::New(env, msg); }

int32_t ArgInt(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || !info[i].IsNumber()) ThrowArg(info.Env(), "argument " + std::to_string(i) + " must be a number");
  double d = info[i].As<Napi::Number>().DoubleValue();
  if (std::trunc(d) != d || d < INT32_MIN || d > INT32_MAX) ThrowArg(info.Env(), "argument " + std::to_string(i) + " must be an int32");
  return static_cast<int32_t>(d);
}

uint32_t ArgU32(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || !info[i].IsNumber()) ThrowArg(info.Env(), "argument " + std::to_string(i) + " must be a number");
  double d = info[i].As<Napi::Number>().DoubleValue();
  if (std::trunc(d) != d || d < 0 || d > UINT32_MAX) ThrowArg(info.Env(), "argument " + std::to_string(i) + " must be a uint32");
  return static_cast<uint32_t>(d);
}

uint64_t ArgU64(const Napi::CallbackInfo& info, size_t i) {
  if (i < info.Length() && info[i].IsBigInt()) {
    bool lossless = false;
    uint64_t v = info[i].As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) ThrowArg(info.Env(), "argument " + std::to_string(i) + " must fit in a uint64");
    return v;
  }
  if (i >= info.Length() || !info[i].IsNumber()) ThrowArg(info.Env(), "argument " + std::to_string(i) + " must be a number or bigint");
  double d = info[i].As<Napi::Number>().DoubleValue();
  if (std::trunc(d) != d || d < 0 || d > 9007199254740991.0) ThrowArg(info.Env(), "argument " + std::to_string(i) + " must be a non-negative safe integer");
  return static_cast<uint64_t>(d);
}

Napi::Buffer<uint8_t> ArgBuffer(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || !info[i].IsBuffer()) ThrowArg(info.Env(), "argument " + std::to_string(i) + " must be a Buffer");
  return info[i].As<Napi::Buffer<uint8_t>>();
}

Napi::Function ArgFunction(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || !info[i].IsFunction()) ThrowArg(info.Env(), "argument " + std::to_string(i) + " must be a function");
  return info[i].As<Napi::Function>();
}


}  // namespace faasnap
