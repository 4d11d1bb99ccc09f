/**
 * The Dockerfile language as data: every instruction, its forms, and the flags it accepts.
 *
 * This table follows BuildKit's Dockerfile frontend (1.x, stable features). The typed
 * instruction layer (src/dockerfile/instructions.ts) validates flags against it, the
 * CLI can print it, and error messages quote it, so a flag added here is accepted
 * everywhere at once.
 */

/** How a flag takes its value: `--link` (bool), `--from=x` (string), `--exclude=a --exclude=b` (strings). */
export type FlagType = 'bool' | 'string' | 'strings';

/** One `--flag` an instruction accepts. */
export interface FlagSpec {
  /** Name without the leading `--`. */
  readonly name: string;
  readonly type: FlagType;
  /** Value used when the flag is absent (undefined: the typed command leaves the field out). */
  readonly default?: string | boolean;
  /** True when the flag may be given more than once (every `strings` flag). */
  readonly repeatable: boolean;
  /** The closed set of accepted values, when there is one. */
  readonly values?: readonly string[];
  /** What the value looks like, for help and error hints. */
  readonly valueHint?: string;
  readonly description: string;
}

/** One instruction of the language. */
export interface InstructionSpec {
  /** Upper-case keyword as documented (`RUN`). */
  readonly name: string;
  /** Usage lines, one per accepted form. */
  readonly forms: readonly string[];
  readonly flags: readonly FlagSpec[];
  /** True when `<<EOF` heredocs are read for this instruction. */
  readonly heredocs: boolean;
  /** False for instructions BuildKit refuses as an ONBUILD trigger. */
  readonly onbuildTrigger: boolean;
  readonly description: string;
}

const bool = (name: string, description: string): FlagSpec => ({ name, type: 'bool', default: false, repeatable: false, description });
const str = (name: string, description: string, extra: Partial<FlagSpec> = {}): FlagSpec =>
  ({ name, type: 'string', repeatable: false, description, ...extra });
const strs = (name: string, description: string, extra: Partial<FlagSpec> = {}): FlagSpec =>
  ({ name, type: 'strings', repeatable: true, description, ...extra });

/** `RUN --network` values. */
export const NETWORK_MODES = ['default', 'none', 'host'] as const;
/** `RUN --security` values. */
export const SECURITY_MODES = ['sandbox', 'insecure'] as const;
/** `RUN --mount type=` values. */
export const MOUNT_TYPES = ['bind', 'cache', 'tmpfs', 'secret', 'ssh'] as const;
/** `RUN --mount type=cache,sharing=` values. */
export const CACHE_SHARING_MODES = ['shared', 'private', 'locked'] as const;

/** One option of `RUN --mount`. */
export interface MountOptionSpec {
  /** Canonical key. */
  readonly key: string;
  /** Other spellings accepted for the same option. */
  readonly aliases: readonly string[];
  /** Mount types the option is valid for. */
  readonly types: readonly (typeof MOUNT_TYPES)[number][];
  /** `bool` options may also be written without a value (`ro`, `required`). */
  readonly value: 'string' | 'bool' | 'octal' | 'uint32' | 'size' | 'enum';
  readonly description: string;
}

const ALL_MOUNTS = MOUNT_TYPES;

