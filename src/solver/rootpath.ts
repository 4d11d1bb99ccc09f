/** Paths inside a root filesystem or the build context: symlinks resolved as if the root were `/`, and Go-style wildcards. */
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { HoistError } from '../util/errors.js';

const MAX_LINKS = 40;

/**
 * Resolves `p` (absolute, inside the root) to a host path under `root`, following
 * symlinks as if `root` were `/` (absolute targets restart at root, `..` stops there).
 * With `followLast` false the final component is not followed.
 */
export async function resolveInRoot(root: string, p: string, followLast = true): Promise<string> {
  const pending = p.split('/').filter((c) => c !== '' && c !== '.');
  const cur: string[] = [];
  let hops = 0;
  while (pending.length) {
    const c = pending.shift()!;
    if (c === '..') {
      cur.pop();
      continue;
    }
    const host = join(root, ...cur, c);
    const st = await lstat(host).catch(() => null);
    if (st?.isSymbolicLink() && (followLast || pending.length > 0)) {
      if (++hops > MAX_LINKS) throw new HoistError('E_SYMLINK_LOOP', `too many levels of symbolic links resolving ${p}`);
      const target = await readlink(host);
      if (target.startsWith('/')) cur.length = 0;
      pending.unshift(...target.split('/').filter((x) => x !== '' && x !== '.'));
      continue;
    }
    cur.push(c);
  }
  return join(root, ...cur);
}

/** Go's path.Match for one path component. */
export function globToRegExp(pat: string): RegExp {
  let re = '';
  for (let i = 0; i < pat.length; i++) {
    const c = pat[i]!;
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '\\' && i + 1 < pat.length) re += pat[++i]!.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    else if (c === '[') {
      const end = pat.indexOf(']', i + 2);
      if (end < 0) throw new HoistError('E_PATTERN', `syntax error in pattern ${pat}`);
      let body = pat.slice(i + 1, end);
      if (body.startsWith('^') || body.startsWith('!')) body = '^' + body.slice(1);
      re += `[${body.replace(/\\/g, '\\\\')}]`;
      i = end;
    } else re += c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`, 's');
}

/** True when a path has wildcard characters. */
export const hasGlob = (s: string): boolean => /[*?[]/.test(s);

/** Expands wildcards in `p` (absolute) against `root`; a path without wildcards is returned as is when it exists. */
export async function resolveWildcards(root: string, p: string, skip?: (rel: string) => boolean): Promise<string[]> {
  const comps = p.split('/').filter((c) => c !== '' && c !== '.');
  let found: string[] = [''];
  for (const comp of comps) {
    const next: string[] = [];
    for (const base of found) {
      if (!hasGlob(comp)) {
        const rel = base ? `${base}/${comp}` : comp;
        next.push(rel);
        continue;
      }
      const dir = await resolveInRoot(root, '/' + base);
      const names = await readdir(dir).catch(() => [] as string[]);
      const re = globToRegExp(comp);
      for (const n of names.sort()) if (re.test(n)) next.push(base ? `${base}/${n}` : n);
    }
    found = next;
  }
  const out: string[] = [];
  for (const rel of found) {
    if (skip?.(rel)) continue;
    const host = await resolveInRoot(root, '/' + rel);
    if (await lstat(host).catch(() => null)) out.push(rel);
  }
  return out;
}

