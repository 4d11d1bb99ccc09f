/**
 * The persistent cache index under `$ROOT/cache/index/`: cache key → the layer the
 * step produced (diff ID, blob descriptor, creation time), one small JSON record per
 * key, written to a temporary file and renamed so readers never see half a record.
 * A record is a hit only while its blob is still in the store.
 */
import { mkdir, readFile, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import type { LayerRef } from '../llb/ops.js';
import { isDigest } from '../image/digest.js';
import { writeFileAtomic } from '../util/atomic.js';

export interface CacheRecord {
  key: string;
  /** The layer the step added (absent for steps that add none). */
  layer?: LayerRef;
  created: string;
}

/** The cache index of one hoist root. */
export class CacheIndex {
  constructor(private readonly root: string) {}

  private path(key: string): string {
    const hex = key.replace(/^sha256:/, '');
    return join(this.root, 'cache', 'index', hex.slice(0, 2), `${hex}.json`);
  }

  /** The record for `key`, or undefined. The record's file time is bumped (last use, for pruning). */
  async get(key: string): Promise<CacheRecord | undefined> {
    const p = this.path(key);
    try {
      const rec = JSON.parse(await readFile(p, 'utf8')) as CacheRecord;
      if (rec.key !== key) return undefined;
      if (rec.layer && (!isDigest(rec.layer.diffID) || !isDigest(rec.layer.blob?.digest))) return undefined;
      // the touch marks it used for `builder prune`; if a prune took the file meanwhile, this is a miss
      const now = new Date();
      await utimes(p, now, now);
      return rec;
    } catch {
      return undefined;
    }
  }

  /** Stores a record atomically. */
  async put(rec: CacheRecord): Promise<void> {
    const p = this.path(rec.key);
    await mkdir(join(p, '..'), { recursive: true });
    await writeFileAtomic(p, JSON.stringify(rec), { sync: false });
  }
}
