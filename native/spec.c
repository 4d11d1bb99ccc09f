/* The run specification: JSON → struct spec, refusing anything malformed. */
#include "sandbox.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <unistd.h>

void warnx_(const char *fmt, ...) {
  va_list ap;
  char buf[4096];
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  dprintf(2, "hoist-sandbox: %s\n", buf);
}

void die(int code, const char *fmt, ...) {
  va_list ap;
  char buf[4096];
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  dprintf(2, "hoist-sandbox: %s\n", buf);
  exit(code);
}

static const char *str_or(const jval *o, const char *key, const char *def) {
  jval *v = jget(o, key);
  if (!v || v->t == J_NULL) return def;
  if (v->t != J_STR) die(EXIT_HOIST, "spec: %s must be a string", key);
  return v->str;
}

static int bool_or(const jval *o, const char *key, int def) {
  jval *v = jget(o, key);
  if (!v || v->t == J_NULL) return def;
  if (v->t != J_BOOL) die(EXIT_HOIST, "spec: %s must be true or false", key);
  return v->b;
}

static long long num_or(const jval *o, const char *key, long long def, long long min, long long max) {
  jval *v = jget(o, key);
  if (!v || v->t == J_NULL) return def;
  if (v->t != J_NUM || v->num != floor(v->num) || v->num < (double)min || v->num > (double)max)
    die(EXIT_HOIST, "spec: %s must be an integer in [%lld, %lld]", key, min, max);
  return (long long)v->num;
}

/* A JSON array of strings as a NULL-terminated vector. */
static char **str_array(const jval *o, const char *key, size_t *n, int required) {
  jval *v = jget(o, key);
  if (!v || v->t == J_NULL) {
    if (required) die(EXIT_HOIST, "spec: %s is required", key);
    if (n) *n = 0;
    char **empty = calloc(1, sizeof(char *));
    return empty;
  }
  if (v->t != J_ARR) die(EXIT_HOIST, "spec: %s must be an array of strings", key);
  char **out = calloc(v->n + 1, sizeof(char *));
  if (!out) abort();
  for (size_t i = 0; i < v->n; i++) {
    if (v->items[i]->t != J_STR) die(EXIT_HOIST, "spec: %s[%zu] must be a string", key, i);
    out[i] = v->items[i]->str;
  }
  if (n) *n = v->n;
  return out;
}

static const struct { const char *name; int res; } rlimit_names[] = {
  {"as", RLIMIT_AS}, {"core", RLIMIT_CORE}, {"cpu", RLIMIT_CPU}, {"data", RLIMIT_DATA},
  {"fsize", RLIMIT_FSIZE}, {"locks", RLIMIT_LOCKS}, {"memlock", RLIMIT_MEMLOCK},
  {"msgqueue", RLIMIT_MSGQUEUE}, {"nice", RLIMIT_NICE}, {"nofile", RLIMIT_NOFILE},
  {"nproc", RLIMIT_NPROC}, {"rss", RLIMIT_RSS}, {"rtprio", RLIMIT_RTPRIO},
  {"rttime", RLIMIT_RTTIME}, {"sigpending", RLIMIT_SIGPENDING}, {"stack", RLIMIT_STACK},
};

static void need_abs(const char *what, const char *p) {
  if (!p || p[0] != '/') die(EXIT_HOIST, "spec: %s must be an absolute path (got %s)", what, p ? p : "nothing");
}

