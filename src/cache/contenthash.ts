/**
 * Content digests of file trees: the part of a COPY/ADD cache key that says "these
 * exact files". Per file: type, mode, uid, gid, size, symlink target, xattrs and
 * the bytes (never mtime); per directory: its own metadata plus the sorted child
 * names and child digests. With a stat cache, unchanged files are not read.
 */
import { createHash } from 'node:crypto';
import { createReadStream, type BigIntStats } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { StatCache } from '../context/statcache.js';

export interface HashOptions {
  statCache?: StatCache;
  /** False for context-relative paths that must not count (ignored or excluded); directories that may hold re-included entries stay. */
  include?(rel: string, isDir: boolean): boolean;
  /** Extended attributes of an absolute path (loaded lazily by the caller). */
  xattrs?(abs: string): Promise<Map<string, Buffer> | undefined>;
}

const byBytes = (a: string, b: string): number => Buffer.compare(Buffer.from(a), Buffer.from(b));

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
  const xa = opts.xattrs && !st.isDirectory() ? await opts.xattrs(abs) : undefined;
  const x = xa ? [...xa].sort(([a], [b]) => byBytes(a, b)).map(([k, v]) => `${k}=${v.toString('hex')}`).join(',') : '';
  const link = st.isSymbolicLink() ? await readlink(abs) : '';
  const size = st.isFile() ? st.size : 0n;
  const rdev = st.isCharacterDevice() || st.isBlockDevice() ? st.rdev : 0n;
  return JSON.stringify([typeOf(st), Number(st.mode & 0o7777n), Number(st.uid), Number(st.gid), String(size), link, x, String(rdev)]);
}

async function fileBytesDigest(abs: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(abs, { highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

/**
 * Digest of the tree at `abs` (`rel` is its context-relative name, used for the
 * stat cache and the include filter). Symlinks are hashed as links, never followed.
 */
export async function hashTree(abs: string, rel: string, opts: HashOptions = {}, st?: BigIntStats): Promise<string> {
  st ??= await lstat(abs, { bigint: true });
  if (!st.isDirectory()) {
    const key = opts.statCache?.key(rel, st);
    if (key !== undefined) {
      const cached = opts.statCache!.get(rel, key);
      if (cached) return cached;
    }
    const h = createHash('sha256').update(await header(abs, st, opts));
    if (st.isFile()) h.update('\0' + (await fileBytesDigest(abs)));
    const d = `sha256:${h.digest('hex')}`;
    if (key !== undefined) opts.statCache!.set(rel, key, d);
    return d;
  }
  const h = createHash('sha256').update(await header(abs, st, opts));
  const names = (await readdir(abs)).sort(byBytes);
  // children are hashed in parallel batches and folded in name order
  const BATCH = 64;
  for (let i = 0; i < names.length; i += BATCH) {
    const parts = await Promise.all(names.slice(i, i + BATCH).map(async (name) => {
      const childRel = rel === '' || rel === '.' ? name : `${rel}/${name}`;
      const cst = await lstat(join(abs, name), { bigint: true });
      if (opts.include && !opts.include(childRel, cst.isDirectory())) return '';
      return `\0${name}\0${await hashTree(join(abs, name), childRel, opts, cst)}`;
    }));
    for (const p of parts) if (p) h.update(p);
  }
  return `sha256:${h.digest('hex')}`;
}
