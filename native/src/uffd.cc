// userfaultfd: one function per UFFDIO_* ioctl, preadDirect (an O_DIRECT read into memory the
// caller mapped page-aligned), and UffdServer, the native thread that serves missing-page faults
// on guest RAM from a snapshot memory file (REAP, DESIGN.md §4.7).
//
// Why a native thread: the faulting thread can be a vCPU inside KVM_RUN (KVM's get_user_pages
// lands in handle_userfault) or the JS thread itself when a device reads guest memory. Serving
// faults on Node's event loop would deadlock the second case, so faults are served here, on a
// thread that never touches registered memory and never waits for JS.
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

namespace faasnap {

namespace {

static_assert(sizeof(struct uffdio_api) == 24, "uffdio_api layout");
static_assert(sizeof(struct uffdio_range) == 16, "uffdio_range layout");
static_assert(sizeof(struct uffdio_register) == 32, "uffdio_register layout");
static_assert(sizeof(struct uffdio_copy) == 40, "uffdio_copy layout");
static_assert(sizeof(struct uffdio_zeropage) == 32, "uffdio_zeropage layout");
static_assert(sizeof(struct uffd_msg) == 32, "uffd_msg layout");

constexpr uint64_t kPage = 4096;
// EAGAIN from UFFDIO_COPY means the address space is changing under a non-cooperative event;
// it settles quickly. Give up after ~1 s so a stuck copy becomes an error instead of a hang.
constexpr int kMaxEagain = 10000;

uint64_t NowNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

void Backoff(int attempt) {
  if (attempt < 16) {
    sched_yield();
  } else {
    struct timespec ts = {0, 100000};  // 100 µs
    nanosleep(&ts, nullptr);
  }
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

struct CopyOutcome {
  uint64_t copied = 0;   // bytes this call installed
  uint64_t existed = 0;  // bytes skipped because the page was already there (EEXIST)
  uint64_t eagain = 0;   // EAGAIN retries
};

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

// ---------------------------------------------------------------------------------------------
// UffdServer

struct Region {
  uint64_t host;
  uint64_t size;
  uint64_t file_off;
};

class UffdServer : public Napi::ObjectWrap<UffdServer> {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    exports.Set("UffdServer", DefineClass(env, "UffdServer",
                                          {
                                              InstanceMethod("installPages", &UffdServer::InstallPages),
                                              InstanceMethod("recorded", &UffdServer::Recorded),
                                              InstanceMethod("stats", &UffdServer::Stats),
                                              InstanceMethod("close", &UffdServer::Close),
                                          }));
  }

  // new UffdServer(uffd, [{hostAddr, size, fileOffset}], memoryFileFd, {record})
  explicit UffdServer(const Napi::CallbackInfo& info) : Napi::ObjectWrap<UffdServer>(info) {
    Napi::Env env = info.Env();
    uffd_ = ArgInt(info, 0);
    mem_fd_ = ArgInt(info, 2);
    ParseRegions(env, info.Length() > 1 ? info[1] : env.Undefined());
    if (info.Length() > 3 && info[3].IsObject()) {
      record_ = info[3].As<Napi::Object>().Get("record").ToBoolean().Value();
    }
    if (record_) seen_.assign(total_pages_, false);

    // poll() on a blocking userfaultfd reports POLLERR (the kernel cannot promise a read will
    // not block), so the fd must be non-blocking; setting it here keeps callers from tripping.
    int fl = fcntl(uffd_, F_GETFL);
    if (fl < 0) ThrowErrno(env, "fcntl(F_GETFL)", errno);
    if (!(fl & O_NONBLOCK) && fcntl(uffd_, F_SETFL, fl | O_NONBLOCK) < 0) ThrowErrno(env, "fcntl(F_SETFL)", errno);

    if (posix_memalign(reinterpret_cast<void**>(&scratch_), kPage, kPage) != 0) ThrowErrno(env, "posix_memalign", ENOMEM);
    stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (stop_fd_ < 0) {
      int err = errno;
      Release();
      ThrowErrno(env, "eventfd", err);
    }
    // Signals stay with Node's main thread: the server starts with all of them blocked.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int r = pthread_create(&thread_, nullptr, &UffdServer::ThreadMain, this);
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    if (r != 0) {
      Release();
      ThrowErrno(env, "pthread_create", r);
    }
    started_ = true;
  }

  ~UffdServer() override { Release(); }

 private:
  void ParseRegions(Napi::Env env, Napi::Value v) {
    if (!v.IsArray()) ThrowArg(env, "UffdServer: regions must be an array");
    auto arr = v.As<Napi::Array>();
    if (arr.Length() == 0) ThrowArg(env, "UffdServer: no regions");
    for (uint32_t i = 0; i < arr.Length(); i++) {
      Napi::Value e = arr.Get(i);
      if (!e.IsObject()) ThrowArg(env, "UffdServer: region must be an object");
      auto o = e.As<Napi::Object>();
      Region r{ValueU64(env, o.Get("hostAddr"), "hostAddr"), ValueU64(env, o.Get("size"), "size"),
               ValueU64(env, o.Get("fileOffset"), "fileOffset")};
      if (r.host % kPage || r.size % kPage || r.file_off % kPage || r.size == 0 || r.host + r.size < r.host)
        ThrowArg(env, "UffdServer: regions must be non-empty and 4 KiB aligned");
      for (const Region& q : regions_) {
        bool host_overlap = r.host < q.host + q.size && q.host < r.host + r.size;
        bool file_overlap = r.file_off < q.file_off + q.size && q.file_off < r.file_off + r.size;
        if (host_overlap || file_overlap) ThrowArg(env, "UffdServer: regions overlap");
      }
      regions_.push_back(r);
      uint64_t end_page = (r.file_off + r.size) / kPage;
      if (end_page > UINT32_MAX) ThrowArg(env, "UffdServer: page indices must fit in 32 bits");
      if (end_page > total_pages_) total_pages_ = end_page;
    }
  }

  const Region* FindHost(uint64_t addr) const {
    for (const Region& r : regions_)
      if (addr >= r.host && addr - r.host < r.size) return &r;
    return nullptr;
  }

  const Region* FindPage(uint64_t page) const {
    uint64_t off = page * kPage;
    for (const Region& r : regions_)
      if (off >= r.file_off && off - r.file_off < r.size) return &r;
    return nullptr;
  }

  static void* ThreadMain(void* arg) {
    static_cast<UffdServer*>(arg)->Loop();
    return nullptr;
  }

  void Loop() {
    struct pollfd fds[2] = {{uffd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    struct uffd_msg msgs[64];
    while (!stop_.load(std::memory_order_acquire)) {
      int r = poll(fds, 2, -1);
      if (r < 0) {
        if (errno == EINTR) continue;
        SetError("poll", errno, 0);
        return;
      }
      if (fds[1].revents) return;
      if (fds[0].revents & (POLLERR | POLLHUP | POLLNVAL)) {
        SetError("poll(userfaultfd)", EBADF, 0);
        return;
      }
      ssize_t n = read(uffd_, msgs, sizeof msgs);
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) continue;  // the fault was woken meanwhile
        SetError("read(userfaultfd)", errno, 0);
        return;
      }
      for (size_t i = 0; i < static_cast<size_t>(n) / sizeof(struct uffd_msg); i++) {
        // Only page faults arrive: no non-cooperative events (fork/remap/remove) are enabled.
        if (msgs[i].event == UFFD_EVENT_PAGEFAULT) Serve(msgs[i].arg.pagefault.address & ~(kPage - 1));
      }
    }
  }

  void Serve(uint64_t addr) {
    uint64_t t0 = NowNs();
    faults_.fetch_add(1, std::memory_order_relaxed);
    const Region* r = FindHost(addr);
    if (r == nullptr) {
      Fail("fault outside the served regions", EFAULT, addr);
      return;
    }
    uint64_t file_off = r->file_off + (addr - r->host);
    if (record_) Record(static_cast<uint32_t>(file_off / kPage));
    size_t got = 0;
    while (got < kPage) {
      ssize_t n = pread(mem_fd_, scratch_ + got, kPage - got, static_cast<off_t>(file_off + got));
      if (n < 0) {
        if (errno == EINTR) continue;
        Fail("pread(memory file)", errno, addr);
        return;
      }
      if (n == 0) break;
      got += static_cast<size_t>(n);
    }
    // Past the end of the memory file reads as zeros (the TS side checks the file size first).
    if (got < kPage) memset(scratch_ + got, 0, kPage - got);
    bytes_read_.fetch_add(got, std::memory_order_relaxed);
    uint64_t t1 = NowNs();
    read_ns_.fetch_add(t1 - t0, std::memory_order_relaxed);
    CopyOutcome out;
    int err = CopyRange(uffd_, addr, scratch_, kPage, out, &stop_);
    eagain_.fetch_add(out.eagain, std::memory_order_relaxed);
    if (err != 0) {
      Fail("UFFDIO_COPY", err, addr);
      return;
    }
    if (out.copied) {
      served_.fetch_add(1, std::memory_order_relaxed);
      bytes_copied_.fetch_add(out.copied, std::memory_order_relaxed);
    } else {
      existing_.fetch_add(1, std::memory_order_relaxed);
    }
    uint64_t t2 = NowNs();
    copy_ns_.fetch_add(t2 - t1, std::memory_order_relaxed);
    serve_ns_.fetch_add(t2 - t0, std::memory_order_relaxed);
  }

  // A fault that cannot be served must still not stay blocked: a vCPU faulting from inside
  // KVM (a kernel-mode access to guest RAM) only leaves the fault for a fatal signal, so the
  // VMM could neither kick nor join it. The page becomes a zero page and the error is kept for
  // TypeScript to fail the restore with (stats().errors / lastError).
  void Fail(const char* op, int err, uint64_t addr) {
    SetError(op, err, addr);
    struct uffdio_zeropage z = {};
    z.range.start = addr;
    z.range.len = kPage;
    if (ioctl(uffd_, UFFDIO_ZEROPAGE, &z) < 0) Wake(uffd_, addr, kPage);
  }

  void Record(uint32_t page) {
    std::lock_guard<std::mutex> lk(rec_mu_);
    if (page >= seen_.size() || seen_[page]) return;
    seen_[page] = true;
    recorded_.push_back(page);
  }

  void SetError(const char* op, int err, uint64_t addr) {
    std::lock_guard<std::mutex> lk(err_mu_);
    errors_++;
    err_op_ = op;
    err_errno_ = err;
    err_addr_ = addr;
  }

  // installPages(pageIndices: Uint32Array | Float64Array, data) -> {installed, existing}
  //
  // Runs synchronously on the calling (JS) thread: REAP installs the working set before the
  // vCPUs resume, so nothing else could use that time, and a hand-off to the server thread
  // would only add a wake-up. Runs of consecutive pages go in one UFFDIO_COPY. Safe while the
  // server runs: a page both install (EEXIST on one side) is counted once.
  Napi::Value InstallPages(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!started_) ThrowArg(env, "UffdServer is closed");
    if (info.Length() < 1 || !info[0].IsTypedArray()) ThrowArg(env, "installPages: page indices must be a Uint32Array or Float64Array");
    auto ta = info[0].As<Napi::TypedArray>();
    std::vector<uint64_t> pages(ta.ElementLength());
    if (ta.TypedArrayType() == napi_uint32_array) {
      auto a = ta.As<Napi::Uint32Array>();
      for (size_t i = 0; i < pages.size(); i++) pages[i] = a[i];
    } else if (ta.TypedArrayType() == napi_float64_array) {
      auto a = ta.As<Napi::Float64Array>();
      for (size_t i = 0; i < pages.size(); i++) {
        double d = a[i];
        if (!(d >= 0 && d <= UINT32_MAX) || static_cast<double>(static_cast<uint64_t>(d)) != d)
          ThrowArg(env, "installPages: page index " + std::to_string(i) + " is not a uint32");
        pages[i] = static_cast<uint64_t>(d);
      }
    } else {
      ThrowArg(env, "installPages: page indices must be a Uint32Array or Float64Array");
    }
    uint8_t* data = nullptr;
    size_t len = 0;
    BytesArg(info, 1, &data, &len);
    if (len / kPage < pages.size()) ThrowArg(env, "installPages: data is shorter than pages x 4096");
    std::vector<const Region*> where(pages.size());
    for (size_t i = 0; i < pages.size(); i++) {
      where[i] = FindPage(pages[i]);
      if (where[i] == nullptr) ThrowArg(env, "installPages: page " + std::to_string(pages[i]) + " is outside the regions");
    }
    CopyOutcome out;
    size_t i = 0;
    while (i < pages.size()) {
      size_t j = i + 1;
      while (j < pages.size() && pages[j] == pages[j - 1] + 1 && where[j] == where[i]) j++;
      const Region* r = where[i];
      uint64_t dst = r->host + (pages[i] * kPage - r->file_off);
      int err = CopyRange(uffd_, dst, data + i * kPage, (j - i) * kPage, out, nullptr);
      if (err != 0) {
        AddInstalled(out);
        try {
          ThrowErrno(env, "UFFDIO_COPY", err);
        } catch (Napi::Error& e) {
          e.Set("page", Napi::Number::New(env, static_cast<double>(pages[i])));
          throw;
        }
      }
      i = j;
    }
    AddInstalled(out);
    Napi::Object r = Napi::Object::New(env);
    r.Set("installed", Napi::Number::New(env, static_cast<double>(out.copied / kPage)));
    r.Set("existing", Napi::Number::New(env, static_cast<double>(out.existed / kPage)));
    return r;
  }

