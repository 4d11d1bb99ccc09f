/**
 * The build context: a host directory, its `.dockerignore`, and content digests of
 * exactly the paths a build step reads, through the stat cache so unchanged files
 * are never read twice.
 */
import { lstat, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { hashTree } from '../cache/contenthash.js';
import { readTreeXattrs, xattrToolsAvailable } from '../snapshot/xattr.js';
import { HoistError } from '../util/errors.js';
import { IgnoreMatcher, readDockerignore, type IgnorePattern } from './dockerignore.js';
import { StatCache } from './statcache.js';

/** An opened build context. */
export class BuildContext {
  private xattrs?: Promise<Map<string, Map<string, Buffer>>>;

  private constructor(
    readonly dir: string,
    readonly ignoreFile: string | null,
    readonly patterns: IgnorePattern[],
    readonly matcher: IgnoreMatcher,
    private readonly stats: StatCache,
  ) {}

  /** Opens `dir` with its ignore file; `cacheDir` holds the stat cache (null: none). */
  static async open(dir: string, dockerfilePath: string | undefined, cacheDir: string | null): Promise<BuildContext> {
    const abs = resolve(dir);
    const st = await stat(abs).catch(() => null);
    if (!st) throw new HoistError('E_CONTEXT', `build context ${abs} does not exist`, { hint: 'pass an existing directory as the build context' });
    if (!st.isDirectory()) throw new HoistError('E_CONTEXT', `build context ${abs} is not a directory`, { hint: 'pass a directory as the build context' });
    const ig = await readDockerignore(abs, dockerfilePath);
    const stats = await StatCache.open(cacheDir, abs);
    return new BuildContext(abs, ig.file, ig.patterns, new IgnoreMatcher(ig.patterns, ig.file), stats);
  }

  /** True when `.dockerignore` keeps `rel` (context-relative) out of the context. */
  isIgnored(rel: string): boolean {
    return this.matcher.matchesOrParentMatches(rel);
  }

  /** The ignore pattern that excludes `rel`, for error messages. */
  ignoredBy(rel: string): IgnorePattern | undefined {
    let hit: IgnorePattern | undefined;
    for (const p of this.patterns) {
      if (new IgnoreMatcher([p]).matchesOrParentMatches(rel) && !p.exclusion) hit = p;
    }
    return hit;
  }

  private loadedXattrs?: Map<string, Map<string, Buffer>>;

  /** The xattrs of a context path: read for the whole tree at the first call, then a lookup (no promise). */
  private xattrsOf(abs: string): Map<string, Buffer> | undefined | Promise<Map<string, Buffer> | undefined> {
    if (this.loadedXattrs) return this.loadedXattrs.get(abs);
    this.xattrs ??= xattrToolsAvailable()
      .then((ok) => (ok ? readTreeXattrs(this.dir) : new Map<string, Map<string, Buffer>>()))
      .then((m) => (this.loadedXattrs = m));
    return this.xattrs.then((m) => m.get(abs));
  }

  /**
   * Content digest of the context entry `rel` (already resolved, not ignored), its
   * subtree filtered by the ignore file and `exclude`.
   */
  async digest(rel: string, exclude?: IgnoreMatcher): Promise<string> {
    const abs = rel === '' ? this.dir : join(this.dir, rel);
    const st = await lstat(abs, { bigint: true });
    return hashTree(abs, rel, {
      statCache: this.stats,
      xattrs: (p) => this.xattrsOf(p),
      // nothing to filter (no ignore file, no --exclude): no call per entry
      include: this.matcher.empty && (!exclude || exclude.empty) ? undefined : (r, isDir) => {
        const sub = rel && r.startsWith(rel + '/') ? r.slice(rel.length + 1) : r;
        if (exclude && !exclude.empty && exclude.matchesOrParentMatches(sub)) return false;
        if (!this.matcher.matchesOrParentMatches(r)) return true;
        return isDir && this.matcher.mayIncludeUnder(r);
      },
    }, st);
  }

  /** Persists the stat cache. */
  save(): Promise<void> {
    return this.stats.save();
  }
}
