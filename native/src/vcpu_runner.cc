// VcpuRunner: one thread per vCPU that performs KVM_RUN outside the JS event loop.
//
// Protocol (all policy lives in TypeScript): JS calls run(); the thread performs exactly one
// KVM_RUN and posts its result (0 or -errno) to the JS callback through a thread-safe function;
// JS reads the exit from the shared kvm_run page (runView()), answers it (e.g. fills the port
// I/O data) and calls run() again. kick() makes a running or about-to-run KVM_RUN return -EINTR
// (immediate_exit + a signal), which is how pause and stop interrupt a guest that never exits.
#include <linux/kvm.h>
#include <pthread.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <mutex>

#include "common.h"
#include "kvm_abi.h"

namespace faasnap {

namespace {

int KickSignal() { return SIGRTMIN; }

void InstallKickHandler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa = {};
    sa.sa_handler = [](int) {};  // only there to interrupt KVM_RUN with EINTR
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: KVM_RUN must return
    sigaction(KickSignal(), &sa, nullptr);
  });
}

class VcpuRunner;
struct RunResult {
  int value;
};
void CallJs(Napi::Env env, Napi::Function callback, VcpuRunner*, RunResult* data);
using ExitTsfn = Napi::TypedThreadSafeFunction<VcpuRunner, RunResult, CallJs>;

