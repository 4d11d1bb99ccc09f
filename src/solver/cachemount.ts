/**
 * `RUN --mount=type=cache`: persistent directories under `$ROOT/cache/mounts`, shared
 * between builds and between hoist processes as BuildKit's mount manager shares
 * them (solver/llbsolver/mounts):
 *
 * - a cache is a pool of instances for one key (the id; plus the `from` stage's
 *   result and explicit uid/gid/mode, which make caches of their own). Instance 0
 *   is `<hash>`, further ones `<hash>-1`, `<hash>-2`, …
 * - `sharing=shared` uses the first instance nobody holds exclusively, together with
 *   any other shared user; `private` takes an instance nobody uses, or makes a new
 *   one; `locked` takes an instance nobody uses and otherwise waits for one.
 * - a new instance starts empty (owner and mode of the mount, default 0755 root),
 *   or, with `from=`, as a copy of the `source` path of that stage or image.
 *
 * "In use" is an flock(2) on `<instance>.lock`, shared or exclusive, held by a small
 * `flock` child (util-linux) for as long as the RUN runs: the kernel drops it when
 * hoist exits in any way, so a crashed build never leaves a cache locked.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, chown, mkdir, rename, rm, stat, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { canonicalJSON, sha256Digest } from '../llb/ops.js';
import { HoistError } from '../util/errors.js';

/** A cache instance in use by one RUN. */
export interface CacheMountLease {
  /** The instance directory (the mount source is this or a path below it). */
  dir: string;
  /** Which instance of the pool (0 is the first). */
  instance: number;
  /** The cache's base name ({@link cacheMountName}). */
  name: string;
  release(): Promise<void>;
}

export interface CacheMountRequest {
  id: string;
  sharing: 'shared' | 'private' | 'locked';
  /** The cache key of the `from=` stage/image result, when the mount has one. */
  from?: string;
  /** Explicit uid/gid/mode: part of the key, and the new instance's owner and mode. */
  perms?: { mode: number; uid: number; gid: number };
  /** Fills a new instance (a fresh empty directory) from the `from=` source; without it the directory stays empty. */
  seed?: (dir: string) => Promise<void>;
  /** A fresh directory on the same filesystem as the cache, for building a new instance. */
  tmpDir: () => Promise<string>;
}

/** The base name of a cache's instances: the hash of its id alone when nothing else sets it apart (hoist's earlier layout). */
export function cacheMountName(r: Pick<CacheMountRequest, 'id' | 'from' | 'perms'>): string {
  const keyText = r.from === undefined && r.perms === undefined ? r.id : canonicalJSON({ id: r.id, from: r.from, perms: r.perms });
  return sha256Digest(keyText).slice('sha256:'.length);
}

/** Takes an instance of the cache as its sharing mode says (waiting, for `locked`, until one is free). */
export async function acquireCacheMount(root: string, r: CacheMountRequest): Promise<CacheMountLease> {
  const base = join(root, 'cache', 'mounts');
  await mkdir(base, { recursive: true, mode: 0o700 });
  const name = cacheMountName(r);
  const dirOf = (n: number): string => join(base, n === 0 ? name : `${name}-${n}`);
  const exists = async (n: number): Promise<boolean> => !!(await stat(dirOf(n)).catch(() => null));
  const mode = r.sharing === 'shared' ? 'shared' : 'exclusive';
  scan: for (;;) {
    let count = 0;
    while (await exists(count)) count++;
    for (let n = 0; n < count; n++) {
      const held = await tryLock(`${dirOf(n)}.lock`, mode);
      if (!held) continue;
      if (!(await exists(n))) {
        // `hoist builder prune` removed it between the scan and the lock: look again
        await held.release();
        continue scan;
      }
      await touch(`${dirOf(n)}.lock`);
      return { dir: dirOf(n), instance: n, name, release: () => held.release() };
    }
    if (r.sharing === 'locked' && count > 0) {
      // BuildKit polls too: any instance that frees up will do
      await sleep(100);
      continue;
    }
    const held = await tryLock(`${dirOf(count)}.lock`, mode);
    if (held) {
      try {
        await create(dirOf(count), `${base}/${name}.create.lock`, r);
      } catch (e) {
        await held.release();
        throw e;
      }
      await touch(`${dirOf(count)}.lock`);
      return { dir: dirOf(count), instance: count, name, release: () => held.release() };
    }
    await sleep(50);
  }
}

