// faasnap-init: PID 1 of the guest (/sbin/faasnap-init). Mounts the pseudo and scratch file
// systems, starts the guest agent, reaps every child, restarts the agent if it dies, and turns
// SIGTERM / SIGUSR1 / SIGUSR2 into reboot / halt / power-off.
//
// A static C program rather than a shell script: under PVM the guest kernel is emulated, so each
// fork+exec of a dynamically linked `mount` costs real seconds; this does the same work with
// a handful of system calls and one fork.
//
// Environment (the kernel passes unknown `KEY=value` cmdline words to init as environment):
//   FAASNAP_INIT_EXEC  program to run instead of the agent (no arguments), e.g. /bin/sh
//   everything else is passed on to the agent (e.g. FAASNAP_AGENT_CHANNEL).

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define AGENT "/opt/faasnap/agent/agent.py"
#define PYTHON "/usr/bin/python3"
// Like the paper's `Restart=always, RestartSec=1`: long enough not to spin on a broken agent.
#define RESTART_DELAY_MS 1000

static void say(const char *fmt, ...) {
  char buf[256];
  int n = snprintf(buf, sizeof buf, "faasnap-init: ");
  va_list ap;
  va_start(ap, fmt);
  n += vsnprintf(buf + n, sizeof buf - (size_t)n, fmt, ap);
  va_end(ap);
  if (n > (int)sizeof buf - 2) n = (int)sizeof buf - 2;
  buf[n++] = '\n';
  // One write per line: the serial console costs an exit per access, not per byte of a syscall.
  if (write(2, buf, (size_t)n) < 0) {
    // Nowhere else to report to.
  }
}

static void mount_one(const char *src, const char *dir, const char *type, unsigned long flags,
                      const char *data) {
  // The root is read-only: directories on it must already exist (the build creates them).
  if (mkdir(dir, 0755) != 0 && errno != EEXIST && errno != EROFS) {
    say("mkdir %s: %s", dir, strerror(errno));
  }
  // EBUSY: already mounted (CONFIG_DEVTMPFS_MOUNT mounts /dev before init runs).
  if (mount(src, dir, type, flags, data) != 0 && errno != EBUSY) {
    say("mount %s on %s: %s", type, dir, strerror(errno));
  }
}

