/**
 * The http source of `ADD https://…` (BuildKit's source/http): one file downloaded
 * into a directory of its own, mode 0600, owner 0:0, mtime from Last-Modified (the
 * epoch without it). Remote files are never unpacked here; the copy step decides.
 *
 * Cache key, as BuildKit's formatCacheKey: the file name, the content digest and the
 * Last-Modified time. Without `--checksum` the URL is asked every build, with the
 * ETags of what is already stored in If-None-Match: a 304 (or the same bytes again)
 * gives the same key and the ADD step is CACHED. With `--checksum` the key comes from
 * the pinned digest alone and nothing is fetched unless the step has to run and the
 * file is not stored yet.
 *
 * Store: `$ROOT/cache/http/<key>/<filename>` (the downloaded file, kept), and
 * `$ROOT/cache/http/url-<hash>.json` (ETag → key records of a URL).
 */
import { createHash, type Hash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { chmod, mkdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { canonicalJSON, sha256Digest, type HttpOp } from '../llb/ops.js';
import { HoistError } from '../util/errors.js';

/** A resolved http source. */
export interface HttpSource {
  /** The cache key of the downloaded file (name, content digest, Last-Modified). */
  key: string;
  /** True when nothing new had to be downloaded (304, the same bytes as before, or a pinned checksum already stored). */
  cached: boolean;
  /** The directory holding the file (downloads it first when it is not stored yet). */
  dir(): Promise<string>;
}

interface UrlRecord {
  etag: string;
  key: string;
  lastModified?: string;
}

const USER_AGENT = 'hoist/0.1 (buildkit-compatible)';
const MAX_RECORDS = 8;

function cacheKey(filename: string, digest: string, lastModified?: string): string {
  return sha256Digest(canonicalJSON({ http: { Filename: filename, Perm: 0o600, UID: 0, GID: 0, Checksum: digest, LastModTime: lastModified } }));
}

/** BuildKit's etagValue: a weak ETag compares as the strong one. */
const etagValue = (v: string): string => v.replace(/^W\//, '');

/** Resolves an http source: asks the server (unless a checksum pins the content) and stores what it sends. */
export async function resolveHttp(root: string, op: HttpOp, tmpDir: () => Promise<string>, opts: { fresh?: boolean } = {}): Promise<HttpSource> {
  const base = join(root, 'cache', 'http');
  const dirOf = (key: string): string => join(base, key.slice('sha256:'.length));
  const have = async (key: string): Promise<boolean> => !!(await stat(join(dirOf(key), op.filename)).catch(() => null));

  if (op.checksum) {
    const key = cacheKey(op.filename, op.checksum);
    const stored = !opts.fresh && (await have(key));
    let p: Promise<string> | undefined;
    return {
      key, cached: stored,
      dir: () => (p ??= (async () => {
        if (await have(key)) return dirOf(key);
        const got = await download(op, [], tmpDir);
        if (got.kind !== 'body') throw new Error('unexpected 304');
        return store(got.tmp, key, dirOf(key));
      })()),
    };
  }

  const urlFile = join(base, `url-${sha256Digest(`${op.url}\0${op.filename}`).slice(7)}.json`);
  const records = opts.fresh ? [] : await readRecords(urlFile);
  const usable: UrlRecord[] = [];
  for (const r of records) if (await have(r.key)) usable.push(r);
  const got = await download(op, usable.map((r) => r.etag), tmpDir);
  if (got.kind === 'not-modified') {
    const r = usable.find((x) => x.etag === got.etag) ?? (usable.length === 1 && got.etag === '' ? usable[0] : undefined);
    if (!r) throw new HoistError('E_HTTP', `failed to load cache key: invalid not-modified ETag: ${got.etag} (${op.url})`);
    return { key: r.key, cached: true, dir: async () => dirOf(r.key) };
  }
  const key = cacheKey(op.filename, got.digest, got.lastModified);
  const existed = await have(key);
  const dir = await store(got.tmp, key, dirOf(key));
  if (got.etag) {
    const rec: UrlRecord = { etag: got.etag, key, ...(got.lastModified ? { lastModified: got.lastModified } : {}) };
    const all = [rec, ...(await readRecords(urlFile)).filter((r) => r.etag !== rec.etag)].slice(0, MAX_RECORDS);
    const tmp = `${urlFile}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify(all) + '\n');
    await rename(tmp, urlFile);
  }
  return { key, cached: existed, dir: async () => dir };
}

async function readRecords(file: string): Promise<UrlRecord[]> {
  try {
    const v = JSON.parse(await readFile(file, 'utf8')) as unknown;
    return Array.isArray(v) ? (v as UrlRecord[]).filter((r) => typeof r?.etag === 'string' && typeof r.key === 'string') : [];
  } catch {
    return [];
  }
}

/** Moves a downloaded tmp dir into place (another build may have stored the same key first: theirs is as good). */
async function store(tmp: string, key: string, final: string): Promise<string> {
  await mkdir(join(final, '..'), { recursive: true, mode: 0o700 });
  await rename(tmp, final).catch(async () => {
    await rm(tmp, { recursive: true, force: true });
    if (!(await stat(final).catch(() => null))) throw new HoistError('E_HTTP', `cannot store the download for ${key}`);
  });
  return final;
}

type Downloaded =
  | { kind: 'body'; tmp: string; digest: string; lastModified?: string; etag: string }
  | { kind: 'not-modified'; etag: string };

/** GETs the URL (following redirects); the body goes to `<tmp>/<filename>` hashed on the way. */
async function download(op: HttpOp, etags: string[], tmpDir: () => Promise<string>): Promise<Downloaded> {
  const headers: Record<string, string> = { 'User-Agent': USER_AGENT };
  if (etags.length) headers['If-None-Match'] = etags.join(', ');
  let res: IncomingMessage;
  try {
    res = await get(op.url, headers);
  } catch (e) {
    if (e instanceof HoistError) throw e;
    throw new HoistError('E_HTTP', `failed to load cache key: Get ${JSON.stringify(op.url)}: ${(e as Error).message}`, { hint: 'check the URL and the network' });
  }
  const status = res.statusCode ?? 0;
  const etag = etagValue(res.headers.etag ?? '');
  if (status === 304 && etags.length) {
    res.resume();
    return { kind: 'not-modified', etag: etag || (etags.length === 1 ? etags[0]! : '') };
  }
  if (status < 200 || status >= 300) {
    res.resume();
    throw new HoistError('E_HTTP', `failed to load cache key: invalid response status ${status} for ${op.url}`, {
      hint: 'check the URL: the server did not send the file',
    });
  }
  const dir = await tmpDir();
  const file = join(dir, op.filename);
  const sha256 = createHash('sha256');
  const algo = op.checksum?.split(':')[0];
  const pinned: Hash | undefined = algo && algo !== 'sha256' ? createHash(algo) : undefined;
  const hashing = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      sha256.update(chunk);
      pinned?.update(chunk);
      cb(null, chunk);
    },
  });
  try {
    // like Go's client: gzip was asked for, so a gzip content-encoding is undone (the file is what the URL names)
    const body: Readable = /^\s*gzip\s*$/i.test(res.headers['content-encoding'] ?? '') ? res.pipe(createGunzip()) : res;
    await pipeline(body, hashing, createWriteStream(file, { mode: 0o600, flags: 'wx' }));
    await chmod(file, 0o600);
    const lm = res.headers['last-modified'];
    const t = lm !== undefined ? Date.parse(lm) : NaN;
    const mtime = Number.isNaN(t) ? new Date(0) : new Date(t);
    await utimes(file, mtime, mtime);
    const digest = `sha256:${sha256.digest('hex')}`;
    if (op.checksum) {
      const got = pinned ? `${algo}:${pinned.digest('hex')}` : digest;
      if (got !== op.checksum) {
        throw new HoistError('E_CHECKSUM', `digest mismatch for ${op.url}: ${got} (expected: ${op.checksum})`, {
          hint: 'the file at the URL changed or the --checksum is wrong; check it with sha256sum',
        });
      }
    }
    return { kind: 'body', tmp: dir, digest, ...(lm !== undefined && !Number.isNaN(t) ? { lastModified: new Date(t).toUTCString() } : {}), etag };
  } catch (e) {
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    if (e instanceof HoistError) throw e;
    if ((e as NodeJS.ErrnoException).code === 'ENAMETOOLONG') {
      throw new HoistError('E_HTTP', `failed to load cache key: the file name ${op.filename.length > 40 ? op.filename.slice(0, 40) + '…' : op.filename} taken from ${op.url} is longer than a file name can be`, {
        hint: 'use a URL whose last path component is shorter than 256 bytes',
      });
    }
    throw new HoistError('E_HTTP', `failed to load cache key: reading ${op.url}: ${(e as Error).message}`, { hint: 'check the network and try again' });
  }
}

const MAX_REDIRECTS = 10;

/**
 * A GET with Go's net/http client behaviour (not fetch's: no blocked ports): up to 10
 * redirects followed (303 and the others alike, as GETs), `Accept-Encoding: gzip`.
 */
function get(url: string, headers: Record<string, string>, hops = 0): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      reject(new HoistError('E_HTTP', `failed to load cache key: invalid URL ${JSON.stringify(url)}`));
      return;
    }
    const req = (u.protocol === 'https:' ? httpsRequest : httpRequest)(u, { method: 'GET', headers: { ...headers, 'Accept-Encoding': 'gzip' } }, (res) => {
      const status = res.statusCode ?? 0;
      const loc = res.headers.location;
      if ([301, 302, 303, 307, 308].includes(status) && loc) {
        res.resume();
        if (hops >= MAX_REDIRECTS) {
          reject(new Error(`stopped after ${MAX_REDIRECTS} redirects`));
          return;
        }
        let next: string;
        try {
          next = new URL(loc, u).toString();
        } catch {
          // a Location no URL parser takes must fail the ADD, not throw inside the response callback
          reject(new Error(`invalid redirect location ${JSON.stringify(loc)}`));
          return;
        }
        if (!/^https?:$/.test(new URL(next).protocol)) {
          reject(new Error(`redirect to unsupported protocol: ${next}`));
          return;
        }
        get(next, headers, hops + 1).then(resolve, reject);
        return;
      }
      resolve(res);
    });
    req.on('error', reject);
    req.end();
  });
}
