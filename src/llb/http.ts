/** What the frontend and the solver agree on about `ADD <url>` sources (BuildKit's rules). */
import { HoistError } from '../util/errors.js';

/** The file name BuildKit's Dockerfile frontend gives a URL: the last path component, or `__unnamed__`. */
export function urlFilename(u: string): string {
  let p = '';
  try {
    p = new URL(u).pathname;
  } catch {
    return '__unnamed__';
  }
  try {
    p = decodeURIComponent(p);
  } catch {
    // Go keeps an undecodable path as it is
  }
  const base = p.replace(/\/+$/, '').split('/').pop() ?? '';
  if (base === '' || base === '.') return '__unnamed__';
  // pathutil.SafeFileName: control characters or a dot name become "download"
  // eslint-disable-next-line no-control-regex
  if (base === '..' || /[\x00-\x1f\x7f]/.test(base)) return 'download';
  return base;
}

/** A `--checksum` value checked as go-digest's Parse does; returns it unchanged. */
export function parseChecksum(v: string): string {
  const m = /^([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$/.exec(v);
  if (!m) throw new HoistError('E_CHECKSUM', 'invalid checksum digest format', { hint: 'write it as sha256:<64 hex digits>' });
  const len = { sha256: 64, sha384: 96, sha512: 128 }[m[1]!];
  if (len === undefined) throw new HoistError('E_CHECKSUM', 'unsupported digest algorithm', { hint: 'use sha256:, sha384: or sha512:' });
  if (m[2]!.length !== len || !/^[a-f0-9]+$/.test(m[2]!)) throw new HoistError('E_CHECKSUM', 'invalid checksum digest format', { hint: `a ${m[1]} digest has ${len} lowercase hex digits` });
  return v;
}

/** A file name as a copy source path that matches only itself (wildcard characters escaped). */
export function literalPath(name: string): string {
  // a name without wildcards is taken literally already (a backslash in it included)
  return /[*?[]/.test(name) ? '/' + name.replace(/[\\*?[]/g, (c) => '\\' + c) : '/' + name;
}