/** Makes instance `dir` unless another process already did (creation is serialised by its own lock). */
async function create(dir: string, createLock: string, r: CacheMountRequest): Promise<void> {
  const held = await lock(createLock, 'exclusive');
  try {
    if (await stat(dir).catch(() => null)) return;
    const tmp = join(await r.tmpDir(), 'cache');
    const p = r.perms ?? { mode: 0o755, uid: 0, gid: 0 };
    await mkdir(tmp, { mode: p.mode });
    if (r.seed) await r.seed(tmp);
    else {
      await chown(tmp, p.uid, p.gid);
      await chmod(tmp, p.mode);
    }
    await rename(tmp, dir);
    await rm(join(tmp, '..'), { recursive: true, force: true }).catch(() => undefined);
  } finally {
    await held.release();
  }
}

interface Held {
  release(): Promise<void>;
}

/** The lock file's time is the instance's last use (what `builder prune --filter until=` reads). */
async function touch(file: string): Promise<void> {
  const now = new Date();
  await utimes(file, now, now).catch(() => undefined);
}

/** Takes instance `dir` exclusively if nobody uses it (for pruning it); undefined when a RUN holds it. */
export function tryLockInstance(dir: string): Promise<Held | undefined> {
  return tryLock(`${dir}.lock`, 'exclusive');
}

const BUSY = 75;

/** An flock held by a `flock FILE cat` child until its stdin closes; undefined when the lock is taken (non-blocking). */
function tryLock(file: string, mode: 'shared' | 'exclusive'): Promise<Held | undefined> {
  return flock(file, mode, false);
}

/** Like tryLock but waits for the lock. */
async function lock(file: string, mode: 'shared' | 'exclusive'): Promise<Held> {
  return (await flock(file, mode, true))!;
}

function flock(file: string, mode: 'shared' | 'exclusive', wait: boolean): Promise<Held | undefined> {
  return new Promise((resolve, reject) => {
    const args = [mode === 'shared' ? '-s' : '-x', ...(wait ? [] : ['-n', '-E', String(BUSY)]), file, '-c', 'echo locked; exec cat'];
    let child: ChildProcess;
    try {
      child = spawn('flock', args, { stdio: ['pipe', 'pipe', 'pipe'] });
    } catch (e) {
      reject(lockError(e as Error));
      return;
    }
    let out = '';
    let err = '';
    let settled = false;
    const closed = new Promise<void>((res) => child.on('close', () => res()));
    child.on('error', (e) => {
      if (!settled) {
        settled = true;
        reject(lockError(e));
      }
    });
    child.stderr!.on('data', (c: Buffer) => (err += c.toString('utf8')));
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString('utf8');
      if (!settled && out.includes('locked\n')) {
        settled = true;
        resolve({
          release: async () => {
            child.stdin!.end();
            await closed;
          },
        });
      }
    });
    child.stdin!.on('error', () => undefined);
    child.on('exit', (code) => {
      if (settled) return;
      settled = true;
      if (code === BUSY) resolve(undefined);
      else reject(new HoistError('E_CACHE_MOUNT', `cannot lock the cache mount ${file}: ${err.trim() || `flock exited with status ${code}`}`));
    });
  });
}

function lockError(e: Error): HoistError {
  return new HoistError('E_CACHE_MOUNT', `cannot lock a cache mount: ${e.message}`, { hint: 'install util-linux (it provides flock)' });
}