void load_spec(struct spec *s, const char *text, size_t len) {
  const char *err = NULL;
  jval *root = json_parse(text, len, &err);
  if (!root) die(EXIT_HOIST, "spec: invalid JSON: %s", err);
  if (root->t != J_OBJ) die(EXIT_HOIST, "spec: the document must be an object");
  memset(s, 0, sizeof *s);
  const char *mode = str_or(root, "mode", "run");
  if (!strcmp(mode, "exec")) s->exec_mode = 1;
  else if (strcmp(mode, "run")) die(EXIT_HOIST, "spec: mode must be \"run\" or \"exec\"");
  s->exec_pid = (pid_t)num_or(root, "pid", 0, 0, 1 << 30);
  if (s->exec_mode && s->exec_pid <= 0) die(EXIT_HOIST, "spec: exec needs the container's pid");
  size_t nargs;
  s->args = str_array(root, "args", &nargs, 1);
  if (nargs == 0 || !s->args[0][0]) die(EXIT_HOIST, "no command given: the image has no ENTRYPOINT or CMD and none was passed");
  s->env = str_array(root, "env", &s->nenv, 0);
  for (size_t i = 0; i < s->nenv; i++)
    if (!strchr(s->env[i], '=')) die(EXIT_HOIST, "spec: env entry %s has no '='", s->env[i]);
  s->cwd = str_or(root, "cwd", "/");
  need_abs("cwd", s->cwd);
  s->user = str_or(root, "user", "");
  jval *g = jget(root, "additionalGids");
  if (g && g->t == J_ARR) {
    s->extra_gids = calloc(g->n + 1, sizeof(gid_t));
    for (size_t i = 0; i < g->n; i++) {
      if (g->items[i]->t != J_NUM || g->items[i]->num < 0 || g->items[i]->num > 4294967294.0) die(EXIT_HOIST, "spec: additionalGids must be numbers");
      s->extra_gids[s->nextra_gids++] = (gid_t)g->items[i]->num;
    }
  }
  s->hostname = str_or(root, "hostname", NULL);
  if (s->hostname && strlen(s->hostname) > 64) die(EXIT_HOIST, "hostname %s is longer than 64 bytes", s->hostname);

  if (!s->exec_mode) {
    jval *rf = jget(root, "rootfs");
    if (!rf || rf->t != J_OBJ) die(EXIT_HOIST, "spec: rootfs is required");
    s->rootpath = str_or(rf, "path", NULL);
    s->mountpoint = str_or(rf, "mountpoint", NULL);
    s->upper = str_or(rf, "upper", NULL);
    s->work = str_or(rf, "work", NULL);
    s->lower = (const char **)str_array(rf, "lower", &s->nlower, 0);
    if (s->rootpath) {
      need_abs("rootfs.path", s->rootpath);
      if (s->nlower) die(EXIT_HOIST, "spec: rootfs takes either path or lower, not both");
    } else {
      if (!s->nlower) die(EXIT_HOIST, "spec: rootfs needs path or lower");
      for (size_t i = 0; i < s->nlower; i++) {
        need_abs("rootfs.lower", s->lower[i]);
        if (strpbrk(s->lower[i], ":,")) die(EXIT_HOIST, "rootfs layer path %s contains ':' or ',', which overlayfs cannot take", s->lower[i]);
      }
      need_abs("rootfs.mountpoint", s->mountpoint);
      if (!s->upper != !s->work) die(EXIT_HOIST, "spec: rootfs.upper and rootfs.work go together");
      if (s->upper) {
        need_abs("rootfs.upper", s->upper);
        need_abs("rootfs.work", s->work);
        if (strpbrk(s->upper, ":,") || strpbrk(s->work, ":,")) die(EXIT_HOIST, "rootfs upper/work paths cannot contain ':' or ','");
      }
    }
    s->readonly_rootfs = bool_or(root, "readonlyRootfs", 0);
    jval *m = jget(root, "mounts");
    if (m && m->t == J_ARR) {
      s->mounts = calloc(m->n + 1, sizeof *s->mounts);
      for (size_t i = 0; i < m->n; i++) {
        struct mountspec *ms = &s->mounts[s->nmounts++];
        jval *e = m->items[i];
        if (e->t != J_OBJ) die(EXIT_HOIST, "spec: mounts[%zu] must be an object", i);
        ms->type = str_or(e, "type", "bind");
        ms->source = str_or(e, "source", NULL);
        ms->destination = str_or(e, "destination", NULL);
        ms->options = str_or(e, "options", NULL);
        ms->readonly = bool_or(e, "readonly", 0);
        need_abs("mount destination", ms->destination);
        if (!strcmp(ms->type, "bind")) need_abs("bind mount source", ms->source);
        else if (strcmp(ms->type, "tmpfs")) die(EXIT_HOIST, "spec: mount type %s is not bind or tmpfs", ms->type);
      }
    }
    const char *net = str_or(root, "network", "none");
    if (!strcmp(net, "host")) s->net_host = 1;
    else if (strcmp(net, "none")) die(EXIT_HOIST, "network %s is not supported (use host or none)", net);
    jval *cg = jget(root, "cgroup");
    if (cg && cg->t == J_OBJ) {
      s->cgroup_name = str_or(cg, "name", NULL);
      s->memory = num_or(cg, "memory", 0, 0, 1LL << 60);
      s->pids = num_or(cg, "pids", 0, 0, 1 << 30);
      if (s->cgroup_name && (strchr(s->cgroup_name, '/') || s->cgroup_name[0] == '.' || !s->cgroup_name[0]))
        die(EXIT_HOIST, "spec: cgroup.name must be a single path component");
      if ((s->memory || s->pids) && !s->cgroup_name) die(EXIT_HOIST, "spec: cgroup limits need cgroup.name");
    }
  }
  s->tty = bool_or(root, "tty", 0);
  s->open_stdin = bool_or(root, "openStdin", 0);
  jval *cs = jget(root, "consoleSize");
  if (cs) {
    s->rows = (unsigned short)num_or(cs, "rows", 0, 0, 65535);
    s->cols = (unsigned short)num_or(cs, "cols", 0, 0, 65535);
  }
  jval *rl = jget(root, "rlimits");
  if (rl && rl->t == J_ARR) {
    s->rlimits = calloc(rl->n + 1, sizeof *s->rlimits);
    for (size_t i = 0; i < rl->n; i++) {
      jval *e = rl->items[i];
      const char *t = str_or(e, "type", "");
      if (!strncmp(t, "RLIMIT_", 7)) t += 7;
      int found = -1;
      for (size_t k = 0; k < sizeof rlimit_names / sizeof rlimit_names[0]; k++)
        if (!strcasecmp(t, rlimit_names[k].name)) found = rlimit_names[k].res;
      if (found < 0) die(EXIT_HOIST, "unknown rlimit %s", t);
      struct rlimitspec *r = &s->rlimits[s->nrlimits++];
      r->resource = found;
      long long soft = num_or(e, "soft", -1, -1, 1LL << 62), hard = num_or(e, "hard", -1, -1, 1LL << 62);
      r->soft = soft < 0 ? RLIM_INFINITY : (rlim_t)soft;
      r->hard = hard < 0 ? RLIM_INFINITY : (rlim_t)hard;
      if (r->soft > r->hard) die(EXIT_HOIST, "rlimit %s: soft limit above hard limit", t);
    }
  }
  s->log_path = str_or(root, "logPath", NULL);
  s->detach = bool_or(root, "detach", 0);
  s->status_fd = (int)num_or(root, "statusFd", -1, -1, 1 << 20);
  s->exit_file = str_or(root, "exitFile", NULL);
  s->die_with_parent = bool_or(root, "dieWithParent", 0);
  s->userns = geteuid() != 0;
  s->seccomp = bool_or(root, "seccomp", 1);
}
