/**
 * The build graph's operations (an LLB-like layer): what to do, never how.
 *
 * A vertex is an op plus its inputs. Its digest is the sha256 of a canonical JSON
 * serialisation (object keys sorted) of the op and of its inputs' digests, so two
 * vertices that would do the same thing are the same vertex. The solver merges them
 * and the cache keys start from this digest.
 */
import { createHash } from 'node:crypto';
import type { Digest } from '../image/digest.js';

/** A layer as build results carry it: the uncompressed identity and the stored blob. */
export interface LayerRef {
  diffID: Digest;
  blob: { mediaType: string; digest: Digest; size: number };
  /** When the layer was made (history `created` of the step that made it). */
  created?: string;
}

/** `FROM scratch`: no layers. */
export interface ScratchOp {
  type: 'scratch';
}

/** A base image from the local store, pinned by its image ID (config digest). */
export interface ImageOp {
  type: 'image';
  ref: string;
  imageID: Digest;
  layers: LayerRef[];
}

/** The build context (or a named part of it): files on the host, selected by paths. */
export interface LocalOp {
  type: 'local';
  name: string;
}

/**
 * `ADD https://…`: one file downloaded from a URL (BuildKit's http source). The result
 * is a directory holding that single file, named `filename`, mode 0600, owner 0:0,
 * mtime from Last-Modified (the epoch without it). With `checksum` the content must
 * have that digest and the cache key is known without going to the network.
 */
export interface HttpOp {
  type: 'http';
  url: string;
  filename: string;
  checksum?: string;
}

/**
 * `ADD <git repository>`: a checkout of one commit (BuildKit's git source). The result
 * is the tree of `ref` (the remote's default branch when empty), only `subdir` of it
 * when given, with submodules unless `skipSubmodules`, without `.git` unless
 * `keepGitDir`; files 0644 or 0755, directories 0755, owner 0:0, mtimes of the
 * checkout. The cache key is the resolved commit (see src/solver/git.ts).
 */
export interface GitOp {
  type: 'git';
  /** The URL git is given (no fragment, no query). */
  remote: string;
  ref: string;
  subdir: string;
  keepGitDir: boolean;
  /** The commit (or a hex prefix of it) the ref must resolve to (`--checksum`, `?checksum=`). */
  checksum?: string;
  skipSubmodules: boolean;
  /** `?fetch-by-commit`: trust `checksum` as the commit and fetch it directly. */
  fetchByCommit: boolean;
}

/** Where a RUN mount comes from and where it goes. */
export type ExecMount =
  | { type: 'bind'; target: string; input: number; source: string; readonly: boolean }
  | {
    type: 'cache'; target: string; id: string; sharing: 'shared' | 'private' | 'locked'; mode: number; uid: number; gid: number; readonly: boolean;
    /** `from=`: the stage or image (input index) whose `source` path a new cache instance starts as a copy of. */
    input?: number; source?: string;
    /** uid/gid/mode were given: as in BuildKit, that is a different cache than the same id without them. */
    perms?: boolean;
  }
  | { type: 'tmpfs'; target: string; size?: number }
  | { type: 'secret'; target?: string; env?: string; id: string; required: boolean; mode: number; uid: number; gid: number };

/** RUN: a process in a sandbox over input 0's filesystem; the changes become a layer. */
export interface ExecOp {
  type: 'exec';
  args: string[];
  env: string[];
  cwd: string;
  user: string;
  network: 'default' | 'none' | 'host';
  mounts: ExecMount[];
  /** Heredoc scripts made available as files: path → content and mode. */
  files?: { path: string; data: string; mode: number }[];
}

/** One source of a copy: a path or glob in input `input`. */
export interface CopySource {
  input: number;
  /** Absolute path in the source (may contain wildcards). */
  path: string;
  /** Inline content (heredoc source) instead of a path. */
  inline?: { name: string; data: string };
  /** Overrides the op's `unpack` for this source (remote files are not unpacked unless `--unpack`). */
  unpack?: boolean;
}

/** COPY/ADD/WORKDIR's mkdir: file operations on input 0 (or on scratch for --link). */
export interface FileOp {
  type: 'file';
  action: 'copy' | 'mkdir';
  sources: CopySource[];
  /** Absolute destination; a trailing `/` means "a directory". */
  dest: string;
  /** `user[:group]` names or ids, resolved in the destination's /etc/passwd and /etc/group. */
  chown?: string;
  /** Octal mode or symbolic mode text. */
  chmod?: string;
  /** ADD: unpack local tar archives. */
  unpack: boolean;
  /** COPY from the context keeps no ownership (0:0); from a stage it keeps it. */
  keepOwner: boolean;
  exclude: string[];
  parents: boolean;
  /** mkdir: the owner (the USER at the time of WORKDIR). */
  user?: string;
}

/** COPY --link: input 0's layers followed by input 1's. */
export interface MergeOp {
  type: 'merge';
}

export type Op = ScratchOp | ImageOp | LocalOp | HttpOp | GitOp | ExecOp | FileOp | MergeOp;

/** A node of the build graph. */
export interface Vertex {
  op: Op;
  inputs: Vertex[];
  /** The progress line name, e.g. `[build 2/4] RUN make`. */
  name: string;
  /** Where it came from, for error reports. */
  location?: { file: string; line: number; endLine: number; stage: string };
  /** `--no-cache` (or a cache-ignoring stage): never take the result from the cache. */
  ignoreCache?: boolean;
  /** Filled in by `digestOf`. */
  digest?: Digest;
}

/** Serialises a value with object keys sorted and no whitespace: the canonical form digests are taken of. */
export function canonicalJSON(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  if (Array.isArray(v)) return `[${v.map((x) => canonicalJSON(x === undefined ? null : x)).join(',')}]`;
  const keys = Object.keys(v as object).filter((k) => (v as Record<string, unknown>)[k] !== undefined).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJSON((v as Record<string, unknown>)[k])}`).join(',')}}`;
}

/** sha256 of a string in digest form. */
export function sha256Digest(s: string | Buffer): Digest {
  return `sha256:${createHash('sha256').update(s).digest('hex')}`;
}

/** The op's own digest (without inputs); `created` times of layers are not part of what an op does. */
export function opDigest(op: Op): Digest {
  const clean = op.type === 'image' ? { type: op.type, imageID: op.imageID } : op;
  return sha256Digest(canonicalJSON(clean));
}

/** The vertex digest: op digest plus the input digests, memoised on the vertex. */
export function digestOf(v: Vertex): Digest {
  if (!v.digest) v.digest = sha256Digest(canonicalJSON({ op: opDigest(v.op), inputs: v.inputs.map(digestOf) }));
  return v.digest;
}