static void mount_all(void) {
  const unsigned long nosuid_nodev = MS_NOSUID | MS_NODEV;
  mount_one("proc", "/proc", "proc", nosuid_nodev | MS_NOEXEC, NULL);
  mount_one("sysfs", "/sys", "sysfs", nosuid_nodev | MS_NOEXEC, NULL);
  mount_one("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
  mount_one("tmpfs", "/dev/shm", "tmpfs", nosuid_nodev, "mode=1777");
  mount_one("tmpfs", "/tmp", "tmpfs", nosuid_nodev, "mode=1777");
  mount_one("tmpfs", "/run", "tmpfs", nosuid_nodev, "mode=0755");
}

// The kernel opens /dev/console for init only if the node exists on the root; make sure the
// agent has stdin/stdout/stderr either way.
static void ensure_stdio(void) {
  if (fcntl(2, F_GETFD) != -1) return;
  int fd = open("/dev/console", O_RDWR | O_NOCTTY);
  if (fd < 0) fd = open("/dev/null", O_RDWR);
  if (fd < 0) return;
  for (int i = 0; i < 3; i++) {
    if (fd != i) dup2(fd, i);
  }
  if (fd > 2) close(fd);
}

static pid_t start_agent(const sigset_t *orig_mask) {
  pid_t pid = fork();
  if (pid < 0) {
    say("fork: %s", strerror(errno));
    return -1;
  }
  if (pid > 0) return pid;
  // Child: default signal mask and its own session, so a shutdown can signal it as a group.
  sigprocmask(SIG_SETMASK, orig_mask, NULL);
  setsid();
  const char *alt = getenv("FAASNAP_INIT_EXEC");
  if (alt && *alt) {
    execl(alt, alt, (char *)NULL);
  } else {
    execl(PYTHON, PYTHON, AGENT, (char *)NULL);
  }
  say("exec: %s", strerror(errno));
  _exit(127);
}

static void shutdown_system(int how) {
  say("shutting down");
  kill(-1, SIGTERM);
  // Give processes a moment to exit cleanly before they are killed.
  struct timespec ts = {0, 200 * 1000 * 1000};
  nanosleep(&ts, NULL);
  kill(-1, SIGKILL);
  sync();
  reboot(how);
  // reboot() only returns on error (or when not PID 1).
  say("reboot: %s", strerror(errno));
  _exit(1);
}

// True when the kernel manages the CPU's extended (AVX) register state: /proc/cpuinfo lists
// `xsave`. A kernel booted with `noxsave` (the pvm-safe CPU template) saves only the SSE state on
// a task switch, yet user mode may still see AVX in CPUID (under PVM it runs natively on the
// host CPU): two tasks using AVX on one CPU would then corrupt each other's registers.
static int kernel_saves_avx_state(void) {
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (!f) return 1;  // cannot tell: assume a normal kernel
  char line[4096];
  int found = 0;
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, "flags", 5) != 0) continue;
    found = strstr(line, " xsave") != NULL;
    break;
  }
  fclose(f);
  return found;
}

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int main(void) {
  mount_all();
  ensure_stdio();
  if (sethostname("faasnap", 7) != 0) say("sethostname: %s", strerror(errno));
  setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", 0);
  setenv("HOME", "/root", 0);
  setenv("LANG", "C.UTF-8", 0);
  // The root is read-only: do not even try to write .pyc files (the build precompiled them).
  setenv("PYTHONDONTWRITEBYTECODE", "1", 0);
  if (!kernel_saves_avx_state()) {
    // Keep every guest process on SSE: glibc's string functions here, the agent turns the
    // libraries' own CPU dispatch (V8, NumPy, OpenBLAS, PyTorch) off from FAASNAP_NO_AVX.
    setenv("GLIBC_TUNABLES",
           "glibc.cpu.hwcaps=-AVX,-AVX2,-FMA,-FMA4,-AVX512F,-AVX512VL,-AVX512BW,-AVX512DQ,"
           "-AVX_Fast_Unaligned_Load",
           0);
    setenv("FAASNAP_NO_AVX", "1", 0);
  }

  // Signals are taken synchronously with sigtimedwait, so there are no handlers to race with.
  sigset_t mask, orig;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGUSR1);
  sigaddset(&mask, SIGUSR2);
  sigprocmask(SIG_BLOCK, &mask, &orig);

  pid_t agent = start_agent(&orig);
  long long restart_at = 0;
  for (;;) {
    struct timespec timeout = {3600, 0};
    if (agent <= 0) {
      long long wait = restart_at - now_ms();
      if (wait <= 0) {
        agent = start_agent(&orig);
        if (agent <= 0) restart_at = now_ms() + RESTART_DELAY_MS;
        continue;
      }
      timeout.tv_sec = wait / 1000;
      timeout.tv_nsec = (wait % 1000) * 1000000;
    }
    siginfo_t info;
    int sig = sigtimedwait(&mask, &info, &timeout);
    if (sig < 0) continue;  // EAGAIN (restart time) or EINTR
    switch (sig) {
      case SIGCHLD:
        for (;;) {
          int status;
          pid_t pid = waitpid(-1, &status, WNOHANG);
          if (pid <= 0) break;
          if (pid != agent) continue;  // an orphan reparented to us: just reaped
          if (WIFEXITED(status)) {
            say("agent exited with status %d; restarting", WEXITSTATUS(status));
          } else {
            say("agent killed by signal %d; restarting", WTERMSIG(status));
          }
          agent = 0;
          restart_at = now_ms() + RESTART_DELAY_MS;
        }
        break;
      case SIGUSR1:
        shutdown_system(RB_HALT_SYSTEM);
        break;
      case SIGUSR2:
        shutdown_system(RB_POWER_OFF);
        break;
      default:  // SIGTERM, SIGINT (Ctrl-Alt-Del)
        shutdown_system(RB_AUTOBOOT);
    }
  }
}
