import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync, closeSync, constants as C, fchmodSync, fchownSync, futimesSync, lchownSync, linkSync, lstatSync, lutimesSync,
  mkdirSync, openSync, readdirSync, rmSync, symlinkSync, writeSync, type Stats,
} from 'node:fs';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { HoistError } from '../util/errors.js';
import { entryComponents, lstatNoFollow, resolveDirInRoot, unsafeEntry, type Resolved } from './safepath.js';
import { keepRawPaxXattrs, RAW_XATTRS } from './tarhdr.js';
import { setXattr, xattrFailure, xattrToolsAvailable } from './xattr.js';

/** OCI whiteout prefix: `.wh.<name>` deletes `<name>` from the layers below. */
export const WHITEOUT_PREFIX = '.wh.';
/** OCI opaque marker: the directory holding it hides everything below it. */
export const WHITEOUT_OPAQUE = '.wh..wh..opq';
/** Xattr overlayfs reads to treat an upper directory as opaque. */
export const OVERLAY_OPAQUE_XATTR = 'trusted.overlay.opaque';

export interface UnpackOptions {
  /**
   * `overlay`: `dest` is an empty per-layer snapshot directory; whiteouts become
   * overlayfs whiteouts (0/0 char devices, opaque xattr). `flatten`: apply onto an
   * existing tree (the copy fallback); whiteouts delete from `dest`. `oci`: keep the
   * `.wh.` markers as empty files (a per-layer dir where device nodes are not allowed).
   */
  mode?: 'overlay' | 'flatten' | 'oci';
  /** Overlay mode: lower snapshot dirs (lowest first); parents a layer creates implicitly copy their metadata. */
  lowers?: string[];
  /** Apply uid/gid from the archive (default: when running as root). */
  sameOwner?: boolean;
  /** Device and fifo entries: `create` (default as root; refusal is an error) or `skip` (with a warning). */
  devices?: 'create' | 'skip';
  /** Refuse the layer unless the sha256 of the tar stream equals this (`sha256:…`). */
  expectDiffID?: string;
  /** Receives every warning as it happens (they are also returned). */
  onWarning?: (msg: string) => void;
}

export interface UnpackResult {
  /** `sha256:<hex>` of the uncompressed tar stream. */
  diffID: string;
  /** Bytes of tar read. */
  size: number;
  /** Entries applied (whiteouts included). */
  entries: number;
  /** Things skipped because this host or filesystem refused them. */
  warnings: string[];
}

interface Hdr {
  name: string;
  type: string;
  mode: number;
  uid: number;
  gid: number;
  mtime: number; // seconds, may be fractional
  linkname: string;
  devmajor: number;
  devminor: number;
  xattrs: Map<string, Buffer>;
}

function readHeader(h: tar.Header): Hdr {
  const pax = (h.pax ?? {}) as Record<string | symbol, unknown>;
  const num = (k: string, dflt: number): number => {
    const v = pax[k];
    if (typeof v === 'string' && v !== '' && Number.isFinite(Number(v))) return Number(v);
    return dflt;
  };
  return {
    name: h.name,
    type: h.type as string,
    mode: (h.mode ?? 0) & 0o7777,
    uid: num('uid', h.uid ?? 0),
    gid: num('gid', h.gid ?? 0),
    mtime: num('mtime', h.mtime ? h.mtime.getTime() / 1000 : 0),
    linkname: h.linkname ?? '',
    devmajor: h.devmajor ?? 0,
    devminor: h.devminor ?? 0,
    xattrs: (pax[RAW_XATTRS] as Map<string, Buffer> | undefined) ?? new Map(),
  };
}

function run(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, (err, _out, stderr) => {
      if (err) reject(Object.assign(new Error(String(stderr).trim() || err.message), { cmdCode: (err as NodeJS.ErrnoException).code }));
      else resolve();
    });
  });
}

