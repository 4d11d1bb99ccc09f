/* hoist-sandbox: runs one command in a fresh set of namespaces (or joins a running
 * container's), stays as the parent of the container's init, relays its terminal
 * or log, and exits with the command's status (128+N when killed by signal N).
 *
 *   hoist-sandbox SPEC-FD      the JSON specification is read from SPEC-FD
 */
#include "sandbox.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#define VERSION "hoist-sandbox 1"

static struct spec S;
static struct termios saved_termios;
static int termios_saved;
static char cg_dirs[2][PATH_MAX + 256];
static int status_fd = -1;
static char *argv_area;
static size_t argv_len;

static void restore_terminal(void) {
  if (termios_saved) tcsetattr(0, TCSANOW, &saved_termios);
  termios_saved = 0;
}

/* Writes all of buf, retrying short writes; errors (a closed reader) are ignored. */
static void write_all(int fd, const char *buf, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, buf, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) { struct pollfd p = { fd, POLLOUT, 0 }; poll(&p, 1, 1000); continue; }
      return;
    }
    buf += w;
    n -= (size_t)w;
  }
}

/* JSON string body (no quotes) of arbitrary bytes. */
static size_t json_escape(char *out, const char *in, size_t n) {
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)in[i];
    if (c == '"' || c == '\\') { out[k++] = '\\'; out[k++] = (char)c; }
    else if (c == '\n') { out[k++] = '\\'; out[k++] = 'n'; }
    else if (c == '\r') { out[k++] = '\\'; out[k++] = 'r'; }
    else if (c == '\t') { out[k++] = '\\'; out[k++] = 't'; }
    else if (c < 0x20 || c == 0x7f) k += (size_t)sprintf(out + k, "\\u%04x", c);
    else out[k++] = (char)c;
  }
  return k;
}

static void status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void status(const char *fmt, ...) {
  if (status_fd < 0) return;
  char buf[8192];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf - 2, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n > sizeof buf - 2) n = (int)sizeof buf - 2;
  buf[n++] = '\n';
  write_all(status_fd, buf, (size_t)n);
}

/* ---- logs: one JSON object per line, as Docker's json-file driver writes them ---- */

struct logbuf { char data[16384]; size_t n; const char *stream; };
static int log_fd = -1;

static void log_emit(struct logbuf *b, size_t len) {
  if (len == 0) return;
  if (log_fd < 0) goto consume;
  static char line[16384 * 6 + 256];
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  size_t k = (size_t)sprintf(line, "{\"log\":\"");
  k += json_escape(line + k, b->data, len);
  k += (size_t)sprintf(line + k, "\",\"stream\":\"%s\",\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ\"}\n", b->stream,
                       tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec);
  write_all(log_fd, line, k);
consume:
  memmove(b->data, b->data + len, b->n - len);
  b->n -= len;
}

static void log_feed(struct logbuf *b, const char *data, size_t n, int flush) {
  while (n > 0) {
    size_t take = sizeof b->data - b->n < n ? sizeof b->data - b->n : n;
    memcpy(b->data + b->n, data, take);
    b->n += take;
    data += take;
    n -= take;
    for (;;) {
      char *nl = memchr(b->data, '\n', b->n);
      if (!nl) break;
      log_emit(b, (size_t)(nl - b->data) + 1);
    }
    if (b->n == sizeof b->data) log_emit(b, b->n); /* a line longer than the buffer goes in parts */
  }
  if (flush) log_emit(b, b->n);
}

/* ---- user namespace maps ---- */

static int write_file(const char *path, const char *data) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t w = write(fd, data, strlen(data));
  int e = errno;
  close(fd);
  errno = e;
  return w == (ssize_t)strlen(data) ? 0 : -1;
}

