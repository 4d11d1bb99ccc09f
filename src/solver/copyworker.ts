/**
 * COPY/ADD/WORKDIR file operations, run as a separate process inside a private mount
 * namespace (`unshare --mount`): the destination is an overlay of the parent
 * snapshots with a fresh upper dir, so the kernel does copy-up of parent directories
 * and the upper dir is exactly the layer; sources from other stages are read-only
 * overlays. Every path in a root filesystem is resolved inside that root (symlinks
 * included), never on the host.
 *
 * Input: the path of a JSON {@link CopySpec}. Errors go to stderr as one JSON line.
 * With `--serve` instead, the worker stays up for many specs (see copypool.ts): one
 * spec path per line on stdin, one JSON reply per spec on fd 3, its mounts undone
 * after each; it ends when stdin does.
 */
import { execFileSync } from 'node:child_process';
import {
  chmodSync, closeSync, constants as fsConstants, createReadStream, fchmodSync, fchownSync, futimesSync, lchownSync, linkSync, lstatSync, lutimesSync,
  mkdirSync, openSync, readdirSync, readlinkSync, readSync, rmSync, symlinkSync, writeSync, type Stats,
} from 'node:fs';
import { chmod, lchown, lstat, mkdir, readFile, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { applyChmod, parseChmod, type ChmodSpec } from '../dockerfile/chmod.js';
import { goClean, IgnoreMatcher } from '../context/dockerignore.js';
import { HoistError } from '../util/errors.js';
import { hasGlob, resolveInRoot, resolveWildcards } from './rootpath.js';

/** Where a copy reads from. */
export type CopySourceRoot =
  | { kind: 'context'; root: string; ignore: string[] }
  | { kind: 'layers'; lowers: string[] }
  | { kind: 'inline'; name: string; data: string };

export interface CopySpec {
  lowers: string[];
  upper: string;
  work: string;
  merged: string;
  action: 'copy' | 'mkdir';
  roots: CopySourceRoot[];
  /** `unpack` overrides the spec's for one source (an ADD of a URL unpacks only with --unpack). */
  copies: { root: number; path: string; unpack?: boolean }[];
  dest: string;
  chown?: string;
  chmod?: string;
  unpack: boolean;
  keepOwner: boolean;
  exclude: string[];
  parents: boolean;
  user?: string;
  /** Scratch space for source mounts. */
  scratch: string;
}

interface Owner {
  uid: number;
  gid: number;
}

/** Files up to this size are copied with one read and one write through a shared buffer. */
const SMALL_FILE = 1 << 20;
let copyBuf: Buffer | undefined;

/**
 * Copies one tree with synchronous, descriptor-based calls: this process does nothing
 * else, and a thread-pool round trip per call cost more than the calls themselves.
 * A file's content, owner, mode and times are set through its open descriptor, so the
 * destination path (inside an overlay mount) is resolved once per file.
 */
class Copier {
  private readonly links = new Map<string, string>();
  constructor(
    private readonly owner: Owner | undefined,
    private readonly chmodSpec: ChmodSpec | undefined,
    private readonly skip: (rel: string) => boolean,
  ) {}

  private mode(st: Stats): number {
    const m = st.mode & 0o7777;
    return this.chmodSpec ? applyChmod(this.chmodSpec, m, st.isDirectory()) : m;
  }

  private meta(dst: string, st: Stats, isLink: boolean): void {
    const o = this.owner ?? { uid: st.uid, gid: st.gid };
    lchownSync(dst, o.uid, o.gid);
    if (!isLink) chmodSync(dst, this.mode(st));
    lutimesSync(dst, st.atime, st.mtime);
  }

  /** Writes the regular file `src` to the new file `dst`: content, then owner, mode (after chown, which clears set-id bits) and times. */
  private file(src: string, dst: string, st: Stats): void {
    const sfd = openSync(src, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
    try {
      const dfd = openSync(dst, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW, 0o600);
      try {
        copyBuf ??= Buffer.allocUnsafe(SMALL_FILE);
        for (;;) {
          const n = readSync(sfd, copyBuf, 0, copyBuf.length, null);
          if (n === 0) break;
          let w = 0;
          while (w < n) w += writeSync(dfd, copyBuf, w, n - w);
        }
        const o = this.owner ?? { uid: st.uid, gid: st.gid };
        fchownSync(dfd, o.uid, o.gid);
        fchmodSync(dfd, this.mode(st));
        futimesSync(dfd, st.atime, st.mtime);
      } finally {
        closeSync(dfd);
      }
    } finally {
      closeSync(sfd);
    }
  }

  /**
   * Copies `src` (host path) to `dst` (host path inside the destination root). `rel` is
   * the path below the copied source; `fresh` says `dst`'s parent was just created here,
   * so nothing is in the way (no lookup of `dst` through the overlay's layers).
   */
  copy(src: string, dst: string, rel: string, top: boolean, fresh = false): void {
    if (rel && this.skip(rel)) return;
    const st = lstatSync(src);
    const existing = fresh ? undefined : lstatSync(dst, { throwIfNoEntry: false });
    if (st.isDirectory()) {
      if (existing && !existing.isDirectory()) rmSync(dst, { recursive: true, force: true });
      const created = !existing || !existing.isDirectory();
      if (created) mkdirSync(dst);
      for (const n of readdirSync(src).sort()) this.copy(join(src, n), join(dst, n), rel ? `${rel}/${n}` : n, false, created);
      // an existing top-level destination keeps its metadata (fsutil's overwriteTargetMetadata=false)
      if (created || !top) this.meta(dst, st, false);
      return;
    }
    if (existing) rmSync(dst, { recursive: true, force: true });
    if (st.nlink > 1 && !st.isDirectory()) {
      const key = `${st.dev}:${st.ino}`;
      const first = this.links.get(key);
      if (first) {
        linkSync(first, dst);
        return;
      }
      this.links.set(key, dst);
    }
    if (st.isSymbolicLink()) {
      symlinkSync(readlinkSync(src), dst);
      this.meta(dst, st, true);
    } else if (st.isFile()) {
      this.file(src, dst, st);
    } else if (st.isFIFO() || st.isCharacterDevice() || st.isBlockDevice()) {
      const type = st.isFIFO() ? 'p' : st.isCharacterDevice() ? 'c' : 'b';
      const args = type === 'p' ? [dst, 'p'] : [dst, type, String(Math.floor(st.rdev / 256) & 0xfff), String((st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00))];
      execFileSync('mknod', args);
      this.meta(dst, st, false);
    }
    // sockets are skipped, as Docker does
  }
}

/** mkdir -p inside the root; created directories get `mode` and the owner. Returns the host path. */
async function mkdirAllInRoot(root: string, p: string, mode: number, owner?: Owner): Promise<string> {
  const comps = p.split('/').filter((c) => c !== '' && c !== '.');
  let cur = '/';
  for (const c of comps) {
    cur = cur === '/' ? `/${c}` : `${cur}/${c}`;
    const host = await resolveInRoot(root, cur);
    const st = await lstat(host).catch(() => null);
    if (st?.isDirectory()) continue;
    if (st) throw new HoistError('E_NOT_DIR', `cannot create directory ${cur}: a file is in the way`, { hint: 'the destination path crosses an existing non-directory' });
    await mkdir(host, { mode });
    await chmod(host, mode);
    if (owner) await lchown(host, owner.uid, owner.gid);
  }
  return resolveInRoot(root, p);
}

// Loaded only by the steps that need them (a worker starts for every COPY, and most copy plain files):
// ADD's archive unpacking, and user lookup for --chown and WORKDIR under USER.
const layerModule = () => import('../image/layer.js');
const resolveUser: typeof import('./runner.js').resolveUser = async (...a) => (await import('./runner.js')).resolveUser(...a);

async function isArchiveName(head: Buffer): Promise<boolean> {
  const c = (await layerModule()).detectCompression(head);
  if (c !== 'uncompressed') return true;
  // a plain tar: "ustar" at offset 257
  return head.length >= 262 && head.toString('latin1', 257, 262) === 'ustar';
}

async function readHead(p: string, n: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let got = 0;
  for await (const c of createReadStream(p, { start: 0, end: n - 1 })) {
    chunks.push(c as Buffer);
    got += (c as Buffer).length;
  }
  return Buffer.concat(chunks, got);
}

/** Mounts made for the current spec, newest last (a serving worker undoes them after each spec). */
const mounted: string[] = [];

function mountOverlayRO(lowers: string[], target: string): void {
  execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${[...lowers].reverse().join(':')}`, target]);
  mounted.push(target);
}

/** Undoes this spec's mounts (lazily when still busy), so its directories can be renamed and removed. */
function unmountAll(): void {
  for (let t = mounted.pop(); t !== undefined; t = mounted.pop()) {
    try {
      execFileSync('umount', [t], { stdio: 'ignore' });
    } catch {
      execFileSync('umount', ['-l', t], { stdio: 'ignore' });
    }
  }
}

async function copySpec(spec: CopySpec): Promise<void> {
  // the destination root: an overlay of the parents over the fresh upper dir
  let root = spec.upper;
  if (spec.lowers.length > 0) {
    await mkdir(spec.merged, { recursive: true });
    execFileSync('mount', ['-t', 'overlay', 'overlay', '-o',
      `lowerdir=${[...spec.lowers].reverse().join(':')},upperdir=${spec.upper},workdir=${spec.work},redirect_dir=off,metacopy=off,index=off`, spec.merged]);
    mounted.push(spec.merged);
    root = spec.merged;
  }
  const readEtc = async (name: 'passwd' | 'group'): Promise<string | null> => {
    const p = await resolveInRoot(root, `/etc/${name}`);
    return readFile(p, 'utf8').catch(() => null);
  };

  if (spec.action === 'mkdir') {
    const owner = spec.user ? await resolveUser(spec.user, readEtc) : undefined;
    await mkdirAllInRoot(root, spec.dest, 0o755, owner);
    return;
  }

  const owner = spec.chown ? await resolveUser(spec.chown, readEtc, true) : spec.keepOwner ? undefined : { uid: 0, gid: 0 };
  const chmodSpec = spec.chmod ? parseChmod(spec.chmod) : undefined;
  const exclude = spec.exclude.length ? new IgnoreMatcher(spec.exclude) : null;

  // mount the source roots
  const roots: { dir: string; ignore?: IgnoreMatcher }[] = [];
  for (const [i, r] of spec.roots.entries()) {
    if (r.kind === 'context') roots.push({ dir: r.root, ignore: r.ignore.length ? new IgnoreMatcher(r.ignore) : undefined });
    else if (r.kind === 'layers') {
      if (r.lowers.length === 0) {
        const d = join(spec.scratch, `empty-${i}`);
        await mkdir(d, { recursive: true });
        roots.push({ dir: d });
      } else if (r.lowers.length === 1) roots.push({ dir: r.lowers[0]! });
      else {
        const d = join(spec.scratch, `src-${i}`);
        await mkdir(d, { recursive: true });
        mountOverlayRO(r.lowers, d);
        roots.push({ dir: d });
      }
    } else {
      const d = join(spec.scratch, `inline-${i}`);
      await mkdir(d, { recursive: true });
      await writeFile(join(d, basename(r.name)), r.data, { mode: 0o644 });
      roots.push({ dir: d });
    }
  }

  const dest = spec.dest;
  const destIsDir = dest.endsWith('/') || dest.endsWith('/.');
  // parents the copy creates are 0755 whatever --chmod says (the reference's behaviour)
  const defaultDirMode = 0o755;
  const ensure = destIsDir ? dest : dirname(dest);
  if (ensure !== '/' && ensure !== '.') await mkdirAllInRoot(root, ensure, defaultDirMode, owner);

  for (const c of spec.copies) {
    const src = roots[c.root]!;
    const ctxSkip = (rel: string): boolean => !!src.ignore?.matchesOrParentMatches(rel);
    // --parents keeps the source path below the pivot (`a/./b/c` keeps `b/c`; no pivot keeps it all)
    let pivot = '';
    let pattern = c.path;
    if (spec.parents) {
      const cut = c.path.indexOf('/./');
      if (cut >= 0) {
        pivot = goClean(c.path.slice(0, cut)).replace(/^\/+/, '').replace(/^\.$/, '');
        pattern = c.path.slice(cut + 3);
      }
    }
    const matches = await resolveWildcards(src.dir, spec.parents ? `/${pivot}/${pattern}` : pattern, ctxSkip);
    if (matches.length === 0) {
      if (hasGlob(c.path)) continue;
      throw new HoistError('E_COPY_SOURCE', `${c.path}: not found`);
    }
    for (const m of matches) {
      const srcFollowed = await resolveInRoot(src.dir, '/' + m);
      const sst = await lstat(srcFollowed);
      let destPath = dest;
      if (spec.parents) {
        const relFromPivot = pivot ? m.slice(pivot.length).replace(/^\/+/, '') : m;
        destPath = join(dest, relFromPivot);
        await mkdirAllInRoot(root, sst.isDirectory() ? destPath : dirname(destPath), defaultDirMode, owner);
      }
      const copier = new Copier(owner, chmodSpec, (rel) => !!exclude?.matchesOrParentMatches(rel) || ctxSkip(m ? `${m}/${rel}` : rel));
      if ((c.unpack ?? spec.unpack) && sst.isFile() && (await isArchiveName(await readHead(srcFollowed, 512)))) {
        const dir = await mkdirAllInRoot(root, destPath, defaultDirMode, owner);
        const [{ decompressAuto }, { unpackLayer }] = await Promise.all([layerModule(), import('../snapshot/unpack.js')]);
        await unpackLayer(decompressAuto(createReadStream(srcFollowed)), dir, { mode: 'flatten' });
        continue;
      }
      const dstHost0 = await resolveInRoot(root, destPath);
      const dst0 = await lstat(dstHost0).then((s) => s, () => null);
      // stat follows symlinks: a destination that is a symlink to a directory counts as that directory
      let target = destPath;
      if ((!sst.isDirectory() && dst0?.isDirectory()) || (spec.parents && !sst.isDirectory() && destIsDir)) {
        target = spec.parents ? destPath : join(destPath, basename(m));
      }
      // a new top-level directory is made like its parents (0755 or --chmod, owner), not like the source
      if (sst.isDirectory() && !dst0) await mkdirAllInRoot(root, target, defaultDirMode, owner);
      const hostDst = await resolveInRoot(root, target, !sst.isDirectory() ? false : true);
      copier.copy(srcFollowed, hostDst, '', true);
    }
  }
}

/** A failure as the parent reads it. */
export interface CopyFailure {
  code: string;
  message: string;
  hint?: string;
}

function failure(e: unknown): CopyFailure {
  return e instanceof HoistError ? { code: e.code, message: e.message, hint: e.hint } : { code: 'E_COPY', message: (e as Error)?.message ?? String(e) };
}

const readSpec = async (file: string): Promise<CopySpec> => JSON.parse(await readFile(file, 'utf8')) as CopySpec;

/** Serves specs from stdin until it ends; replies `{"ok":true}` or `{"ok":false,...failure}` on fd 3. */
async function serve(): Promise<void> {
  for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
    if (!line) continue;
    let reply: object = { ok: true };
    try {
      await copySpec(await readSpec(line));
    } catch (e) {
      reply = { ok: false, ...failure(e) };
    }
    try {
      unmountAll();
    } catch (e) {
      if ('ok' in reply && reply.ok) reply = { ok: false, ...failure(e) };
    }
    writeSync(3, JSON.stringify(reply) + '\n');
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  (process.argv[2] === '--serve' ? serve() : readSpec(process.argv[2]!).then(copySpec)).catch((e: unknown) => {
    process.stderr.write(JSON.stringify(failure(e)) + '\n');
    process.exit(1);
  });
}
