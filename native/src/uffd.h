// userfaultfd helpers shared by the ioctl wrappers (uffd.cc) and the fault server
// (uffd_server.cc): page size, UFFDIO_COPY with its retries, UFFDIO_WAKE, argument parsing.
#pragma once

#include <napi.h>

#include <atomic>
#include <cstdint>

namespace faasnap {
namespace uffd {

constexpr uint64_t kPage = 4096;

uint64_t NowNs();
// A non-negative safe-integer Number or a BigInt (addresses and sizes may exceed 2^53).
uint64_t ValueU64(Napi::Env env, Napi::Value v, const char* what);
// Raw bytes of an ArrayBuffer or a typed array (Buffer included) in argument i.
void BytesArg(const Napi::CallbackInfo& info, size_t i, uint8_t** data, size_t* len);
// UFFDIO_WAKE of [start, start+len); 0 or the errno.
int Wake(int fd, uint64_t start, uint64_t len);

struct CopyOutcome {
  uint64_t copied = 0;   // bytes this call installed
  uint64_t existed = 0;  // bytes skipped because the page was already there (EEXIST)
  uint64_t eagain = 0;   // EAGAIN retries
};

// UFFDIO_COPY of [src, src+len) to dst, page by page where needed (see uffd.cc). Returns 0 or
// the errno that stopped it; `stop` (may be null) ends EAGAIN retries early.
int CopyRange(int fd, uint64_t dst, const uint8_t* src, uint64_t len, CopyOutcome& out,
              const std::atomic<bool>* stop);

}  // namespace uffd

void InitUffdServer(Napi::Env env, Napi::Object exports);

}  // namespace faasnap
