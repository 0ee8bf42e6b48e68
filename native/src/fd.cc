// File descriptors Node cannot make or watch itself: open/close of device nodes, eventfd,
// userfaultfd, and FdWatcher, which polls an fd on Node's own event loop (uv_poll) so that an
// eventfd signalled by KVM (ioeventfd) reaches TypeScript without an extra thread.
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <cstdlib>

#include "common.h"

namespace faasnap {

static Napi::Value Open(const Napi::CallbackInfo& info) {
  std::string path = info[0].As<Napi::String>().Utf8Value();
  int fd = open(path.c_str(), ArgInt(info, 1) | O_CLOEXEC, info.Length() > 2 ? ArgU32(info, 2) : 0);
  if (fd < 0) ThrowErrno(info.Env(), "open", errno);
  return Napi::Number::New(info.Env(), fd);
}

static Napi::Value Close(const Napi::CallbackInfo& info) {
  if (close(ArgInt(info, 0)) < 0) ThrowErrno(info.Env(), "close", errno);
  return info.Env().Undefined();
}

static Napi::Value EventFd(const Napi::CallbackInfo& info) {
  int fd = eventfd(ArgU32(info, 0), ArgInt(info, 1) | EFD_CLOEXEC);
  if (fd < 0) ThrowErrno(info.Env(), "eventfd", errno);
  return Napi::Number::New(info.Env(), fd);
}

static Napi::Value EventFdWrite(const Napi::CallbackInfo& info) {
  uint64_t v = ArgU64(info, 1);
  if (write(ArgInt(info, 0), &v, sizeof v) != sizeof v) ThrowErrno(info.Env(), "eventfd_write", errno);
  return info.Env().Undefined();
}

// Returns the counter, or 0 when a non-blocking eventfd has nothing to read.
static Napi::Value EventFdRead(const Napi::CallbackInfo& info) {
  uint64_t v = 0;
  if (read(ArgInt(info, 0), &v, sizeof v) != sizeof v) {
    if (errno == EAGAIN) return Napi::BigInt::New(info.Env(), static_cast<uint64_t>(0));
    ThrowErrno(info.Env(), "eventfd_read", errno);
  }
  return Napi::BigInt::New(info.Env(), v);
}

// userfaultfd(2); falls back to /dev/userfaultfd where the syscall is restricted to privileged
// users (vm.unprivileged_userfaultfd=0): to a descriptor of it the process inherited
// (FAASNAP_USERFAULTFD_FD: a jailed VMM process, which has no device nodes and no privileges,
// process/jail.ts), else to the device node if it is accessible.
static Napi::Value UserfaultFd(const Napi::CallbackInfo& info) {
  int flags = ArgInt(info, 0) | O_CLOEXEC;
  int fd = static_cast<int>(syscall(SYS_userfaultfd, flags));
  if (fd < 0) {
    int err = errno;
    const char* inherited = getenv("FAASNAP_USERFAULTFD_FD");
    int dev = inherited && *inherited ? atoi(inherited) : open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
    if (dev < 0) ThrowErrno(info.Env(), "userfaultfd", err);
    fd = ioctl(dev, USERFAULTFD_IOC_NEW, flags);
    err = errno;
    if (!(inherited && *inherited)) close(dev);
    if (fd < 0) ThrowErrno(info.Env(), "ioctl(USERFAULTFD_IOC_NEW)", err);
  }
  return Napi::Number::New(info.Env(), fd);
}

// Calls `callback()` on the JS thread each time `fd` becomes readable. The callback must drain
// the fd (level-triggered). close() stops watching; it does not close the fd.
class FdWatcher : public Napi::ObjectWrap<FdWatcher> {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    exports.Set("FdWatcher", DefineClass(env, "FdWatcher", {InstanceMethod("close", &FdWatcher::Close)}));
  }

  explicit FdWatcher(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FdWatcher>(info) {
    int fd = ArgInt(info, 0);
    callback_ = Napi::Persistent(ArgFunction(info, 1));
    resource_ = Napi::Persistent(Napi::Object::New(info.Env()));
    env_ = info.Env();
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env_, &loop) != napi_ok) ThrowArg(env_, "no uv loop");
    poll_ = new uv_poll_t;
    int r = uv_poll_init(loop, poll_, fd);
    if (r < 0) {
      delete poll_;
      poll_ = nullptr;
      ThrowErrno(env_, "uv_poll_init", -r);
    }
    poll_->data = this;
    r = uv_poll_start(poll_, UV_READABLE, OnReadable);
    if (r < 0) {
      StopPoll();
      ThrowErrno(env_, "uv_poll_start", -r);
    }
  }

  ~FdWatcher() override { StopPoll(); }

 private:
  static void OnReadable(uv_poll_t* handle, int status, int) {
    auto* self = static_cast<FdWatcher*>(handle->data);
    if (self == nullptr || status < 0) return;
    Napi::HandleScope scope(self->env_);
    // MakeCallback runs microtasks and reports exceptions like any Node callback would.
    self->callback_.MakeCallback(self->resource_.Value(), {});
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    StopPoll();
    return info.Env().Undefined();
  }

  void StopPoll() {
    if (poll_ == nullptr) return;
    uv_poll_stop(poll_);
    poll_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
    poll_ = nullptr;
  }

  Napi::Env env_{nullptr};
  Napi::FunctionReference callback_;
  Napi::ObjectReference resource_;
  uv_poll_t* poll_ = nullptr;
};

void InitFd(Napi::Env env, Napi::Object exports) {
  exports.Set("open", Napi::Function::New(env, Open));
  exports.Set("close", Napi::Function::New(env, Close));
  exports.Set("eventfd", Napi::Function::New(env, EventFd));
  exports.Set("eventfdWrite", Napi::Function::New(env, EventFdWrite));
  exports.Set("eventfdRead", Napi::Function::New(env, EventFdRead));
  exports.Set("userfaultfd", Napi::Function::New(env, UserfaultFd));
  FdWatcher::Init(env, exports);
  Napi::Object c = Napi::Object::New(env);
  c.Set("O_RDONLY", Napi::Number::New(env, O_RDONLY));
  c.Set("O_WRONLY", Napi::Number::New(env, O_WRONLY));
  c.Set("O_RDWR", Napi::Number::New(env, O_RDWR));
  c.Set("O_CREAT", Napi::Number::New(env, O_CREAT));
  c.Set("O_DIRECT", Napi::Number::New(env, O_DIRECT));
  c.Set("EFD_NONBLOCK", Napi::Number::New(env, EFD_NONBLOCK));
  c.Set("UFFD_NONBLOCK", Napi::Number::New(env, O_NONBLOCK));
  exports.Set("fdConstants", c);
}

}  // namespace faasnap