/**
 * Applies one layer tar stream onto `dest`, never writing outside it: names are
 * cleaned and rooted at `dest`, parent paths are resolved with symlinks confined to
 * `dest`, existing final components are replaced rather than followed, and hardlink
 * targets must exist inside `dest`. Hostile names are refused with E_LAYER_UNSAFE.
 *
 * Metadata calls are synchronous (a local lstat, mkdir or symlink takes microseconds;
 * a thread-pool round trip per call cost more than the work) and file bodies are
 * written with synchronous writes of the chunks tar-stream hands out, as they arrive:
 * the layer streams through and is never held in memory. Only device nodes, overlay
 * whiteouts and xattrs (which need a child process) are awaited.
 */
export async function unpackLayer(source: Readable, dest: string, opts: UnpackOptions = {}): Promise<UnpackResult> {
  const u = new Unpacker(dest, opts);
  u.init();
  const extract = tar.extract();
  keepRawPaxXattrs(extract);
  const hash = createHash('sha256');
  let size = 0;
  const hasher = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      size += chunk.length;
      cb(null, chunk);
    },
  });
  const feed = pipeline(source, hasher, extract as unknown as NodeJS.WritableStream);
  try {
    await new Promise<void>((resolve, reject) => {
      let failed = false;
      let busy = false;
      let fed = false;
      const fail = (e: unknown): void => {
        if (failed) return;
        failed = true;
        reject(e);
      };
      let turn = performance.now();
      const done = (body: Readable, next: () => void): void => {
        busy = false;
        body.resume(); // an entry must be drained before the next one is read
        if (fed) return resolve();
        // Never called synchronously: tar-stream would parse the next entry inside this
        // stack frame, and a chunk of many small entries would nest that deeply. The
        // entries of one chunk follow each other as microtasks, with a turn of the event
        // loop every YIELD_MS so that work beside the unpack (progress, context hashing)
        // is not held up by a chunk of many entries on a slow disk.
        const now = performance.now();
        if (now - turn < YIELD_MS) return queueMicrotask(next);
        turn = now;
        setImmediate(next);
      };
      extract.on('entry', (header: tar.Header, stream: unknown, next: () => void) => {
        const body = stream as Readable;
        if (failed) return;
        busy = true;
        let pending: Promise<void> | undefined;
        try {
          pending = u.apply(readHeader(header), body);
        } catch (e) {
          body.resume();
          return fail(e);
        }
        if (!pending) return done(body, next);
        pending.then(() => {
          if (!failed) done(body, next);
        }, (e: unknown) => {
          body.resume();
          fail(e);
        });
      });
      // The feed ends once tar-stream has parsed the end of the archive; an entry it
      // handed out last may still be applying (its data was all read), so wait for it.
      feed.then(() => {
        fed = true;
        if (!busy) resolve();
      }, fail);
    });
  } catch (e) {
    u.abort();
    source.destroy();
    hasher.destroy();
    extract.destroy();
    feed.catch(() => undefined);
    throw e;
  }
  u.finish();
  const diffID = 'sha256:' + hash.digest('hex');
  if (opts.expectDiffID && opts.expectDiffID !== diffID) {
    throw new HoistError('E_LAYER_DIGEST', `layer content digest ${diffID} does not match the expected diff ID ${opts.expectDiffID}`, {
      hint: 'the stored layer blob is corrupt or the image config is wrong; re-pull or re-load the image',
    });
  }
  return { diffID, size, entries: u.entries, warnings: u.warnings };
}

/** Most resolved parent directories remembered at once (layers mostly go directory by directory). */
const MAX_PARENTS = 4096;
/** Longest run of synchronous entry work before the event loop gets a turn. */
const YIELD_MS = 10;