/* The first subordinate range /etc/subuid (or subgid) grants to this user. */
static int subid_range(const char *file, const char *name, unsigned long id, unsigned long *start, unsigned long *count) {
  FILE *f = fopen(file, "re");
  if (!f) return 0;
  char line[512];
  int found = 0;
  while (fgets(line, sizeof line, f)) {
    char *a = strtok(line, ":\n"), *b = strtok(NULL, ":\n"), *c = strtok(NULL, ":\n");
    if (!a || !b || !c) continue;
    char idbuf[32];
    snprintf(idbuf, sizeof idbuf, "%lu", id);
    if ((name && !strcmp(a, name)) || !strcmp(a, idbuf)) {
      *start = strtoul(b, NULL, 10);
      *count = strtoul(c, NULL, 10);
      found = *count > 0;
      break;
    }
  }
  fclose(f);
  return found;
}

static int run_tool(char *const argv[]) {
  pid_t p = fork();
  if (p == 0) {
    execvp(argv[0], argv);
    _exit(127);
  }
  int st;
  if (p < 0 || waitpid(p, &st, 0) < 0) return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Maps the caller to root in the child's user namespace, plus a subordinate range
 * through newuidmap/newgidmap when /etc/subuid and /etc/subgid grant one. */
static void write_id_maps(pid_t pid) {
  char path[64], buf[128], pidstr[16];
  uid_t uid = geteuid();
  gid_t gid = getegid();
  const char *name = getenv("USER");
  unsigned long us, uc, gs, gc;
  snprintf(pidstr, sizeof pidstr, "%d", pid);
  if (subid_range("/etc/subuid", name, uid, &us, &uc) && subid_range("/etc/subgid", name, uid, &gs, &gc)) {
    char a[32], b[32], c[32], d[32], e[32];
    snprintf(a, sizeof a, "%u", uid); snprintf(b, sizeof b, "%lu", us); snprintf(c, sizeof c, "%lu", uc);
    char *um[] = {"newuidmap", pidstr, "0", a, "1", "1", b, c, NULL};
    snprintf(d, sizeof d, "%u", gid); snprintf(e, sizeof e, "%lu", gs); snprintf(c, sizeof c, "%lu", gc);
    char *gm[] = {"newgidmap", pidstr, "0", d, "1", "1", e, c, NULL};
    if (run_tool(um) == 0 && run_tool(gm) == 0) return;
    warnx_("newuidmap/newgidmap failed; mapping only your own uid and gid");
  }
  snprintf(path, sizeof path, "/proc/%d/uid_map", pid);
  snprintf(buf, sizeof buf, "0 %u 1\n", uid);
  if (write_file(path, buf) < 0) die(EXIT_HOIST, "writing the user namespace uid map: %s", strerror(errno));
  snprintf(path, sizeof path, "/proc/%d/setgroups", pid);
  if (write_file(path, "deny") < 0) die(EXIT_HOIST, "writing setgroups deny: %s", strerror(errno));
  snprintf(path, sizeof path, "/proc/%d/gid_map", pid);
  snprintf(buf, sizeof buf, "0 %u 1\n", gid);
  if (write_file(path, buf) < 0) die(EXIT_HOIST, "writing the user namespace gid map: %s", strerror(errno));
}

/* ---- cgroups (v1 hierarchies, or v2 where the controller is enabled) ---- */

/* Where this process's cgroup for `ctrl` lives: a v2 directory when the unified
 * hierarchy offers the controller, else the v1 hierarchy that carries it. */
static int cgroup_dir(pid_t pid, const char *ctrl, char *out, size_t n, int *v2) {
  FILE *f = fopen("/proc/self/mountinfo", "re");
  char line[4096], v1mnt[PATH_MAX] = "", v1root[PATH_MAX] = "", u2mnt[PATH_MAX] = "", u2root[PATH_MAX] = "";
  if (!f) return -1;
  while (fgets(line, sizeof line, f)) {
    char *sep = strstr(line, " - ");
    if (!sep) continue;
    char root[PATH_MAX], mnt[PATH_MAX], fstype[64], src[PATH_MAX], opts[1024];
    if (sscanf(line, "%*s %*s %*s %4095s %4095s", root, mnt) != 2) continue;
    if (sscanf(sep + 3, "%63s %4095s %1023s", fstype, src, opts) != 3) continue;
    if (!strcmp(fstype, "cgroup2")) { snprintf(u2mnt, sizeof u2mnt, "%s", mnt); snprintf(u2root, sizeof u2root, "%s", root); }
    else if (!strcmp(fstype, "cgroup")) {
      char *save = NULL;
      for (char *o = strtok_r(opts, ",", &save); o; o = strtok_r(NULL, ",", &save))
        if (!strcmp(o, ctrl)) { snprintf(v1mnt, sizeof v1mnt, "%s", mnt); snprintf(v1root, sizeof v1root, "%s", root); }
    }
  }
  fclose(f);
  char v1path[PATH_MAX] = "", v2path[PATH_MAX] = "";
  char cgpath[64];
  snprintf(cgpath, sizeof cgpath, "/proc/%d/cgroup", pid);
  f = fopen(cgpath, "re");
  if (!f) return -1;
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = 0;
    char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (!c2) continue;
    *c1 = 0; *c2 = 0;
    if (!strcmp(line, "0") && !c1[1]) snprintf(v2path, sizeof v2path, "%s", c2 + 1);
    else {
      char *save = NULL;
      for (char *o = strtok_r(c1 + 1, ",", &save); o; o = strtok_r(NULL, ",", &save))
        if (!strcmp(o, ctrl)) snprintf(v1path, sizeof v1path, "%s", c2 + 1);
    }
  }
  fclose(f);
  /* a bind-mounted hierarchy shows only its subtree: strip the mount's root */
#define REL(path, root) (strncmp(path, root, strlen(root)) == 0 && strcmp(root, "/") ? path + strlen(root) : path)
  if (u2mnt[0] && v2path[0]) {
    char ctl[PATH_MAX * 2], have[1024] = "";
    snprintf(ctl, sizeof ctl, "%s%s/cgroup.controllers", u2mnt, REL(v2path, u2root));
    FILE *c = fopen(ctl, "re");
    if (c) {
      if (!fgets(have, sizeof have, c)) have[0] = 0;
      fclose(c);
    }
    char *save = NULL;
    for (char *o = strtok_r(have, " \n", &save); o; o = strtok_r(NULL, " \n", &save))
      if (!strcmp(o, ctrl)) {
        snprintf(out, n, "%s%s", u2mnt, REL(v2path, u2root));
        *v2 = 1;
        return 0;
      }
  }
  if (v1mnt[0] && v1path[0]) {
    snprintf(out, n, "%s%s", v1mnt, REL(v1path, v1root));
    *v2 = 0;
    return 0;
  }
  return -1;
#undef REL
}

