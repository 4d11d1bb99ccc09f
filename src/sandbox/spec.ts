/**
 * The run specification the native helper (`native/hoist-sandbox`) reads as JSON on a
 * file descriptor. Field names and meanings are those of native/spec.c.
 */

/** A bind mount of a host path, or a tmpfs, placed inside the container. */
export type SandboxMount =
  | { type: 'bind'; source: string; destination: string; readonly?: boolean }
  | { type: 'tmpfs'; destination: string; options?: string; readonly?: boolean };

/** The root filesystem: overlay of read-only layer dirs (lowest first) plus a writable upper, or a prepared directory. */
export type SandboxRootfs =
  | { lower: string[]; upper?: string; work?: string; mountpoint: string }
  | { path: string; mountpoint?: string };

/** Resource limit, clamped by the helper to the current hard limit. `-1` means unlimited. */
export interface SandboxRlimit {
  type: string;
  soft: number;
  hard: number;
}

/** Everything one sandboxed process needs. */
export interface SandboxSpec {
  /** `run`: new namespaces and root filesystem; `exec`: join the container whose init has host pid `pid`. */
  mode?: 'run' | 'exec';
  pid?: number;
  /** argv; args[0] is looked up in the container's PATH when it has no slash. */
  args: string[];
  env?: string[];
  /** Working directory inside the container, created when missing. */
  cwd?: string;
  /** `user[:group]`, names resolved from the image's /etc/passwd and /etc/group; numeric ids need neither. */
  user?: string;
  additionalGids?: number[];
  hostname?: string;
  rootfs?: SandboxRootfs;
  readonlyRootfs?: boolean;
  mounts?: SandboxMount[];
  /** `none`: a private network namespace with only `lo`; `host`: the host's network. */
  network?: 'none' | 'host';
  tty?: boolean;
  openStdin?: boolean;
  consoleSize?: { rows: number; cols: number };
  rlimits?: SandboxRlimit[];
  /** Limits through a cgroup named `name` below hoist's own cgroup. */
  cgroup?: { name: string; memory?: number; pids?: number };
  /** Container output, as Docker's json-file log lines. */
  logPath?: string;
  /** The helper detaches from its caller's stdio once the command has started. */
  detach?: boolean;
  /** Where the helper writes `{"exitCode":N,"finishedAt":...}` when the command ends. */
  exitFile?: string;
  /** Deny-list seccomp filter (keyrings, BPF, perf, modules, mount API, namespaces, clocks); default true. */
  seccomp?: boolean;
  /** Kill the sandbox when the process that started the helper dies. */
  dieWithParent?: boolean;
}
