/* Container side of the helper: the root filesystem, /dev, /proc masking,
 * pivot_root, identity, and the final exec. Runs as (namespaced) root. */
#include "sandbox.h"
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>
#include <linux/capability.h>
#include <linux/openat2.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <signal.h>
#include <sched.h>

int g_errfd = -1;

void child_fail(int code, const char *fmt, ...) {
  va_list ap;
  char buf[4096];
  int n;
  va_start(ap, fmt);
  n = snprintf(buf, sizeof buf, "%d ", code);
  vsnprintf(buf + n, sizeof buf - (size_t)n, fmt, ap);
  va_end(ap);
  if (g_errfd >= 0) {
    if (write(g_errfd, buf, strlen(buf)) < 0) { /* the parent is gone; nothing to report to */ }
  } else {
    dprintf(2, "hoist-sandbox: %s\n", buf + n);
  }
  _exit(code);
}

/* ---- safe paths inside the new root ---- */

static int openat2_in_root(int rootfd, const char *path, int flags) {
  struct open_how how;
  memset(&how, 0, sizeof how);
  how.flags = (unsigned long long)(flags | O_CLOEXEC);
  /* Symlinks resolve as they would inside the container; magic links such as
   * /proc/self/fd/N never leave it. */
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  int fd;
  do fd = (int)syscall(SYS_openat2, rootfd, path, &how, sizeof how);
  while (fd < 0 && errno == EAGAIN);
  return fd;
}

enum { WANT_ANY, WANT_DIR, WANT_FILE };

/* Opens (O_PATH) `path` inside the tree of rootfd, creating missing directories
 * and, when asked, an empty final file: a mount target that cannot leave the root. */
static int open_in_root(int rootfd, const char *path, int want) {
  char prefix[PATH_MAX];
  size_t plen = 0;
  const char *p = path;
  int fd = -1;
  prefix[0] = 0;
  while (*p) {
    while (*p == '/') p++;
    if (!*p) break;
    const char *end = strchrnul(p, '/');
    size_t clen = (size_t)(end - p);
    if (plen + clen + 2 >= sizeof prefix) { errno = ENAMETOOLONG; return -1; }
    char comp[NAME_MAX + 1];
    if (clen > NAME_MAX) { errno = ENAMETOOLONG; return -1; }
    memcpy(comp, p, clen);
    comp[clen] = 0;
    int last = *end == 0 || end[strspn(end, "/")] == 0;
    char parent[PATH_MAX];
    memcpy(parent, prefix, plen + 1);
    prefix[plen++] = '/';
    memcpy(prefix + plen, comp, clen + 1);
    plen += clen;
    if (fd >= 0) close(fd);
    fd = openat2_in_root(rootfd, prefix, O_PATH);
    if (fd < 0 && errno == ENOENT && strcmp(comp, "..") && strcmp(comp, ".")) {
      int pfd = openat2_in_root(rootfd, parent[0] ? parent : "/", O_PATH | O_DIRECTORY);
      if (pfd < 0) return -1;
      int r;
      if (last && want == WANT_FILE) {
        r = openat(pfd, comp, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (r >= 0) close(r);
      } else {
        r = mkdirat(pfd, comp, 0755);
      }
      close(pfd);
      if (r < 0 && errno != EEXIST) return -1;
      fd = openat2_in_root(rootfd, prefix, O_PATH);
    }
    if (fd < 0) return -1;
    p = end;
  }
  if (fd < 0) fd = openat2_in_root(rootfd, "/", O_PATH);
  return fd;
}

static const char *fdpath(int fd, char *buf, size_t n) {
  snprintf(buf, n, "/proc/self/fd/%d", fd);
  return buf;
}

/* mount(2) onto a path inside the new root, resolved without leaving it. */
static int mount_in_root(int rootfd, const char *src, const char *dst, const char *fstype, unsigned long flags, const char *data, int want) {
  int fd = open_in_root(rootfd, dst, want);
  if (fd < 0) return -1;
  char b[64];
  int r = mount(src, fdpath(fd, b, sizeof b), fstype, flags, data);
  int e = errno;
  close(fd);
  errno = e;
  return r;
}

#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x00000001
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#endif
#ifndef MOVE_MOUNT_T_EMPTY_PATH
#define MOVE_MOUNT_T_EMPTY_PATH 0x00000040
#endif
struct mount_attr_ {
  unsigned long long attr_set, attr_clr, propagation, userns_fd;
};

/* Makes a mount and everything below it read-only (mount_setattr, recursive). */
static int make_readonly(int fd) {
  struct mount_attr_ a = { MOUNT_ATTR_RDONLY, 0, 0, 0 };
  return (int)syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &a, sizeof a);
}