static void cgroup_cleanup(void) {
  for (int i = 0; i < 2; i++) {
    if (!cg_dirs[i][0]) continue;
    for (int tries = 0; tries < 50 && rmdir(cg_dirs[i]) < 0 && errno == EBUSY; tries++) usleep(10000);
    cg_dirs[i][0] = 0;
  }
}

/* Puts pid into a new cgroup per limited controller; refuses clearly when a limit cannot be enforced. */
static void cgroup_setup(pid_t pid) {
  struct { const char *ctrl; long long value; } want[2] = { {"memory", S.memory}, {"pids", S.pids} };
  for (int i = 0; i < 2; i++) {
    if (!want[i].value) continue;
    char base[PATH_MAX], dir[PATH_MAX + 256], file[PATH_MAX + 300], val[32];
    int v2 = 0;
    if (cgroup_dir(getpid(), want[i].ctrl, base, sizeof base, &v2) < 0)
      die(EXIT_HOIST, "--%s: no cgroup %s controller is available to this process (neither a v1 hierarchy nor enabled in cgroup v2); the limit cannot be enforced",
          i == 0 ? "memory" : "pids-limit", want[i].ctrl);
    snprintf(dir, sizeof dir, "%s/%s", base, S.cgroup_name);
    if (mkdir(dir, 0755) < 0 && errno != EEXIST)
      die(EXIT_HOIST, "cannot create cgroup %s: %s (rootless hoist cannot set %s limits unless the cgroup is delegated to you)", dir, strerror(errno), want[i].ctrl);
    snprintf(cg_dirs[i], sizeof cg_dirs[i], "%s", dir);
    /* our init process counts against pids.max too: one more than asked */
    snprintf(val, sizeof val, "%lld", i == 1 ? want[i].value + 1 : want[i].value);
    snprintf(file, sizeof file, "%s/%s", dir, i == 0 ? (v2 ? "memory.max" : "memory.limit_in_bytes") : "pids.max");
    if (write_file(file, val) < 0) { int e = errno; cgroup_cleanup(); die(EXIT_HOIST, "setting %s to %s: %s", file, val, strerror(e)); }
    if (i == 0 && v2) {
      snprintf(file, sizeof file, "%s/memory.swap.max", dir);
      write_file(file, "0");
    }
    snprintf(file, sizeof file, "%s/cgroup.procs", dir);
    snprintf(val, sizeof val, "%d", pid);
    if (write_file(file, val) < 0) { int e = errno; cgroup_cleanup(); die(EXIT_HOIST, "moving the container into %s: %s", dir, strerror(e)); }
  }
}

