/**
 * Content digests of file trees: the part of a COPY/ADD cache key that says "these
 * exact files". Per file: type, mode, uid, gid, size, symlink target, xattrs and
 * the bytes (never mtime); per directory: its own metadata plus the sorted child
 * names and child digests. With a stat cache, unchanged files are not read.
 */
import { createHash, hash } from 'node:crypto';
import { closeSync, constants as fsConstants, createReadStream, lstatSync, openSync, readdirSync, readlinkSync, readSync, type BigIntStats } from 'node:fs';
import type { StatCache } from '../context/statcache.js';

export interface HashOptions {
  statCache?: StatCache;
  /** False for context-relative paths that must not count (ignored or excluded); directories that may hold re-included entries stay. */
  include?(rel: string, isDir: boolean): boolean;
  /** Extended attributes of an absolute path (loaded lazily by the caller; a promise only until they are). */
  xattrs?(abs: string): Map<string, Buffer> | undefined | Promise<Map<string, Buffer> | undefined>;
}

const byBytes = (a: string, b: string): number => Buffer.compare(Buffer.from(a), Buffer.from(b));
const SURROGATE = /[\uD800-\uDFFF]/;

/**
 * Sorts names by their UTF-8 bytes. Without surrogate pairs, UTF-16 code unit order is
 * the same order, and the plain sort needs no buffer per comparison.
 */
export function sortNames(names: string[]): string[] {
  return names.some((n) => SURROGATE.test(n)) ? names.sort(byBytes) : names.sort();
}

function typeOf(st: BigIntStats): string {
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isFile()) return 'file';
  if (st.isFIFO()) return 'fifo';
  if (st.isCharacterDevice()) return 'char';
  if (st.isBlockDevice()) return 'block';
  return 'socket';
}

async function header(abs: string, st: BigIntStats, opts: HashOptions): Promise<string> {
  // directories are hashed on every build: their xattrs are left out so a no-op build spawns nothing
  let xa = opts.xattrs && !st.isDirectory() ? opts.xattrs(abs) : undefined;
  if (xa instanceof Promise) xa = await xa;
  const x = xa ? [...xa].sort(([a], [b]) => byBytes(a, b)).map(([k, v]) => `${k}=${v.toString('hex')}`).join(',') : '';
  const link = st.isSymbolicLink() ? readlinkSync(abs) : '';
  const size = st.isFile() ? st.size : 0n;
  const rdev = st.isCharacterDevice() || st.isBlockDevice() ? st.rdev : 0n;
  return JSON.stringify([typeOf(st), Number(st.mode & 0o7777n), Number(st.uid), Number(st.gid), String(size), link, x, String(rdev)]);
}

/** Files up to this size are read with one synchronous read into a shared buffer. */
const SMALL_FILE = 1 << 20;
let smallBuf: Buffer | undefined;

async function fileBytesDigest(abs: string, size: bigint): Promise<string> {
  if (size <= BigInt(SMALL_FILE)) {
    // the common case: no stream, no per-file buffer or hash object, which cost more than the hashing
    smallBuf ??= Buffer.allocUnsafe(SMALL_FILE + 1);
    const fd = openSync(abs, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
    try {
      let n = 0;
      for (;;) {
        // ask for one byte more than the lstat size: a short read is the end of the file, so one call usually does
        const want = Math.min(Number(size) + 1 - n, smallBuf.length - n);
        const got = readSync(fd, smallBuf, n, want > 0 ? want : smallBuf.length - n, null);
        if (got === 0) break;
        n += got;
        if (n === smallBuf.length || (want > 0 && got < want)) break;
      }
      if (n <= SMALL_FILE) return hash('sha256', smallBuf.subarray(0, n), 'hex');
    } finally {
      closeSync(fd);
    }
    // it grew past the small size since the lstat: hash it as a stream like any big file
  }
  const h = createHash('sha256');
  for await (const chunk of createReadStream(abs, { highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** Entries handled between two turns of the event loop, so a huge context does not stall progress output. */
const YIELD_EVERY = 512;
let sinceYield = 0;

/**
 * Digest of the tree at `abs` (`rel` is its context-relative name, used for the
 * stat cache and the include filter). Symlinks are hashed as links, never followed.
 * Metadata comes from synchronous calls: a local lstat is microseconds, less than a
 * thread-pool round trip, and a no-op rebuild is almost nothing but lstats.
 */
export async function hashTree(abs: string, rel: string, opts: HashOptions = {}, st?: BigIntStats): Promise<string> {
  st ??= lstatSync(abs, { bigint: true });
  if (!st.isDirectory()) return hashEntry(abs, rel, opts, st);
  const h = createHash('sha256').update(await header(abs, st, opts));
  const names = sortNames(readdirSync(abs));
  const base = abs.endsWith('/') ? abs : abs + '/';
  const relBase = rel === '' || rel === '.' ? '' : rel + '/';
  const cache = opts.statCache;
  for (const name of names) {
    const childAbs = base + name;
    const childRel = relBase + name;
    const cst = lstatSync(childAbs, { bigint: true });
    const isDir = cst.isDirectory();
    if (opts.include && !opts.include(childRel, isDir)) continue;
    if (++sinceYield >= YIELD_EVERY) {
      sinceYield = 0;
      await new Promise<void>((r) => setImmediate(r));
    }
    // the no-op rebuild's whole work per file: one lstat and one string compare, no promise
    const cached = !isDir && cache ? cache.get(childRel, cache.key(cst)) : undefined;
    const d = cached ?? (isDir ? await hashTree(childAbs, childRel, opts, cst) : await hashEntry(childAbs, childRel, opts, cst));
    h.update(`\0${name}\0${d}`);
  }
  return `sha256:${h.digest('hex')}`;
}

/** Digest of one non-directory entry, through the stat cache. */
async function hashEntry(abs: string, rel: string, opts: HashOptions, st: BigIntStats): Promise<string> {
  const key = opts.statCache?.key(st);
  if (key !== undefined) {
    const cached = opts.statCache!.get(rel, key);
    if (cached) return cached;
  }
  const head = await header(abs, st, opts);
  const d = `sha256:${hash('sha256', st.isFile() ? `${head}\0${await fileBytesDigest(abs, st.size)}` : head, 'hex')}`;
  if (key !== undefined) opts.statCache!.set(rel, key, d);
  return d;
}
