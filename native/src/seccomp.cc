// The VMM process's seccomp filter (issue #14): an allowlist of system call numbers, applied to
// every thread of the process (TSYNC: Node's and libuv's threads already run). The policy (which
// calls) lives in process/seccomp.ts; this file only builds and installs the BPF program.
//
// A call outside the list traps (SIGSYS) instead of killing at once, because only the signal
// tells which call it was: the handler writes "seccomp <nr>\n" to the report descriptor the
// daemon reads, then ends the process. It uses write and exit_group only, both on every list.
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <string>
#include <vector>

#include "common.h"

namespace faasnap {

// Exit status of a process its filter stopped (128 + SIGSYS, as a shell reports a signal).
static constexpr int kSeccompExitCode = 128 + SIGSYS;
// BPF conditional jumps are 8-bit: the linear list below reaches at most this many entries.
static constexpr size_t kMaxAllowed = 250;
// x32 system calls share the x86-64 audit arch; their numbers carry this bit.
static constexpr uint32_t kX32SyscallBit = 0x40000000;

static int g_reportFd = -1;

static void OnSigsys(int, siginfo_t* info, void*) {
  // Async-signal-safe: format by hand, then write(2) and exit_group(2) only.
  char buf[32] = "seccomp ";
  size_t n = 8;
  char digits[12];
  size_t d = 0;
  unsigned nr = static_cast<unsigned>(info->si_syscall);
  do {
    digits[d++] = static_cast<char>('0' + nr % 10);
    nr /= 10;
  } while (nr != 0 && d < sizeof(digits));
  while (d > 0) buf[n++] = digits[--d];
  buf[n++] = '\n';
  if (g_reportFd >= 0) {
    ssize_t w = syscall(SYS_write, g_reportFd, buf, n);
    (void)w;
  }
  syscall(SYS_exit_group, kSeccompExitCode);
}

static sock_filter Stmt(uint16_t code, uint32_t k) { return BPF_STMT(code, k); }
static sock_filter Jump(uint16_t code, uint32_t k, uint8_t jt, uint8_t jf) { return BPF_JUMP(code, k, jt, jf); }

static std::vector<uint32_t> ArgU32List(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || !info[i].IsArray()) ThrowArg(info.Env(), "argument " + std::to_string(i) + " must be an array of numbers");
  Napi::Array list = info[i].As<Napi::Array>();
  std::vector<uint32_t> out;
  for (uint32_t j = 0; j < list.Length(); j++) {
    Napi::Value v = list.Get(j);
    if (!v.IsNumber()) ThrowArg(info.Env(), "argument " + std::to_string(i) + " must hold numbers only");
    int64_t n = v.As<Napi::Number>().Int64Value();
    if (n < 0 || n >= kX32SyscallBit) ThrowArg(info.Env(), "argument " + std::to_string(i) + ": number out of range");
    out.push_back(static_cast<uint32_t>(n));
  }
  return out;
}

// InstallSeccompFilter(allowed: number[], socketDomains: number[], reportFd: number,
// enforce: boolean). socket(2) is allowed only for the listed address families, clone(2) only
// for threads, clone3(2) never (ENOSYS); none of the three belongs on the list.
// Not enforcing, calls outside the list are allowed: the filter is then only a marker for
// measuring the list (process/seccomp.ts), and costs what the enforcing one costs.
static Napi::Value InstallSeccompFilter(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<uint32_t> allowed = ArgU32List(info, 0);
  std::vector<uint32_t> socketDomains = ArgU32List(info, 1);
  int32_t reportFd = ArgInt(info, 2);
  if (info.Length() < 4 || !info[3].IsBoolean()) ThrowArg(env, "argument 3 must be a boolean");
  bool enforce = info[3].As<Napi::Boolean>().Value();
  if (allowed.size() > kMaxAllowed || socketDomains.size() > kMaxAllowed) ThrowArg(env, "too many entries for one filter");
  const uint32_t deny = enforce ? SECCOMP_RET_TRAP : SECCOMP_RET_ALLOW;

  std::vector<sock_filter> prog;
  // Another architecture's calls (int 0x80, x32) have other numbers: kill at once.
  prog.push_back(Stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)));
  prog.push_back(Jump(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0));
  prog.push_back(Stmt(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS));
  prog.push_back(Stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)));
  prog.push_back(Jump(BPF_JMP | BPF_JGE | BPF_K, kX32SyscallBit, 0, 1));
  prog.push_back(Stmt(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS));
  // socket(2) is never on the list: its domain (first argument, an int) must be one of
  // socketDomains. The accumulator still holds the call's number when this block is skipped.
  const size_t d = socketDomains.size();
  prog.push_back(Jump(BPF_JMP | BPF_JEQ | BPF_K, SYS_socket, 0, static_cast<uint8_t>(d + 3)));
  prog.push_back(Stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, args[0])));
  for (size_t i = 0; i < d; i++)
    prog.push_back(Jump(BPF_JMP | BPF_JEQ | BPF_K, socketDomains[i], static_cast<uint8_t>(d - i), 0));
  prog.push_back(Stmt(BPF_RET | BPF_K, deny));
  prog.push_back(Stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
  // clone3(2) takes its flags in memory, where a filter cannot read them: it fails with ENOSYS,
  // and glibc falls back to clone(2), allowed for threads (CLONE_THREAD) only: no new process.
  prog.push_back(Jump(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone3, 0, 1));
  prog.push_back(Stmt(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS));
  prog.push_back(Jump(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone, 0, 4));
  prog.push_back(Stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, args[0])));
  prog.push_back(Jump(BPF_JMP | BPF_JSET | BPF_K, CLONE_THREAD, 0, 1));
  prog.push_back(Stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
  prog.push_back(Stmt(BPF_RET | BPF_K, deny));
  // The list: each entry jumps over the rest of it and the default to the final ALLOW.
  const size_t n = allowed.size();
  for (size_t i = 0; i < n; i++)
    prog.push_back(Jump(BPF_JMP | BPF_JEQ | BPF_K, allowed[i], static_cast<uint8_t>(n - i), 0));
  prog.push_back(Stmt(BPF_RET | BPF_K, deny));
  prog.push_back(Stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));

  g_reportFd = reportFd;
  struct sigaction sa = {};
  sa.sa_sigaction = OnSigsys;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGSYS, &sa, nullptr) != 0) ThrowErrno(env, "sigaction(SIGSYS)", errno);
  // Required to install a filter without CAP_SYS_ADMIN (the jail has set it already).
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) ThrowErrno(env, "prctl(PR_SET_NO_NEW_PRIVS)", errno);
  sock_fprog fprog = {static_cast<unsigned short>(prog.size()), prog.data()};
  long r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &fprog);
  // With TSYNC a positive result is the id of a thread that could not be synchronised.
  if (r > 0) ThrowErrno(env, "seccomp(TSYNC)", ESRCH);
  if (r < 0) ThrowErrno(env, "seccomp(SET_MODE_FILTER)", errno);
  return env.Undefined();
}

void InitSeccomp(Napi::Env env, Napi::Object exports) {
  exports.Set("InstallSeccompFilter", Napi::Function::New(env, InstallSeccompFilter));
  exports.Set("SECCOMP_EXIT_CODE", Napi::Number::New(env, kSeccompExitCode));
}

}  // namespace faasnap
