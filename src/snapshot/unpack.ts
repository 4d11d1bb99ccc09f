import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { constants as C, type Stats } from 'node:fs';
import { chmod, lchown, link, lstat, lutimes, mkdir, open, readdir, rm, symlink } from 'node:fs/promises';
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
 */
export async function unpackLayer(source: Readable, dest: string, opts: UnpackOptions = {}): Promise<UnpackResult> {
  const u = new Unpacker(dest, opts);
  await u.init();
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
  feed.catch(() => undefined); // surfaced through the iterator or awaited below
  try {
    for await (const entry of extract) {
      await u.apply(readHeader(entry.header), entry as unknown as Readable);
    }
    await feed;
  } catch (e) {
    source.destroy();
    hasher.destroy();
    throw e;
  }
  await u.finish();
  const diffID = 'sha256:' + hash.digest('hex');
  if (opts.expectDiffID && opts.expectDiffID !== diffID) {
    throw new HoistError('E_LAYER_DIGEST', `layer content digest ${diffID} does not match the expected diff ID ${opts.expectDiffID}`, {
      hint: 'the stored layer blob is corrupt or the image config is wrong; re-pull or re-load the image',
    });
  }
  return { diffID, size, entries: u.entries, warnings: u.warnings };
}

function checkWhiteoutName(entry: string, base: string): void {
  if (base === WHITEOUT_OPAQUE || base.startsWith(WHITEOUT_PREFIX + WHITEOUT_PREFIX)) return;
  const victim = base.slice(WHITEOUT_PREFIX.length);
  if (victim === '' || victim === '.' || victim === '..') throw unsafeEntry(entry, 'whiteout names no file');
}

class Unpacker {
  entries = 0;
  warnings: string[] = [];
  private readonly overlay: boolean;
  private readonly sameOwner: boolean;
  private readonly devices: 'create' | 'skip';
  private haveXattrTools = false;
  private xattrToolWarned = false;
  /** Real (resolved) paths created by this layer, so whiteouts only remove lower content. */
  private readonly unpacked = new Set<string>();
  /** Ancestors of unpacked paths: an opaque marker must keep them to keep their children. */
  private readonly unpackedAncestors = new Set<string>();
  /** Directories whose mtime is set at the end, since creating children changes it. */
  private readonly dirTimes: { rel: string[]; mtime: number }[] = [];

  constructor(private readonly root: string, private readonly opts: UnpackOptions) {
    this.overlay = opts.mode === 'overlay';
    const isRoot = process.getuid?.() === 0;
    this.sameOwner = opts.sameOwner ?? isRoot;
    this.devices = opts.devices ?? (isRoot ? 'create' : 'skip');
  }

  async init(): Promise<void> {
    const st = await lstat(this.root).catch(() => null);
    if (!st?.isDirectory()) {
      throw new HoistError('E_UNPACK_DEST', `cannot unpack into ${this.root}: not a directory`, { hint: 'create the directory first' });
    }
    this.haveXattrTools = await xattrToolsAvailable();
  }

  private warn(msg: string): void {
    this.warnings.push(msg);
    this.opts.onWarning?.(msg);
  }

  private async resolveParent(comps: string[], entry: string, create: boolean): Promise<Resolved | null> {
    return resolveDirInRoot(this.root, comps.slice(0, -1), {
      entry,
      create,
      onCreate: this.opts.mode === 'overlay' || this.opts.mode === 'oci' ? (p, rel) => this.inheritLowerDir(p, rel) : undefined,
    });
  }

  /**
   * A parent that a layer names only implicitly must not shadow the lower
   * directory's owner and mode in the overlay (say, /tmp's 1777), so copy them.
   */
  private async inheritLowerDir(path: string, rel: string[]): Promise<void> {
    const lowers = this.opts.lowers ?? [];
    for (let i = lowers.length - 1; i >= 0; i--) {
      const st = await lstatNoFollow(lowers[i]!, rel);
      if (!st) continue;
      if (!st.isDirectory()) return;
      if (this.sameOwner) await lchown(path, st.uid, st.gid);
      await chmod(path, st.mode & 0o7777);
      this.dirTimes.push({ rel: [...rel], mtime: st.mtimeMs / 1000 });
      return;
    }
  }