/** The options of `RUN --mount=...`, as BuildKit accepts them. */
export const MOUNT_OPTIONS: readonly MountOptionSpec[] = [
  { key: 'type', aliases: [], types: ALL_MOUNTS, value: 'enum', description: 'bind (default), cache, tmpfs, secret or ssh' },
  { key: 'target', aliases: ['dst', 'destination'], types: ALL_MOUNTS, value: 'string', description: 'mount path inside the container' },
  { key: 'source', aliases: ['src'], types: ALL_MOUNTS, value: 'string', description: 'path in the `from` source (bind, cache) or the secret id (secret)' },
  { key: 'from', aliases: [], types: ['bind', 'cache', 'tmpfs', 'ssh'], value: 'string', description: 'stage or image to mount from (default: the build context; for cache an empty directory)' },
  { key: 'readonly', aliases: ['ro'], types: ALL_MOUNTS, value: 'bool', description: 'mount read-only (default for bind, secret, ssh)' },
  { key: 'readwrite', aliases: ['rw'], types: ALL_MOUNTS, value: 'bool', description: 'mount writable; writes to a bind mount are discarded' },
  { key: 'id', aliases: [], types: ALL_MOUNTS, value: 'string', description: 'cache id (default: the target path) or secret/ssh id' },
  { key: 'sharing', aliases: [], types: ['cache'], value: 'enum', description: 'shared (default), private or locked' },
  { key: 'required', aliases: [], types: ['secret', 'ssh'], value: 'bool', description: 'fail the build when the secret or ssh agent is not provided' },
  { key: 'size', aliases: [], types: ['tmpfs'], value: 'size', description: 'size limit of the tmpfs (e.g. 64m)' },
  { key: 'mode', aliases: [], types: ['cache', 'secret', 'ssh'], value: 'octal', description: 'file mode in octal (secret default 0400, ssh 0600, cache 0755)' },
  { key: 'uid', aliases: [], types: ['cache', 'secret', 'ssh'], value: 'uint32', description: 'owner user id (default 0)' },
  { key: 'gid', aliases: [], types: ['cache', 'secret', 'ssh'], value: 'uint32', description: 'owner group id (default 0)' },
  { key: 'env', aliases: [], types: ALL_MOUNTS, value: 'string', description: 'expose the secret as this environment variable instead of a file' },
];

/** Stage names BuildKit reserves. */
export const RESERVED_STAGE_NAMES: readonly string[] = ['context', 'scratch'];
/** What a stage name must look like once lower-cased (BuildKit's rule). */
export const STAGE_NAME_PATTERN = /^[a-z][a-z0-9-_.]*$/;

const chown = str('chown', 'owner of the copied files', { valueHint: 'user[:group] (names or ids)' });
const chmod = str('chmod', 'mode of the copied files', { valueHint: 'octal (0755) or symbolic (u+x,g-w)' });
const link = bool('link', 'copy into an independent layer that survives base changes');
const exclude = strs('exclude', 'path pattern to leave out (repeatable)', { valueHint: 'pattern' });