/* A process exec'd into a container joins the container's memory and pids cgroups,
 * so its limits apply to it too. */
static void cgroup_join(pid_t container, pid_t pid) {
  static const char *ctrls[] = {"memory", "pids"};
  for (int i = 0; i < 2; i++) {
    char dir[PATH_MAX], mine[PATH_MAX], file[PATH_MAX + 32], val[32];
    int v2 = 0, v2m = 0;
    if (cgroup_dir(container, ctrls[i], dir, sizeof dir, &v2) < 0 || cgroup_dir(getpid(), ctrls[i], mine, sizeof mine, &v2m) < 0) continue;
    if (!strcmp(dir, mine)) continue; /* no cgroup of its own: nothing to join */
    snprintf(file, sizeof file, "%s/cgroup.procs", dir);
    snprintf(val, sizeof val, "%d", pid);
    if (write_file(file, val) < 0) warnx_("could not join %s: %s", file, strerror(errno));
  }
}

/* ---- signals ---- */

static int forwardable(int sig) {
  switch (sig) {
    case SIGCHLD: case SIGWINCH: case SIGPIPE: case SIGKILL: case SIGSTOP: case SIGTTIN: case SIGTTOU:
    case SIGSEGV: case SIGBUS: case SIGFPE: case SIGILL: case SIGTRAP: case SIGSYS: case SIGABRT:
      return 0;
  }
  return 1;
}

static void blocked_set(sigset_t *set) {
  sigemptyset(set);
  for (int i = 1; i < 32; i++) if (forwardable(i)) sigaddset(set, i);
  sigaddset(set, SIGCHLD);
  sigaddset(set, SIGWINCH);
}

static int exit_code_of(int st) {
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
  return EXIT_HOIST;
}

/* The container's PID 1: forwards every signal it can catch to the command and
 * reaps orphans; exits with the command's status. It is our code, not the
 * user's, so `kill -TERM $$` in the command behaves as it does outside. */
/* ps inside shows PID 1 by its command line, not the helper's host path. Done before
 * the command is forked, so the command never sees PID 1 under its old name. */
static void name_init(void) {
  if (argv_area && argv_len > 1) {
    memset(argv_area, 0, argv_len);
    snprintf(argv_area, argv_len, "hoist-init");
  }
  prctl(PR_SET_NAME, "hoist-init", 0, 0, 0);
}

static void run_init(pid_t cmd) __attribute__((noreturn));
static void run_init(pid_t cmd) {
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0); /* no /proc/1/fd for the container to look through */
  int nullfd = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (nullfd >= 0) { dup2(nullfd, 0); dup2(nullfd, 1); dup2(nullfd, 2); }
  syscall(SYS_close_range, 3, ~0U, 0);
  sigset_t set;
  blocked_set(&set);
  int sfd = signalfd(-1, &set, SFD_CLOEXEC);
  if (sfd < 0) { kill(cmd, SIGKILL); _exit(EXIT_HOIST); }
  for (;;) {
    struct signalfd_siginfo si;
    if (read(sfd, &si, sizeof si) != sizeof si) continue;
    if (si.ssi_signo == SIGCHLD) {
      int st;
      pid_t w;
      while ((w = waitpid(-1, &st, WNOHANG)) > 0)
        if (w == cmd) _exit(exit_code_of(st));
    } else {
      kill(cmd, (int)si.ssi_signo);
    }
  }
}