  async apply(h: Hdr, body: Readable): Promise<void> {
    try {
      await this.applyEntry(h, body);
    } finally {
      body.resume(); // an entry must be drained before the next one is read
    }
    this.entries++;
  }

  private async applyEntry(h: Hdr, body: Readable): Promise<void> {
    const comps = entryComponents(h.name);
    if (comps.length === 0) {
      if (h.type !== 'directory') throw unsafeEntry(h.name, 'a non-directory entry names the layer root');
      await this.applyMeta(this.root, h, 'directory');
      this.dirTimes.push({ rel: [], mtime: h.mtime });
      return;
    }
    const base = comps[comps.length - 1]!;
    if (base.startsWith(WHITEOUT_PREFIX)) {
      checkWhiteoutName(h.name, base);
      if (this.opts.mode !== 'oci') return this.whiteout(h, comps, base);
      h = { ...h, type: 'file', xattrs: new Map() }; // kept verbatim as a marker file
    }

    const parent = await this.resolveParent(comps, h.name, true);
    const path = join(parent!.path, base);
    const existing = await lstat(path).catch(() => null);
    if (existing && !(existing.isDirectory() && h.type === 'directory')) {
      await rm(path, { recursive: true, force: true });
    }

    switch (h.type) {
      case 'directory':
        if (!existing?.isDirectory()) await mkdir(path, { mode: 0o700 });
        await this.applyMeta(path, h, 'directory');
        this.dirTimes.push({ rel: [...parent!.rel, base], mtime: h.mtime });
        break;
      case 'file':
      case 'contiguous-file': {
        const fh = await open(path, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o600);
        try {
          // tar-stream entries are streamx streams, which Node's pipeline() does not
          // always see end; plain iteration is reliable and keeps backpressure.
          for await (const chunk of body) await fh.write(chunk as Buffer);
        } finally {
          await fh.close();
        }
        await this.applyMeta(path, h, 'file');
        break;
      }
      case 'symlink':
        if (!h.linkname) throw unsafeEntry(h.name, 'symlink without a target');
        await symlink(h.linkname, path);
        await this.applyMeta(path, h, 'symlink');
        break;
      case 'link': {
        const target = await this.hardlinkTarget(h);
        await link(target, path);
        break;
      }
      case 'character-device':
      case 'block-device':
      case 'fifo':
        if (!(await this.mknod(h, path))) return;
        await this.applyMeta(path, h, 'device');
        break;
      default:
        throw new HoistError('E_LAYER_UNSUPPORTED', `layer entry ${JSON.stringify(h.name)} has unsupported tar type "${h.type}"`, {
          hint: 'rebuild the layer with a POSIX (pax or ustar) tar writer',
        });
    }
    this.markUnpacked([...parent!.rel, base]);
  }

  private markUnpacked(rel: string[]): void {
    this.unpacked.add(rel.join('/'));
    for (let i = 1; i < rel.length; i++) this.unpackedAncestors.add(rel.slice(0, i).join('/'));
  }

  /** Removes everything under `dir` that this layer did not itself write. */
  private async clearLowerContent(dir: string, rel: string[]): Promise<void> {
    for (const child of await readdir(dir)) {
      const key = [...rel, child].join('/');
      const p = join(dir, child);
      if (!this.unpacked.has(key) && !this.unpackedAncestors.has(key)) {
        await rm(p, { recursive: true, force: true });
        continue;
      }
      // A kept directory may still hold lower-layer children, which the marker hides too.
      if ((await lstat(p)).isDirectory()) await this.clearLowerContent(p, [...rel, child]);
    }
  }

