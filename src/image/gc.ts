import { readdir, rename, rm, lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { HoistError } from '../util/errors.js';
import { isDigest, parseDigest, digestHex, type Digest } from './digest.js';
import { chainIDs } from './chainid.js';
import { containersByImage } from './containers.js';
import { nameOf, validateManifest, type Store } from './store.js';
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

export interface PruneResult {
  removedImages: Digest[];
  removedBlobs: number;
  removedSnapshots: number;
  reclaimedBytes: number;
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
 * `dangling`), blobs nothing reachable needs, and (when `snapshots`) snapshot
 * directories whose chain ID belongs to no stored image or container's image.
 */
export async function prune(store: Store, opts: { dangling: boolean; snapshots: boolean; onlyBlobs?: Set<Digest> }): Promise<PruneResult> {
  return store.withLock(async () => {
    const res: PruneResult = { removedImages: [], removedBlobs: 0, removedSnapshots: 0, reclaimedBytes: 0 };
    const used = await containersByImage(store.root);
    if (opts.dangling) {
      await store.modifyIndexLocked(async (idx) => {
        const keep: Descriptor[] = [];
        for (const d of idx.manifests) {
          if (nameOf(d)) {
            keep.push(d);
            continue;
          }
          const id = await store.configDigestOf(d).catch(() => undefined);
          if (id && used.has(id)) keep.push(d);
          else if (!idx.manifests.some((o) => o !== d && o.digest === d.digest && nameOf(o))) res.removedImages.push(id ?? d.digest);
        }
        idx.manifests = keep;
      });
    }
    const reach = await reachable(store);
    for (const b of await store.listBlobs()) {
      if (reach.blobs.has(b)) continue;
      if (opts.onlyBlobs && !opts.onlyBlobs.has(b)) continue;
      const p = store.blobPath(b);
      res.reclaimedBytes += await sizeOf(p);
      await rm(p, { force: true });
      res.removedBlobs++;
    }
    if (opts.snapshots) {
      const keep = new Set([...reach.chains].map((c) => digestHex(c)));
      // A container whose image was force-removed still needs its layers.
      for (const id of used.keys()) {
        if (reach.images.has(id as Digest)) continue;
        if (!isDigest(id) || !(await store.hasBlob(id))) continue;
        const cfg = await store.readJSON<ImageConfig>(id).catch(() => undefined);
        for (const c of chainIDs((cfg?.rootfs?.diff_ids ?? []).filter(isDigest))) keep.add(digestHex(c));
      }
      const dir = `${store.root}/snapshots`;
      for (const n of await readdir(dir).catch(() => [] as string[])) {
        // Only chain-ID directories: anything else there belongs to the snapshotter's own bookkeeping.
        if (!/^[a-f0-9]{64}$/.test(n) || keep.has(n)) continue;
        const bytes = await sizeOf(join(dir, n));
        const trash = join(await store.tmpDir('snapshot-prune'), 'old');
        await rename(join(dir, n), trash).catch(() => undefined);
        await rm(join(trash, '..'), { recursive: true, force: true });
        res.reclaimedBytes += bytes;
        res.removedSnapshots++;
      }
    }
    return res;
  });
}
