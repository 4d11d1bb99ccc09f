import { closeSync, constants as fsConstants, createReadStream, lstatSync, openSync, readdirSync, readlinkSync, readSync, type BigIntStats } from 'node:fs';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { sortNames } from '../cache/contenthash.js';
import { HoistError } from '../util/errors.js';
import { END_OF_ARCHIVE, encodeHeader, padding, type TarEntry } from './tarwriter.js';
import { OVERLAY_OPAQUE_XATTR, WHITEOUT_OPAQUE, WHITEOUT_PREFIX } from './unpack.js';
import { readTreeXattrs, xattrToolsAvailable } from './xattr.js';

export interface TarTreeOptions {
  /** Clamp every mtime to at most this (seconds), as BuildKit's SOURCE_DATE_EPOCH rewrite does. */
  sourceDateEpoch?: number;
  /** Receives warnings (for example: xattrs not readable on this host). */
  onWarning?: (msg: string) => void;
}

/**
 * Streams an overlayfs upper directory as an OCI layer: 0/0 character devices
 * become `.wh.<name>` files and opaque directories get a `.wh..wh..opq` entry.
 * Entries are in sorted depth-first order; mtimes are truncated to seconds and
 * whiteouts carry the epoch, as containerd/BuildKit write them.
 */
export function diffUpper(upperDir: string, opts: TarTreeOptions = {}): Readable {
  return Readable.from(walkTree(resolve(upperDir), true, opts), { objectMode: false });
}

/** Streams a whole directory tree (no whiteout conversion) as a tar, sorted and deterministic. */
export function tarDirectory(dir: string, opts: TarTreeOptions = {}): Readable {
  return Readable.from(walkTree(resolve(dir), false, opts), { objectMode: false });
}

/** Xattrs that describe this host or overlayfs state, never layer content. */
function keepXattr(name: string): boolean {
  return !name.startsWith('trusted.overlay.') && !name.startsWith('user.overlay.') && name !== 'security.selinux';
}

function devNumbers(rdev: bigint): [number, number] {
  // glibc's gnu_dev_major/minor encoding.
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn);
  return [Number(major & 0xffffffffn), Number(minor & 0xffffffffn)];
}

/** Output is gathered into chunks of about this size: fewer, larger writes through hash, gzip and file. */
const BATCH = 256 * 1024;
/** Files up to this size are read whole (one open/read/close) straight into the output batch. */
const SMALL_FILE = 1024 * 1024;

