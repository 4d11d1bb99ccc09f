/* hoist-sandbox: shared declarations of the helper's parts. */
#ifndef HOIST_SANDBOX_H
#define HOIST_SANDBOX_H
#define _GNU_SOURCE
#include <sys/types.h>
#include <sys/resource.h>
#include "json.h"

/* Exit statuses of setup failures, as Docker reports them. */
#define EXIT_HOIST 125   /* the sandbox could not be set up */
#define EXIT_NOEXEC 126  /* the command exists but cannot be executed */
#define EXIT_NOTFOUND 127 /* the command does not exist in the image */

struct mountspec {
  const char *type; /* "bind" or "tmpfs" */
  const char *source;
  const char *destination;
  const char *options; /* tmpfs options */
  int readonly;
};

struct rlimitspec {
  int resource;
  rlim_t soft, hard;
};

struct spec {
  int exec_mode;          /* 0: new container, 1: join the container of exec_pid */
  pid_t exec_pid;
  char **args;
  char **env;
  size_t nenv;
  const char *cwd;
  const char *user;       /* "uid[:gid]" or "name[:group]", resolved inside */
  gid_t *extra_gids;
  size_t nextra_gids;
  const char *hostname;
  const char **lower;     /* overlay lower dirs, lowest first */
  size_t nlower;
  const char *upper, *work, *rootpath, *mountpoint;
  int readonly_rootfs;
  struct mountspec *mounts;
  size_t nmounts;
  int net_host;
  int tty, open_stdin;
  unsigned short rows, cols;
  struct rlimitspec *rlimits;
  size_t nrlimits;
  const char *cgroup_name;
  long long memory, pids;
  const char *log_path;
  int detach;
  int status_fd;
  const char *exit_file;
  int die_with_parent;
  int userns;             /* create a user namespace (when not root) */
  int seccomp;            /* install the deny-list filter (default on) */
};

/* Loads and validates the specification; on failure prints why and exits 125. */
void load_spec(struct spec *s, const char *text, size_t len);

/* Prints "hoist-sandbox: <msg>" to stderr. */
void warnx_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints the message and exits with `code`. */
void die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

/* Container side: everything between clone and the command's exec. */
/* Mounts the root filesystem and the standard mounts, then pivots into it (run mode). */
void setup_rootfs(const struct spec *s);
/* Sets hostname, brings up lo in a private network namespace. */
void setup_identity(const struct spec *s);
/* Opens a pty inside the container's /dev; returns the master, sets *slave. */
int open_pty_inside(int *slave, int bind_console);
/* Sends an fd over a unix socket (SCM_RIGHTS). */
int send_fd(int sock, int fd);
/* Receives an fd sent with send_fd; -1 on EOF or error. */
int recv_fd(int sock);
/* Final steps of the command's process: stdio, user, caps, fds, cwd, exec. Reports
 * failures as "<code> <message>" on errfd and exits with that code. Never returns. */
void exec_command(const struct spec *s, int errfd, int slave) __attribute__((noreturn));
/* Fails the container-side setup: writes "<code> <message>" to the error pipe and exits. */
void child_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
/* The error pipe child_fail writes to (set by the parent before forking). */
extern int g_errfd;
#endif
