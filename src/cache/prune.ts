/**
 * The build cache as `docker builder prune` and `docker system df` see it, and its
 * pruning. Entries (BuildKit's usage records):
 *
 * - `regular`: a cache index record (`cache/index/…`, key → layer), with the blob and
 *   the snapshots only it keeps alive; `shared` when an image in index.json has that
 *   layer (then only the record goes, never the blob or the image's snapshots);
 * - `exec.cachemount`: an instance of a `RUN --mount=type=cache` (`cache/mounts/…`),
 *   in use while its flock is held;
 * - `regular` too: a download of `ADD <url>` (`cache/http/<key>/`).
 *
 * Without `all` only "dangling" cache goes (not shared with an image); with `all`
 * every entry not in use. Nothing a tagged image or a container needs is removed.
 *
 * Builds running at the same time: each build holds a lease (`cache/leases/`, taken
 * under the store lock, so no build starts while a prune runs) whose start time marks
 * what it may be using: every record it looks up gets its file time bumped
 * (CacheIndex.get), every blob it commits or reuses is new or touched (Store.commit),
 * every snapshot it makes is new. A prune, under the store lock, keeps all that is
 * newer than the oldest live lease. A record or blob touched while the prune runs is
 * caught by moving it aside first and checking its time again after the move (the
 * touch and the move are each atomic on the inode): touched ones go back.
 */