/** Reads exactly `size` bytes of a small file into `buf` at `off`; throws when the file shrank. */
function readSmall(abs: string, buf: Buffer, off: number, size: number): void {
  const fd = openSync(abs, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
  try {
    let n = 0;
    while (n < size) {
      const got = readSync(fd, buf, off + n, size - n, null);
      if (got === 0) break;
      n += got;
    }
    if (n !== size) {
      throw new HoistError('E_TREE_CHANGED', `${abs} shrank from ${size} to ${n} bytes while it was archived`, {
        hint: 'nothing may write to a directory while hoist turns it into a layer',
      });
    }
  } finally {
    closeSync(fd);
  }
}

async function* walkTree(root: string, overlay: boolean, opts: TarTreeOptions): AsyncGenerator<Buffer> {
  let xattrs = new Map<string, Map<string, Buffer>>();
  if (await xattrToolsAvailable()) {
    xattrs = await readTreeXattrs(root);
  } else if (overlay) {
    throw new HoistError('E_XATTR_TOOL', 'cannot compute a layer diff: getfattr is not installed, so opaque directories cannot be seen', {
      hint: 'install the "attr" package (apt-get install attr)',
    });
  } else {
    opts.onWarning?.(`extended attributes under ${root} not archived: getfattr is not installed (package "attr")`);
  }
  const clamp = (sec: number): number => (opts.sourceDateEpoch !== undefined && sec > opts.sourceDateEpoch ? opts.sourceDateEpoch : sec);
  const seen = new Map<string, string>(); // dev:ino → first name, for hardlinks

  const whiteout = (name: string): Buffer =>
    encodeHeader({ name, type: 'file', mode: 0, uid: 0, gid: 0, size: 0, mtime: 0 });

  // Metadata comes from synchronous calls (a local lstat is microseconds; a thread-pool
  // round trip per file cost more than the work) and small bodies are read straight
  // into the batch. The generator hands out a batch whenever it is full, so the event
  // loop runs between batches and the consumer's backpressure bounds memory.
  let batch = Buffer.allocUnsafe(BATCH);
  let used = 0;
  const flush = (): Buffer | null => {
    if (used === 0) return null;
    const out = batch.subarray(0, used);
    batch = Buffer.allocUnsafe(BATCH);
    used = 0;
    return out;
  };
  /** Makes room for `n` more bytes; returns a full batch to hand out first, if any. */
  const reserve = (n: number): Buffer | null => {
    if (used + n <= batch.length) return null;
    const out = flush();
    if (n > batch.length) batch = Buffer.allocUnsafe(n);
    return out;
  };
  const put = (b: Buffer): Buffer | null => {
    const out = reserve(b.length);
    b.copy(batch, used);
    used += b.length;
    return out;
  };

  async function* walk(dir: string, rel: string): AsyncGenerator<Buffer> {
    const names = sortNames(readdirSync(dir));
    for (const name of names) {
      const abs = join(dir, name);
      const r = rel ? `${rel}/${name}` : name;
      const st: BigIntStats = lstatSync(abs, { bigint: true });
      const attrs = xattrs.get(abs);
      if (st.isSocket()) continue; // sockets have no meaning in a layer (Docker skips them too)
      let out: Buffer | null;
      if (overlay && st.isCharacterDevice() && st.rdev === 0n) {
        if ((out = put(whiteout(rel ? `${rel}/${WHITEOUT_PREFIX}${name}` : `${WHITEOUT_PREFIX}${name}`)))) yield out;
        continue;
      }
      if (overlay && attrs?.has('trusted.overlay.redirect')) {
        throw new HoistError('E_OVERLAY_REDIRECT', `cannot diff ${abs}: it was renamed with overlayfs redirect_dir`, {
          hint: 'mount the overlay with redirect_dir=off (and metacopy=off) for build steps',
        });
      }
      if (overlay && attrs?.has('trusted.overlay.metacopy')) {
        throw new HoistError('E_OVERLAY_METACOPY', `cannot diff ${abs}: overlayfs stored only its metadata (metacopy)`, {
          hint: 'mount the overlay with metacopy=off for build steps',
        });
      }
      const kept = attrs ? new Map([...attrs].filter(([k]) => keepXattr(k))) : undefined;
      const e: TarEntry = {
        name: r,
        type: 'file',
        mode: Number(st.mode & 0o7777n),
        uid: Number(st.uid),
        gid: Number(st.gid),
        size: 0,
        mtime: clamp(Number(st.mtimeMs / 1000n)),
        xattrs: kept?.size ? kept : undefined,
      };
      if (st.isDirectory()) {
        e.type = 'dir';
        e.name = r + '/';
        if ((out = put(encodeHeader(e)))) yield out;
        const opaque = attrs?.get(OVERLAY_OPAQUE_XATTR) ?? attrs?.get('user.overlay.opaque');
        if (overlay && opaque?.toString() === 'y' && (out = put(whiteout(`${r}/${WHITEOUT_OPAQUE}`)))) yield out;
        yield* walk(abs, r);
        continue;
      }
      if (st.nlink > 1n) {
        const key = `${st.dev}:${st.ino}`;
        const first = seen.get(key);
        if (first !== undefined) {
          if ((out = put(encodeHeader({ ...e, type: 'link', linkname: first, xattrs: undefined })))) yield out;
          continue;
        }
        seen.set(key, r);
      }
      if (st.isSymbolicLink()) {
        e.type = 'symlink';
        e.linkname = readlinkSync(abs);
        if ((out = put(encodeHeader(e)))) yield out;
      } else if (st.isCharacterDevice() || st.isBlockDevice()) {
        e.type = st.isCharacterDevice() ? 'char' : 'block';
        [e.devmajor, e.devminor] = devNumbers(st.rdev);
        if ((out = put(encodeHeader(e)))) yield out;
      } else if (st.isFIFO()) {
        e.type = 'fifo';
        if ((out = put(encodeHeader(e)))) yield out;
      } else if (st.size <= BigInt(SMALL_FILE)) {
        e.size = Number(st.size);
        const hdr = encodeHeader(e);
        const pad = padding(e.size);
        if ((out = reserve(hdr.length + e.size + pad.length))) yield out;
        hdr.copy(batch, used);
        readSmall(abs, batch, used + hdr.length, e.size);
        pad.copy(batch, used + hdr.length + e.size);
        used += hdr.length + e.size + pad.length;
      } else {
        e.size = Number(st.size);
        if ((out = put(encodeHeader(e)))) yield out;
        if ((out = flush())) yield out;
        let n = 0;
        for await (const chunk of createReadStream(abs, { highWaterMark: BATCH })) {
          const buf = chunk as Buffer;
          const take = Math.min(buf.length, e.size - n);
          if (take > 0) yield take === buf.length ? buf : buf.subarray(0, take);
          n += take;
        }
        if (n !== e.size) {
          throw new HoistError('E_TREE_CHANGED', `${abs} shrank from ${e.size} to ${n} bytes while it was archived`, {
            hint: 'nothing may write to a directory while hoist turns it into a layer',
          });
        }
        if ((out = put(padding(e.size)))) yield out;
      }
    }
  }

  yield* walk(root, '');
  const out = put(END_OF_ARCHIVE);
  if (out) yield out;
  const last = flush();
  if (last) yield last;
}
