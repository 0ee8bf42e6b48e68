// UffdServer: the native thread that serves missing-page faults on guest RAM from a snapshot
// memory file (REAP, docs/architecture.md "Memory modes"), records their order when asked, and
// installs a prefetched working set (installPages).
//
// Why a native thread: the faulting thread can be a vCPU inside KVM_RUN (KVM's get_user_pages
// lands in handle_userfault) or the JS thread itself when a device reads guest memory. Serving
// faults on Node's event loop would deadlock the second case, so faults are served here, on a
// thread that never touches registered memory and never waits for JS.
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

using namespace uffd;

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

  // new UffdServer(uffd, [{hostAddr, size, fileOffset}], memoryFileFd, {record, onError})
  //
  // onError({op, errno, message, address}) is called on the JS thread, once, for the first fault
  // the server could not serve, so the VM can be stopped at once instead of running on.
  explicit UffdServer(const Napi::CallbackInfo& info) : Napi::ObjectWrap<UffdServer>(info) {
    Napi::Env env = info.Env();
    uffd_ = ArgInt(info, 0);
    mem_fd_ = ArgInt(info, 2);
    ParseRegions(env, info.Length() > 1 ? info[1] : env.Undefined());
    if (info.Length() > 3 && info[3].IsObject()) {
      auto opts = info[3].As<Napi::Object>();
      record_ = opts.Get("record").ToBoolean().Value();
      Napi::Value cb = opts.Get("onError");
      if (cb.IsFunction()) {
        on_error_ = Napi::ThreadSafeFunction::New(env, cb.As<Napi::Function>(), "faasnap-uffd-error", 0, 1);
        on_error_.Unref(env);  // a pending report must not keep the process alive
        has_on_error_ = true;
      }
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
    const Region* r = FindHost(addr);
    SetError(op, err, addr, r ? static_cast<int64_t>(r->file_off + (addr - r->host)) : -1);
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

  // file_off: where in the memory file the page was to come from (-1: not a file read).
  void SetError(const char* op, int err, uint64_t addr, int64_t file_off = -1) {
    bool first;
    {
      std::lock_guard<std::mutex> lk(err_mu_);
      first = errors_++ == 0;
      err_op_ = op;
      err_errno_ = err;
      err_addr_ = addr;
      err_file_off_ = file_off;
    }
    if (first && has_on_error_) {
      auto* report = new ErrorReport{op, err, addr, file_off};
      napi_status st = on_error_.NonBlockingCall(report, [](Napi::Env env, Napi::Function cb, ErrorReport* r) {
        Napi::Object e = Napi::Object::New(env);
        e.Set("op", Napi::String::New(env, r->op));
        e.Set("errno", Napi::Number::New(env, r->err));
        e.Set("message", Napi::String::New(env, strerror(r->err)));
        e.Set("address", Napi::BigInt::New(env, r->addr));
        e.Set("fileOffset", Napi::Number::New(env, static_cast<double>(r->file_off)));
        delete r;
        cb.Call({e});
      });
      if (st != napi_ok) delete report;
    }
  }

  struct ErrorReport {
    const char* op;
    int err;
    uint64_t addr;
    int64_t file_off;
  };

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
      e.Set("fileOffset", Napi::Number::New(env, static_cast<double>(err_file_off_)));
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
    if (has_on_error_) {
      has_on_error_ = false;
      on_error_.Release();
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

  Napi::ThreadSafeFunction on_error_;
  bool has_on_error_ = false;

  std::mutex err_mu_;
  uint64_t errors_ = 0;
  const char* err_op_ = "";
  int err_errno_ = 0;
  uint64_t err_addr_ = 0;
  int64_t err_file_off_ = -1;
};

}  // namespace

void InitUffdServer(Napi::Env env, Napi::Object exports) { UffdServer::Init(env, exports); }

}  // namespace faasnap
