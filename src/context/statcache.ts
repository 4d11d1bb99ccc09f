/**
 * The context stat cache: per context path, an xxhash of (path, size, mtime, ctime,
 * inode, mode, uid, gid) and the content digest computed when the file last had
 * that stat. A file whose stat key is unchanged is not read again, so a no-op
 * rebuild reads no file content at all.
 *
 * Stored as one JSON file per context directory under `$ROOT/cache/stat/`, written
 * to a temporary file and renamed, so a crash never leaves a half-written cache.
 */
import { randomBytes } from 'node:crypto';
import type { BigIntStats } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import xxhash from 'xxhash-wasm';

type Hasher = Awaited<ReturnType<typeof xxhash>>;
let hasherP: Promise<Hasher> | undefined;

/** The xxhash-wasm instance (instantiated once per process). */
export function hasher(): Promise<Hasher> {
  hasherP ??= xxhash();
  return hasherP;
}

interface Entry {
  /** xxhash64 of the stat fields, hex. */
  k: string;
  /** Content digest of the file. */
  d: string;
}

/** Cache of content digests keyed by stat data, for one context directory. */
export class StatCache {
  private dirty = false;
  private readonly seen = new Set<string>();

  private constructor(
    private readonly file: string | null,
    private readonly contextDir: string,
    private readonly entries: Map<string, Entry>,
    private readonly h: Hasher,
  ) {}

  /** Opens the cache for `contextDir` under `cacheDir` (null: in-memory only). */
  static async open(cacheDir: string | null, contextDir: string): Promise<StatCache> {
    const h = await hasher();
    if (!cacheDir) return new StatCache(null, contextDir, new Map(), h);
    const file = join(cacheDir, `${h.h64ToString(contextDir)}.json`);
    let entries = new Map<string, Entry>();
    try {
      const data = JSON.parse(await readFile(file, 'utf8')) as { dir?: string; entries?: Record<string, Entry> };
      // a hash collision between two context paths must not mix their entries
      if (data.dir === contextDir && data.entries && typeof data.entries === 'object') entries = new Map(Object.entries(data.entries));
    } catch {
      entries = new Map();
    }
    return new StatCache(file, contextDir, entries, h);
  }

  /** The stat key of one path. */
  key(rel: string, st: BigIntStats): string {
    return this.h.h64ToString(`${rel}\0${st.size}\0${st.mtimeNs}\0${st.ctimeNs}\0${st.ino}\0${st.mode}\0${st.uid}\0${st.gid}`);
  }

  /** The cached digest of `rel` when its stat key still matches. */
  get(rel: string, key: string): string | undefined {
    this.seen.add(rel);
    const e = this.entries.get(rel);
    return e && e.k === key ? e.d : undefined;
  }

  /** Records the digest computed for `rel` at stat key `key`. */
  set(rel: string, key: string, digest: string): void {
    this.seen.add(rel);
    this.entries.set(rel, { k: key, d: digest });
    this.dirty = true;
  }

  /** Writes the cache back if anything changed (atomic rename). */
  async save(): Promise<void> {
    if (!this.file || !this.dirty) return;
    const dir = join(this.file, '..');
    await mkdir(dir, { recursive: true });
    const tmp = `${this.file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
    await writeFile(tmp, JSON.stringify({ dir: this.contextDir, entries: Object.fromEntries(this.entries) }));
    await rename(tmp, this.file);
    this.dirty = false;
  }
}