function checkWhiteoutName(entry: string, base: string): void {
  if (base === WHITEOUT_OPAQUE || base.startsWith(WHITEOUT_PREFIX + WHITEOUT_PREFIX)) return;
  const victim = base.slice(WHITEOUT_PREFIX.length);
  if (victim === '' || victim === '.' || victim === '..') throw unsafeEntry(entry, 'whiteout names no file');
}

const errCode = (e: unknown): string | undefined => (e as NodeJS.ErrnoException).code;

function lstatOrNull(path: string): Stats | null {
  try {
    return lstatSync(path);
  } catch (e) {
    if (errCode(e) === 'ENOENT') return null;
    throw e;
  }
}

/** Writes all of `buf` to `fd` (a short write is continued, never dropped). */
function writeAll(fd: number, buf: Buffer): void {
  let off = 0;
  while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
}

/** A resolved parent directory, with its components joined as the unpacked-set key. */
interface Parent extends Resolved {
  key: string;
}

/** The regular file being written: its body arrives in chunks after the entry is handed out. */
interface Sink {
  fd: number;
}

class Unpacker {
  entries = 0;
  warnings: string[] = [];
  private readonly overlay: boolean;
  private readonly sameOwner: boolean;
  private readonly devices: 'create' | 'skip';
  private haveXattrTools: boolean | undefined;
  private xattrToolWarned = false;
  /** Real (resolved) paths created by this layer, so whiteouts only remove lower content. */
  private readonly unpacked = new Set<string>();
  /** Ancestors of unpacked paths: an opaque marker must keep them to keep their children. */
  private readonly unpackedAncestors = new Set<string>();
  /** Directories whose mtime is set at the end, since creating children changes it. */
  private readonly dirTimes: { rel: string[]; mtime: number }[] = [];
  /**
   * Parent directories already resolved, by their components as named in the layer
   * (most entries share a parent with the one before). Every resolved path was a real
   * directory inside `root` when it was resolved, and only a removal can make one stop
   * being that (a later entry replacing a directory with a symlink removes it first),
   * so every removal clears this cache: see remove().
   */
  private readonly parents = new Map<string, Parent>();
  /** Overlay mode: a whiteout (0/0 character device) this layer made, which later ones link to. */
  private whiteoutNode: string | null = null;
  /** The file being written, closed by abort() if the unpack fails mid-body. */
  private sink: Sink | null = null;

  constructor(private readonly root: string, private readonly opts: UnpackOptions) {
    this.overlay = opts.mode === 'overlay';
    const isRoot = process.getuid?.() === 0;
    this.sameOwner = opts.sameOwner ?? isRoot;
    this.devices = opts.devices ?? (isRoot ? 'create' : 'skip');
  }

  init(): void {
    let st: Stats | null = null;
    try {
      st = lstatSync(this.root);
    } catch {
      // reported below
    }
    if (!st?.isDirectory()) {
      throw new HoistError('E_UNPACK_DEST', `cannot unpack into ${this.root}: not a directory`, { hint: 'create the directory first' });
    }
  }

  /** Whether setfattr/getfattr are installed, asked only once a layer has xattrs or an opaque marker. */
  private async xattrTools(): Promise<boolean> {
    this.haveXattrTools ??= await xattrToolsAvailable();
    return this.haveXattrTools;
  }

  private warn(msg: string): void {
    this.warnings.push(msg);
    this.opts.onWarning?.(msg);
  }

  /** Removes `path` (never following it: rm deletes a symlink, not its target) and forgets resolved parents. */
  private remove(path: string): void {
    this.parents.clear();
    this.whiteoutNode = null;
    rmSync(path, { recursive: true, force: true });
  }

