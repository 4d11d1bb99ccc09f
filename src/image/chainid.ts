import type { Readable } from 'node:stream';
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { HoistError } from '../util/errors.js';
import { digestHex, parseDigest, type Digest } from './digest.js';
import type { Store, ResolvedImage } from './store.js';
import type { Descriptor } from './types.js';

/** One layer of an image, with everything the snapshotter needs to key and unpack it. */
export interface ImageLayer {
  /** Position from the bottom (0 = base layer). */
  index: number;
  descriptor: Descriptor;
  diffID: Digest;
  /** ChainID(L0..Ln) per the OCI image spec: the snapshot directory key. */
  chainID: Digest;
}

/** ChainIDs of a list of diff IDs: chain[0] = diff[0], chain[n] = sha256(chain[n-1] + " " + diff[n]). */
export function chainIDs(diffIDs: Digest[]): Digest[] {
  const out: Digest[] = [];
  for (const d of diffIDs) {
    const prev = out[out.length - 1];
    out.push(prev === undefined ? d : (`sha256:${createHash('sha256').update(`${prev} ${d}`).digest('hex')}` as Digest));
  }
  return out;
}

/** The layers of a resolved image, bottom first, with diff IDs from the config and chain IDs. */
export function imageLayers(img: ResolvedImage): ImageLayer[] {
  const diffs = (img.config.rootfs?.diff_ids ?? []).map((d) => parseDigest(d, 'diff ID'));
  if (diffs.length !== img.manifest.layers.length) {
    throw new HoistError(
      'E_CORRUPT',
      `image ${img.id} lists ${img.manifest.layers.length} layers in its manifest but ${diffs.length} diff IDs in its config`,
    );
  }
  const chains = chainIDs(diffs);
  return img.manifest.layers.map((descriptor, index) => ({ index, descriptor, diffID: diffs[index]!, chainID: chains[index]! }));
}

/** The directory name under `$ROOT/snapshots/` for a chain ID (hex only: no ':' in paths). */
export function snapshotDirName(chainID: Digest): string {
  return digestHex(chainID);
}

/**
 * Opens a layer blob as the uncompressed tar stream (format detected from magic
 * bytes). The caller must verify the diff ID if it needs to trust the content.
 */
export async function openLayer(root: string | Store, descriptor: Descriptor): Promise<Readable> {
  const d = parseDigest(descriptor.digest, 'layer digest');
  const path = typeof root === 'string' ? join(root, 'blobs', 'sha256', digestHex(d)) : root.blobPath(d);
  // the codecs load only when a layer is actually read (a cached build reads none)
  const { decompressAuto } = await import('./layer.js');
  return decompressAuto(createReadStream(path));
}