/* ---- the relay loop (parent) ---- */

static void copy_winsize(int master) {
  struct winsize ws;
  if (ioctl(0, TIOCGWINSZ, &ws) == 0 || ioctl(1, TIOCGWINSZ, &ws) == 0) ioctl(master, TIOCSWINSZ, &ws);
}

/* The size is set before the command runs, so its first TIOCGWINSZ already sees it. */
static void set_initial_winsize(int master) {
  struct winsize ws;
  if (ioctl(0, TIOCGWINSZ, &ws) == 0 || ioctl(1, TIOCGWINSZ, &ws) == 0) ioctl(master, TIOCSWINSZ, &ws);
  else if (S.rows && S.cols) {
    struct winsize w = { S.rows, S.cols, 0, 0 };
    ioctl(master, TIOCSWINSZ, &w);
  }
}

static void write_exit_file(int code) {
  if (!S.exit_file) return;
  char tmp[PATH_MAX + 16], buf[256];
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  snprintf(tmp, sizeof tmp, "%s.tmp", S.exit_file);
  int n = snprintf(buf, sizeof buf, "{\"exitCode\":%d,\"finishedAt\":\"%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ\"}\n", code,
                   tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return;
  write_all(fd, buf, (size_t)n);
  fsync(fd);
  close(fd);
  rename(tmp, S.exit_file);
}

static void finish(int code) __attribute__((noreturn));
static void finish(int code) {
  restore_terminal();
  cgroup_cleanup();
  write_exit_file(code);
  status("{\"type\":\"exit\",\"code\":%d}", code);
  exit(code);
}

/* Reads the child's setup/exec error report; returns its exit code, or 0 when the command started. */
static int read_setup_error(int fd, char *msg, size_t n) {
  size_t k = 0;
  for (;;) {
    ssize_t r = read(fd, msg + k, n - 1 - k);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    k += (size_t)r;
    if (k >= n - 1) break;
  }
  msg[k] = 0;
  if (!k) return 0;
  char *sp = strchr(msg, ' ');
  int code = atoi(msg);
  if (sp) memmove(msg, sp + 1, strlen(sp + 1) + 1);
  return code > 0 ? code : EXIT_HOIST;
}

static void supervise(pid_t child, int sfd, int master, int outfd, int errfd_r, int errpipe_r) {
  char msg[4096];
  int code = read_setup_error(errpipe_r, msg, sizeof msg);
  close(errpipe_r);
  if (code) {
    dprintf(2, "%s\n", msg);
    char esc[sizeof msg * 6];
    esc[json_escape(esc, msg, strlen(msg))] = 0;
    status("{\"type\":\"error\",\"code\":%d,\"message\":\"%s\"}", code, esc);
    kill(child, SIGKILL);
    int st;
    while (waitpid(child, &st, 0) < 0 && errno == EINTR) {}
    restore_terminal();
    cgroup_cleanup();
    write_exit_file(code);
    exit(code);
  }
  status("{\"type\":\"started\",\"pid\":%d}", child);
  if (S.detach) {
    int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
    dup2(nul, 0); dup2(nul, 1); dup2(nul, 2);
    if (status_fd >= 0) { close(status_fd); status_fd = -1; }
  }
  struct logbuf lout = { .n = 0, .stream = "stdout" }, lerr = { .n = 0, .stream = "stderr" };
  int in_open = master >= 0 && S.open_stdin && !S.detach;
  int exited = 0, code_out = 0;
  char buf[65536];
  while (!exited || master >= 0 || outfd >= 0 || errfd_r >= 0) {
    struct pollfd p[5];
    int np = 0, i_sig = -1, i_in = -1, i_m = -1, i_o = -1, i_e = -1;
    if (!exited) { p[np] = (struct pollfd){ sfd, POLLIN, 0 }; i_sig = np++; }
    if (in_open && !exited) { p[np] = (struct pollfd){ 0, POLLIN, 0 }; i_in = np++; }
    if (master >= 0) { p[np] = (struct pollfd){ master, POLLIN, 0 }; i_m = np++; }
    if (outfd >= 0) { p[np] = (struct pollfd){ outfd, POLLIN, 0 }; i_o = np++; }
    if (errfd_r >= 0) { p[np] = (struct pollfd){ errfd_r, POLLIN, 0 }; i_e = np++; }
    /* once init is gone its namespace is too: drain what is buffered, without waiting on stragglers */
    int r = poll(p, (nfds_t)np, exited ? 200 : -1);
    if (r < 0 && errno == EINTR) continue;
    if (r == 0 && exited) break;
    if (i_sig >= 0 && p[i_sig].revents) {
      struct signalfd_siginfo si;
      if (read(sfd, &si, sizeof si) == sizeof si) {
        if (si.ssi_signo == SIGCHLD) {
          int st;
          pid_t w;
          while ((w = waitpid(-1, &st, WNOHANG)) > 0)
            if (w == child) { exited = 1; code_out = exit_code_of(st); }
        } else if (si.ssi_signo == SIGWINCH) {
          if (master >= 0) copy_winsize(master);
        } else {
          kill(child, (int)si.ssi_signo);
        }
      }
    }
    if (i_in >= 0 && p[i_in].revents) {
      ssize_t n = read(0, buf, sizeof buf);
      if (n > 0) write_all(master, buf, (size_t)n);
      else { in_open = 0; write_all(master, "\x04", 1); /* end of input: EOF for the terminal's reader */ }
    }
    if (i_m >= 0 && p[i_m].revents) {
      ssize_t n = read(master, buf, sizeof buf);
      if (n > 0) {
        if (!S.detach) write_all(1, buf, (size_t)n);
        log_feed(&lout, buf, (size_t)n, 0);
      } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) { close(master); master = -1; }
    }
    if (i_o >= 0 && p[i_o].revents) {
      ssize_t n = read(outfd, buf, sizeof buf);
      if (n > 0) {
        if (!S.detach) write_all(1, buf, (size_t)n);
        log_feed(&lout, buf, (size_t)n, 0);
      } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) { close(outfd); outfd = -1; }
    }
    if (i_e >= 0 && p[i_e].revents) {
      ssize_t n = read(errfd_r, buf, sizeof buf);
      if (n > 0) {
        if (!S.detach) write_all(2, buf, (size_t)n);
        log_feed(&lerr, buf, (size_t)n, 0);
      } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) { close(errfd_r); errfd_r = -1; }
    }
  }
  log_feed(&lout, "", 0, 1);
  log_feed(&lerr, "", 0, 1);
  finish(code_out);
}