/* Bind-mounts a host path (or fd) onto dst inside the root; read-only when asked. */
static void bind_into_root(int rootfd, const char *source, const char *dst, int readonly) {
  int srcfd = open(source, O_PATH | O_CLOEXEC);
  if (srcfd < 0) child_fail(EXIT_HOIST, "bind mount %s: cannot open the source: %s", source, strerror(errno));
  struct stat st;
  if (fstat(srcfd, &st) < 0) child_fail(EXIT_HOIST, "bind mount %s: %s", source, strerror(errno));
  int dstfd = open_in_root(rootfd, dst, S_ISDIR(st.st_mode) ? WANT_DIR : WANT_FILE);
  if (dstfd < 0) child_fail(EXIT_HOIST, "bind mount %s: cannot create the mount point %s in the image: %s", source, dst, strerror(errno));
  struct stat dt;
  if (fstat(dstfd, &dt) == 0 && S_ISDIR(dt.st_mode) != S_ISDIR(st.st_mode))
    child_fail(EXIT_HOIST, "bind mount %s on %s: one is a directory and the other is not", source, dst);
  int tree = (int)syscall(SYS_open_tree, srcfd, "", OPEN_TREE_CLONE | AT_RECURSIVE | AT_EMPTY_PATH | O_CLOEXEC);
  if (tree < 0) child_fail(EXIT_HOIST, "bind mount %s: open_tree: %s", source, strerror(errno));
  if (readonly && make_readonly(tree) < 0) child_fail(EXIT_HOIST, "bind mount %s: making it read-only: %s", source, strerror(errno));
  if (syscall(SYS_move_mount, tree, "", dstfd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
    child_fail(EXIT_HOIST, "bind mount %s on %s: %s", source, dst, strerror(errno));
  close(tree);
  close(dstfd);
  close(srcfd);
}

/* ---- /dev ---- */

static void setup_dev(int rootfd, int tty) {
  if (mount_in_root(rootfd, "tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k", WANT_DIR) < 0)
    child_fail(EXIT_HOIST, "mounting /dev: %s", strerror(errno));
  int dev = open_in_root(rootfd, "/dev", WANT_DIR);
  int devfd = openat(dev, ".", O_DIRECTORY | O_CLOEXEC);
  close(dev);
  if (devfd < 0) child_fail(EXIT_HOIST, "opening /dev: %s", strerror(errno));
  static const struct { const char *name; unsigned maj, min; } nodes[] = {
    {"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0},
  };
  for (size_t i = 0; i < sizeof nodes / sizeof nodes[0]; i++) {
    if (mknodat(devfd, nodes[i].name, S_IFCHR | 0666, makedev(nodes[i].maj, nodes[i].min)) == 0) {
      fchmodat(devfd, nodes[i].name, 0666, 0);
      continue;
    }
    /* In a user namespace mknod is refused: bind the host's node instead. */
    char host[64], dst[64];
    snprintf(host, sizeof host, "/dev/%s", nodes[i].name);
    snprintf(dst, sizeof dst, "/dev/%s", nodes[i].name);
    bind_into_root(rootfd, host, dst, 0);
  }
  static const char *dirs[] = {"pts", "shm", "mqueue"};
  for (size_t i = 0; i < 3; i++) mkdirat(devfd, dirs[i], 0755);
  if (mount_in_root(rootfd, "devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5", WANT_DIR) < 0 &&
      mount_in_root(rootfd, "devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620", WANT_DIR) < 0)
    child_fail(EXIT_HOIST, "mounting /dev/pts: %s", strerror(errno));
  if (mount_in_root(rootfd, "shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k", WANT_DIR) < 0)
    child_fail(EXIT_HOIST, "mounting /dev/shm: %s", strerror(errno));
  if (mount_in_root(rootfd, "mqueue", "/dev/mqueue", "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, WANT_DIR) < 0)
    child_fail(EXIT_HOIST, "mounting /dev/mqueue: %s", strerror(errno));
  static const char *links[][2] = {
    {"fd", "/proc/self/fd"}, {"stdin", "/proc/self/fd/0"}, {"stdout", "/proc/self/fd/1"},
    {"stderr", "/proc/self/fd/2"}, {"ptmx", "pts/ptmx"}, {"core", "/proc/kcore"},
  };
  for (size_t i = 0; i < sizeof links / sizeof links[0]; i++)
    if (symlinkat(links[i][1], devfd, links[i][0]) < 0) child_fail(EXIT_HOIST, "creating /dev/%s: %s", links[i][0], strerror(errno));
  if (tty) {
    int c = openat(devfd, "console", O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
    if (c < 0) child_fail(EXIT_HOIST, "creating /dev/console: %s", strerror(errno));
    close(c);
  }
  close(devfd);
}

/* ---- /proc masking (Docker's defaults) ---- */

static const char *masked_paths[] = {
  "/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
  "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
  "/sys/devices/virtual/powercap",
};
static const char *readonly_paths[] = {
  "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
};

static unsigned long locked_flags(const char *path) {
  struct statvfs sv;
  unsigned long f = 0;
  if (statvfs(path, &sv) == 0) {
    if (sv.f_flag & ST_NOSUID) f |= MS_NOSUID;
    if (sv.f_flag & ST_NODEV) f |= MS_NODEV;
    if (sv.f_flag & ST_NOEXEC) f |= MS_NOEXEC;
  }
  return f;
}

static void mask_proc(void) {
  for (size_t i = 0; i < sizeof masked_paths / sizeof masked_paths[0]; i++) {
    const char *p = masked_paths[i];
    struct stat st;
    if (lstat(p, &st) < 0) continue;
    int r = S_ISDIR(st.st_mode) ? mount("tmpfs", p, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0")
                                : mount("/dev/null", p, NULL, MS_BIND, NULL);
    if (r < 0) child_fail(EXIT_HOIST, "masking %s: %s", p, strerror(errno));
  }
  for (size_t i = 0; i < sizeof readonly_paths / sizeof readonly_paths[0]; i++) {
    const char *p = readonly_paths[i];
    struct stat st;
    if (lstat(p, &st) < 0) continue;
    if (mount(p, p, NULL, MS_BIND | MS_REC, NULL) < 0 ||
        mount(p, p, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC | locked_flags(p), NULL) < 0)
      child_fail(EXIT_HOIST, "making %s read-only: %s", p, strerror(errno));
  }
}

/* ---- root filesystem ---- */

void setup_rootfs(const struct spec *s) {
  char b[64];
  /* Nothing mounted from here on propagates to the host's mount namespace. */
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) child_fail(EXIT_HOIST, "making mounts private: %s", strerror(errno));
  const char *mp;
  if (s->rootpath) {
    struct stat st;
    if (stat(s->rootpath, &st) < 0 || !S_ISDIR(st.st_mode)) child_fail(EXIT_HOIST, "root filesystem %s is missing or not a directory", s->rootpath);
    mp = s->mountpoint ? s->mountpoint : s->rootpath;
    if (mount(s->rootpath, mp, NULL, MS_BIND | MS_REC, NULL) < 0) child_fail(EXIT_HOIST, "bind-mounting the root filesystem %s: %s", s->rootpath, strerror(errno));
  } else {
    mp = s->mountpoint;
    for (size_t i = 0; i < s->nlower; i++) {
      struct stat st;
      if (stat(s->lower[i], &st) < 0 || !S_ISDIR(st.st_mode)) child_fail(EXIT_HOIST, "image layer directory %s is missing (run hoist system check)", s->lower[i]);
    }
    if (!s->upper && s->nlower == 1) {
      if (mount(s->lower[0], mp, NULL, MS_BIND | MS_REC, NULL) < 0) child_fail(EXIT_HOIST, "bind-mounting %s: %s", s->lower[0], strerror(errno));
    } else {
      size_t cap = 64 + (s->upper ? strlen(s->upper) + strlen(s->work) : 0);
      for (size_t i = 0; i < s->nlower; i++) cap += strlen(s->lower[i]) + 1;
      char *opts = calloc(cap, 1);
      strcpy(opts, "lowerdir=");
      for (size_t i = s->nlower; i-- > 0;) { /* overlayfs lists the top layer first */
        strcat(opts, s->lower[i]);
        if (i) strcat(opts, ":");
      }
      if (s->upper) { strcat(opts, ",upperdir="); strcat(opts, s->upper); strcat(opts, ",workdir="); strcat(opts, s->work); }
      if (s->userns) strcat(opts, ",userxattr");
      if (strlen(opts) >= 4096) child_fail(EXIT_HOIST, "the image has too many layers for one overlay mount (%zu bytes of options, the kernel takes 4095)", strlen(opts));
      if (mount("overlay", mp, "overlay", 0, opts) < 0) child_fail(EXIT_HOIST, "mounting the overlay root filesystem: %s", strerror(errno));
      free(opts);
    }
  }
  int rootfd = open(mp, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0) child_fail(EXIT_HOIST, "opening the root filesystem %s: %s", mp, strerror(errno));

  if (mount_in_root(rootfd, "proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, WANT_DIR) < 0)
    child_fail(EXIT_HOIST, "mounting /proc: %s", strerror(errno));
  setup_dev(rootfd, s->tty);
  if (mount_in_root(rootfd, "sysfs", "/sys", "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, WANT_DIR) < 0) {
    /* sysfs needs a network namespace owned by our user namespace; otherwise
     * show the host's, read-only. */
    int fd = open("/sys", O_PATH | O_CLOEXEC);
    int tree = fd < 0 ? -1 : (int)syscall(SYS_open_tree, fd, "", OPEN_TREE_CLONE | AT_RECURSIVE | AT_EMPTY_PATH | O_CLOEXEC);
    int dst = open_in_root(rootfd, "/sys", WANT_DIR);
    if (tree < 0 || dst < 0 || make_readonly(tree) < 0 ||
        syscall(SYS_move_mount, tree, "", dst, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
      child_fail(EXIT_HOIST, "mounting /sys: %s", strerror(errno));
    close(tree); close(dst); close(fd);
  }
  for (size_t i = 0; i < s->nmounts; i++) {
    const struct mountspec *m = &s->mounts[i];
    if (!strcmp(m->type, "bind")) {
      bind_into_root(rootfd, m->source, m->destination, m->readonly);
    } else {
      const char *o = m->options && *m->options ? m->options : "mode=1777";
      unsigned long fl = MS_NOSUID | MS_NODEV | (m->readonly ? MS_RDONLY : 0);
      /* "exec" in the options lifts Docker's noexec default */
      if (!strstr(o, "exec")) fl |= MS_NOEXEC;
      char opts[1024];
      size_t k = 0;
      const char *q = o;
      while (*q && k < sizeof opts - 1) { /* drop flag words mount(2) takes as flags, keep fs options */
        const char *e = strchrnul(q, ',');
        size_t l = (size_t)(e - q);
        if (!(l == 4 && !strncmp(q, "exec", 4)) && !(l == 6 && !strncmp(q, "noexec", 6)) &&
            !(l == 2 && !strncmp(q, "rw", 2)) && !(l == 2 && !strncmp(q, "ro", 2)) &&
            !(l == 6 && !strncmp(q, "nosuid", 6)) && !(l == 5 && !strncmp(q, "nodev", 5))) {
          if (k && k < sizeof opts - 1) opts[k++] = ',';
          for (size_t j = 0; j < l && k < sizeof opts - 1; j++) opts[k++] = q[j];
        }
        if (l == 2 && !strncmp(q, "ro", 2)) fl |= MS_RDONLY;
        if (l == 4 && !strncmp(q, "exec", 4)) fl &= ~(unsigned long)MS_NOEXEC;
        q = *e ? e + 1 : e;
      }
      opts[k] = 0;
      if (mount_in_root(rootfd, "tmpfs", m->destination, "tmpfs", fl, opts, WANT_DIR) < 0)
        child_fail(EXIT_HOIST, "tmpfs on %s (%s): %s", m->destination, opts, strerror(errno));
    }
  }
  if (s->readonly_rootfs) {
    struct mount_attr_ a = { MOUNT_ATTR_RDONLY, 0, 0, 0 };
    if (syscall(SYS_mount_setattr, rootfd, "", AT_EMPTY_PATH, &a, sizeof a) < 0)
      child_fail(EXIT_HOIST, "making the root filesystem read-only: %s", strerror(errno));
  }
  /* pivot_root(".", ".") stacks the old root under the new one; detaching it leaves
   * the container with no path back to the host's tree. */
  if (fchdir(rootfd) < 0) child_fail(EXIT_HOIST, "entering the root filesystem: %s", strerror(errno));
  if (syscall(SYS_pivot_root, ".", ".") < 0) child_fail(EXIT_HOIST, "pivot_root: %s", strerror(errno));
  if (umount2(".", MNT_DETACH) < 0) child_fail(EXIT_HOIST, "detaching the old root: %s", strerror(errno));
  if (chdir("/") < 0) child_fail(EXIT_HOIST, "chdir /: %s", strerror(errno));
  close(rootfd);
  (void)b;
  mask_proc();
}

void setup_identity(const struct spec *s) {
  if (s->hostname && sethostname(s->hostname, strlen(s->hostname)) < 0)
    child_fail(EXIT_HOIST, "setting the hostname: %s", strerror(errno));
  if (!s->net_host) {
    int sk = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strcpy(ifr.ifr_name, "lo");
    if (sk < 0 || ioctl(sk, SIOCGIFFLAGS, &ifr) < 0) child_fail(EXIT_HOIST, "reading the loopback interface: %s", strerror(errno));
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(sk, SIOCSIFFLAGS, &ifr) < 0) child_fail(EXIT_HOIST, "bringing up the loopback interface: %s", strerror(errno));
    close(sk);
  }
}

/* ---- pty ---- */

int open_pty_inside(int *slave, int bind_console) {
  int m = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (m < 0) child_fail(EXIT_HOIST, "opening /dev/ptmx: %s", strerror(errno));
  char name[64];
  if (unlockpt(m) < 0 || ptsname_r(m, name, sizeof name) != 0) child_fail(EXIT_HOIST, "allocating a pty: %s", strerror(errno));
  *slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (*slave < 0) child_fail(EXIT_HOIST, "opening %s: %s", name, strerror(errno));
  if (bind_console && mount(name, "/dev/console", NULL, MS_BIND, NULL) < 0)
    child_fail(EXIT_HOIST, "binding %s on /dev/console: %s", name, strerror(errno));
  return m;
}

int send_fd(int sock, int fd) {
  char data = 'F';
  struct iovec iov = { &data, 1 };
  union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } u;
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  memset(&u, 0, sizeof u);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = u.buf;
  msg.msg_controllen = sizeof u.buf;
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &fd, sizeof(int));
  return sendmsg(sock, &msg, 0) == 1 ? 0 : -1;
}

int recv_fd(int sock) {
  char data;
  struct iovec iov = { &data, 1 };
  union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } u;
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = u.buf;
  msg.msg_controllen = sizeof u.buf;
  ssize_t n;
  do n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n != 1) return -1;
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  if (!c || c->cmsg_type != SCM_RIGHTS) return -1;
  int fd;
  memcpy(&fd, CMSG_DATA(c), sizeof(int));
  return fd;
}


/* ---- seccomp: a deny-list in the spirit of Docker's default profile ---- */

#if defined(__x86_64__)
#define SECCOMP_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define SECCOMP_ARCH AUDIT_ARCH_AARCH64
#endif

#ifdef SECCOMP_ARCH
/* Kernel surfaces a container never needs with Docker's capability set: keyrings,
 * BPF, perf, module and kexec loading, the mount API, namespace creation and entry,
 * clock and swap control, userfaultfd, open_by_handle_at. */
static const int denied_syscalls[] = {
#define D(x) __NR_##x,
#ifdef __NR_add_key
  D(add_key)
#endif
#ifdef __NR_request_key
  D(request_key)
#endif
#ifdef __NR_keyctl
  D(keyctl)
#endif
#ifdef __NR_bpf
  D(bpf)
#endif
#ifdef __NR_perf_event_open
  D(perf_event_open)
#endif
#ifdef __NR_userfaultfd
  D(userfaultfd)
#endif
#ifdef __NR_kexec_load
  D(kexec_load)
#endif
#ifdef __NR_kexec_file_load
  D(kexec_file_load)
#endif
#ifdef __NR_init_module
  D(init_module)
#endif
#ifdef __NR_finit_module
  D(finit_module)
#endif
#ifdef __NR_delete_module
  D(delete_module)
#endif
#ifdef __NR_open_by_handle_at
  D(open_by_handle_at)
#endif
#ifdef __NR_lookup_dcookie
  D(lookup_dcookie)
#endif
#ifdef __NR_mount
  D(mount)
#endif
#ifdef __NR_umount2
  D(umount2)
#endif
#ifdef __NR_pivot_root
  D(pivot_root)
#endif
#ifdef __NR_fsopen
  D(fsopen)
#endif
#ifdef __NR_fsconfig
  D(fsconfig)
#endif
#ifdef __NR_fsmount
  D(fsmount)
#endif
#ifdef __NR_fspick
  D(fspick)
#endif
#ifdef __NR_move_mount
  D(move_mount)
#endif
#ifdef __NR_open_tree
  D(open_tree)
#endif
#ifdef __NR_mount_setattr
  D(mount_setattr)
#endif
#ifdef __NR_swapon
  D(swapon)
#endif
#ifdef __NR_swapoff
  D(swapoff)
#endif
#ifdef __NR_reboot
  D(reboot)
#endif
#ifdef __NR_settimeofday
  D(settimeofday)
#endif
#ifdef __NR_clock_settime
  D(clock_settime)
#endif
#ifdef __NR_clock_adjtime
  D(clock_adjtime)
#endif
#ifdef __NR_adjtimex
  D(adjtimex)
#endif
#ifdef __NR_acct
  D(acct)
#endif
#ifdef __NR_quotactl
  D(quotactl)
#endif
#ifdef __NR_iopl
  D(iopl)
#endif
#ifdef __NR_ioperm
  D(ioperm)
#endif
#ifdef __NR_setns
  D(setns)
#endif
#ifdef __NR_unshare
  D(unshare)
#endif
#ifdef __NR_uselib
  D(uselib)
#endif
#ifdef __NR_create_module
  D(create_module)
#endif
#ifdef __NR_get_kernel_syms
  D(get_kernel_syms)
#endif
#ifdef __NR_query_module
  D(query_module)
#endif
#ifdef __NR_nfsservctl
  D(nfsservctl)
#endif
#ifdef __NR__sysctl
  D(_sysctl)
#endif
#undef D
};

#define DENY BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA))

static void apply_seccomp(void) {
  struct sock_filter f[4 + 4 + 2 * (sizeof denied_syscalls / sizeof denied_syscalls[0]) + 8];
  size_t n = 0;
  f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
  f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SECCOMP_ARCH, 1, 0);
  f[n++] = (struct sock_filter)DENY; /* foreign ABIs (i386 via int 0x80) get nothing */
  f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
#ifdef __x86_64__
  f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000, 0, 1); /* x32 */
  f[n++] = (struct sock_filter)DENY;
#endif
  for (size_t i = 0; i < sizeof denied_syscalls / sizeof denied_syscalls[0]; i++) {
    f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)denied_syscalls[i], 0, 1);
    f[n++] = (struct sock_filter)DENY;
  }
#ifdef __NR_clone3
  /* clone3 passes its flags in memory the filter cannot read: ENOSYS makes libc fall back to clone */
  f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone3, 0, 1);
  f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA));
