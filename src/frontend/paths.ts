/** Path rules of BuildKit's `util/system` for Linux targets (NormalizePath, NormalizeWorkdir). */
import { goClean } from '../context/dockerignore.js';

export { goClean };

/** Go's path.Join: joins non-empty elements and cleans. */
export function goJoin(...parts: string[]): string {
  const nonEmpty = parts.filter((p) => p !== '');
  return nonEmpty.length === 0 ? '' : goClean(nonEmpty.join('/'));
}

/**
 * `newPath` relative to `parent`, cleaned; with `keepSlash` a trailing `/` or `/.`
 * on the input survives (it means "a directory" to COPY).
 */
export function normalizePath(parent: string, newPath: string, keepSlash: boolean): string {
  const orig = newPath;
  let p = newPath.startsWith('/') ? goClean(newPath) : goClean(goJoin(parent || '/', newPath));
  if (keepSlash) {
    if (orig.endsWith('/') && !p.endsWith('/')) p += '/';
    else if (orig.endsWith('/.')) {
      if (p !== '/') p += '/';
      p += '.';
    }
  }
  return p;
}

/** The new working directory after `WORKDIR wd` in `current` (relative paths build on it). */
export function normalizeWorkdir(current: string, wd: string): string {
  if (wd.startsWith('/')) return goClean(wd);
  return goClean(goJoin('/', current || '/', wd));
}

/** A COPY destination relative to the working directory (BuildKit's pathRelativeToWorkingDir). */
export function destRelativeToWorkdir(workdir: string, p: string): string {
  if (p.startsWith('/')) return normalizePath('/', p, true);
  if (p === '.' || p === '') p = './';
  return normalizePath(workdir || '/', p, true);
}

/** True when a path has glob characters (`*`, `?`, `[`). */
export function hasWildcards(p: string): boolean {
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '\\') {
      i++;
      continue;
    }
    if (p[i] === '*' || p[i] === '?' || p[i] === '[') return true;
  }
  return false;
}
