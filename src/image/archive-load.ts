import { createHash } from 'node:crypto';
import { readFile, rm, unlink } from 'node:fs/promises';
import { posix } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { HoistError } from '../util/errors.js';
import { isDigest, parseDigest, sha256Of, type Digest } from './digest.js';
import { decompressAuto, type Compression } from './layer.js';
import { choosePlatform, MAX_JSON_BLOB, nameOf, validateManifest, type Ingested, type Store } from './store.js';
import { Annotation, isIndexType, isManifestType, MediaType, type Descriptor, type DockerArchiveEntry, type ImageConfig, type ImageIndex, type ImageManifest } from './types.js';
import { formatReference, parseReference } from './reference.js';

/** What a load put into the store. */
export interface LoadResult {
  images: { id: Digest; manifest: Digest; names: string[] }[];
  format: 'oci' | 'docker';
  /** Names that moved away from an older image (Docker prints a notice for those). */
  retagged: { name: string; oldId: Digest }[];
}

/** A regular file of the archive, already hashed into tmp/. */
interface ArchiveFile extends Ingested {
  /** Digest of the decompressed content (= digest when not compressed); undefined if it failed to decompress. */
  diffID?: Digest;
  compression: Compression;
  diffError?: Error;
}

const MAX_LINK_HOPS = 16;

function normName(n: string): string | undefined {
  const p = posix.normalize(n.replace(/^\/+/, ''));
  if (p === '.' || p.startsWith('../') || p === '..') return undefined;
  return p.replace(/\/$/, '');
}

function waitWritable(s: PassThrough): Promise<void> {
  // The drain may already have happened while we waited on the other branch.
  if (!s.writableNeedDrain || s.destroyed) return Promise.resolve();
  return new Promise((res) => {
    const done = () => {
      s.off('drain', done);
      s.off('close', done);
      res();
    };
    s.once('drain', done);
    s.once('close', done);
  });
}

/**
 * Copies `src` to both outputs with backpressure from each; `b` may drop out
 * (destroyed) without stopping `a`. tar-stream entries can only be piped once.
 */
async function tee(src: AsyncIterable<Buffer>, a: PassThrough, b: PassThrough): Promise<void> {
  for await (const c of src) {
    if (a.destroyed) return;
    a.write(c);
    if (!b.destroyed) b.write(c);
    await waitWritable(a);
    await waitWritable(b);
  }
  a.end();
  if (!b.destroyed) b.end();
}

/** Streams one archive entry into tmp/, hashing it, and (if compressed) hashing its decompressed content too. */
async function ingestEntry(store: Store, dir: string, entry: AsyncIterable<Buffer>, expect: Digest | undefined): Promise<ArchiveFile> {
  const toFile = new PassThrough();
  const toDiff = new PassThrough();
  let compression: Compression = 'uncompressed';
  const diffHash = createHash('sha256');
  const diffJob = pipeline(
    decompressAuto(toDiff, (k) => (compression = k)),
    async function (s: AsyncIterable<Buffer>) {
      for await (const c of s) {
        // Hashing an uncompressed file twice would waste time: its diff ID is its digest.
        if (compression !== 'uncompressed') diffHash.update(c);
      }
    },
  ).then(
    () => undefined,
    (e: Error) => {
      // A non-layer file may merely look compressed: drop this branch, keep the file.
      toDiff.destroy();
      return e;
    },
  );
  const fileJob = store.ingest(toFile, dir, { digest: expect });
  const feed = tee(entry, toFile, toDiff).catch((e: Error) => {
    toFile.destroy(e);
    toDiff.destroy();
  });
  let ing: Ingested;
  try {
    ing = await fileJob;
  } catch (e) {
    toDiff.destroy();
    await Promise.all([feed, diffJob]);
    throw e;
  }
  await feed;
  const diffErr = await diffJob;
  return {
    ...ing,
    compression,
    diffID: diffErr ? undefined : compression === 'uncompressed' ? ing.digest : (`sha256:${diffHash.digest('hex')}` as Digest),
    diffError: diffErr ?? undefined,
  };
}

function archiveError(msg: string, hint?: string): HoistError {
  return new HoistError('E_ARCHIVE', msg, { hint: hint ?? 'the archive is damaged or not an image archive made by docker save, podman save or skopeo' });
}