#endif
  /* clone may not create namespaces (the low word of its first argument holds the flags) */
  f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone, 0, 3);
  f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0]));
  f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWCGROUP, 0, 1);
  f[n++] = (struct sock_filter)DENY;
  f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  struct sock_fprog prog = { (unsigned short)n, f };
  if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) < 0) child_fail(EXIT_HOIST, "installing the seccomp filter: %s", strerror(errno));
}
#else
static void apply_seccomp(void) {}
#endif

/* ---- user, groups, capabilities ---- */

struct pwent { char name[256]; uid_t uid; gid_t gid; char home[PATH_MAX]; int found; };

static int is_number(const char *s) {
  if (!*s) return 0;
  for (; *s; s++) if (*s < '0' || *s > '9') return 0;
  return 1;
}

/* Splits a colon-separated line in place; returns the number of fields. */
static int split_colon(char *line, char **f, int max) {
  int n = 0;
  f[n++] = line;
  for (char *p = line; *p && n < max; p++)
    if (*p == ':') { *p = 0; f[n++] = p + 1; }
  char *nl = strchr(f[n - 1], '\n');
  if (nl) *nl = 0;
  return n;
}

/* Opens an image file for reading only if it is a regular file: a FIFO or device
 * planted at /etc/passwd must not hang or feed the setup. */