import { link, readdir, readFile, rename, rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { chainIDs } from '../image/chainid.js';
import { containersByImage } from '../image/containers.js';
import { digestHex, isDigest, type Digest } from '../image/digest.js';
import { diskUsage, reachable, type Reachable } from '../image/gc.js';
import type { Store } from '../image/store.js';
import type { ImageConfig } from '../image/types.js';
import { listSnapshots, type SnapshotMeta } from '../snapshot/store.js';
import { tryLockInstance } from '../solver/cachemount.js';
import { HoistError } from '../util/errors.js';
import type { CacheRecord } from './index.js';
import { protection, type Protection } from './lease.js';

export { openBuildLease, protection, type BuildLease, type Protection } from './lease.js';


/** One build cache entry, as `docker system df -v` lists them. */
export interface CacheEntry {
  id: string;
  type: 'regular' | 'exec.cachemount';
  description: string;
  /** Bytes removing it would free (its own files, its blob and snapshots unless an image has them). */
  size: number;
  created: number;
  lastUsed: number;
  inUse: boolean;
  shared: boolean;
  kind: 'record' | 'mount' | 'http';
  path: string;
  /** The file time seen when listing (a change means someone used it since). */
  mtimeMs: number;
  layer?: { blob: Digest; diffID: string };
}

/** Chain IDs (hex) of every stored image and of the images containers use. */
export async function neededChains(store: Store, reach: Reachable): Promise<Set<string>> {
  const keep = new Set([...reach.chains].map((c) => digestHex(c)));
  // A container whose image was force-removed still needs its layers.
  for (const id of (await containersByImage(store.root)).keys()) {
    if (reach.images.has(id as Digest)) continue;
    if (!isDigest(id) || !(await store.hasBlob(id))) continue;
    const cfg = await store.readJSON<ImageConfig>(id).catch(() => undefined);
    for (const c of chainIDs((cfg?.rootfs?.diff_ids ?? []).filter(isDigest))) keep.add(digestHex(c));
  }
  return keep;
}

interface RecordFile {
  path: string;
  mtimeMs: number;
  size: number;
  rec?: CacheRecord;
}

/** Every record file of the cache index (`rec` undefined for an unreadable one). */
export async function listRecordFiles(root: string): Promise<RecordFile[]> {
  const base = join(root, 'cache', 'index');
  const out: RecordFile[] = [];
  for (const d of await readdir(base).catch(() => [] as string[])) {
    if (!/^[0-9a-f]{2}$/.test(d)) continue;
    for (const n of await readdir(join(base, d)).catch(() => [] as string[])) {
      if (!/^[0-9a-f]{64}\.json$/.test(n)) continue; // `.tmp-…` files are records being written
      const path = join(base, d, n);
      const st = await stat(path).catch(() => undefined);
      if (!st) continue;
      let rec: CacheRecord | undefined;
      try {
        rec = JSON.parse(await readFile(path, 'utf8')) as CacheRecord;
        if (rec.layer && (!isDigest(rec.layer.blob?.digest) || !isDigest(rec.layer.diffID))) rec = undefined;
      } catch {
        rec = undefined;
      }
      out.push({ path, mtimeMs: st.mtimeMs, size: st.size, rec });
    }
  }
  return out;
}

/** The layers (blob, diff ID) of records on disk now. */
async function recordLayers(root: string): Promise<{ blobs: Set<string>; diffIDs: Set<string> }> {
  const blobs = new Set<string>();
  const diffIDs = new Set<string>();
  for (const r of await listRecordFiles(root)) {
    if (!r.rec?.layer) continue;
    blobs.add(r.rec.layer.blob.digest);
    diffIDs.add(r.rec.layer.diffID);
  }
  return { blobs, diffIDs };
}

const sizeCache = new Map<string, Promise<number>>();
function du(path: string): Promise<number> {
  let p = sizeCache.get(path);
  if (!p) {
    p = diskUsage(path);
    sizeCache.set(path, p);
  }
  return p;
}

/** Lists the build cache entries (for df, and as the prune candidates). */
export async function listBuildCache(store: Store, prot: Protection, reach?: Reachable): Promise<CacheEntry[]> {
  sizeCache.clear();
  const root = store.root;
  reach ??= await reachable(store);
  const imageChains = await neededChains(store, reach);
  const snapsByDiff = new Map<string, SnapshotMeta[]>();
  for (const m of await listSnapshots(root).catch(() => [] as SnapshotMeta[])) {
    const l = snapsByDiff.get(m.diffID) ?? [];
    l.push(m);
    snapsByDiff.set(m.diffID, l);
  }
  const out: CacheEntry[] = [];
  for (const f of await listRecordFiles(root)) {
    const hex = f.path.slice(-'.json'.length - 64, -'.json'.length);
    const layer = f.rec?.layer;
    let size = f.size;
    let shared = false;
    if (layer) {
      const blob = layer.blob.digest as Digest;
      shared = reach.blobs.has(blob);
      if (!shared) size += (await store.blobSize(blob)) ?? 0;
      for (const m of snapsByDiff.get(layer.diffID) ?? []) {
        if (!imageChains.has(digestHex(m.chainID as Digest))) size += await du(join(root, 'snapshots', digestHex(m.chainID as Digest)));
      }
    }
    const created = Date.parse(f.rec?.created ?? '');
    out.push({
      id: hex.slice(0, 25), type: 'regular',
      description: layer ? `layer ${layer.diffID.slice(7, 19)} (cache key ${hex.slice(0, 12)})` : `record ${hex.slice(0, 12)}`,
      size, created: Number.isNaN(created) ? f.mtimeMs : created, lastUsed: f.mtimeMs,
      inUse: f.mtimeMs >= prot.protectFrom, shared, kind: 'record', path: f.path, mtimeMs: f.mtimeMs,
      ...(layer ? { layer: { blob: layer.blob.digest as Digest, diffID: layer.diffID } } : {}),
    });
  }
  const mounts = join(root, 'cache', 'mounts');
  for (const n of (await readdir(mounts).catch(() => [] as string[])).sort()) {
    const m = /^([0-9a-f]{64})(?:-(\d+))?$/.exec(n);
    if (!m) continue;
    const path = join(mounts, n);
    const st = await stat(path).catch(() => undefined);
    if (!st?.isDirectory()) continue;
    const lockSt = await stat(`${path}.lock`).catch(() => undefined);
    const held = await tryLockInstance(path);
    await held?.release();
    const lastUsed = Math.max(st.mtimeMs, lockSt?.mtimeMs ?? 0);
    out.push({
      id: `${m[1]!.slice(0, 25)}${m[2] ? `-${m[2]}` : ''}`, type: 'exec.cachemount', description: `cache mount instance ${m[2] ?? '0'}`,
      size: await du(path), created: st.birthtimeMs || st.ctimeMs, lastUsed, inUse: !held, shared: false,
      kind: 'mount', path, mtimeMs: st.mtimeMs,
    });
  }
  const http = join(root, 'cache', 'http');
  for (const n of (await readdir(http).catch(() => [] as string[])).sort()) {
    if (!/^[0-9a-f]{64}$/.test(n)) continue;
    const path = join(http, n);
    const st = await stat(path).catch(() => undefined);
    if (!st?.isDirectory()) continue;
    const files = await readdir(path).catch(() => [] as string[]);
    out.push({
      id: n.slice(0, 25), type: 'regular', description: `http download ${files[0] ?? ''}`.trim(),
      size: await du(path), created: st.birthtimeMs || st.ctimeMs, lastUsed: st.mtimeMs,
      // a reused download is not touched, so any running build might need any of them
      inUse: prot.builds > 0 || st.mtimeMs >= prot.protectFrom, shared: false, kind: 'http', path, mtimeMs: st.mtimeMs,
    });
  }
  return out;
}

export interface CachePruneOptions {
  /** Also shared entries (docker's -a). */
  all: boolean;
  /** Only entries last used longer ago than this (ms; `--filter until=`). */
  until?: number;
  /** Keep this many bytes of cache, removing least recently used entries first (`--keep-storage`). */
  keepStorage?: number;
  /** Only entries of this type (`--filter type=`). */
  type?: string;
}

export interface CachePruneResult {
  deleted: string[];
  reclaimedBytes: number;
}

/**
 * Moves `path` into `trash` unless it was touched: its time must still be `seen`
 * and older than the protection line, before and after the move; a touched one is
 * put back (unless something new took its name meanwhile, which then wins).
 */
export async function moveAsideUntouched(path: string, seen: number | undefined, prot: Protection, trash: string): Promise<boolean> {
  const before = await stat(path).catch(() => undefined);
  if (!before || before.mtimeMs >= prot.protectFrom || (seen !== undefined && before.mtimeMs !== seen)) return false;
  try {
    await rename(path, trash);
  } catch {
    return false;
  }
  const after = await stat(trash).catch(() => undefined);
  if (after && (after.mtimeMs >= prot.protectFrom || after.mtimeMs !== before.mtimeMs)) {
    if (after.isDirectory()) await rename(trash, path).catch(() => undefined);
    else await link(trash, path).catch(() => undefined);
    await rm(trash, { recursive: true, force: true }).catch(() => undefined);
    return false;
  }
  return true;
}

/**
 * Prunes the build cache; the caller holds the store lock. Returns what went, and
 * leaves the removed files in `trash` dirs (appended) for the caller to delete after
 * releasing the lock.
 */
export async function pruneBuildCacheLocked(store: Store, o: CachePruneOptions, prot: Protection, trash: string[]): Promise<CachePruneResult> {
  const root = store.root;
  const now = Date.now();
  const reach = await reachable(store);
  const entries = await listBuildCache(store, prot, reach);
  let cands = entries.filter(
    (e) => !e.inUse && (o.all || !e.shared) && (o.type === undefined || e.type === o.type) && (o.until === undefined || e.lastUsed < now - o.until),
  );
  if (o.keepStorage !== undefined) {
    let total = entries.reduce((n, e) => n + (e.shared ? 0 : e.size), 0);
    const chosen: CacheEntry[] = [];
    for (const c of cands.sort((a, b) => a.lastUsed - b.lastUsed)) {
      if (total <= o.keepStorage) break;
      chosen.push(c);
      total -= c.shared ? 0 : c.size;
    }
    cands = chosen;
  }
  const res: CachePruneResult = { deleted: [], reclaimedBytes: 0 };
  if (cands.length === 0) return res;
  const bin = await store.tmpDir('cache-prune');
  trash.push(bin);
  let seq = 0;
  const aside = () => join(bin, String(seq++));
  const removedLayers: { blob: Digest; diffID: string }[] = [];
  for (const c of cands) {
    if (c.kind === 'record') {
      const st = await stat(c.path).catch(() => undefined);
      if (!(await moveAsideUntouched(c.path, c.mtimeMs, prot, aside()))) continue;
      res.reclaimedBytes += st?.size ?? 0;
      if (c.layer) removedLayers.push(c.layer);
    } else if (c.kind === 'mount') {
      // never one a running RUN holds: the flock is taken for the move
      const held = await tryLockInstance(c.path);
      if (!held) continue;
      try {
        const bytes = await diskUsage(c.path);
        const moved = await rename(c.path, aside()).then(() => true, () => false);
        if (!moved) continue;
        res.reclaimedBytes += bytes;
      } finally {
        await held.release();
      }
    } else {
      if (prot.builds > 0) continue;
      const bytes = await diskUsage(c.path);
      if (!(await rename(c.path, aside()).then(() => true, () => false))) continue;
      res.reclaimedBytes += bytes;
    }
    res.deleted.push(c.id);
  }
  if (prot.builds === 0) await dropStaleUrlRecords(root);
  // blobs and snapshots the removed records alone kept alive (records written meanwhile count)
  const left = await recordLayers(root);
  const seenBlob = new Set<string>();
  for (const l of removedLayers) {
    if (reach.blobs.has(l.blob) || left.blobs.has(l.blob) || seenBlob.has(l.blob)) continue;
    seenBlob.add(l.blob);
    const p = store.blobPath(l.blob);
    const bytes = (await store.blobSize(l.blob)) ?? 0;
    if (await moveAsideUntouched(p, undefined, prot, aside())) res.reclaimedBytes += bytes;
  }
  const goneDiffs = new Set(removedLayers.map((l) => l.diffID).filter((d) => !left.diffIDs.has(d)));
  res.reclaimedBytes += (await pruneSnapshots(store, reach, prot, left.diffIDs, (m) => !!m && goneDiffs.has(m.diffID), aside)).bytes;
  return res;
}

/**
 * Removes snapshots `pick` chooses, unless an image or container needs their chain, a
 * remaining record has their layer, a running build may use them (new since the
 * protection line), or a kept snapshot sits on them. Returns the bytes freed.
 */
export async function pruneSnapshots(
  store: Store, reach: Reachable, prot: Protection, recordDiffs: Set<string>, pick: (m: SnapshotMeta | undefined, hex: string) => boolean, aside: () => string,
): Promise<{ bytes: number; count: number }> {
  const root = store.root;
  const dir = join(root, 'snapshots');
  const keep = await neededChains(store, reach);
  const metas = new Map<string, SnapshotMeta | undefined>();
  for (const n of await readdir(dir).catch(() => [] as string[])) {
    if (!/^[a-f0-9]{64}$/.test(n)) continue; // anything else there belongs to the snapshotter's own bookkeeping
    const meta = await readFile(join(dir, n, 'snapshot.json'), 'utf8').then((t) => JSON.parse(t) as SnapshotMeta, () => undefined);
    metas.set(n, meta);
  }
  const kept = new Set<string>();
  const keepWithParents = (hex: string): void => {
    for (let h: string | undefined = hex; h && !kept.has(h); ) {
      kept.add(h);
      const p: string | null | undefined = metas.get(h)?.parent;
      h = p && isDigest(p) ? digestHex(p) : undefined;
    }
  };
  for (const [n, m] of metas) {
    const st = await stat(join(dir, n)).catch(() => undefined);
    const fresh = (st?.mtimeMs ?? 0) >= prot.protectFrom || Date.parse(m?.created ?? '') >= prot.protectFrom;
    if (keep.has(n) || fresh || (m && recordDiffs.has(m.diffID)) || !pick(m, n)) keepWithParents(n);
  }
  let bytes = 0;
  let count = 0;
  for (const n of metas.keys()) {
    if (kept.has(n)) continue;
    const size = await diskUsage(join(dir, n));
    if (!(await rename(join(dir, n), aside()).then(() => true, () => false))) continue;
    bytes += size;
    count++;
  }
  return { bytes, count };
}

/** Drops `url-*.json` ETag records whose downloads are all gone (only while no build runs). */
async function dropStaleUrlRecords(root: string): Promise<void> {
  const base = join(root, 'cache', 'http');
  for (const n of await readdir(base).catch(() => [] as string[])) {
    if (!/^url-[0-9a-f]{64}\.json$/.test(n)) continue;
    const recs = await readFile(join(base, n), 'utf8').then((t) => JSON.parse(t) as { key?: string }[], () => []);
    const live = Array.isArray(recs)
      ? await Promise.all(recs.map((r) => (typeof r?.key === 'string' ? stat(join(base, r.key.replace(/^sha256:/, ''))).then(() => true, () => false) : false)))
      : [];
    if (!live.some(Boolean)) await unlink(join(base, n)).catch(() => undefined);
  }
}

/** `hoist builder prune`: takes the store lock, prunes, then deletes what was moved aside. */
export async function pruneBuildCache(store: Store, o: CachePruneOptions): Promise<CachePruneResult> {
  const trash: string[] = [];
  try {
    return await store.withLock(async () => pruneBuildCacheLocked(store, o, await protection(store.root), trash));
  } finally {
    for (const t of trash) await rm(t, { recursive: true, force: true }).catch(() => undefined);
  }
}

/** Go's time.ParseDuration (what docker's `until` filter takes): `24h`, `1h30m`, `90s`, `1.5h`. */
export function parseDuration(s: string): number {
  const units: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let pos = 0;
  const body = s.startsWith('+') ? s.slice(1) : s;
  if (body === '0') return 0;
  re.lastIndex = 0;
  while (pos < body.length) {
    re.lastIndex = pos;
    const m: RegExpExecArray | null = re.exec(body);
    if (!m) break;
    total += Number(m[1]) * units[m[2]!]!;
    pos = re.lastIndex;
  }
  if (body.length === 0 || pos !== body.length) {
    throw new HoistError('E_FILTER', `"until" filter expects a duration (e.g., '24h'): time: invalid duration "${s}"`, { hint: 'use a Go duration such as 30m, 24h or 1h30m', exitCode: 125 });
  }
  return total;
}

/** docker's opts.MemBytes (go-units RAMInBytes): `512m`, `10GB`, `1.5g`, plain bytes; binary units. */
export function parseMemBytes(s: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b)?\s*$/i.exec(s);
  if (!m) throw new HoistError('E_USAGE', `invalid size: '${s}'`, { hint: 'give a size such as 512MB, 10GB or a number of bytes', exitCode: 125 });
  const pow = ' kmgtp'.indexOf((m[2] || ' ').toLowerCase());
  return Math.floor(Number(m[1]) * 1024 ** pow);
}
