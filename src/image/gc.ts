import { readdir, rm, lstat } from 'node:fs/promises';
import { listRecordFiles, moveAsideUntouched, protection, pruneBuildCacheLocked, pruneSnapshots } from '../cache/prune.js';
import { join } from 'node:path';
import { HoistError } from '../util/errors.js';
import { isDigest, parseDigest, type Digest } from './digest.js';
import { chainIDs } from './chainid.js';
import { containersByImage } from './containers.js';
import { nameOf, validateManifest, type Store } from './store.js';
import { familiarString, parseReference } from './reference.js';
import { isIndexType, isManifestType, type Descriptor, type ImageConfig, type ImageIndex, type ImageManifest } from './types.js';

/** What is reachable from index.json: blobs, and the chain IDs of every image's layers. */
export interface Reachable {
  blobs: Set<Digest>;
  chains: Set<Digest>;
  /** Image IDs (config digests) of every stored image. */
  images: Set<Digest>;
  problems: string[];
}

/** Walks index.json down to every manifest, config and layer; missing or broken pieces become `problems`. */
export async function reachable(store: Store, idx?: ImageIndex): Promise<Reachable> {
  const r: Reachable = { blobs: new Set(), chains: new Set(), images: new Set(), problems: [] };
  const index = idx ?? (await store.readIndex());
  const visit = async (d: Descriptor, where: string, depth: number): Promise<void> => {
    if (!isDigest(d?.digest)) {
      r.problems.push(`${where}: invalid digest ${JSON.stringify(d?.digest)}`);
      return;
    }
    if (r.blobs.has(d.digest) && depth > 0) return;
    r.blobs.add(d.digest);
    if (!(await store.hasBlob(d.digest))) {
      r.problems.push(`${where}: blob ${d.digest} is missing`);
      return;
    }
    if (depth > 4) return;
    try {
      if (isIndexType(d.mediaType)) {
        const sub = await store.readJSON<ImageIndex>(d.digest);
        for (const m of sub.manifests ?? []) await visit(m, `${where} → ${m.digest}`, depth + 1);
      } else if (isManifestType(d.mediaType)) {
        const m = await store.readJSON<ImageManifest>(d.digest);
        validateManifest(m, `manifest ${d.digest}`);
        r.blobs.add(m.config.digest);
        r.images.add(m.config.digest);
        if (!(await store.hasBlob(m.config.digest))) r.problems.push(`${where}: config ${m.config.digest} is missing`);
        else {
          const cfg = await store.readJSON<ImageConfig>(m.config.digest);
          const diffs = (cfg.rootfs?.diff_ids ?? []).map((x) => parseDigest(x, 'diff ID'));
          if (diffs.length !== m.layers.length) r.problems.push(`${where}: ${m.layers.length} layers but ${diffs.length} diff IDs in the config`);
          for (const c of chainIDs(diffs)) r.chains.add(c);
        }
        for (const l of m.layers) {
          r.blobs.add(l.digest);
          if (!(await store.hasBlob(l.digest))) r.problems.push(`${where}: layer ${l.digest} is missing`);
        }
      }
    } catch (e) {
      r.problems.push(`${where}: ${e instanceof HoistError ? e.message : (e as Error).message}`);
    }
  };
  for (const d of index.manifests) await visit(d, nameOf(d) ?? `untagged ${d.digest}`, 0);
  return r;
}

function familiarName(n: string): string {
  try {
    return familiarString(parseReference(n));
  } catch {
    return n;
  }
}

export interface PruneResult {
  /** IDs of the images deleted. */
  removedImages: Digest[];
  /** What happened to images, in docker's order: each name untagged, then the image deleted. */
  imagesDeleted: ({ untagged: string } | { deleted: string })[];
  removedBlobs: number;
  removedSnapshots: number;
  reclaimedBytes: number;
  /** IDs of the build cache entries removed. */
  deletedCache: string[];
}

async function sizeOf(path: string): Promise<number> {
  const st = await lstat(path).catch(() => null);
  if (!st) return 0;
  if (!st.isDirectory()) return st.size;
  let total = 0;
  for (const n of await readdir(path).catch(() => [] as string[])) total += await sizeOf(join(path, n));
  return total;
}