static FILE *open_regular(const char *path) {
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) return NULL;
  struct stat st;
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) { close(fd); return NULL; }
  FILE *f = fdopen(fd, "r");
  if (!f) close(fd);
  return f;
}

static void find_passwd(const char *name, long uid, struct pwent *out) {
  FILE *f = open_regular("/etc/passwd");
  memset(out, 0, sizeof *out);
  if (!f) return;
  char *line = NULL;
  size_t cap = 0;
  while (getline(&line, &cap, f) > 0) {
    char *fl[8];
    if (line[0] == '#' || split_colon(line, fl, 7) < 7 || !is_number(fl[2]) || !is_number(fl[3])) continue;
    if ((name && !strcmp(fl[0], name)) || (!name && strtol(fl[2], NULL, 10) == uid)) {
      snprintf(out->name, sizeof out->name, "%s", fl[0]);
      out->uid = (uid_t)strtoul(fl[2], NULL, 10);
      out->gid = (gid_t)strtoul(fl[3], NULL, 10);
      snprintf(out->home, sizeof out->home, "%s", fl[5]);
      out->found = 1;
      break;
    }
  }
  free(line);
  fclose(f);
}

/* Looks up a group by name; with member set, collects gids of groups listing it instead. */
static int find_group(const char *name, gid_t *gid, const char *member, gid_t *list, size_t *nlist, size_t max) {
  FILE *f = open_regular("/etc/group");
  int found = 0;
  if (!f) return 0;
  char *line = NULL;
  size_t cap = 0;
  while (getline(&line, &cap, f) > 0) {
    char *fl[5];
    if (line[0] == '#' || split_colon(line, fl, 4) < 4 || !is_number(fl[2])) continue;
    if (name && !strcmp(fl[0], name)) { *gid = (gid_t)strtoul(fl[2], NULL, 10); found = 1; break; }
    if (member) {
      char *save = NULL;
      for (char *m = strtok_r(fl[3], ",", &save); m; m = strtok_r(NULL, ",", &save))
        if (!strcmp(m, member) && *nlist < max) { list[(*nlist)++] = (gid_t)strtoul(fl[2], NULL, 10); break; }
    }
  }
  free(line);
  fclose(f);
  return found;
}