/** Every instruction, keyed by lower-case keyword. */
export const INSTRUCTIONS: Readonly<Record<string, InstructionSpec>> = {
  add: {
    name: 'ADD',
    forms: ['ADD [--flags] <src>... <dest>', 'ADD [--flags] ["<src>", ... "<dest>"]', 'ADD [--flags] <<EOF <dest>'],
    flags: [chown, chmod, link, bool('keep-git-dir', 'keep the .git directory of a Git source'),
      str('checksum', 'expected digest of an HTTP(S) source or commit of a Git source', { valueHint: 'sha256:<hex> or a commit' }),
      bool('unpack', 'extract a local or remote archive (default: local archives only)'), exclude],
    heredocs: true,
    onbuildTrigger: true,
    description: 'Copy files, URLs or Git repositories into the image, extracting local archives',
  },
  arg: {
    name: 'ARG', forms: ['ARG <name>[=<default>] ...'], flags: [], heredocs: false, onbuildTrigger: true,
    description: 'Declare a build argument, optionally with a default',
  },
  cmd: {
    name: 'CMD', forms: ['CMD ["executable", "param"...]', 'CMD command param...'], flags: [], heredocs: false, onbuildTrigger: true,
    description: 'Default command of the container',
  },
  copy: {
    name: 'COPY',
    forms: ['COPY [--flags] <src>... <dest>', 'COPY [--flags] ["<src>", ... "<dest>"]', 'COPY [--flags] <<EOF <dest>'],
    flags: [chown, str('from', 'copy from a stage, image or named context instead of the build context', { valueHint: 'stage name, index or image' }),
      chmod, link, exclude, bool('parents', 'keep the parent directories of the sources')],
    heredocs: true,
    onbuildTrigger: true,
    description: 'Copy files from the build context or another stage',
  },
  entrypoint: {
    name: 'ENTRYPOINT', forms: ['ENTRYPOINT ["executable", "param"...]', 'ENTRYPOINT command param...'], flags: [], heredocs: false, onbuildTrigger: true,
    description: 'Executable the container runs',
  },
  env: {
    name: 'ENV', forms: ['ENV <key>=<value> ...', 'ENV <key> <value>'], flags: [], heredocs: false, onbuildTrigger: true,
    description: 'Set environment variables',
  },
  expose: {
    name: 'EXPOSE', forms: ['EXPOSE <port>[/<protocol>] ...'], flags: [], heredocs: false, onbuildTrigger: true,
    description: 'Document the ports the container listens on',
  },
  from: {
    name: 'FROM', forms: ['FROM [--platform=<platform>] <image> [AS <name>]'],
    flags: [str('platform', 'platform of the base image', { valueHint: 'os/arch[/variant], e.g. linux/amd64' })],
    heredocs: false, onbuildTrigger: false,
    description: 'Start a build stage from an image, a stage or scratch',
  },
  healthcheck: {
    name: 'HEALTHCHECK', forms: ['HEALTHCHECK [--flags] CMD command', 'HEALTHCHECK [--flags] CMD ["executable", "param"...]', 'HEALTHCHECK NONE'],
    flags: [
      str('interval', 'time between checks', { valueHint: 'Go duration, e.g. 30s' }),
      str('timeout', 'time a check may take', { valueHint: 'Go duration, e.g. 30s' }),
      str('start-period', 'grace period after start', { valueHint: 'Go duration, e.g. 5s' }),
      str('start-interval', 'time between checks during the start period', { valueHint: 'Go duration, e.g. 5s' }),
      str('retries', 'consecutive failures before unhealthy', { valueHint: 'non-negative integer' }),
    ],
    heredocs: false, onbuildTrigger: true,
    description: 'How to check that the container still works',
  },
  label: {
    name: 'LABEL', forms: ['LABEL <key>=<value> ...'], flags: [], heredocs: false, onbuildTrigger: true,
    description: 'Add metadata to the image',
  },
  maintainer: {
    name: 'MAINTAINER', forms: ['MAINTAINER <name>'], flags: [], heredocs: false, onbuildTrigger: false,
    description: 'Author of the image (deprecated: use LABEL org.opencontainers.image.authors)',
  },
  onbuild: {
    name: 'ONBUILD', forms: ['ONBUILD <INSTRUCTION>'], flags: [], heredocs: false, onbuildTrigger: false,
    description: 'Instruction to run when the image is used as a base',
  },
  run: {
    name: 'RUN', forms: ['RUN [--flags] command', 'RUN [--flags] ["executable", "param"...]', 'RUN [--flags] <<EOF'],
    flags: [
      strs('mount', 'mount a filesystem for this command (repeatable)', { valueHint: 'type=bind|cache|tmpfs|secret|ssh,key=value,...' }),
      str('network', 'network of the command', { default: 'default', values: NETWORK_MODES }),
      str('security', 'sandboxing of the command', { default: 'sandbox', values: SECURITY_MODES }),
    ],
    heredocs: true, onbuildTrigger: true,
    description: 'Run a command in a new layer',
  },
  shell: {
    name: 'SHELL', forms: ['SHELL ["executable", "param"...]'], flags: [], heredocs: false, onbuildTrigger: true,
    description: 'Shell used by the shell form of RUN, CMD and ENTRYPOINT',
  },
  stopsignal: {
    name: 'STOPSIGNAL', forms: ['STOPSIGNAL <signal>'], flags: [], heredocs: false, onbuildTrigger: true,
    description: 'Signal that stops the container',
  },
  user: {
    name: 'USER', forms: ['USER <user>[:<group>]'], flags: [], heredocs: false, onbuildTrigger: true,
    description: 'User (and group) for the following instructions and the container',
  },
  volume: {
    name: 'VOLUME', forms: ['VOLUME ["/path", ...]', 'VOLUME /path ...'], flags: [], heredocs: false, onbuildTrigger: true,
    description: 'Declare mount points for volumes',
  },
  workdir: {
    name: 'WORKDIR', forms: ['WORKDIR /path'], flags: [], heredocs: false, onbuildTrigger: true,
    description: 'Working directory for the following instructions and the container',
  },
};

/** Upper-case keywords of every instruction, in alphabetical order. */
export const INSTRUCTION_NAMES: readonly string[] = Object.values(INSTRUCTIONS).map((s) => s.name).sort();
