// delayfs: a FUSE file system with one file, /disk, backed by an image file, whose reads and
// writes cost what they would on remote block storage: every request waits for a share of a
// link of BANDWIDTH bytes/s (one queue, requests served in arrival order) and then for a fixed
// LATENCY. Requests overlap in the latency, as on a network. The kernel sees it without page
// cache (direct_io), so a loop device over /disk puts every block read of the file system on
// top of it through this model. Used by bench/experiments/slow-storage.ts (E4).
//
// Fault injection (tests of how faasnap handles storage errors): writing a line to /faults sets
// one fault on /disk, reading it shows them all.
//   eio <offset> <length>   reads overlapping [offset, offset+length) fail with EIO
//   eio-after <bytes>       reads fail with EIO once <bytes> have been read in all
//   short-reads             every read returns at most half of what was asked (at least 1 byte)
//   enospc-after <bytes>    writes fail with ENOSPC once <bytes> have been written in all
//   clear                   no faults (the byte counts start again)
//
// Usage: delayfs <image> <mountpoint> <latency-us> <bandwidth-bytes-per-s> [fuse options…]
// Build: gcc -O2 -Wall -o delayfs delayfs.c $(pkg-config --cflags --libs fuse3)

#define FUSE_USE_VERSION 31
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int image_fd = -1;
static uint64_t latency_ns;
static double bytes_per_ns;
static pthread_mutex_t link_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t link_free_ns; /* when the link finishes its queued transfers */
static uint64_t stats_reads, stats_writes, stats_read_bytes, stats_write_bytes;

static pthread_mutex_t fault_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t eio_off, eio_len;                         /* eio_len 0: no range fault */
static uint64_t eio_after = UINT64_MAX, enospc_after = UINT64_MAX;
static uint64_t fault_read_bytes, fault_write_bytes;      /* counted since the last clear */
static int short_reads;

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

/* Waits until a transfer of `size` bytes issued now would complete. */
static void delay(size_t size) {
  uint64_t start = now_ns();
  pthread_mutex_lock(&link_lock);
  uint64_t begin = link_free_ns > start ? link_free_ns : start;
  uint64_t done = begin + (bytes_per_ns > 0 ? (uint64_t)((double)size / bytes_per_ns) : 0);
  link_free_ns = done;
  pthread_mutex_unlock(&link_lock);
  uint64_t until = done + latency_ns;
  struct timespec ts = {(time_t)(until / 1000000000ull), (long)(until % 1000000000ull)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
  }
}

static int df_getattr(const char *path, struct stat *st, struct fuse_file_info *fi) {
  (void)fi;
  memset(st, 0, sizeof *st);
  if (strcmp(path, "/") == 0) {
    st->st_mode = S_IFDIR | 0755;
    st->st_nlink = 2;
    return 0;
  }
  if (strcmp(path, "/disk") == 0) {
    struct stat img;
    if (fstat(image_fd, &img) < 0) return -errno;
    st->st_mode = S_IFREG | 0600;
    st->st_nlink = 1;
    st->st_size = img.st_size;
    st->st_blocks = img.st_blocks;
    st->st_blksize = 4096;
    return 0;
  }
  if (strcmp(path, "/stats") == 0) {
    st->st_mode = S_IFREG | 0444;
    st->st_nlink = 1;
    st->st_size = 256;
    return 0;
  }
  if (strcmp(path, "/faults") == 0) {
    st->st_mode = S_IFREG | 0600;
    st->st_nlink = 1;
    st->st_size = 256;
    return 0;
  }
  return -ENOENT;
}

static int df_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
                      struct fuse_file_info *fi, enum fuse_readdir_flags flags) {
  (void)off;
  (void)fi;
  (void)flags;
  if (strcmp(path, "/") != 0) return -ENOENT;
  fill(buf, ".", NULL, 0, 0);
  fill(buf, "..", NULL, 0, 0);
  fill(buf, "disk", NULL, 0, 0);
  fill(buf, "stats", NULL, 0, 0);
  fill(buf, "faults", NULL, 0, 0);
  return 0;
}

static int df_open(const char *path, struct fuse_file_info *fi) {
  if (strcmp(path, "/disk") != 0 && strcmp(path, "/stats") != 0 && strcmp(path, "/faults") != 0)
    return -ENOENT;
  fi->direct_io = 1; /* no page cache for the backing file: every read reaches the model */
  return 0;
}

static int read_text(const char *s, int n, char *buf, size_t size, off_t off) {
  if (off >= n) return 0;
  size_t len = (size_t)n - (size_t)off < size ? (size_t)n - (size_t)off : size;
  memcpy(buf, s + off, len);
  return (int)len;
}

/* The injected read fault for [off, off+size), or 0; shortens *size for short reads. */
static int read_fault(off_t off, size_t *size) {
  int err = 0;
  pthread_mutex_lock(&fault_lock);
  uint64_t o = (uint64_t)off;
  if (eio_len && o < eio_off + eio_len && eio_off < o + *size) err = EIO;
  if (fault_read_bytes >= eio_after) err = EIO;
  if (!err && short_reads && *size > 1) *size /= 2;
  pthread_mutex_unlock(&fault_lock);
  return err;
}