/* Docker's default capability set. */
static const int default_caps[] = {
  0 /* CHOWN */, 1 /* DAC_OVERRIDE */, 3 /* FSETID */, 4 /* FOWNER */, 5 /* KILL */, 6 /* SETGID */,
  7 /* SETUID */, 8 /* SETPCAP */, 10 /* NET_BIND_SERVICE */, 13 /* NET_RAW */, 18 /* SYS_CHROOT */,
  27 /* MKNOD */, 29 /* AUDIT_WRITE */, 31 /* SETFCAP */,
};

static int last_cap(void) {
  int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC), v = 40;
  if (fd >= 0) {
    char b[16] = {0};
    if (read(fd, b, sizeof b - 1) > 0) v = atoi(b);
    close(fd);
  }
  return v;
}

static void mkdir_p(const char *path) {
  char buf[PATH_MAX];
  snprintf(buf, sizeof buf, "%s", path);
  for (char *p = buf + 1; ; p++) {
    if (*p == '/' || *p == 0) {
      char c = *p;
      *p = 0;
      if (mkdir(buf, 0755) < 0 && errno != EEXIST) return; /* chdir reports the real problem */
      *p = c;
      if (!c) break;
    }
  }
}

static int has_env(const struct spec *s, char **env, const char *key) {
  size_t kl = strlen(key);
  (void)s;
  for (char **e = env; *e; e++) if (!strncmp(*e, key, kl) && (*e)[kl] == '=') return 1;
  return 0;
}