  private resolveParent(comps: string[], entry: string, create: boolean): Parent | null {
    if (comps.length === 1) return { path: this.root, rel: [], key: '' };
    const dirComps = comps.slice(0, -1);
    const name = dirComps.join('/');
    const hit = this.parents.get(name);
    if (hit) return hit;
    const r = resolveDirInRoot(this.root, dirComps, {
      entry,
      create,
      onCreate: this.opts.mode === 'overlay' || this.opts.mode === 'oci' ? (p, rel) => this.inheritLowerDir(p, rel) : undefined,
    });
    if (!r) return null;
    const parent: Parent = { ...r, key: r.rel.join('/') };
    if (this.parents.size >= MAX_PARENTS) this.parents.clear(); // a bound, not an eviction policy
    this.parents.set(name, parent);
    return parent;
  }

  /**
   * A parent that a layer names only implicitly must not shadow the lower
   * directory's owner and mode in the overlay (say, /tmp's 1777), so copy them.
   */
  private inheritLowerDir(path: string, rel: string[]): void {
    const lowers = this.opts.lowers ?? [];
    for (let i = lowers.length - 1; i >= 0; i--) {
      const st = lstatNoFollow(lowers[i]!, rel);
      if (!st) continue;
      if (!st.isDirectory()) return;
      if (this.sameOwner) lchownSync(path, st.uid, st.gid);
      chmodSync(path, st.mode & 0o7777);
      this.dirTimes.push({ rel: [...rel], mtime: st.mtimeMs / 1000 });
      return;
    }
  }

  /**
   * Applies one entry. Returns undefined when it is done, or a promise when it waits
   * for its body (regular files) or a child process (devices, whiteouts, xattrs).
   */
  apply(h: Hdr, body: Readable): Promise<void> | undefined {
    const r = this.applyEntry(h, body);
    if (!r) {
      this.entries++;
      return undefined;
    }
    return r.then(() => {
      this.entries++;
    });
  }

  private applyEntry(h: Hdr, body: Readable): Promise<void> | undefined {
    const comps = entryComponents(h.name);
    if (comps.length === 0) {
      if (h.type !== 'directory') throw unsafeEntry(h.name, 'a non-directory entry names the layer root');
      this.dirTimes.push({ rel: [], mtime: h.mtime });
      return this.applyMeta(this.root, h, 'directory');
    }
    const base = comps[comps.length - 1]!;
    if (base.startsWith(WHITEOUT_PREFIX)) {
      checkWhiteoutName(h.name, base);
      if (this.opts.mode !== 'oci') return this.whiteout(h, comps, base);
      h = { ...h, type: 'file', xattrs: new Map() }; // kept verbatim as a marker file
    }

    const parent = this.resolveParent(comps, h.name, true)!;
    const path = join(parent.path, base);
    const key = parent.key ? `${parent.key}/${base}` : base;

    // Each kind is created exclusively (O_EXCL, mkdir, symlink and link never follow
    // or overwrite the final component); a name already taken is removed and created
    // again, except a directory over a directory, which is kept.
    switch (h.type) {
      case 'directory': {
        try {
          mkdirSync(path, { mode: 0o700 });
        } catch (e) {
          if (errCode(e) !== 'EEXIST') throw e;
          if (!lstatSync(path).isDirectory()) {
            this.remove(path);
            mkdirSync(path, { mode: 0o700 });
          }
        }
        this.dirTimes.push({ rel: [...parent.rel, base], mtime: h.mtime });
        this.markUnpacked(key);
        return this.applyMeta(path, h, 'directory');
      }
      case 'file':
      case 'contiguous-file':
        return this.writeFile(h, body, path, key);
      case 'symlink': {
        if (!h.linkname) throw unsafeEntry(h.name, 'symlink without a target');
        this.createFresh(path, () => symlinkSync(h.linkname, path));
        this.markUnpacked(key);
        return this.applyMeta(path, h, 'symlink');
      }
      case 'link':
        // The target is looked up again after a removal: the removed name may have been it.
        this.createFresh(path, () => linkSync(this.hardlinkTarget(h), path));
        this.markUnpacked(key);
        return undefined;
      case 'character-device':
      case 'block-device':
      case 'fifo':
        if (lstatOrNull(path)) this.remove(path);
        return this.mknod(h, path).then((made) => {
          if (!made) return;
          this.markUnpacked(key);
          return this.applyMeta(path, h, 'device');
        });
      default:
        throw new HoistError('E_LAYER_UNSUPPORTED', `layer entry ${JSON.stringify(h.name)} has unsupported tar type "${h.type}"`, {
          hint: 'rebuild the layer with a POSIX (pax or ustar) tar writer',
        });
    }
  }