static int df_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi) {
  (void)fi;
  if (strcmp(path, "/stats") == 0) {
    char s[256];
    int n = snprintf(s, sizeof s, "reads %llu\nread_bytes %llu\nwrites %llu\nwrite_bytes %llu\n",
                     (unsigned long long)__atomic_load_n(&stats_reads, __ATOMIC_RELAXED),
                     (unsigned long long)__atomic_load_n(&stats_read_bytes, __ATOMIC_RELAXED),
                     (unsigned long long)__atomic_load_n(&stats_writes, __ATOMIC_RELAXED),
                     (unsigned long long)__atomic_load_n(&stats_write_bytes, __ATOMIC_RELAXED));
    return read_text(s, n, buf, size, off);
  }
  if (strcmp(path, "/faults") == 0) {
    char s[256];
    pthread_mutex_lock(&fault_lock);
    int n = snprintf(s, sizeof s, "eio %llu %llu\neio-after %lld\nshort-reads %d\nenospc-after %lld\n",
                     (unsigned long long)eio_off, (unsigned long long)eio_len,
                     eio_after == UINT64_MAX ? -1LL : (long long)eio_after, short_reads,
                     enospc_after == UINT64_MAX ? -1LL : (long long)enospc_after);
    pthread_mutex_unlock(&fault_lock);
    return read_text(s, n, buf, size, off);
  }
  int err = read_fault(off, &size);
  if (err) return -err;
  delay(size);
  ssize_t r = pread(image_fd, buf, size, off);
  if (r < 0) return -errno;
  __atomic_add_fetch(&fault_read_bytes, (uint64_t)r, __ATOMIC_RELAXED);
  __atomic_add_fetch(&stats_reads, 1, __ATOMIC_RELAXED);
  __atomic_add_fetch(&stats_read_bytes, (uint64_t)r, __ATOMIC_RELAXED);
  return (int)r;
}

/* One command line written to /faults (see the top of this file). */
static int set_fault(const char *buf, size_t size) {
  char line[128];
  size_t n = size < sizeof line - 1 ? size : sizeof line - 1;
  memcpy(line, buf, n);
  line[n] = 0;
  unsigned long long a = 0, b = 0;
  int ok = 1;
  pthread_mutex_lock(&fault_lock);
  if (sscanf(line, "eio-after %llu", &a) == 1) eio_after = a;
  else if (sscanf(line, "eio %llu %llu", &a, &b) == 2) eio_off = a, eio_len = b;
  else if (strncmp(line, "short-reads", 11) == 0) short_reads = 1;
  else if (sscanf(line, "enospc-after %llu", &a) == 1) enospc_after = a;
  else if (strncmp(line, "clear", 5) == 0) {
    eio_off = eio_len = 0;
    eio_after = enospc_after = UINT64_MAX;
    short_reads = 0;
    fault_read_bytes = fault_write_bytes = 0;
  } else ok = 0;
  pthread_mutex_unlock(&fault_lock);
  return ok ? (int)size : -EINVAL;
}

static int df_write(const char *path, const char *buf, size_t size, off_t off,
                    struct fuse_file_info *fi) {
  (void)fi;
  if (strcmp(path, "/faults") == 0) return set_fault(buf, size);
  if (strcmp(path, "/disk") != 0) return -EACCES;
  pthread_mutex_lock(&fault_lock);
  int nospace = fault_write_bytes + size > enospc_after;
  if (!nospace) fault_write_bytes += size;
  pthread_mutex_unlock(&fault_lock);
  if (nospace) return -ENOSPC;
  delay(size);
  ssize_t r = pwrite(image_fd, buf, size, off);
  if (r < 0) return -errno;
  __atomic_add_fetch(&stats_writes, 1, __ATOMIC_RELAXED);
  __atomic_add_fetch(&stats_write_bytes, (uint64_t)r, __ATOMIC_RELAXED);
  return (int)r;
}

static int df_fsync(const char *path, int datasync, struct fuse_file_info *fi) {
  (void)path;
  (void)fi;
  return (datasync ? fdatasync(image_fd) : fsync(image_fd)) < 0 ? -errno : 0;
}

static int df_truncate(const char *path, off_t size, struct fuse_file_info *fi) {
  (void)size;
  (void)fi;
  return strcmp(path, "/faults") == 0 ? 0 : -EPERM; /* shells open /faults with O_TRUNC */
}

static const struct fuse_operations ops = {
    .getattr = df_getattr,
    .readdir = df_readdir,
    .open = df_open,
    .read = df_read,
    .write = df_write,
    .fsync = df_fsync,
    .truncate = df_truncate,
};

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr,
            "usage: %s <image> <mountpoint> <latency-us> <bandwidth-bytes-per-s> [fuse opts]\n",
            argv[0]);
    return 2;
  }
  image_fd = open(argv[1], O_RDWR | O_CLOEXEC);
  if (image_fd < 0) {
    perror(argv[1]);
    return 1;
  }
  latency_ns = strtoull(argv[3], NULL, 10) * 1000ull;
  double bw = strtod(argv[4], NULL);
  bytes_per_ns = bw > 0 ? bw / 1e9 : 0;
  /* argv for FUSE: prog mountpoint [opts…] -f (foreground; the caller daemonises us) */
  char *fargv[64];
  int fargc = 0;
  fargv[fargc++] = argv[0];
  fargv[fargc++] = argv[2];
  fargv[fargc++] = "-f";
  fargv[fargc++] = "-o";
  fargv[fargc++] = "fsname=delayfs,subtype=delayfs";
  for (int i = 5; i < argc && fargc < 63; i++) fargv[fargc++] = argv[i];
  fargv[fargc] = NULL;
  return fuse_main(fargc, fargv, &ops, NULL);
}
