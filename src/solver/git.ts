/**
 * The git source of `ADD <repository>` (BuildKit's source/git), with the `git` binary.
 *
 * Cache key: the commit the ref resolves to (`git ls-remote`, or the ref itself when it
 * is a full commit id: then nothing is asked), plus `.git#<ref>` with --keep-git-dir,
 * `:<subdir>` and `(skip-submodules)`, as BuildKit's shaToCacheKey. An unchanged
 * remote gives the same key (the ADD step is CACHED); a new commit runs it again.
 *
 * Checkout (only when a step has to run): a fresh bare repository under the store's
 * tmp, a shallow fetch of the ref (or of the commit), a check that it is the commit
 * the key was made from, then `git checkout --no-overlay <ref> -- .` into a work tree
 * outside the bare repository (so there is no `.git`), or with --keep-git-dir a
 * second shallow repository in `<tree>/.git` fetched from the first (detached HEAD,
 * `origin` set to the URL without its password). Submodules: `git submodule update
 * --init --recursive --depth=1`. A subdir is checked out whole, then its entries are
 * moved to the top (every component must be a directory). Files 0644/0755 and
 * directories 0755 (git runs under umask 022), owner root, mtimes of the checkout.
 *
 * git runs with none of the user's or system's configuration (GIT_CONFIG_NOSYSTEM,
 * GIT_CONFIG_GLOBAL=/dev/null, HOME an empty directory), no prompts, and only the
 * http, https and git transports (file only for hoist's own local fetch, never from a
 * submodule; ssh, ext and the others never), so a hostile repository cannot run a
 * command, read host files or use the host's SSH keys through its submodules. SSH
 * remotes (`git@host:path`, `ssh://`) fail as BuildKit fails them without `--ssh`.
 */