  /** Runs `create`; when the name is taken, removes what is there and runs it once more. */
  private createFresh(path: string, create: () => void): void {
    try {
      create();
      return;
    } catch (e) {
      if (errCode(e) !== 'EEXIST') throw e;
    }
    this.remove(path);
    create();
  }

  private writeFile(h: Hdr, body: Readable, path: string, key: string): Promise<void> {
    const flags = C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW;
    let fd = -1;
    this.createFresh(path, () => {
      fd = openSync(path, flags, 0o600);
    });
    const sink: Sink = { fd };
    this.sink = sink;
    return new Promise<void>((resolve, reject) => {
      const close = (): void => {
        if (sink.fd < 0) return;
        const f = sink.fd;
        sink.fd = -1;
        if (this.sink === sink) this.sink = null;
        closeSync(f);
      };
      const failWith = (e: unknown): void => {
        try {
          close();
        } catch {
          // the first error is the one to report
        }
        reject(e);
      };
      // tar-stream hands the body out in the chunks it parsed from the layer stream;
      // each is written as it comes, so memory stays at one chunk per file.
      body.on('data', (chunk: Buffer) => {
        if (sink.fd < 0) return;
        try {
          writeAll(sink.fd, chunk);
        } catch (e) {
          failWith(e);
        }
      });
      body.on('error', failWith);
      body.on('end', () => {
        if (sink.fd < 0) return; // failed or aborted
        try {
          this.markUnpacked(key);
          if (h.xattrs.size) {
            close();
            const p = this.applyMeta(path, h, 'file');
            if (p) return void p.then(resolve, reject);
            return resolve();
          }
          // Same order as applyMeta, on the open file: owner, then mode, then times.
          if (this.sameOwner) {
            try {
              fchownSync(sink.fd, h.uid, h.gid);
            } catch (e) {
              throw ownerError(h, e);
            }
          }
          fchmodSync(sink.fd, h.mode);
          futimesSync(sink.fd, h.mtime, h.mtime);
          close();
          resolve();
        } catch (e) {
          failWith(e);
        }
      });
    });
  }

  /** Closes the file being written, if any (the unpack failed). */
  abort(): void {
    const s = this.sink;
    this.sink = null;
    if (s && s.fd >= 0) {
      const f = s.fd;
      s.fd = -1;
      try {
        closeSync(f);
      } catch {
        // already failing
      }
    }
  }

  private markUnpacked(key: string): void {
    this.unpacked.add(key);
    // Ancestors are added longest first; one already present means all shorter ones are too.
    for (let i = key.lastIndexOf('/'); i > 0; i = key.lastIndexOf('/', i - 1)) {
      const a = key.slice(0, i);
      if (this.unpackedAncestors.has(a)) break;
      this.unpackedAncestors.add(a);
    }
  }

  /** Removes everything under `dir` that this layer did not itself write. */
  private clearLowerContent(dir: string, rel: string[]): void {
    for (const child of readdirSync(dir)) {
      const key = [...rel, child].join('/');
      const p = join(dir, child);
      if (!this.unpacked.has(key) && !this.unpackedAncestors.has(key)) {
        this.remove(p);
        continue;
      }
      // A kept directory may still hold lower-layer children, which the marker hides too.
      if (lstatSync(p).isDirectory()) this.clearLowerContent(p, [...rel, child]);
    }
  }