/* ---- main ---- */

static char *read_all(int fd, size_t *len) {
  size_t cap = 65536, n = 0;
  char *b = malloc(cap);
  for (;;) {
    if (n == cap) {
      if (cap >= (64u << 20)) die(EXIT_HOIST, "spec: larger than 64 MiB");
      cap *= 2;
      b = realloc(b, cap);
    }
    ssize_t r = read(fd, b + n, cap - n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) die(EXIT_HOIST, "reading the spec from fd %d: %s", fd, strerror(errno));
    if (r == 0) break;
    n += (size_t)r;
  }
  *len = n;
  return b;
}

static int same_ns(pid_t pid, const char *ns) {
  char a[64], b[64];
  struct stat x, y;
  snprintf(a, sizeof a, "/proc/%d/ns/%s", pid, ns);
  snprintf(b, sizeof b, "/proc/self/ns/%s", ns);
  return stat(a, &x) == 0 && stat(b, &y) == 0 && x.st_ino == y.st_ino && x.st_dev == y.st_dev;
}

int main(int argc, char **argv) {
  if (argc == 2 && !strcmp(argv[1], "--version")) { puts(VERSION); return 0; }
  if (argc != 2 || !argv[1][0] || strspn(argv[1], "0123456789") != strlen(argv[1])) {
    dprintf(2, "usage: hoist-sandbox SPEC-FD   (the JSON run specification is read from that descriptor)\n");
    return EXIT_HOIST;
  }
  argv_area = argv[0];
  argv_len = (size_t)(argv[argc - 1] + strlen(argv[argc - 1]) + 1 - argv[0]);
  int spec_fd = atoi(argv[1]);
  size_t len;
  char *text = read_all(spec_fd, &len);
  close(spec_fd);
  load_spec(&S, text, len);
  status_fd = S.status_fd;
  if (status_fd >= 0 && fcntl(status_fd, F_SETFD, FD_CLOEXEC) < 0) die(EXIT_HOIST, "statusFd %d is not open", status_fd);
  signal(SIGPIPE, SIG_IGN);
  pid_t parent = getppid();
  if (S.die_with_parent) {
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    if (getppid() != parent) return EXIT_HOIST;
  }
  sigset_t set;
  blocked_set(&set);
  sigprocmask(SIG_BLOCK, &set, NULL);
  int sfd = signalfd(-1, &set, SFD_CLOEXEC);
  if (sfd < 0) die(EXIT_HOIST, "signalfd: %s", strerror(errno));

  int errpipe[2], syncpipe[2], sock[2] = {-1, -1}, outp[2] = {-1, -1}, errp[2] = {-1, -1};
  if (pipe2(errpipe, O_CLOEXEC) < 0 || pipe2(syncpipe, O_CLOEXEC) < 0) die(EXIT_HOIST, "pipe: %s", strerror(errno));
  if (S.tty && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sock) < 0) die(EXIT_HOIST, "socketpair: %s", strerror(errno));
  int logging = S.log_path != NULL;
  if (logging) {
    log_fd = open(S.log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (log_fd < 0) die(EXIT_HOIST, "opening the log %s: %s", S.log_path, strerror(errno));
    if (!S.tty && (pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0)) die(EXIT_HOIST, "pipe: %s", strerror(errno));
  }
  int nullfd = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (S.tty && S.open_stdin && !S.detach && isatty(0) && tcgetattr(0, &saved_termios) == 0) {
    struct termios raw = saved_termios;
    cfmakeraw(&raw);
    termios_saved = 1;
    tcsetattr(0, TCSANOW, &raw);
  }

  pid_t child;
  if (S.exec_mode) {
    static const char *order[] = {"user", "ipc", "uts", "net", "pid", "mnt"};
    static const int types[] = {CLONE_NEWUSER, CLONE_NEWIPC, CLONE_NEWUTS, CLONE_NEWNET, CLONE_NEWPID, CLONE_NEWNS};
    int fds[6];
    char p[64];
    for (int i = 0; i < 6; i++) {
      fds[i] = -1;
      if (same_ns(S.exec_pid, order[i])) continue;
      snprintf(p, sizeof p, "/proc/%d/ns/%s", S.exec_pid, order[i]);
      fds[i] = open(p, O_RDONLY | O_CLOEXEC);
      if (fds[i] < 0) die(EXIT_HOIST, "the container is not running (opening %s: %s)", p, strerror(errno));
    }
    S.userns = fds[0] >= 0;
    /* joining a pid namespace applies to children: the command is forked below */
    if (fds[4] >= 0 && setns(fds[4], CLONE_NEWPID) < 0) die(EXIT_HOIST, "joining the container's pid namespace: %s", strerror(errno));
    child = fork();
    if (child < 0) die(EXIT_HOIST, "fork: %s", strerror(errno));
    if (child == 0) {
      g_errfd = errpipe[1];
      close(errpipe[0]);
      if (sock[0] >= 0) close(sock[0]);
      prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
      close(syncpipe[1]);
      char go;
      /* wait until the parent has put us into the container's cgroups */
      if (read(syncpipe[0], &go, 1) != 1) _exit(EXIT_HOIST);
      close(syncpipe[0]);
      for (int i = 0; i < 6; i++)
        if (i != 4 && fds[i] >= 0 && setns(fds[i], types[i]) < 0) child_fail(EXIT_HOIST, "joining the container's %s namespace: %s", order[i], strerror(errno));
      if (chdir("/") < 0) child_fail(EXIT_HOIST, "chdir /: %s", strerror(errno));
      if (!S.open_stdin || S.detach) dup2(nullfd, 0);
      int slave = -1;
      if (S.tty) {
        int m = open_pty_inside(&slave, 0);
        set_initial_winsize(m);
        if (send_fd(sock[1], m) < 0) child_fail(EXIT_HOIST, "passing the pty: %s", strerror(errno));
        close(m);
        close(sock[1]);
      }
      exec_command(&S, errpipe[1], slave);
    }
    for (int i = 0; i < 6; i++) if (fds[i] >= 0) close(fds[i]);
    close(errpipe[1]);
    close(syncpipe[0]);
    cgroup_join(S.exec_pid, child);
    if (write(syncpipe[1], "g", 1) != 1) die(EXIT_HOIST, "starting the command: %s", strerror(errno));
    close(syncpipe[1]);
  } else {
    int flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | (S.net_host ? 0 : CLONE_NEWNET) | (S.userns ? CLONE_NEWUSER : 0);
    child = (pid_t)syscall(SYS_clone, (unsigned long)flags | SIGCHLD, NULL, NULL, NULL, NULL);
    if (child < 0) {
      if (S.userns) die(EXIT_HOIST, "creating namespaces as an unprivileged user: %s (the kernel refused an unprivileged user namespace; check kernel.unprivileged_userns_clone, user.max_user_namespaces and AppArmor's restrict_unprivileged_userns)", strerror(errno));
      die(EXIT_HOIST, "creating namespaces: %s", strerror(errno));
    }
    if (child == 0) {
      g_errfd = errpipe[1];
      close(errpipe[0]);
      close(syncpipe[1]);
      if (sock[0] >= 0) close(sock[0]);
      if (outp[0] >= 0) { close(outp[0]); close(errp[0]); }
      prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
      char go;
      if (read(syncpipe[0], &go, 1) != 1) _exit(EXIT_HOIST); /* the parent gave up */
      close(syncpipe[0]);
      if (!S.open_stdin || S.detach) dup2(nullfd, 0);
      if (outp[1] >= 0) { dup2(outp[1], 1); dup2(errp[1], 2); close(outp[1]); close(errp[1]); }
      setup_rootfs(&S);
      setup_identity(&S);
      int slave = -1;
      if (S.tty) {
        int m = open_pty_inside(&slave, 1);
        set_initial_winsize(m);
        if (send_fd(sock[1], m) < 0) child_fail(EXIT_HOIST, "passing the pty: %s", strerror(errno));
        close(m);
        close(sock[1]);
      }
      name_init();
      pid_t cmd = fork();
      if (cmd < 0) child_fail(EXIT_HOIST, "fork: %s", strerror(errno));
      if (cmd == 0) exec_command(&S, errpipe[1], slave);
      run_init(cmd);
    }
    close(errpipe[1]);
    close(syncpipe[0]);
    if (outp[1] >= 0) { close(outp[1]); close(errp[1]); }
    if (S.userns) write_id_maps(child);
    if (S.cgroup_name) cgroup_setup(child);
    if (write(syncpipe[1], "g", 1) != 1) die(EXIT_HOIST, "starting the container: %s", strerror(errno));
    close(syncpipe[1]);
  }
  int master = -1;
  if (S.tty) {
    close(sock[1]);
    master = recv_fd(sock[0]);
    close(sock[0]);
  }
  close(nullfd);
  supervise(child, sfd, master, outp[0], errp[0], errpipe[0]);
  return 0;
}