import { spawn } from 'node:child_process';
import { lstat, mkdir, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { isCommitSHA, redactURL } from '../llb/git.js';
import { canonicalJSON, sha256Digest, type GitOp } from '../llb/ops.js';
import { HoistError } from '../util/errors.js';

/** A checked-out tree, removed when the last user releases it. */
export interface GitCheckout {
  dir: string;
  release(): Promise<void>;
}

/** A resolved git source. */
export interface GitSource {
  /** The cache key (from the resolved commit). */
  key: string;
  /** The commit (or annotated tag object) the ref resolved to. */
  commit: string;
  /** The tree of that commit (checked out on first call; shared until released). */
  checkout(): Promise<GitCheckout>;
}

export interface GitOptions {
  /** A new directory under the store's tmp. */
  tmpDir(purpose: string): Promise<string>;
  /** The environment the proxy variables come from. */
  env: NodeJS.ProcessEnv;
  /** A build secret's value (GIT_AUTH_TOKEN, GIT_AUTH_HEADER), undefined when not given. */
  secret?(id: string): Promise<string | undefined>;
  /** git's output while resolving (shown on the source's progress line). */
  log?(data: Buffer, stream: 1 | 2): void;
}

const PROXY_VARS = ['HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY', 'ALL_PROXY', 'http_proxy', 'https_proxy', 'no_proxy', 'all_proxy'];

/**
 * Transports git may use: http, https and git; file only from hoist's own commands (never
 * a submodule); not ssh (hoist has no --ssh: a submodule must not make git offer the
 * host user's keys to another host); ext and the others never.
 */
const PROTOCOLS = ['protocol.allow=never', 'protocol.file.allow=user', 'protocol.http.allow=always', 'protocol.https.allow=always', 'protocol.git.allow=always', 'protocol.ssh.allow=never'];

class GitFailed extends Error {
  constructor(readonly stderr: string, readonly status: string) {
    super(`git stderr:\n${stderr}: ${status}`);
  }
}

interface RunOpts {
  gitDir?: string;
  workTree?: string;
  cwd: string;
  log?: GitOptions['log'];
}

/** Runs git with a clean environment (see the file comment), retrying as BuildKit's GitCLI does. */
class GitCLI {
  constructor(private readonly env: Record<string, string>) {}

  async run(args: string[], o: RunOpts): Promise<string> {
    for (;;) {
      try {
        return await this.once(args, o);
      } catch (e) {
        if (!(e instanceof GitFailed)) throw e;
        // a server that cannot serve shallow fetches (dumb http): again without --depth
        if ((e.stderr.includes('--depth') || e.stderr.includes('shallow')) && args.includes('--depth=1')) {
          args = args.filter((a) => a !== '--depth=1');
          continue;
        }
        // a server that does not give out commits by id: fetch what it advertises
        if ((e.stderr.includes('not our ref') || e.stderr.includes('unadvertised object')) && args.length > 2 && args[0] === 'fetch' && isCommitSHA(args[args.length - 1]!)) {
          args = args.slice(0, -1);
          continue;
        }
        throw e;
      }
    }
  }

  private once(args: string[], o: RunOpts): Promise<string> {
    const full: string[] = [];
    for (const p of PROTOCOLS) full.push('-c', p);
    if (o.workTree) full.push('--work-tree', o.workTree);
    if (o.gitDir) full.push('--git-dir', o.gitDir);
    full.push(...args);
    return new Promise((resolve, reject) => {
      // git writes files under umask 022 (BuildKit's runWithStandardUmask): 0644/0755 whatever hoist's umask is
      const p = spawn('/bin/sh', ['-c', 'umask 022 && exec git "$@"', 'git', ...full], { cwd: o.cwd, env: this.env, stdio: ['ignore', 'pipe', 'pipe'] });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      p.stdout.on('data', (d: Buffer) => {
        out.push(d);
        o.log?.(d, 1);
      });
      p.stderr.on('data', (d: Buffer) => {
        err.push(d);
        o.log?.(d, 2);
      });
      p.on('error', (e) => reject(new HoistError('E_GIT', `failed to run git: ${e.message}`, { hint: 'install git (Debian: apt-get install git)' })));
      p.on('close', (code, signal) => {
        const stderr = Buffer.concat(err).toString('utf8');
        if (code === 0) resolve(Buffer.concat(out).toString('utf8'));
        else if (code === 127 && /git: (not found|No such file)/.test(stderr)) reject(new HoistError('E_GIT', 'failed to find git binary', { hint: 'ADD of a git repository runs git: install it (Debian: apt-get install git)' }));
        else reject(new GitFailed(stderr, signal ? `signal: ${signal}` : `exit status ${code}`));
      });
    });
  }
}

/** BuildKit's tokenScope: a GitHub token is offered to every GitHub repository (submodules too), other tokens to the remote only. */
function tokenScope(remote: string): string {
  for (const pfx of ['https://github.com/', 'https://www.github.com/']) if (remote.startsWith(pfx)) return pfx;
  return remote;
}

/** The environment git runs with: nothing of the user's, the proxies, and an Authorization header from GIT_AUTH_TOKEN/GIT_AUTH_HEADER secrets. */
async function gitEnv(op: GitOp, o: GitOptions, home: string): Promise<Record<string, string>> {
  const env: Record<string, string> = {
    PATH: o.env.PATH ?? process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    GIT_TERMINAL_PROMPT: '0',
    // ssh is not an allowed transport; should it ever run, it must not reach the user's keys or agent
    GIT_SSH_COMMAND: 'false',
    LC_ALL: 'C',
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    HOME: home,
  };
  for (const v of PROXY_VARS) if (o.env[v] !== undefined) env[v] = o.env[v]!;
  if (o.secret && /^https?:\/\//.test(op.remote)) {
    let host = '';
    try {
      host = new URL(op.remote).host;
    } catch {
      host = '';
    }
    const names: [string, boolean][] = [['GIT_AUTH_HEADER.' + host, false], ['GIT_AUTH_TOKEN.' + host, true], ['GIT_AUTH_HEADER', false], ['GIT_AUTH_TOKEN', true]];
    for (const [name, token] of names) {
      const v = await o.secret(name);
      if (v === undefined) continue;
      const header = token ? `basic ${Buffer.from(`x-access-token:${v}`).toString('base64')}` : v;
      // through the environment, not the command line: other users can read a process's arguments
      env.GIT_CONFIG_COUNT = '1';
      env.GIT_CONFIG_KEY_0 = `http.${tokenScope(op.remote)}.extraheader`;
      env.GIT_CONFIG_VALUE_0 = `Authorization: ${header}`;
      break;
    }
  }
  return env;
}

function gitError(message: string, hint: string): HoistError {
  return new HoistError('E_GIT', message, { hint });
}

/** Metadata of a resolved ref (BuildKit's Metadata): the ref that matched and its object. */
interface Resolved {
  /** The ref name the key is made with (e.g. refs/heads/main, or the commit id). */
  ref: string;
  checksum: string;
  /** For an annotated tag: the commit it points to. */
  commitChecksum?: string;
  /** The ref to fetch (what the Dockerfile named, else the default branch's name). */
  fetchRef: string;
}

/** BuildKit's shaToCacheKey. */
function cacheKeyOf(op: GitOp, sha: string, ref: string): string {
  let key = sha;
  if (op.keepGitDir) {
    key += '.git';
    if (ref !== '') key += '#' + ref;
  }
  if (op.subdir !== '') key += ':' + op.subdir;
  if (op.skipSubmodules) key += '(skip-submodules)';
  return key;
}

/** Resolves the ref to a commit (asking the remote unless the ref is a commit id); the checkout waits until a step needs it. */
export async function resolveGit(op: GitOp, o: GitOptions): Promise<GitSource> {
  try {
    return await resolve(op, o);
  } catch (e) {
    // as BuildKit's solver reports a source that gives no cache key
    if (e instanceof HoistError) throw new HoistError(e.code, `failed to load cache key: ${e.message}`, e.hint !== undefined ? { hint: e.hint } : {});
    throw e;
  }
}

async function resolve(op: GitOp, o: GitOptions): Promise<GitSource> {
  const remote = redactURL(op.remote);
  if (op.ref.startsWith('-')) throw gitError(`invalid git ref ${JSON.stringify(op.ref)}`, 'a ref cannot start with "-"');
  if (op.checksum && !/^[a-fA-F0-9]+$/.test(op.checksum)) {
    throw gitError(`invalid checksum ${op.checksum} for Git URL, expected hex commit hash`, 'give --checksum the commit id (or a prefix of it) the ref must resolve to');
  }
  let md: Resolved;
  if (isCommitSHA(op.ref)) {
    if (op.checksum && !op.ref.startsWith(op.checksum)) throw checksumError(op, op.ref);
    md = { ref: op.ref, checksum: op.ref, fetchRef: op.ref };
  } else if (op.fetchByCommit) {
    if (!op.checksum) throw gitError('fetch-by-commit requires a checksum or a commit SHA ref', 'add ?checksum=<commit> to the URL');
    if (!isCommitSHA(op.checksum)) throw gitError(`fetch-by-commit requires a full commit SHA checksum, got ${JSON.stringify(op.checksum)}`, 'give the whole commit id');
    let ref = op.ref;
    if (ref !== '' && !ref.startsWith('refs/')) ref = 'refs/heads/' + ref;
    if (ref === '') ref = op.checksum;
    md = { ref, checksum: op.checksum, fetchRef: ref };
  } else {
    md = await withWorkDir(o, 'git-resolve', async (work) => {
      const cli = new GitCLI(await gitEnv(op, o, work));
      return lsRemote(op, cli, work, o.log);
    });
  }
  let sha = md.checksum;
  if (isCommitSHA(md.ref)) sha = md.ref;
  else if (md.commitChecksum && !op.keepGitDir) sha = md.commitChecksum;
  const keyText = cacheKeyOf(op, sha, md.ref);
  const cacheCommit = isCommitSHA(md.ref) ? md.ref : md.checksum;

  let shared: { p: Promise<{ dir: string; work: string }>; users: number } | undefined;
  return {
    key: sha256Digest(canonicalJSON({ git: keyText })),
    commit: cacheCommit,
    async checkout(): Promise<GitCheckout> {
      const s = (shared ??= { p: checkout(op, o, md, cacheCommit, remote), users: 0 });
      s.users++;
      let got: { dir: string; work: string };
      try {
        got = await s.p;
      } catch (e) {
        s.users--;
        if (shared === s) shared = undefined;
        throw e;
      }
      let released = false;
      return {
        dir: got.dir,
        release: async () => {
          if (released) return;
          released = true;
          if (--s.users > 0) return;
          if (shared === s) shared = undefined;
          await rm(got.work, { recursive: true, force: true }).catch(() => undefined);
        },
      };
    },
  };
}

async function withWorkDir<T>(o: GitOptions, purpose: string, f: (dir: string) => Promise<T>): Promise<T> {
  const dir = await o.tmpDir(purpose);
  try {
    return await f(dir);
  } finally {
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
}

function sshUnsupported(op: GitOp): HoistError | undefined {
  if (op.remote.startsWith('ssh://') || !/^[a-zA-Z0-9]+:\/\//.test(op.remote)) {
    return gitError('no SSH key "default" forwarded from the client', `${redactURL(op.remote)} is an SSH address and hoist has no --ssh option yet: use the repository's https:// URL`);
  }
  return undefined;
}

function checksumError(op: GitOp, got: string): HoistError {
  return gitError(`expected checksum to match ${op.checksum}, got ${got}`, 'the ref does not point to the commit given with --checksum: check both');
}

/** The remote's default branch (`ls-remote --symref URL HEAD`). */
async function defaultBranch(op: GitOp, cli: GitCLI, cwd: string, log?: GitOptions['log']): Promise<string> {
  const remote = redactURL(op.remote);
  let out: string;
  try {
    out = await cli.run(['ls-remote', '--symref', op.remote, 'HEAD'], { cwd, ...(log ? { log } : {}) });
  } catch (e) {
    throw wrapGit(e, `error fetching default branch for repository ${remote}`, 'check the URL and that the repository can be reached from here');
  }
  const m = /refs\/heads\/(\S+)/.exec(out);
  if (!m) throw gitError(`could not find default branch for repository: ${remote}`, 'name a branch, tag or commit after # in the URL');
  if (m[1]!.startsWith('-')) throw gitError(`invalid git ref ${JSON.stringify(m[1])}`, 'a ref cannot start with "-"');
  return m[1]!;
}

function wrapGit(e: unknown, prefix: string, hint: string): unknown {
  if (e instanceof GitFailed) return gitError(`${prefix}: ${e.message}`, hint);
  return e;
}

/** BuildKit's resolveMetadataFromURL: `ls-remote -- URL ref ref^{}`; a branch wins over a tag of the same name. */
async function lsRemote(op: GitOp, cli: GitCLI, cwd: string, log?: GitOptions['log']): Promise<Resolved> {
  const ssh = sshUnsupported(op);
  if (ssh) throw ssh;
  const ref = op.ref || (await defaultBranch(op, cli, cwd, log));
  let out: string;
  try {
    out = await cli.run(['ls-remote', '--', op.remote, ref, ref + '^{}'], { cwd, ...(log ? { log } : {}) });
  } catch (e) {
    throw wrapGit(e, `failed to fetch remote ${redactURL(op.remote)}`, 'check the URL and that the repository can be reached from here');
  }
  const bare = (p: string): string => (ref.startsWith(p) ? ref.slice(p.length) : ref);
  const partialRef = 'refs/' + bare('refs/');
  const headRef = 'refs/heads/' + bare('refs/heads/');
  const tagRef = 'refs/tags/' + bare('refs/tags/');
  const annotatedTagRef = tagRef + '^{}';
  let sha = '';
  let headSha = '';
  let tagSha = '';
  let annotatedTagSha = '';
  let usedRef = '';
  for (const line of out.split('\n')) {
    const tab = line.indexOf('\t');
    const lineSha = tab < 0 ? line : line.slice(0, tab);
    const lineRef = tab < 0 ? '' : line.slice(tab + 1);
    if (lineRef === headRef) headSha = lineSha;
    else if (lineRef === tagRef) tagSha = lineSha;
    else if (lineRef === annotatedTagRef) annotatedTagSha = lineSha;
    else if (lineRef === partialRef) {
      sha = lineSha;
      usedRef = lineRef;
    }
  }
  if (sha === '') {
    sha = headSha;
    usedRef = headRef;
  }
  if (sha !== '') annotatedTagSha = '';
  if (sha === '') {
    sha = tagSha;
    usedRef = tagRef;
  }
  if (sha === '') {
    throw gitError(`repository does not contain ref ${ref}, output: ${JSON.stringify(out)}`, `${redactURL(op.remote)} has no branch, tag or ref named ${ref}: check the part after # in the URL`);
  }
  if (!isCommitSHA(sha)) throw gitError(`invalid commit sha ${JSON.stringify(sha)}`, 'the remote answered something that is not a commit id');
  if (op.checksum && !sha.startsWith(op.checksum) && !annotatedTagSha.startsWith(op.checksum)) {
    throw checksumError(op, annotatedTagSha ? `${sha} or ${annotatedTagSha}` : sha);
  }
  return { ref: usedRef, checksum: sha, ...(annotatedTagSha && !op.keepGitDir ? { commitChecksum: annotatedTagSha } : {}), fetchRef: ref };
}

/** Fetches the commit into a new bare repository and checks out its tree (see the file comment). */
async function checkout(op: GitOp, o: GitOptions, md: Resolved, cacheCommit: string, remote: string): Promise<{ dir: string; work: string }> {
  const work = await o.tmpDir('git');
  try {
    const ssh = sshUnsupported(op);
    if (ssh) throw ssh;
    const home = join(work, 'home');
    await mkdir(home, { mode: 0o700 });
    const cli = new GitCLI(await gitEnv(op, o, home));
    const gitDir = join(work, 'repo.git');
    const sha256 = cacheCommit.length === 64;
    const inBare = (args: string[]): Promise<string> => cli.run(args, { gitDir, cwd: work });
    await inBare(['-c', 'init.defaultBranch=master', 'init', '--bare', ...(sha256 ? ['--object-format=sha256'] : [])]);
    await inBare(['remote', 'add', 'origin', op.remote]);

    let ref = md.fetchRef;
    if (ref === '') ref = await defaultBranch(op, cli, work);
    const fetchRef = op.fetchByCommit && op.checksum ? op.checksum : ref;
    const targetRef = ref.startsWith('refs/tags/') ? ref : 'tags/' + ref;
    const fetchFailed = (e: unknown): unknown => wrapGit(e, `failed to fetch remote ${remote}`, 'check the URL, the ref and that the repository can be reached from here');
    try {
      if (isCommitSHA(fetchRef) && !op.fetchByCommit) {
        // the commit alone first (servers speaking protocol v2 give out any commit); else as BuildKit, with the tags
        await inBare(['fetch', '--depth=1', '--no-tags', 'origin', fetchRef]).catch(() => inBare(['fetch', '--tags', 'origin', fetchRef]));
      } else {
        await inBare(['fetch', '--depth=1', '--no-tags', 'origin', ...(isCommitSHA(ref) ? [ref] : ['--force', '--', `${fetchRef}:${targetRef}`])]);
      }
      // the remote may have moved since ls-remote: the tree must be the commit the key was made from
      const got = (await inBare(['rev-parse', fetchRef])).trim();
      if (got !== cacheCommit) {
        const upt = targetRef.startsWith('refs/') ? targetRef : 'refs/' + targetRef;
        const have = (): Promise<boolean> => inBare(['cat-file', '-e', cacheCommit]).then(() => true, () => false);
        if (!(await have())) {
          await inBare(['fetch', '--depth=1', '--no-tags', 'origin', cacheCommit]).catch(() => inBare(['fetch', '--tags', 'origin', cacheCommit]));
          if (!(await have())) throw gitError(`fetched ref ${ref} does not match expected commit ${cacheCommit} and commit can not be found in the repository`, 'the remote changed while building: build again');
        }
        await inBare(['update-ref', upt, cacheCommit, '--no-deref']);
      }
    } catch (e) {
      throw fetchFailed(e);
    }
    if (op.checksum) {
      const a = (await inBare(['rev-parse', fetchRef]).catch(() => '')).trim();
      if (!a.startsWith(op.checksum)) {
        const b = (await inBare(['rev-parse', fetchRef + '^{}']).catch(() => '')).trim();
        if (b === a || !b.startsWith(op.checksum)) throw checksumError(op, b && b !== a ? `${a} or ${b}` : a);
      }
    }

    const refOrCommit = op.fetchByCommit && op.checksum ? op.checksum : ref;
    const out = join(work, 'tree');
    await mkdir(out, { mode: 0o755 });
    const subdir = op.subdir.split('/').filter((p) => p !== '' && p !== '.').join('/');
    let treeGitDir = gitDir;
    let cd = out;
    const checkoutFailed = (e: unknown): unknown => wrapGit(e, `failed to checkout remote ${remote}`, 'check the ref and the repository');
    if (op.keepGitDir && subdir === '') {
      // a repository of its own in <tree>/.git, fetched from the bare one: detached HEAD at the commit
      treeGitDir = join(out, '.git');
      const inTree = (args: string[]): Promise<string> => cli.run(args, { gitDir: treeGitDir, workTree: out, cwd: out });
      await inTree(['-c', 'init.defaultBranch=master', 'init', ...(sha256 ? ['--object-format=sha256'] : [])]);
      // file:// rather than a path: no local-clone shortcuts (hard links, alternates)
      await inTree(['remote', 'add', 'origin', 'file://' + gitDir]);
      const type = (await inBare(['cat-file', '-t', refOrCommit])).trim();
      let pullref = ref;
      if (type === 'tag') {
        pullref += ':' + (pullref.startsWith('refs/tags/') ? pullref : 'refs/tags/' + pullref);
      } else if (op.fetchByCommit && ref !== refOrCommit) {
        pullref = `${refOrCommit}:${ref}`;
      } else if (isCommitSHA(ref)) {
        pullref = `refs/buildkit/${Date.now().toString(36)}${Math.random().toString(36).slice(2, 10)}`;
        await inBare(['update-ref', pullref, ref]);
      } else {
        pullref += ':' + pullref;
      }
      await inTree(['fetch', '-u', '--depth=1', '--', 'origin', pullref]);
      await inTree(['checkout', 'FETCH_HEAD']).catch((e: unknown) => {
        throw checkoutFailed(e);
      });
      await inTree(['remote', 'set-url', 'origin', remote]);
      await inTree(['reflog', 'expire', '--all', '--expire=now']);
      await rm(join(treeGitDir, 'FETCH_HEAD'), { force: true });
    } else {
      if (subdir !== '') {
        cd = join(out, `checkout${Math.random().toString(36).slice(2, 10)}`);
        await mkdir(cd, { mode: 0o700 });
      }
      await cli.run(['checkout', '--no-overlay', refOrCommit, '--', '.'], { gitDir, workTree: cd, cwd: cd }).catch((e: unknown) => {
        throw checkoutFailed(e);
      });
    }
    if (!op.skipSubmodules) {
      await cli.run(['submodule', 'update', '--init', '--recursive', '--depth=1'], { gitDir: treeGitDir, workTree: cd, cwd: cd }).catch((e: unknown) => {
        throw wrapGit(e, `failed to update submodules for ${remote}`, 'a submodule could not be fetched: check its URL in .gitmodules (hoist allows http, https and git)');
      });
    }
    if (subdir !== '') {
      // every component a directory (no symlink out of the tree), then its entries become the top
      let p = cd;
      for (const part of subdir.split('/')) {
        p = join(p, part);
        const st = await lstat(p).catch(() => undefined);
        if (!st) throw gitError(`invalid subdir ${subdir}: failed to lstat ${JSON.stringify(p.slice(cd.length + 1))}: no such file or directory`, `the commit has no directory ${subdir}: check the part after : in the URL`);
        if (!st.isDirectory()) throw gitError(`invalid subdir ${subdir}: git subpath ${JSON.stringify(subdir)} contains non-directory ${JSON.stringify(p.slice(cd.length + 1))}`, 'the subdirectory must be a directory in the repository');
      }
      for (const n of await readdir(p)) await rename(join(p, n), join(out, n));
      await rm(cd, { recursive: true, force: true });
    }
    return { dir: out, work };
  } catch (e) {
    await rm(work, { recursive: true, force: true }).catch(() => undefined);
    throw wrapGit(e, `failed to checkout remote ${remote}`, 'check the ref and the repository');
  }
}