static const char *env_get(char **env, const char *key) {
  size_t kl = strlen(key);
  for (char **e = env; *e; e++) if (!strncmp(*e, key, kl) && (*e)[kl] == '=') return *e + kl + 1;
  return NULL;
}

void exec_command(const struct spec *s, int errfd, int slave) {
  g_errfd = errfd;
  sigset_t all;
  sigemptyset(&all);
  for (int i = 1; i < NSIG; i++) signal(i, SIG_DFL);
  sigprocmask(SIG_SETMASK, &all, NULL);
  if (setsid() < 0) child_fail(EXIT_HOIST, "setsid: %s", strerror(errno));
  if (slave >= 0) {
    if (ioctl(slave, TIOCSCTTY, 0) < 0) child_fail(EXIT_HOIST, "making the pty the controlling terminal: %s", strerror(errno));
    for (int i = 0; i < 3; i++) if (dup2(slave, i) < 0) child_fail(EXIT_HOIST, "dup2: %s", strerror(errno));
    if (slave > 2) close(slave);
  }
  for (size_t i = 0; i < s->nrlimits; i++) {
    struct rlimit cur, want = { s->rlimits[i].soft, s->rlimits[i].hard };
    /* Never ask for more than the current hard limit: only root outside could grant it. */
    if (getrlimit(s->rlimits[i].resource, &cur) == 0) {
      if (want.rlim_max > cur.rlim_max) want.rlim_max = cur.rlim_max;
      if (want.rlim_cur > want.rlim_max) want.rlim_cur = want.rlim_max;
    }
    if (setrlimit(s->rlimits[i].resource, &want) < 0) child_fail(EXIT_HOIST, "setting rlimit %d: %s", s->rlimits[i].resource, strerror(errno));
  }

  /* user[:group] as Docker reads it from the image's /etc/passwd and /etc/group */
  char ubuf[512];
  snprintf(ubuf, sizeof ubuf, "%s", s->user);
  char *gpart = strchr(ubuf, ':');
  if (gpart) *gpart++ = 0;
  struct pwent pw;
  uid_t uid = 0;
  gid_t gid = 0;
  const char *home = "/";
  if (!ubuf[0]) find_passwd(NULL, 0, &pw);
  else if (is_number(ubuf)) find_passwd(NULL, strtol(ubuf, NULL, 10), &pw);
  else {
    find_passwd(ubuf, 0, &pw);
    if (!pw.found) child_fail(EXIT_HOIST, "unable to find user %s: no matching entries in the image's /etc/passwd", ubuf);
  }
  if (ubuf[0] && is_number(ubuf)) uid = (uid_t)strtoul(ubuf, NULL, 10);
  else if (pw.found) uid = pw.uid;
  if (pw.found) { gid = pw.gid; home = pw.home; }
  gid_t groups[NGROUPS_MAX > 256 ? 256 : NGROUPS_MAX];
  size_t ngroups = 0;
  if (gpart && *gpart) {
    if (is_number(gpart)) gid = (gid_t)strtoul(gpart, NULL, 10);
    else if (!find_group(gpart, &gid, NULL, NULL, NULL, 0))
      child_fail(EXIT_HOIST, "unable to find group %s: no matching entries in the image's /etc/group", gpart);
  }
  if (pw.found) find_group(NULL, NULL, pw.name, groups, &ngroups, sizeof groups / sizeof groups[0]);
  for (size_t i = 0; i < s->nextra_gids && ngroups < sizeof groups / sizeof groups[0]; i++) groups[ngroups++] = s->extra_gids[i];

  /* the environment, with HOME and PATH defaults as Docker adds them */
  char **env = calloc(s->nenv + 4, sizeof(char *));
  size_t ne = 0;
  for (size_t i = 0; i < s->nenv; i++) env[ne++] = s->env[i];
  env[ne] = NULL;
  if (!has_env(s, env, "PATH")) env[ne++] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  env[ne] = NULL;
  if (!has_env(s, env, "HOSTNAME") && s->hostname) {
    char *h = malloc(strlen(s->hostname) + 10);
    sprintf(h, "HOSTNAME=%s", s->hostname);
    env[ne++] = h;
  }
  env[ne] = NULL;
  if (!has_env(s, env, "HOME")) {
    char *h = malloc(strlen(home) + 6);
    sprintf(h, "HOME=%s", home);
    env[ne++] = h;
  }
  env[ne] = NULL;

  /* Every descriptor but stdio and the error pipe (close-on-exec) goes now, before
   * the working directory is resolved: /proc/self/fd/N can then name nothing of the host. */
  if (errfd > 3) syscall(SYS_close_range, 3, errfd - 1, 0);
  if (syscall(SYS_close_range, errfd + 1, ~0U, 0) < 0) child_fail(EXIT_HOIST, "closing descriptors: %s", strerror(errno));
  if (errfd != 3 && errfd > 3) { /* fd 3 was closed by the first range */ }
  mkdir_p(s->cwd);
  if (chdir(s->cwd) < 0) child_fail(EXIT_HOIST, "working directory %s: %s", s->cwd, strerror(errno));

  int lc = last_cap();
  unsigned long long keep = 0;
  for (size_t i = 0; i < sizeof default_caps / sizeof default_caps[0]; i++) keep |= 1ULL << default_caps[i];
  for (int c = 0; c <= lc; c++)
    if (!(keep & (1ULL << c)) && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
      child_fail(EXIT_HOIST, "dropping capability %d from the bounding set: %s", c, strerror(errno));
  if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) child_fail(EXIT_HOIST, "keepcaps: %s", strerror(errno));
  if (setgroups(ngroups, groups) < 0) {
    /* A single-id user namespace denies setgroups; without extra groups nothing is lost. */
    if (!(errno == EPERM && s->userns && ngroups == 0)) child_fail(EXIT_HOIST, "setgroups: %s", strerror(errno));
  }
  if (setresgid(gid, gid, gid) < 0) child_fail(EXIT_HOIST, "setting gid %u: %s (is it mapped in the user namespace?)", gid, strerror(errno));
  if (setresuid(uid, uid, uid) < 0) child_fail(EXIT_HOIST, "setting uid %u: %s (is it mapped in the user namespace?)", uid, strerror(errno));
  struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
  struct __user_cap_data_struct data[2];
  memset(data, 0, sizeof data);
  data[0].effective = data[0].permitted = (unsigned)(keep & 0xffffffffu);
  data[1].effective = data[1].permitted = (unsigned)(keep >> 32);
  if (syscall(SYS_capset, &hdr, data) < 0) child_fail(EXIT_HOIST, "capset: %s", strerror(errno));
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) child_fail(EXIT_HOIST, "no_new_privs: %s", strerror(errno));
  if (s->seccomp) apply_seccomp();

  const char *cmd = s->args[0];
  int err = ENOENT;
  if (strchr(cmd, '/')) {
    execve(cmd, s->args, env);
    err = errno;
  } else {
    const char *path = env_get(env, "PATH");
    char full[PATH_MAX];
    int saw_eacces = 0;
    for (const char *p = path; p && *p;) {
      const char *e = strchrnul(p, ':');
      size_t l = (size_t)(e - p);
      snprintf(full, sizeof full, "%.*s/%s", (int)l, l ? p : ".", cmd);
      execve(full, s->args, env);
      if (errno == EACCES) saw_eacces = 1;
      else if (errno != ENOENT && errno != ENOTDIR) { err = errno; break; }
      p = *e ? e + 1 : e;
    }
    if (err == ENOENT && saw_eacces) err = EACCES;
    if (err == ENOENT) child_fail(EXIT_NOTFOUND, "exec: %s: executable file not found in $PATH (%s)", cmd, path ? path : "");
  }
  if (err == ENOENT) child_fail(EXIT_NOTFOUND, "exec: %s: no such file in the image", cmd);
  if (err == EACCES) child_fail(EXIT_NOEXEC, "exec: %s: permission denied", cmd);
  if (err == ENOEXEC) child_fail(EXIT_NOEXEC, "exec: %s: exec format error", cmd);
  child_fail(EXIT_NOEXEC, "exec: %s: %s", cmd, strerror(err));
}