  void AddInstalled(const CopyOutcome& out) {
    pages_installed_.fetch_add(out.copied / kPage, std::memory_order_relaxed);
    install_existing_.fetch_add(out.existed / kPage, std::memory_order_relaxed);
    eagain_.fetch_add(out.eagain, std::memory_order_relaxed);
  }

  // A copy of the recorded page indices (fault order, each page once). Valid after close().
  Napi::Value Recorded(const Napi::CallbackInfo& info) {
    std::lock_guard<std::mutex> lk(rec_mu_);
    auto out = Napi::Uint32Array::New(info.Env(), recorded_.size());
    if (!recorded_.empty()) memcpy(out.Data(), recorded_.data(), recorded_.size() * sizeof(uint32_t));
    return out;
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto num = [&](uint64_t v) { return Napi::Number::New(env, static_cast<double>(v)); };
    Napi::Object s = Napi::Object::New(env);
    s.Set("faults", num(faults_.load()));
    s.Set("faultsServed", num(served_.load()));
    s.Set("faultsExisting", num(existing_.load()));
    s.Set("bytesRead", num(bytes_read_.load()));
    s.Set("bytesCopied", num(bytes_copied_.load()));
    s.Set("pagesInstalled", num(pages_installed_.load()));
    s.Set("pagesInstallExisting", num(install_existing_.load()));
    s.Set("eagainRetries", num(eagain_.load()));
    s.Set("serveNs", num(serve_ns_.load()));
    s.Set("readNs", num(read_ns_.load()));
    s.Set("copyNs", num(copy_ns_.load()));
    {
      std::lock_guard<std::mutex> lk(rec_mu_);
      s.Set("recorded", num(recorded_.size()));
    }
    std::lock_guard<std::mutex> lk(err_mu_);
    s.Set("errors", num(errors_));
    if (errors_ > 0) {
      Napi::Object e = Napi::Object::New(env);
      e.Set("op", Napi::String::New(env, err_op_));
      e.Set("errno", Napi::Number::New(env, err_errno_));
      e.Set("message", Napi::String::New(env, strerror(err_errno_)));
      e.Set("address", Napi::BigInt::New(env, err_addr_));
      s.Set("lastError", e);
    }
    return s;
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Release();
    return info.Env().Undefined();
  }