class VcpuRunner : public Napi::ObjectWrap<VcpuRunner> {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    exports.Set("VcpuRunner", DefineClass(env, "VcpuRunner",
                                          {
                                              InstanceMethod("runView", &VcpuRunner::RunView),
                                              InstanceMethod("run", &VcpuRunner::Run),
                                              InstanceMethod("kick", &VcpuRunner::Kick),
                                              InstanceMethod("close", &VcpuRunner::Close),
                                          }));
  }

  // new VcpuRunner(vcpuFd, mmapSize, onExit(result))
  explicit VcpuRunner(const Napi::CallbackInfo& info) : Napi::ObjectWrap<VcpuRunner>(info) {
    Napi::Env env = info.Env();
    fd_ = ArgInt(info, 0);
    mmap_size_ = ArgU32(info, 1);
    Napi::Function on_exit = ArgFunction(info, 2);
    if (mmap_size_ < faasnap_sizeof("kvm_run")) ThrowArg(env, "VcpuRunner: mmap size smaller than struct kvm_run");
    void* p = mmap(nullptr, mmap_size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    if (p == MAP_FAILED) ThrowErrno(env, "mmap(kvm_run)", errno);
    run_ = static_cast<struct kvm_run*>(p);

    tsfn_ = ExitTsfn::New(env, on_exit, "faasnap-vcpu", 0, 1, this);
    InstallKickHandler();
    // The thread starts with every signal blocked except the kick signal, so SIGINT and
    // friends keep going to Node's main thread.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int r = pthread_create(&thread_, nullptr, &VcpuRunner::ThreadMain, this);
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    if (r != 0) {
      tsfn_.Release();
      munmap(run_, mmap_size_);
      run_ = nullptr;
      ThrowErrno(env, "pthread_create", r);
    }
    started_ = true;
  }

  ~VcpuRunner() override { Shutdown(); }

  friend void CallJs(Napi::Env env, Napi::Function callback, VcpuRunner*, RunResult* data);

 private:
  enum class State { kIdle, kRunRequested, kRunning };

  static void* ThreadMain(void* arg) {
    auto* self = static_cast<VcpuRunner*>(arg);
    sigset_t kick;
    sigemptyset(&kick);
    sigaddset(&kick, KickSignal());
    pthread_sigmask(SIG_UNBLOCK, &kick, nullptr);
    for (;;) {
      self->WaitForRequest();
      std::unique_lock<std::mutex> lk(self->mu_);
      if (self->stop_) break;
      self->state_ = State::kRunning;
      lk.unlock();
      int r = ioctl(self->fd_, faasnap_KVM_RUN, 0);
      int result = r < 0 ? -errno : 0;
      lk.lock();
      self->state_ = State::kIdle;
      if (self->stop_) break;
      self->tsfn_.NonBlockingCall(new RunResult{result});
    }
    return nullptr;
  }

  // JS usually answers an exit within tens of microseconds, so the thread spins briefly on the
  // request flag before sleeping on the condition variable: that saves a futex wake-up (one
  // cross-thread scheduling round trip) on every port-I/O and MMIO exit.
  void WaitForRequest() {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(kSpinMicros);
    while (!requested_.load(std::memory_order_acquire) && std::chrono::steady_clock::now() < deadline) {
      __builtin_ia32_pause();
    }
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait(lk, [this] { return stop_ || requested_.load(std::memory_order_acquire); });
    requested_.store(false, std::memory_order_relaxed);
  }

  Napi::Value RunView(const Napi::CallbackInfo& info) {
    if (run_ == nullptr) ThrowArg(info.Env(), "VcpuRunner is closed");
    if (view_.IsEmpty()) view_ = Napi::Persistent(Napi::ArrayBuffer::New(info.Env(), run_, mmap_size_));
    return view_.Value();
  }

  Napi::Value Run(const Napi::CallbackInfo& info) {
    std::lock_guard<std::mutex> lk(mu_);
    if (stop_ || run_ == nullptr) ThrowArg(info.Env(), "VcpuRunner is closed");
    if (state_ != State::kIdle) ThrowArg(info.Env(), "VcpuRunner: KVM_RUN already in progress");
    // run(true) completes a pending I/O or MMIO exit without entering the guest (KVM's
    // documented way to reach a consistent state before reading it for a snapshot).
    bool immediate = info.Length() > 0 && info[0].ToBoolean().Value();
    __atomic_store_n(&run_->immediate_exit, immediate ? 1 : 0, __ATOMIC_SEQ_CST);
    state_ = State::kRunRequested;
    requested_.store(true, std::memory_order_release);
    cv_.notify_one();
    return info.Env().Undefined();
  }

  Napi::Value Kick(const Napi::CallbackInfo& info) {
    if (run_ != nullptr && started_) {
      __atomic_store_n(&run_->immediate_exit, 1, __ATOMIC_SEQ_CST);
      pthread_kill(thread_, KickSignal());
    }
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Shutdown();
    if (!view_.IsEmpty()) {
      Napi::ArrayBuffer ab = view_.Value();
      if (!ab.IsDetached()) ab.Detach();
      view_.Reset();
    }
    return info.Env().Undefined();
  }

  // Stops and joins the thread, releases the callback and the kvm_run mapping. Idempotent.
  void Shutdown() {
    if (started_) {
      {
        std::lock_guard<std::mutex> lk(mu_);
        stop_ = true;
        cv_.notify_one();
      }
      __atomic_store_n(&run_->immediate_exit, 1, __ATOMIC_SEQ_CST);
      pthread_kill(thread_, KickSignal());
      pthread_join(thread_, nullptr);
      started_ = false;
      tsfn_.Abort();
    }
    if (run_ != nullptr) {
      munmap(run_, mmap_size_);
      run_ = nullptr;
    }
  }

  int fd_ = -1;
  size_t mmap_size_ = 0;
  struct kvm_run* run_ = nullptr;
  pthread_t thread_{};
  bool started_ = false;
  std::mutex mu_;
  std::condition_variable cv_;
  State state_ = State::kIdle;
  bool stop_ = false;
  std::atomic<bool> requested_{false};
  static constexpr int kSpinMicros = 100;
  ExitTsfn tsfn_;
  Napi::Reference<Napi::ArrayBuffer> view_;
};

void CallJs(Napi::Env env, Napi::Function callback, VcpuRunner* self, RunResult* data) {
  int value = data->value;
  delete data;
  // env is null when the function is being torn down; a closed runner reports nothing more.
  if (env == nullptr || callback.IsEmpty() || self->run_ == nullptr) return;
  callback.Call({Napi::Number::New(env, value)});
}

}  // namespace

void InitVcpuRunner(Napi::Env env, Napi::Object exports) {
  VcpuRunner::Init(env, exports);
  exports.Set("kickSignal", Napi::Number::New(env, KickSignal()));
}

}  // namespace faasnap