  private async hardlinkTarget(h: Hdr): Promise<string> {
    if (!h.linkname) throw unsafeEntry(h.name, 'hardlink without a target');
    const tcomps = entryComponents(h.linkname, h.name);
    if (tcomps.length === 0) throw unsafeEntry(h.name, 'hardlink to the layer root');
    const tparent = await resolveDirInRoot(this.root, tcomps.slice(0, -1), { entry: h.name });
    const target = tparent && join(tparent.path, tcomps[tcomps.length - 1]!);
    const st = target ? await lstat(target).catch(() => null) : null;
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

  private async whiteout(h: Hdr, comps: string[], base: string): Promise<void> {
    const opaque = base === WHITEOUT_OPAQUE;
    if (!opaque && base.startsWith(WHITEOUT_PREFIX + WHITEOUT_PREFIX)) {
      // Other `.wh..wh.` names are aufs bookkeeping (hardlink dirs), meaningless here.
      this.warn(`ignored aufs metadata entry ${h.name}`);
      return;
    }
    const victim = opaque ? '' : base.slice(WHITEOUT_PREFIX.length);
    if (this.overlay) {
      const parent = (await this.resolveParent(comps, h.name, true))!;
      if (opaque) {
        await this.requireXattrTools(h.name);
        await setXattr(parent.path, OVERLAY_OPAQUE_XATTR, Buffer.from('y'));
        return;
      }
      const path = join(parent.path, victim);
      await rm(path, { recursive: true, force: true });
      try {
        await run('mknod', ['-m', '0', '--', path, 'c', '0', '0']);
      } catch (e) {
        throw new HoistError('E_LAYER_DEVICE', `cannot create the overlay whiteout for ${JSON.stringify(h.name)}: ${(e as Error).message}`, {
          hint: 'overlay snapshots need root; use the copy fallback (flattened unpack) otherwise',
        });
      }
      this.markUnpacked([...parent.rel, victim]);
      return;
    }
    // Flattened: whiteouts only remove what lower layers put there, never this layer's files.
    const parent = await this.resolveParent(comps, h.name, false);
    if (!parent) return;
    if (opaque) return this.clearLowerContent(parent.path, parent.rel);
    if (this.unpacked.has([...parent.rel, victim].join('/'))) return;
    await rm(join(parent.path, victim), { recursive: true, force: true });
  }

  private async requireXattrTools(entry: string): Promise<void> {
    if (this.haveXattrTools) return;
    throw new HoistError('E_XATTR_TOOL', `cannot mark ${JSON.stringify(entry)} opaque: setfattr is not installed`, {
      hint: 'install the "attr" package (apt-get install attr) or use the copy fallback',
    });
  }

  private async applyMeta(path: string, h: Hdr, kind: 'file' | 'directory' | 'symlink' | 'device'): Promise<void> {
    // chown before chmod: chown clears setuid/setgid, so the mode must come after.
    if (this.sameOwner) {
      try {
        await lchown(path, h.uid, h.gid);
      } catch (e) {
        throw new HoistError('E_LAYER_OWNER', `cannot set owner ${h.uid}:${h.gid} on ${JSON.stringify(h.name)}: ${(e as Error).message}`, {
          hint: 'ids beyond the user namespace mapping cannot be stored; extend /etc/subuid and /etc/subgid',
        });
      }
    }
    if (kind !== 'symlink') await chmod(path, h.mode);
    if (h.xattrs.size) await this.applyXattrs(path, h, kind);
    // capability xattrs are cleared by chown too, which is why they come after it.
    if (kind !== 'directory') await lutimes(path, h.mtime, h.mtime);
  }

  private async applyXattrs(path: string, h: Hdr, kind: string): Promise<void> {
    if (!this.haveXattrTools) {
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

  async finish(): Promise<void> {
    // Deepest first is not needed: utimes on a dir does not touch its parent's mtime.
    for (const d of this.dirTimes) {
      const st: Stats | null = await lstatNoFollow(this.root, d.rel);
      if (!st?.isDirectory()) continue;
      await lutimes(d.rel.length ? join(this.root, ...d.rel) : this.root, d.mtime, d.mtime);
    }
  }
}