  private hardlinkTarget(h: Hdr): string {
    if (!h.linkname) throw unsafeEntry(h.name, 'hardlink without a target');
    const tcomps = entryComponents(h.linkname, h.name);
    if (tcomps.length === 0) throw unsafeEntry(h.name, 'hardlink to the layer root');
    const tparent = this.resolveParent(tcomps, h.name, false);
    const target = tparent && join(tparent.path, tcomps[tcomps.length - 1]!);
    const st = target ? lstatOrNull(target) : null;
    if (!target || !st) throw unsafeEntry(h.name, `hardlink target ${JSON.stringify(h.linkname)} does not exist inside the layer`);
    if (st.isDirectory()) throw unsafeEntry(h.name, `hardlink target ${JSON.stringify(h.linkname)} is a directory`);
    return target;
  }

  private async mknod(h: Hdr, path: string): Promise<boolean> {
    const kind = h.type === 'fifo' ? 'fifo' : h.type === 'block-device' ? 'block device' : 'character device';
    if (h.type !== 'fifo' && this.devices === 'skip') {
      this.warn(`skipped ${kind} ${h.name} (${h.devmajor}:${h.devminor}): device nodes are not created by this unpack`);
      return false;
    }
    const args = ['-m', (h.mode & 0o777).toString(8), '--', path];
    if (h.type === 'fifo') args.push('p');
    else args.push(h.type === 'block-device' ? 'b' : 'c', String(h.devmajor), String(h.devminor));
    try {
      await run('mknod', args);
    } catch (e) {
      const msg = (e as Error).message;
      if (/not permitted/i.test(msg) && this.devices === 'skip') {
        this.warn(`skipped ${kind} ${h.name}: ${msg}`);
        return false;
      }
      throw new HoistError('E_LAYER_DEVICE', `cannot create ${kind} ${JSON.stringify(h.name)}: ${msg}`, {
        hint: /not permitted/i.test(msg) ? 'device nodes need root outside a user namespace; unpack with devices: "skip" to leave them out' : undefined,
      });
    }
    return true;
  }

  private whiteout(h: Hdr, comps: string[], base: string): Promise<void> | undefined {
    const opaque = base === WHITEOUT_OPAQUE;
    if (!opaque && base.startsWith(WHITEOUT_PREFIX + WHITEOUT_PREFIX)) {
      // Other `.wh..wh.` names are aufs bookkeeping (hardlink dirs), meaningless here.
      this.warn(`ignored aufs metadata entry ${h.name}`);
      return undefined;
    }
    const victim = opaque ? '' : base.slice(WHITEOUT_PREFIX.length);
    if (this.overlay) {
      const parent = this.resolveParent(comps, h.name, true)!;
      if (opaque) {
        return this.requireXattrTools(h.name).then(() => setXattr(parent.path, OVERLAY_OPAQUE_XATTR, Buffer.from('y')));
      }
      const path = join(parent.path, victim);
      if (lstatOrNull(path)) this.remove(path);
      const key = parent.key ? `${parent.key}/${victim}` : victim;
      if (this.linkWhiteout(path)) {
        this.markUnpacked(key);
        return undefined;
      }
      return run('mknod', ['-m', '0', '--', path, 'c', '0', '0']).then(() => {
        this.whiteoutNode = path;
        this.markUnpacked(key);
      }, (e: unknown) => {
        throw new HoistError('E_LAYER_DEVICE', `cannot create the overlay whiteout for ${JSON.stringify(h.name)}: ${(e as Error).message}`, {
          hint: 'overlay snapshots need root; use the copy fallback (flattened unpack) otherwise',
        });
      });
    }
    // Flattened: whiteouts only remove what lower layers put there, never this layer's files.
    const parent = this.resolveParent(comps, h.name, false);
    if (!parent) return undefined;
    if (opaque) return void this.clearLowerContent(parent.path, parent.rel);
    if (this.unpacked.has(parent.key ? `${parent.key}/${victim}` : victim)) return undefined;
    this.remove(join(parent.path, victim));
    return undefined;
  }

