import { lstatSync, mkdirSync, readlinkSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { HoistError } from '../util/errors.js';

/** Most symlinks followed while resolving one path, as Linux's MAXSYMLINKS. */
const MAX_SYMLINK_HOPS = 40;

/** Error for a layer entry that tries to leave its root or is otherwise hostile. */
export function unsafeEntry(entry: string, why: string): HoistError {
  return new HoistError('E_LAYER_UNSAFE', `refusing layer entry ${JSON.stringify(entry)}: ${why}`, {
    hint: 'the layer archive is malformed or hostile; rebuild it or obtain the image from a trusted source',
  });
}

/**
 * Splits a tar entry name into clean components relative to the layer root.
 * Leading `/` and `./` are rooted at the layer root (as tar does); a `..` that would
 * climb above the root is refused, because no honest layer writer produces one.
 */
export function entryComponents(name: string, entry = name): string[] {
  if (name.includes('\0')) throw unsafeEntry(entry, 'name contains a NUL byte');
  const out: string[] = [];
  for (const c of name.split('/')) {
    if (c === '' || c === '.') continue;
    if (c === '..') {
      if (out.length === 0) throw unsafeEntry(entry, 'name climbs above the layer root with ".."');
      out.pop();
      continue;
    }
    out.push(c);
  }
  return out;
}

/** Result of resolving an entry's parent directory inside a root. */
export interface Resolved {
  /** Real path of the directory on disk (always `root` or below it). */
  path: string;
  /** Components of that directory relative to root, symlinks already resolved. */
  rel: string[];
}

export interface ResolveOptions {
  /** Create missing directories (mode 0755) instead of reporting "not found". */
  create?: boolean;
  /** Called after creating a directory, so the caller can copy metadata from lower layers. */
  onCreate?: (path: string, rel: string[]) => void;
  /** Name of the tar entry, for error messages. */
  entry?: string;
}

/**
 * Resolves directory components inside `root` the way a chroot would: symlinks are
 * followed, but absolute targets restart at `root` and `..` never climbs above it,
 * so the result can never name anything outside `root`. Returns null when a
 * component is missing (and `create` is off) or is not a directory.
 * Synchronous: each step is one local lstat (microseconds), cheaper than a
 * thread-pool round trip, and the unpacker calls it once per entry.
 */
export function resolveDirInRoot(root: string, comps: string[], opts: ResolveOptions = {}): Resolved | null {
  const entry = opts.entry ?? comps.join('/');
  const cur: string[] = [];
  const pending = [...comps];
  let hops = 0;
  while (pending.length > 0) {
    const c = pending.shift()!;
    if (c === '' || c === '.') continue;
    if (c === '..') {
      cur.pop();
      continue;
    }
    const p = join(root, ...cur, c);
    let st: Stats;
    try {
      st = lstatSync(p);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      if (!opts.create) return null;
      mkdirSync(p, { mode: 0o755 });
      cur.push(c);
      opts.onCreate?.(p, [...cur]);
      continue;
    }
    if (st.isDirectory()) {
      cur.push(c);
    } else if (st.isSymbolicLink()) {
      if (++hops > MAX_SYMLINK_HOPS) throw unsafeEntry(entry, 'too many levels of symbolic links in its parent path');
      const target = readlinkSync(p);
      if (target.startsWith('/')) cur.length = 0;
      pending.unshift(...target.split('/'));
    } else {
      if (!opts.create) return null;
      throw unsafeEntry(entry, `parent ${JSON.stringify(join(...cur, c))} is not a directory`);
    }
  }
  return { path: cur.length ? join(root, ...cur) : root, rel: cur };
}

/**
 * lstat of `comps` inside `root` without following any symlink on the way: returns
 * null when a parent is missing, not a directory, or a symlink.
 */
export function lstatNoFollow(root: string, comps: string[]): Stats | null {
  let p = root;
  for (let i = 0; i < comps.length; i++) {
    p = join(p, comps[i]!);
    let st: Stats;
    try {
      st = lstatSync(p);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return null;
      throw e;
    }
    if (i === comps.length - 1) return st;
    if (!st.isDirectory()) return null;
  }
  return lstatSync(root);
}
