/**
 * The context stat cache: per context path, its stat key (size, mtime and ctime in
 * nanoseconds, inode, mode, uid, gid) and the content digest computed when the file
 * last had that stat. A file whose stat key is unchanged is not read again, so a
 * no-op rebuild reads no file content at all. The key is the plain text of those
 * fields: hashing it cost more than comparing it (a no-op rebuild makes one per file).
 *
 * Stored as one JSON file per context directory under `$ROOT/cache/stat/`, written
 * to a temporary file and renamed, so a crash never leaves a half-written cache.
 */
import { createHash } from 'node:crypto';
import type { BigIntStats } from 'node:fs';
import { mkdir, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../util/atomic.js';

interface Entry {
  /** The stat fields, as {@link StatCache.key} writes them. */
  k: string;
  /** Content digest of the file. */
  d: string;
}

/** Cache of content digests keyed by stat data, for one context directory. */
export class StatCache {
  private dirty = false;

  private constructor(
    private readonly file: string | null,
    private readonly contextDir: string,
    private readonly entries: Map<string, Entry>,
  ) {}

  /** Opens the cache for `contextDir` under `cacheDir` (null: in-memory only). */
  static async open(cacheDir: string | null, contextDir: string): Promise<StatCache> {
    if (!cacheDir) return new StatCache(null, contextDir, new Map());
    // v2: plain-text stat keys (v1 files, named by an xxhash of the directory, are left to expire)
    const file = join(cacheDir, `v2-${createHash('sha256').update(contextDir).digest('hex').slice(0, 32)}.json`);
    let entries = new Map<string, Entry>();
    try {
      const data = JSON.parse(await readFile(file, 'utf8')) as { dir?: string; entries?: Record<string, Entry> };
      // a hash collision between two context paths must not mix their entries
      if (data.dir === contextDir && data.entries && typeof data.entries === 'object') entries = new Map(Object.entries(data.entries));
    } catch {
      entries = new Map();
    }
    return new StatCache(file, contextDir, entries);
  }

  /** The stat key of one path (the path itself is the entry's name). */
  key(st: BigIntStats): string {
    return `${st.size}:${st.mtimeNs}:${st.ctimeNs}:${st.ino}:${st.mode}:${st.uid}:${st.gid}`;
  }

  /** The cached digest of `rel` when its stat key still matches. */
  get(rel: string, key: string): string | undefined {
    const e = this.entries.get(rel);
    return e !== undefined && e.k === key ? e.d : undefined;
  }

  /** Records the digest computed for `rel` at stat key `key`. */
  set(rel: string, key: string, digest: string): void {
    this.entries.set(rel, { k: key, d: digest });
    this.dirty = true;
  }

  /** Writes the cache back if anything changed (atomic rename). */
  async save(): Promise<void> {
    if (!this.file || !this.dirty) return;
    const dir = join(this.file, '..');
    await mkdir(dir, { recursive: true });
    await writeFileAtomic(this.file, JSON.stringify({ dir: this.contextDir, entries: Object.fromEntries(this.entries) }), { sync: false });
    this.dirty = false;
  }
}