  /**
   * Makes the whiteout at `path` a hard link to one this layer already made with
   * mknod (a child process per node costs milliseconds; overlayfs itself shares one
   * whiteout inode the same way, and the layer diff reads any 0/0 character device
   * as a whiteout before it looks at link counts). False when there is none yet.
   */
  private linkWhiteout(path: string): boolean {
    const node = this.whiteoutNode;
    if (!node) return false;
    // Forgotten on every removal (see remove()), and checked again here all the same.
    const st = lstatOrNull(node);
    if (!st?.isCharacterDevice() || st.rdev !== 0) {
      this.whiteoutNode = null;
      return false;
    }
    linkSync(node, path);
    return true;
  }

  private async requireXattrTools(entry: string): Promise<void> {
    if (await this.xattrTools()) return;
    throw new HoistError('E_XATTR_TOOL', `cannot mark ${JSON.stringify(entry)} opaque: setfattr is not installed`, {
      hint: 'install the "attr" package (apt-get install attr) or use the copy fallback',
    });
  }

  private applyMeta(path: string, h: Hdr, kind: 'file' | 'directory' | 'symlink' | 'device'): Promise<void> | undefined {
    // chown before chmod: chown clears setuid/setgid, so the mode must come after.
    if (this.sameOwner) {
      try {
        lchownSync(path, h.uid, h.gid);
      } catch (e) {
        throw ownerError(h, e);
      }
    }
    if (kind !== 'symlink') chmodSync(path, h.mode);
    // capability xattrs are cleared by chown too, which is why they come after it.
    if (h.xattrs.size) {
      return this.applyXattrs(path, h, kind).then(() => {
        if (kind !== 'directory') lutimesSync(path, h.mtime, h.mtime);
      });
    }
    if (kind !== 'directory') lutimesSync(path, h.mtime, h.mtime);
    return undefined;
  }

  private async applyXattrs(path: string, h: Hdr, kind: string): Promise<void> {
    if (!(await this.xattrTools())) {
      if (!this.xattrToolWarned) {
        this.xattrToolWarned = true;
        this.warn(`extended attributes skipped (first on ${h.name}): setfattr is not installed (package "attr")`);
      }
      return;
    }
    for (const [name, value] of h.xattrs) {
      if (name.startsWith('trusted.overlay.') || name.startsWith('user.overlay.')) {
        // A layer must not smuggle overlayfs control attributes (redirects, opaque marks).
        this.warn(`ignored overlayfs attribute ${name} on ${h.name}`);
        continue;
      }
      try {
        await setXattr(path, name, value);
      } catch (e) {
        const why = xattrFailure(e);
        if (why === 'unsupported' || why === 'denied') {
          this.warn(`xattr ${name} on ${h.name} (${kind}) not stored: the filesystem ${why === 'denied' ? 'refused it' : 'does not support it'}`);
          continue;
        }
        throw new HoistError('E_XATTR_WRITE', `cannot set xattr ${name} on ${JSON.stringify(h.name)}: ${(e as Error).message}`);
      }
    }
  }

  finish(): void {
    // Deepest first is not needed: utimes on a dir does not touch its parent's mtime.
    for (const d of this.dirTimes) {
      const st: Stats | null = lstatNoFollow(this.root, d.rel);
      if (!st?.isDirectory()) continue;
      lutimesSync(d.rel.length ? join(this.root, ...d.rel) : this.root, d.mtime, d.mtime);
    }
  }
}

function ownerError(h: Hdr, e: unknown): HoistError {
  return new HoistError('E_LAYER_OWNER', `cannot set owner ${h.uid}:${h.gid} on ${JSON.stringify(h.name)}: ${(e as Error).message}`, {
    hint: 'ids beyond the user namespace mapping cannot be stored; extend /etc/subuid and /etc/subgid',
  });
}
