/**
 * The image exporter: the target stage's config and the solved layers become an OCI
 * config + manifest in the store, tagged with every `-t` name. The image ID is the
 * config digest, as Docker prints it.
 *
 * History times follow BuildKit's exporter: a step that made a layer carries the
 * time the layer was made (kept in the cache), and metadata-only steps take the
 * time of the layer around them, so a fully cached rebuild gives the same image ID.
 */
import type { Digest } from '../image/digest.js';
import type { Store } from '../image/store.js';
import { MediaType, type Descriptor, type HistoryEntry, type ImageManifest } from '../image/types.js';
import type { LayerRef } from '../llb/ops.js';
import type { StageImage } from '../frontend/convert.js';
import { HoistError } from '../util/errors.js';

export interface ExportedImage {
  id: Digest;
  manifest: Descriptor;
  config: Record<string, unknown>;
}

function ociLayerType(mt: string): string {
  if (mt === MediaType.DockerLayerGzip) return MediaType.OciLayerGzip;
  if (mt === MediaType.DockerLayer) return MediaType.OciLayer;
  return mt;
}

/** BuildKit's history time filling (normalizeLayersAndHistory). */
function fillCreated(history: HistoryEntry[]): HistoryEntry[] {
  let created: string | undefined;
  let noCreated = false;
  for (const h of history) {
    if (h.created) {
      created = h.created;
      if (noCreated) break;
    } else noCreated = true;
  }
  noCreated = false;
  return history.map((h) => {
    if (h.created) {
      if (noCreated) created = h.created;
      return h;
    }
    noCreated = true;
    return created ? { created, ...h } : h;
  });
}

/** Orders a history entry's keys as Go marshals ocispec.History. */
function historyJSON(h: HistoryEntry): HistoryEntry {
  const o: HistoryEntry = {};
  if (h.created) o.created = h.created;
  if (h.author) o.author = h.author;
  if (h.created_by) o.created_by = h.created_by;
  if (h.comment) o.comment = h.comment;
  if (h.empty_layer) o.empty_layer = true;
  return o;
}

const CONFIG_ORDER = ['User', 'ExposedPorts', 'Env', 'Entrypoint', 'Cmd', 'Volumes', 'WorkingDir', 'Labels', 'StopSignal', 'ArgsEscaped', 'Healthcheck', 'OnBuild', 'Shell'];

function containerConfigJSON(c: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const empty = (v: unknown): boolean =>
    v === undefined || v === null || v === '' || v === false || (Array.isArray(v) && v.length === 0) || (typeof v === 'object' && !Array.isArray(v) && Object.keys(v as object).length === 0);
  // Go marshals maps with sorted keys
  const sortedMap = (v: unknown): unknown => {
    if (!v || typeof v !== 'object' || Array.isArray(v)) return v;
    const o: Record<string, unknown> = {};
    for (const k of Object.keys(v as object).sort()) o[k] = (v as Record<string, unknown>)[k];
    return o;
  };
  for (const k of CONFIG_ORDER) if (!empty(c[k])) out[k] = k === 'Labels' || k === 'ExposedPorts' || k === 'Volumes' ? sortedMap(c[k]) : c[k];
  for (const k of Object.keys(c)) if (!(k in out) && !CONFIG_ORDER.includes(k) && !empty(c[k])) out[k] = c[k];
  return out;
}

/** The image config JSON (keys sorted as BuildKit's map-based patching writes them). */
export function imageConfig(image: StageImage, layers: LayerRef[], baseHistoryLen: number): Record<string, unknown> {
  // steps of this build that made a layer get that layer's time; base entries keep theirs
  const newLayers = layers.slice(layers.length - image.history.slice(baseHistoryLen).filter((h) => !h.empty_layer).length);
  let li = 0;
  const hist = image.history.map((h, i) => {
    if (i < baseHistoryLen) return h;
    const { created: _c, ...rest } = h;
    void _c;
    if (h.empty_layer) return rest;
    const l = newLayers[li++];
    return l?.created ? { created: l.created, ...rest } : rest;
  });
  const history = fillCreated(hist).map(historyJSON);
  const created = [...history].reverse().find((h) => h.created)?.created ?? new Date(0).toISOString();
  const { config, history: _h, architecture, os, variant, ...rest } = image as StageImage & Record<string, unknown>;
  void _h;
  const out: Record<string, unknown> = {
    ...rest,
    architecture,
    config: containerConfigJSON(config as Record<string, unknown>),
    created,
    history,
    os,
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffID) },
    ...(variant ? { variant } : {}),
  };
  const sorted: Record<string, unknown> = {};
  for (const k of Object.keys(out).sort()) if (out[k] !== undefined) sorted[k] = out[k];
  return sorted;
}

/** Writes config and manifest to the store and points the names at it (dangling when there are none). */
export async function exportImage(store: Store, image: StageImage, layers: LayerRef[], baseHistoryLen: number, names: string[]): Promise<ExportedImage> {
  const config = imageConfig(image, layers, baseHistoryLen);
  const configDesc = await store.putBlob(Buffer.from(JSON.stringify(config)), MediaType.OciConfig);
  for (const l of layers) {
    if (!(await store.hasBlob(l.blob.digest))) {
      throw new HoistError('E_BLOB_MISSING', `layer ${l.blob.digest} is missing from the store`, { hint: 'run `hoist system check`, then build again with --no-cache' });
    }
  }
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaType.OciManifest,
    config: configDesc,
    layers: layers.map((l) => ({ mediaType: ociLayerType(l.blob.mediaType), digest: l.blob.digest, size: l.blob.size })),
  };
  const manifestDesc = await store.putBlob(Buffer.from(JSON.stringify(manifest)), MediaType.OciManifest);
  await store.updateIndex(async (idx) => {
    if (names.length === 0) store.keepDangling(manifestDesc, idx);
    for (const n of names) await store.setName(n, manifestDesc, idx);
  });
  return { id: configDesc.digest, manifest: manifestDesc, config };
}