  // Stops and joins the thread, closes the stop eventfd. Never closes the userfaultfd or the
  // memory file (the caller owns them, and must close them only after this). Idempotent.
  void Release() {
    if (started_) {
      stop_.store(true, std::memory_order_release);
      uint64_t one = 1;
      ssize_t w;
      do {
        w = write(stop_fd_, &one, sizeof one);
      } while (w < 0 && errno == EINTR);
      pthread_join(thread_, nullptr);
      started_ = false;
    }
    if (stop_fd_ >= 0) {
      close(stop_fd_);
      stop_fd_ = -1;
    }
    free(scratch_);
    scratch_ = nullptr;
  }

  int uffd_ = -1;
  int mem_fd_ = -1;
  int stop_fd_ = -1;
  bool record_ = false;
  bool started_ = false;
  pthread_t thread_{};
  std::atomic<bool> stop_{false};
  std::vector<Region> regions_;
  uint64_t total_pages_ = 0;
  uint8_t* scratch_ = nullptr;  // one page, page-aligned; only the server thread uses it

  std::mutex rec_mu_;
  std::vector<bool> seen_;
  std::vector<uint32_t> recorded_;

  std::atomic<uint64_t> faults_{0}, served_{0}, existing_{0}, bytes_read_{0}, bytes_copied_{0};
  std::atomic<uint64_t> pages_installed_{0}, install_existing_{0}, eagain_{0};
  std::atomic<uint64_t> serve_ns_{0}, read_ns_{0}, copy_ns_{0};

  std::mutex err_mu_;
  uint64_t errors_ = 0;
  const char* err_op_ = "";
  int err_errno_ = 0;
  uint64_t err_addr_ = 0;
};

}  // namespace

void InitUffd(Napi::Env env, Napi::Object exports) {
  exports.Set("uffdApi", Napi::Function::New(env, UffdApi));
  exports.Set("uffdRegister", Napi::Function::New(env, UffdRegister));
  exports.Set("uffdUnregister", Napi::Function::New(env, UffdUnregister));
  exports.Set("uffdCopy", Napi::Function::New(env, UffdCopy));
  exports.Set("uffdZeropage", Napi::Function::New(env, UffdZeropage));
  exports.Set("uffdWake", Napi::Function::New(env, UffdWake));
  exports.Set("preadDirect", Napi::Function::New(env, PreadDirect));
  UffdServer::Init(env, exports);
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