/** Total bytes under a path (lstat sizes; for df). */
export const diskUsage = sizeOf;

/**
 * Removes, under the store lock: untagged images no container uses (when
 * `dangling`; with `allImages`, tagged ones too, as `docker image prune -a`), unused build cache not shared with an image (when `buildCache`, as
 * `docker system prune` does), blobs nothing reachable needs, and (when `snapshots`)
 * snapshot directories whose chain ID belongs to no stored image or container's
 * image (`keepCache`: the blobs and snapshots of every build cache record stay, as
 * `image prune` leaves the build cache alone). What a running build may be using (see src/cache/prune.ts) is kept: blobs
 * of records it touched, and anything newer than its lease.
 */
export async function prune(
  store: Store,
  opts: { dangling: boolean; allImages?: boolean; snapshots: boolean; buildCache?: boolean; buildCacheAll?: boolean; keepCache?: boolean; onlyBlobs?: Set<Digest> },
): Promise<PruneResult> {
  const trash: string[] = [];
  try {
    return await store.withLock(async () => {
      const res: PruneResult = { removedImages: [], imagesDeleted: [], removedBlobs: 0, removedSnapshots: 0, reclaimedBytes: 0, deletedCache: [] };
      const used = await containersByImage(store.root);
      if (opts.dangling || opts.allImages) {
        await store.modifyIndexLocked(async (idx) => {
          const keep: Descriptor[] = [];
          const gone = new Map<string, { id: Digest; names: string[] }>();
          for (const d of idx.manifests) {
            const name = nameOf(d);
            if (name && !opts.allImages) {
              keep.push(d);
              continue;
            }
            const id = await store.configDigestOf(d).catch(() => undefined);
            if (id && used.has(id)) {
              keep.push(d);
              continue;
            }
            const g = gone.get(d.digest) ?? { id: id ?? d.digest, names: [] };
            if (name) g.names.push(name);
            gone.set(d.digest, g);
          }
          for (const [digest, g] of gone) {
            for (const n of g.names) res.imagesDeleted.push({ untagged: familiarName(n) });
            // an untagged entry of an image that keeps a name is dropped, the image stays
            if (keep.some((d) => d.digest === digest)) continue;
            res.imagesDeleted.push({ deleted: g.id });
            res.removedImages.push(g.id);
          }
          idx.manifests = keep;
        });
      }
      const prot = await protection(store.root);
      if (opts.buildCache) {
        const c = await pruneBuildCacheLocked(store, { all: !!opts.buildCacheAll }, prot, trash);
        res.deletedCache = c.deleted;
        res.reclaimedBytes += c.reclaimedBytes;
      }
      const reach = await reachable(store);
      // blobs of records a running build touched (and, after a build cache prune, of every record left)
      const recordBlobs = new Set<string>();
      const recordDiffs = new Set<string>();
      for (const f of await listRecordFiles(store.root)) {
        if (!f.rec?.layer || (!opts.buildCache && !opts.keepCache && f.mtimeMs < prot.protectFrom)) continue;
        recordBlobs.add(f.rec.layer.blob.digest);
        recordDiffs.add(f.rec.layer.diffID);
      }
      const bin = await store.tmpDir('prune');
      trash.push(bin);
      let seq = 0;
      const aside = () => join(bin, String(seq++));
      for (const b of await store.listBlobs()) {
        if (reach.blobs.has(b) || recordBlobs.has(b)) continue;
        if (opts.onlyBlobs && !opts.onlyBlobs.has(b)) continue;
        const bytes = await sizeOf(store.blobPath(b));
        if (!(await moveAsideUntouched(store.blobPath(b), undefined, prot, aside()))) continue;
        res.reclaimedBytes += bytes;
        res.removedBlobs++;
      }
      if (opts.snapshots) {
        const s = await pruneSnapshots(store, reach, prot, recordDiffs, () => true, aside);
        res.reclaimedBytes += s.bytes;
        res.removedSnapshots = s.count;
      }
      return res;
    });
  } finally {
    for (const t of trash) await rm(t, { recursive: true, force: true }).catch(() => undefined);
  }
}