/** Reads a `docker save` or OCI archive from `src` (optionally gzip/zstd-compressed as a whole) into the store. */
export async function loadArchive(store: Store, src: Readable): Promise<LoadResult> {
  const dir = await store.tmpDir('load');
  try {
    const files = new Map<string, ArchiveFile>();
    const links = new Map<string, string>();
    const extract = tar.extract();
    const reading = (async () => {
      for await (const entry of extract) {
        const h = entry.header;
        const name = normName(h.name);
        if (name === undefined) {
          entry.resume();
          continue;
        }
        if (h.type === 'file' || h.type === 'contiguous-file') {
          const m = /^blobs\/([^/]+)\/([^/]+)$/.exec(name);
          let expect: Digest | undefined;
          if (m && m[1] === 'sha256') expect = isDigest(`sha256:${m[2]}`) ? (`sha256:${m[2]}` as Digest) : undefined;
          const f = await ingestEntry(store, dir, entry as unknown as AsyncIterable<Buffer>, expect).catch((e: unknown) => {
            if (e instanceof HoistError && e.code === 'E_DIGEST_MISMATCH') {
              throw new HoistError('E_DIGEST_MISMATCH', `${name} in the archive: ${e.message}`, { hint: e.hint });
            }
            throw e;
          });
          const old = files.get(name);
          if (old) await unlink(old.tmpPath).catch(() => undefined);
          files.set(name, f);
          links.delete(name);
        } else if ((h.type === 'symlink' || h.type === 'link') && h.linkname) {
          // docker save writes repeated layers as symlinks to the first copy.
          const base = h.type === 'symlink' ? posix.dirname(name) : '';
          const target = normName(h.type === 'symlink' && h.linkname.startsWith('/') ? h.linkname : posix.join(base, h.linkname));
          if (target !== undefined) links.set(name, target);
          entry.resume();
        } else {
          entry.resume();
        }
      }
    })();
    const [piped, read] = await Promise.allSettled([pipeline(decompressAuto(src), extract), reading]);
    // The entry loop's error is the meaningful one; the pipe then only reports "premature close".
    if (read.status === 'rejected') {
      if (read.reason instanceof HoistError) throw read.reason;
      throw archiveError(`cannot read the image archive: ${(read.reason as Error).message}`);
    }
    if (piped.status === 'rejected') {
      if (piped.reason instanceof HoistError) throw piped.reason;
      throw archiveError(`cannot read the image archive: ${(piped.reason as Error).message}`);
    }

    const lookup = (name: string): ArchiveFile | undefined => {
      let n: string | undefined = normName(name);
      for (let hops = 0; n !== undefined && hops < MAX_LINK_HOPS; hops++) {
        const f = files.get(n);
        if (f) return f;
        n = links.get(n);
      }
      return undefined;
    };
    const readSmall = async (f: ArchiveFile, what: string): Promise<unknown> => {
      if (f.size > MAX_JSON_BLOB) throw archiveError(`${what} is ${f.size} bytes; refusing to parse JSON metadata over ${MAX_JSON_BLOB} bytes`);
      try {
        return JSON.parse(await readFile(f.tmpPath, 'utf8'));
      } catch (e) {
        throw archiveError(`${what} is not valid JSON: ${(e as Error).message}`);
      }
    };

    let plan: Plan;
    const index = lookup('index.json');
    const dmanifest = lookup('manifest.json');
    if (index && lookup('oci-layout')) plan = await planOCI(index, lookup, readSmall);
    else if (dmanifest) plan = await planDocker(dmanifest, lookup, readSmall);
    else if (index) throw archiveError('the archive has index.json but no oci-layout file', 'an OCI archive needs both; re-create it with skopeo copy ... oci-archive:FILE');
    else if (lookup('repositories')) throw archiveError('this is a legacy (pre-1.10) docker save archive without manifest.json; hoist does not read that format', 'save it again with a current docker');
    else throw archiveError('not an image archive: it has neither manifest.json (docker save) nor index.json (OCI)');

    return await commitPlan(store, plan);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** A loaded image before it is committed: blobs to make visible and names to attach. */
interface PlannedImage {
  manifest: Descriptor;
  /** Present when hoist wrote the manifest itself (docker archives). */
  manifestBytes?: Buffer;
  configId: Digest;
  blobs: ArchiveFile[];
  names: string[];
}
interface Plan {
  format: 'oci' | 'docker';
  images: PlannedImage[];
}

type Lookup = (name: string) => ArchiveFile | undefined;
type ReadSmall = (f: ArchiveFile, what: string) => Promise<unknown>;

function checkDiffIDs(config: ImageConfig, layers: ArchiveFile[], where: string): void {
  const diffs = config?.rootfs?.diff_ids;
  if (!Array.isArray(diffs)) throw archiveError(`the image config of ${where} has no rootfs.diff_ids`);
  if (diffs.length !== layers.length) throw archiveError(`${where} has ${layers.length} layers but its config lists ${diffs.length} diff IDs`);
  layers.forEach((l, i) => {
    const want = parseDigest(diffs[i], 'diff ID');
    if (!l.diffID) throw archiveError(`layer ${i + 1} of ${where} cannot be decompressed: ${l.diffError?.message ?? 'unknown error'}`);
    if (l.diffID !== want) {
      throw new HoistError('E_DIGEST_MISMATCH', `layer ${i + 1} of ${where} does not match its diff ID: the config says ${want}, the content is ${l.diffID}`, {
        hint: 'the archive is corrupt or was tampered with',
      });
    }
  });
}

/** Names for an image from an OCI index entry: containerd's full name, else a ref name that is a whole reference. */
function ociNames(d: Descriptor): string[] {
  const a = d.annotations ?? {};
  const full = a[Annotation.ContainerdName] ?? a[Annotation.HoistName];
  const candidates = full ? [full] : [];
  const ref = a[Annotation.RefName];
  // A bare ref name ("latest", "v1") is only a tag with no repository; it cannot name an image.
  if (!full && ref && /[:/@]/.test(ref)) candidates.push(ref);
  const out: string[] = [];
  for (const c of candidates) {
    try {
      const r = parseReference(c);
      if (r.tag !== undefined && !r.digest) out.push(formatReference(r));
    } catch {
      /* an unusable name is dropped; the image still loads under its ID */
    }
  }
  return out;
}

async function planOCI(indexFile: ArchiveFile, lookup: Lookup, readSmall: ReadSmall): Promise<Plan> {
  const idx = (await readSmall(indexFile, 'index.json')) as ImageIndex;
  if (!idx || !Array.isArray(idx.manifests)) throw archiveError('index.json is not an OCI image index (no "manifests" array)');
  const blob = (d: Descriptor, what: string): ArchiveFile => {
    const digest = parseDigest(d?.digest, `${what} digest`);
    const f = lookup(`blobs/sha256/${digest.slice(7)}`);
    if (!f) throw archiveError(`the archive is incomplete: ${what} ${digest} is missing`);
    if (d.size !== undefined && d.size !== f.size) {
      throw new HoistError('E_DIGEST_MISMATCH', `${what} ${digest} is ${f.size} bytes but its descriptor says ${d.size}`);
    }
    return f;
  };
  const images: PlannedImage[] = [];
  const resolve = async (d: Descriptor, depth: number): Promise<Descriptor> => {
    if (depth > 4) throw archiveError('image indexes are nested too deeply');
    if (isManifestType(d.mediaType)) return d;
    if (isIndexType(d.mediaType)) {
      const sub = (await readSmall(blob(d, 'image index'), `index ${d.digest}`)) as ImageIndex;
      if (!sub || !Array.isArray(sub.manifests)) throw archiveError(`blob ${d.digest} is not an image index`);
      const chosen = await choosePlatform(sub.manifests, async (x) => lookup(`blobs/sha256/${String(x.digest).slice(7)}`) !== undefined);
      if (!chosen) throw archiveError(`image index ${d.digest} has no manifest for this platform in the archive`);
      return resolve(chosen, depth + 1);
    }
    throw archiveError(`unsupported media type ${JSON.stringify(d.mediaType)} in index.json`);
  };
  for (const top of idx.manifests) {
    if (!isManifestType(top?.mediaType) && !isIndexType(top?.mediaType)) continue; // attestations, artifacts
    const md = await resolve(top, 0);
    const mfile = blob(md, 'manifest');
    const manifest = (await readSmall(mfile, `manifest ${md.digest}`)) as ImageManifest;
    validateManifest(manifest, `manifest ${md.digest}`);
    const cfile = blob(manifest.config, 'image config');
    const config = (await readSmall(cfile, `config ${manifest.config.digest}`)) as ImageConfig;
    const layers = manifest.layers.map((l, i) => blob(l, `layer ${i + 1}`));
    checkDiffIDs(config, layers, `manifest ${md.digest}`);
    const existing = images.find((i) => i.manifest.digest === md.digest);
    const names = ociNames(top);
    if (existing) existing.names.push(...names.filter((n) => !existing.names.includes(n)));
    else
      images.push({
        manifest: { mediaType: md.mediaType, digest: md.digest, size: mfile.size, ...(md.platform ? { platform: md.platform } : {}) },
        configId: manifest.config.digest,
        blobs: [mfile, cfile, ...layers],
        names,
      });
  }
  if (images.length === 0) throw archiveError('index.json lists no image manifests');
  return { format: 'oci', images };
}

async function planDocker(mfile: ArchiveFile, lookup: Lookup, readSmall: ReadSmall): Promise<Plan> {
  const entries = (await readSmall(mfile, 'manifest.json')) as DockerArchiveEntry[];
  if (!Array.isArray(entries) || entries.length === 0) throw archiveError('manifest.json must be a non-empty array of {Config, RepoTags, Layers}');
  const images: PlannedImage[] = [];
  for (const [n, e] of entries.entries()) {
    const where = `manifest.json entry ${n + 1}`;
    if (!e || typeof e.Config !== 'string' || !Array.isArray(e.Layers)) throw archiveError(`${where} needs a Config path and a Layers list`);
    const cfile = lookup(e.Config);
    if (!cfile) throw archiveError(`the archive is incomplete: ${where} names config ${JSON.stringify(e.Config)}, which is not in it`);
    const config = (await readSmall(cfile, `config ${e.Config}`)) as ImageConfig;
    const layers = e.Layers.map((p, i) => {
      const f = typeof p === 'string' ? lookup(p) : undefined;
      if (!f) throw archiveError(`the archive is incomplete: layer ${i + 1} (${JSON.stringify(p)}) of ${where} is not in it`);
      return f;
    });
    checkDiffIDs(config, layers, where);
    for (const l of layers) {
      if (l.compression === 'bzip2' || l.compression === 'xz') {
        throw archiveError(`a layer of ${where} is ${l.compression}-compressed, which OCI images cannot carry`, 'recompress the layers with gzip or zstd, or save them uncompressed');
      }
    }
    const mediaOf = (c: Compression) => (c === 'gzip' ? MediaType.OciLayerGzip : c === 'zstd' ? MediaType.OciLayerZstd : MediaType.OciLayer);
    const manifest: ImageManifest = {
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      config: { mediaType: MediaType.OciConfig, digest: cfile.digest, size: cfile.size },
      layers: layers.map((l) => ({ mediaType: mediaOf(l.compression), digest: l.digest, size: l.size })),
    };
    const bytes = Buffer.from(JSON.stringify(manifest));
    const names: string[] = [];
    for (const t of e.RepoTags ?? []) {
      try {
        const r = parseReference(t);
        if (r.digest) continue;
        names.push(formatReference(r));
      } catch (err) {
        throw archiveError(`${where} has an invalid RepoTags entry: ${(err as Error).message}`);
      }
    }
    images.push({
      manifest: { mediaType: MediaType.OciManifest, digest: sha256Of(bytes), size: bytes.length },
      manifestBytes: bytes,
      configId: cfile.digest,
      blobs: [cfile, ...layers],
      names,
    });
  }
  return { format: 'docker', images };
}

async function commitPlan(store: Store, plan: Plan): Promise<LoadResult> {
  // One archive file may back several images: commit each digest once.
  const want = new Map<Digest, ArchiveFile>();
  for (const img of plan.images) for (const b of img.blobs) want.set(b.digest, b);
  const result: LoadResult = { images: [], format: plan.format, retagged: [] };
  await store.withLock(async () => {
    await store.commit([...want.values()]);
    for (const img of plan.images) if (img.manifestBytes) await store.putBlob(img.manifestBytes, img.manifest.mediaType);
    await store.modifyIndexLocked(async (idx) => {
      for (const img of plan.images) {
        for (const name of img.names) {
          const prev = idx.manifests.find((d) => nameOf(d) === name);
          if (prev && prev.digest !== img.manifest.digest) {
            const prevId = await store.configDigestOf(prev).catch(() => undefined);
            if (prevId) result.retagged.push({ name, oldId: prevId });
            await store.setName(name, img.manifest, idx);
            store.keepDangling(prev, idx);
          } else {
            await store.setName(name, img.manifest, idx);
          }
        }
        if (img.names.length === 0) store.keepDangling(img.manifest, idx);
        result.images.push({ id: img.configId, manifest: img.manifest.digest, names: img.names });
      }
    });
  });
  return result;
}
