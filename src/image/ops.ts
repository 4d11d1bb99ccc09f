import { HoistError } from '../util/errors.js';
import { digestHex, type Digest } from './digest.js';
import { containersByImage } from './containers.js';
import { prune } from './gc.js';
import { familiarRepository, familiarString, formatReference, parseReference } from './reference.js';
import { nameOf, type ResolvedImage, type Store } from './store.js';
import { Annotation, type HistoryEntry } from './types.js';

/** Sum of the stored sizes of an image's config and layers (the bytes its blobs take). */
export function imageSize(img: ResolvedImage): number {
  return img.manifest.layers.reduce((n, l) => n + l.size, 0) + img.manifest.config.size;
}

/** `docker image inspect`-shaped JSON for one image. */
export async function inspectImage(store: Store, img: ResolvedImage): Promise<Record<string, unknown>> {
  const refs = img.names.map((n) => parseReference(n));
  const idx = await store.readIndex();
  const tagged = idx.manifests
    .filter((d) => d.digest === img.target.digest)
    .map((d) => d.annotations?.[Annotation.HoistTagged])
    .filter((t): t is string => !!t)
    .sort();
  const c = img.config;
  return {
    Id: img.id,
    RepoTags: refs.map((r) => familiarString(r)),
    RepoDigests: [...new Set(refs.map((r) => `${familiarRepository(r)}@${img.manifestDescriptor.digest}`))],
    Parent: '',
    Comment: typeof c.comment === 'string' ? c.comment : '',
    Created: c.created ?? '',
    DockerVersion: typeof c.docker_version === 'string' ? c.docker_version : '',
    Author: c.author ?? '',
    Config: c.config ?? {},
    Architecture: c.architecture,
    ...(c.variant ? { Variant: c.variant } : {}),
    Os: c.os,
    ...(c['os.version'] ? { OsVersion: c['os.version'] } : {}),
    Size: imageSize(img),
    RootFS: { Type: c.rootfs?.type ?? 'layers', Layers: c.rootfs?.diff_ids ?? [] },
    Metadata: { LastTagTime: tagged[tagged.length - 1] ?? '0001-01-01T00:00:00Z' },
    Descriptor: { mediaType: img.manifestDescriptor.mediaType, digest: img.manifestDescriptor.digest, size: img.manifestDescriptor.size },
  };
}

/** One row of `hoist history`, newest first. */
export interface HistoryRow {
  id: string;
  created?: string;
  createdBy: string;
  size: number;
  comment: string;
}

/** Pairs config history entries with layers (entries marked empty_layer have none). */
export function historyOf(img: ResolvedImage): HistoryRow[] {
  const layers = img.manifest.layers;
  let li = 0;
  const hist: HistoryEntry[] = img.config.history?.length ? img.config.history : layers.map(() => ({}));
  const rows = hist.map((h) => {
    const size = h.empty_layer ? 0 : (layers[li++]?.size ?? 0);
    return { id: '<missing>', created: h.created, createdBy: h.created_by ?? '', size, comment: h.comment ?? '' };
  });
  rows.reverse();
  if (rows[0]) rows[0].id = img.id;
  return rows;
}

/** Adds `target` as a new name of the image `source` refers to. */
export async function tagImage(store: Store, source: string, target: string): Promise<void> {
  const img = await store.findImage(source);
  const ref = parseReference(target);
  if (ref.digest) throw new HoistError('E_REFERENCE', `cannot tag with a digest reference (${target})`, { hint: 'use NAME[:TAG]', exitCode: 125 });
  await store.updateIndex(async (idx) => {
    const full = formatReference(ref);
    const prev = idx.manifests.find((d) => nameOf(d) === full);
    await store.setName(full, img.target, idx);
    if (prev && prev.digest !== img.target.digest) store.keepDangling(prev, idx);
  });
}

/** What `rmi` did, in Docker's words. */
export interface RemoveResult {
  untagged: string[];
  deleted: Digest[];
}

/** Removes a name, or a whole image by ID; refuses images containers use unless `force`. */
export async function removeImage(store: Store, spec: string, force: boolean): Promise<RemoveResult> {
  const img = await store.findImage(spec);
  const users = (await containersByImage(store.root)).get(img.id) ?? [];
  let byName: string | undefined;
  try {
    const r = parseReference(spec);
    const full = formatReference(r);
    if (!r.digest && img.names.includes(full)) byName = full;
  } catch {
    byName = undefined;
  }
  const short = digestHex(img.id).slice(0, 12);
  const res: RemoveResult = { untagged: [], deleted: [] };
  if (!byName && img.names.length > 1 && !force) {
    throw new HoistError('E_CONFLICT', `conflict: unable to delete ${short} (must be forced) - image is referenced in multiple repositories`, {
      hint: `remove the names one by one (${img.names.map((n) => familiarString(parseReference(n))).join(', ')}) or pass -f`,
    });
  }
  const lastName = byName ? img.names.length === 1 : true;
  if (users.length && lastName && !force) {
    throw new HoistError(
      'E_CONFLICT',
      `conflict: unable to ${byName ? `remove repository reference "${familiarString(parseReference(byName))}"` : `delete ${short}`} (must force) - container ${users[0]!.slice(0, 12)} is using its referenced image ${short}`,
      { hint: 'remove the container first (hoist rm), or pass -f to untag the image and keep it for the container' },
    );
  }
  const drop = new Set(byName ? [byName] : img.names);
  let deleted = false;
  await store.updateIndex((idx) => {
    idx.manifests = idx.manifests.filter((d) => {
      if (d.digest !== img.target.digest) return true;
      const n = nameOf(d);
      if (n && drop.has(n)) {
        res.untagged.push(familiarString(parseReference(n)));
        return false;
      }
      // By ID, the untagged entry goes as well; by name, other names stay.
      return !!n || !!byName;
    });
    if (!idx.manifests.some((d) => d.digest === img.target.digest)) {
      // Forced removal of an image a container uses keeps it, untagged, for the container.
      if (users.length) store.keepDangling(img.target, idx);
      else deleted = true;
    }
  });
  if (deleted) {
    const mine = new Set<Digest>([img.target.digest, img.manifestDescriptor.digest, img.id, ...img.manifest.layers.map((l) => l.digest)]);
    await prune(store, { dangling: false, snapshots: false, onlyBlobs: mine });
    res.deleted.push(img.id);
  }
  return res;
}
