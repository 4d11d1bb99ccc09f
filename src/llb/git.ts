/**
 * What the frontend and the solver agree on about `ADD <git repository>` sources, after
 * BuildKit's rules (frontend/dockerfile/dfgitutil, util/gitutil, util/sshutil):
 *
 * - a git source is an `http://` or `https://` URL whose path ends in `.git`, any
 *   `git://` or `ssh://` URL, or an scp-like address `user@host:path`;
 * - `#ref:subdir` (fragment) picks a branch, tag or commit and a directory in it;
 * - the query form `?ref=…&tag=…&branch=…&subdir=…&checksum=…&keep-git-dir=…&submodules=…`
 *   says the same things with names (a ref given twice must agree);
 * - `./x`, `../x` and `github.com/x` (no scheme) are local paths for ADD.
 */
import { posix } from 'node:path';

/** A parsed git source (BuildKit's GitRef). */
export interface GitRef {
  /** The URL git is given: the source without fragment and query. */
  remote: string;
  scheme: 'http' | 'https' | 'ssh' | 'git';
  /** Host (with port) of the remote. */
  host: string;
  /** Branch, tag, commit or any ref name; empty: the remote's default branch. */
  ref: string;
  /** Directory of the repository to take; empty: the whole tree. */
  subdir: string;
  /** `checksum=`/`commit=` in the query: the commit (or a prefix of it) the ref must resolve to. */
  checksum: string;
  keepGitDir?: boolean;
  submodules?: boolean;
  /** `mtime=` in the query (validated; ADD does not use it, as in BuildKit). */
  mtime?: 'checkout' | 'commit';
  fetchByCommit: boolean;
}

/** Either not a git source, a git source, or a git source whose options are wrong (an error for the step). */
export type GitRefResult = { git: false } | { git: true; ref: GitRef } | { git: true; error: string };

