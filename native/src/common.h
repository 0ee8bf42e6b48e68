// Shared helpers of the native addon. The addon is deliberately thin: one function per ioctl
// or syscall, no policy. Errors become JS exceptions carrying {op, errno, code}.
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>

namespace faasnap {

// Throws a JS Error for a failed system call: message "<op>: <strerror>", properties op/errno/code.
[[noreturn]] void ThrowErrno(Napi::Env env, const char* op, int err);
// Throws a JS TypeError/RangeError for bad arguments from TypeScript (a bug in our TS, not the guest).
[[noreturn]] void ThrowArg(Napi::Env env, const std::string& msg);

int32_t ArgInt(const Napi::CallbackInfo& info, size_t i);
uint32_t ArgU32(const Napi::CallbackInfo& info, size_t i);
// Accepts a non-negative safe integer Number or a BigInt (addresses and sizes may exceed 2^53).
uint64_t ArgU64(const Napi::CallbackInfo& info, size_t i);
Napi::Buffer<uint8_t> ArgBuffer(const Napi::CallbackInfo& info, size_t i);
Napi::Function ArgFunction(const Napi::CallbackInfo& info, size_t i);

void InitFd(Napi::Env env, Napi::Object exports);
void InitKvm(Napi::Env env, Napi::Object exports);
void InitLayouts(Napi::Env env, Napi::Object exports);
void InitMemory(Napi::Env env, Napi::Object exports);
void InitSeccomp(Napi::Env env, Napi::Object exports);
void InitUffd(Napi::Env env, Napi::Object exports);
void InitVcpuRunner(Napi::Env env, Napi::Object exports);

}  // namespace faasnap
