import { createHash } from 'node:crypto';
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ExecutionContext } from 'ava';
import tar from 'tar-stream';
import { keepRawPaxXattrs, RAW_XATTRS } from '../../src/snapshot/tarhdr.js';

/** A tar entry as test layers describe it. */
export interface TEntry {
  name: string;
  type?: tar.Header['type'];
  content?: string;
  linkname?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: Date;
  devmajor?: number;
  devminor?: number;
  pax?: Record<string, string>;
}

/** Builds a tar archive in memory with tar-stream (test layers are tiny). */
export async function makeTar(entries: TEntry[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const c of pack) chunks.push(c as Buffer);
  })();
  for (const e of entries) {
    const type = e.type ?? 'file';
    const header = {
      name: e.name,
      type,
      mode: e.mode ?? (type === 'directory' ? 0o755 : 0o644),
      uid: e.uid ?? 0,
      gid: e.gid ?? 0,
      mtime: e.mtime ?? new Date(1_600_000_000_000),
      linkname: e.linkname,
      devmajor: e.devmajor,
      devminor: e.devminor,
      pax: e.pax,
    } as tar.Header;
    await new Promise<void>((res, rej) => {
      pack.entry(header, e.content ?? '', (err) => (err ? rej(err) : res()));
    });
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

/** A byte stream over a buffer. */
export function streamOf(buf: Buffer): Readable {
  return Readable.from([buf], { objectMode: false });
}

/** A scratch directory removed after the test. */
export async function scratch(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'hoist-snap-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Creates `<base>/dest` (empty) and `<base>/victim` (with `hello`) side by side. */
export async function breakoutSetup(t: ExecutionContext): Promise<{ base: string; dest: string; victim: string }> {
  const base = await scratch(t);
  const dest = join(base, 'dest');
  const victim = join(base, 'victim');
  await mkdir(dest);
  await mkdir(victim);
  await writeFile(join(victim, 'hello'), 'hello victim\n', { mode: 0o644 });
  return { base, dest, victim };
}

/** Every path under `dir` with its type, mode, owner and content digest or link target. */
export async function treeListing(dir: string): Promise<string[]> {
  const out: string[] = [];
  async function walk(d: string, rel: string): Promise<void> {
    for (const name of (await readdir(d)).sort()) {
      const p = join(d, name);
      const r = rel ? `${rel}/${name}` : name;
      const st = await lstat(p);
      let what: string;
      if (st.isSymbolicLink()) what = `link->${await readlink(p)}`;
      else if (st.isFile()) what = `file:${createHash('sha256').update(await readFile(p)).digest('hex').slice(0, 16)}`;
      else if (st.isDirectory()) what = 'dir';
      else if (st.isCharacterDevice()) what = `chr:${st.rdev}`;
      else if (st.isBlockDevice()) what = `blk:${st.rdev}`;
      else if (st.isFIFO()) what = 'fifo';
      else what = 'other';
      out.push(`${r} ${what} ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}`);
      if (st.isDirectory()) await walk(p, r);
    }
  }
  await walk(dir, '');
  return out;
}

/** One tar entry, as the round-trip tests compare them. */
export interface ListedEntry {
  name: string;
  type: string;
  mode: string;
  uid: number;
  gid: number;
  size: number;
  linkname: string;
  digest: string;
  mtime: number;
  xattrs: Record<string, string>;
  devmajor: number;
  devminor: number;
}

/** Reads a tar stream into a list of entries (name, type, mode, owner, size, link, sha256, xattrs). */
export async function listTar(stream: Readable): Promise<ListedEntry[]> {
  const ex = tar.extract();
  keepRawPaxXattrs(ex);
  const out: ListedEntry[] = [];
  const feed = pipeline(stream, ex as unknown as NodeJS.WritableStream);
  feed.catch(() => undefined); // surfaces through the iterator, awaited below
  for await (const entry of ex) {
    const h = entry.header;
    const hash = createHash('sha256');
    for await (const c of entry) hash.update(c as Buffer);
    const pax = (h.pax ?? {}) as Record<string | symbol, unknown>;
    const raw = pax[RAW_XATTRS] as Map<string, Buffer> | undefined;
    const paxNum = (k: string, d: number): number => (typeof pax[k] === 'string' ? Math.floor(Number(pax[k])) : d);
    const xattrs: Record<string, string> = {};
    for (const [k, v] of raw ?? []) xattrs[k] = v.toString('hex');
    out.push({
      name: h.name,
      type: h.type,
      mode: ((h.mode ?? 0) & 0o7777).toString(8),
      uid: paxNum('uid', h.uid),
      gid: paxNum('gid', h.gid),
      size: h.size,
      linkname: h.linkname ?? '',
      digest: hash.digest('hex').slice(0, 16),
      mtime: paxNum('mtime', h.mtime ? Math.floor(h.mtime.getTime() / 1000) : 0),
      xattrs,
      devmajor: h.devmajor ?? 0,
      devminor: h.devminor ?? 0,
    });
  }
  await feed;
  return out;
}

/** True when running as root (device nodes, ownership and overlay mounts need it). */
export const isRoot = process.getuid?.() === 0;