const SCHEMES = new Set(['http', 'https', 'ssh', 'git']);
const SCP = /^([a-zA-Z0-9_-]+)@([a-zA-Z0-9.-]+):(.*?)(?:\?(.*?))?(?:#(.*))?$/;

/** Go's url.PathUnescape-like decoding; undefined for a malformed escape. */
function unescape(s: string, plus: boolean): string | undefined {
  if (/%(?![0-9a-fA-F]{2})/.test(s)) return undefined;
  try {
    return decodeURIComponent(plus ? s.replace(/\+/g, ' ') : s);
  } catch {
    return undefined;
  }
}

/** Go's url.ParseQuery as url.Query() uses it: malformed pairs are skipped. */
function parseQuery(raw: string, strict: boolean): Map<string, string[]> | undefined {
  const q = new Map<string, string[]>();
  for (const part of raw.split('&')) {
    if (part === '') continue;
    if (part.includes(';')) {
      if (strict) return undefined;
      continue;
    }
    const eq = part.indexOf('=');
    const k = unescape(eq < 0 ? part : part.slice(0, eq), true);
    const v = unescape(eq < 0 ? '' : part.slice(eq + 1), true);
    if (k === undefined || v === undefined) {
      if (strict) return undefined;
      continue;
    }
    q.set(k, [...(q.get(k) ?? []), v]);
  }
  return q;
}

/** Go's path.Join("/", p) without the leading slash. */
function cleanSubdir(p: string): string {
  return posix.join('/', p).replace(/\/+$/, '').replace(/^\/+/, '');
}

interface Parsed {
  scheme: GitRef['scheme'];
  host: string;
  path: string;
  remote: string;
  query: Map<string, string[]>;
  fragment: string;
}

/** BuildKit's gitutil.ParseURL: a URL with one of the four schemes, or an scp-like address. */
function parseURL(s: string): Parsed | undefined {
  const proto = /^([a-zA-Z0-9]+):\/\//.exec(s);
  if (proto) {
    const scheme = proto[1]!.toLowerCase();
    if (!SCHEMES.has(scheme)) return undefined;
    const hash = s.indexOf('#');
    const beforeFrag = hash < 0 ? s : s.slice(0, hash);
    const fragment = hash < 0 ? '' : unescape(s.slice(hash + 1), false);
    if (fragment === undefined) return undefined;
    const qm = beforeFrag.indexOf('?');
    const base = qm < 0 ? beforeFrag : beforeFrag.slice(0, qm);
    const rest = base.slice(proto[0].length);
    const slash = rest.indexOf('/');
    const authority = slash < 0 ? rest : rest.slice(0, slash);
    const host = authority.slice(authority.lastIndexOf('@') + 1);
    if (/[\s<>"{}|\\^`]/.test(authority) || /:(?![0-9]*$)/.test(host.replace(/^\[[^\]]*\]/, ''))) return undefined;
    const path = unescape(slash < 0 ? '' : rest.slice(slash), false);
    if (path === undefined) return undefined;
    return {
      scheme: scheme as GitRef['scheme'], host, path, remote: `${scheme}://${rest}`,
      query: parseQuery(qm < 0 ? '' : beforeFrag.slice(qm + 1), false)!, fragment,
    };
  }
  const m = SCP.exec(s);
  if (!m) return undefined;
  const query = parseQuery(m[4] ?? '', true);
  if (!query) return undefined;
  return { scheme: 'ssh', host: m[2]!, path: m[3]!, remote: `${m[1]}@${m[2]}:${m[3]}`, query, fragment: m[5] ?? '' };
}

function parseBool(name: string, v: string | undefined): boolean | string {
  if (v === undefined) return true;
  // Go's strconv.ParseBool
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(v)) return false;
  return `invalid ${name} value: ${JSON.stringify(v)}`;
}

/** BuildKit's dfgitutil.ParseGitRef, with the ADD rule that a `github.com/…` path is a local file. */
export function parseGitRef(s: string): GitRefResult {
  if (s.startsWith('./') || s.startsWith('../') || s.startsWith('github.com/')) return { git: false };
  const u = parseURL(s);
  if (!u) return { git: false };
  // an http(s) URL is a repository only when its path ends in .git (else it is a file to download)
  if ((u.scheme === 'http' || u.scheme === 'https') && !u.path.endsWith('.git')) return { git: false };
  const ref: GitRef = { remote: u.remote, scheme: u.scheme, host: u.host, ref: '', subdir: '', checksum: '', fetchByCommit: false };
  if (u.fragment !== '') {
    const i = u.fragment.indexOf(':');
    ref.ref = i < 0 ? u.fragment : u.fragment.slice(0, i);
    ref.subdir = cleanSubdir(i < 0 ? '' : u.fragment.slice(i + 1));
  }
  const error = loadQuery(ref, u.query);
  return error ? { git: true, error } : { git: true, ref };
}

function loadQuery(g: GitRef, query: Map<string, string[]>): string | undefined {
  let tag = '';
  let branch = '';
  for (const [k, vs] of query) {
    if (vs.length > 1) return `query ${JSON.stringify(k)} has multiple values`;
    let v: string | undefined = vs[0];
    if (v === undefined || v === '') {
      if (!['submodules', 'keep-git-dir', 'fetch-by-commit'].includes(k)) return `query ${JSON.stringify(k)} has no value`;
      v = undefined;
    }
    switch (k) {
      case 'ref':
        if (g.ref !== '' && g.ref !== v) return `ref conflicts: ${JSON.stringify(g.ref)} vs ${JSON.stringify(v)}`;
        g.ref = v!;
        break;
      case 'tag':
        tag = v!;
        break;
      case 'branch':
        branch = v!;
        break;
      case 'subdir':
        if (g.subdir !== '' && g.subdir !== v) return `subdir conflicts: ${JSON.stringify(g.subdir)} vs ${JSON.stringify(v)}`;
        g.subdir = v!;
        break;
      case 'checksum':
      case 'commit':
        g.checksum = v!;
        break;
      case 'keep-git-dir':
      case 'submodules':
      case 'fetch-by-commit': {
        const b = parseBool(k, v);
        if (typeof b === 'string') return b;
        if (k === 'keep-git-dir') g.keepGitDir = b;
        else if (k === 'submodules') g.submodules = b;
        else g.fetchByCommit = b;
        break;
      }
      case 'mtime':
        if (v !== 'checkout' && v !== 'commit') return `invalid mtime value: ${JSON.stringify(v)} (must be "checkout" or "commit")`;
        g.mtime = v;
        break;
      default:
        return `unexpected query ${JSON.stringify(k)}`;
    }
  }
  if (tag !== '') {
    const t = tag.startsWith('refs/tags/') ? tag : `refs/tags/${tag}`;
    if (g.ref !== '' && g.ref !== t) return `ref conflicts: ${JSON.stringify(g.ref)} vs ${JSON.stringify(t)}`;
    g.ref = t;
  }
  if (branch !== '') {
    if (tag !== '') return 'branch conflicts with tag';
    const b = branch.startsWith('refs/heads/') ? branch : `refs/heads/${branch}`;
    if (g.ref !== '' && g.ref !== b) return `ref conflicts: ${JSON.stringify(g.ref)} vs ${JSON.stringify(b)}`;
    g.ref = b;
  }
  return undefined;
}

/** True for a source BuildKit's ADD takes as a git repository. */
export function isGitSource(s: string): boolean {
  return parseGitRef(s).git;
}

/** A full commit id (sha1 or sha256), as BuildKit's gitutil.IsCommitSHA. */
export function isCommitSHA(s: string): boolean {
  return (s.length === 40 || s.length === 64) && /^[0-9a-f]+$/.test(s);
}

/** A URL with its password replaced by `xxxxx` (BuildKit's urlutil.RedactCredentials). */
export function redactURL(s: string): string {
  return s.replace(/^([a-zA-Z0-9]+:\/\/[^/@:]*):[^/@]*@/, '$1:xxxxx@');
}
