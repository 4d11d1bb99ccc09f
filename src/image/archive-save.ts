import { createReadStream, createWriteStream } from 'node:fs';
import { open, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { HoistError } from '../util/errors.js';
import { digestHex, type Digest } from './digest.js';
import { imageLayers } from './chainid.js';
import { decompressAuto, detectCompression } from './layer.js';
import { familiarRepository, familiarString, parseReference, type Reference } from './reference.js';
import { HashingStream, type ResolvedImage, type Store } from './store.js';
import { Annotation, MediaType, type Descriptor, type DockerArchiveEntry, type ImageIndex } from './types.js';

export type ArchiveFormat = 'oci' | 'docker';

/** An image chosen for saving and the names to record for it. */
interface Selected {
  image: ResolvedImage;
  refs: Reference[];
}

const EPOCH = new Date(0);

function header(name: string, size: number, type: 'file' | 'directory' = 'file') {
  return { name, size, type, mode: type === 'directory' ? 0o755 : 0o644, mtime: EPOCH, uid: 0, gid: 0 } as const;
}

function addBuffer(pack: tar.Pack, name: string, data: Buffer): Promise<void> {
  return new Promise((res, rej) => pack.entry(header(name, data.length), data, (e) => (e ? rej(e) : res())));
}

function addStream(pack: tar.Pack, name: string, size: number, src: Readable): Promise<void> {
  return new Promise((res, rej) => {
    const e = pack.entry(header(name, size), (err) => (err ? rej(err) : res()));
    src.on('error', (err) => {
      e.destroy(err);
      rej(err);
    });
    src.pipe(e);
  });
}

/** Resolves the command-line image arguments; a name keeps that name, an ID saves the image untagged. */
async function select(store: Store, specs: string[]): Promise<Selected[]> {
  const out: Selected[] = [];
  for (const spec of specs) {
    const image = await store.findImage(spec);
    let refs: Reference[] = [];
    try {
      const r = parseReference(spec);
      if (!r.digest && image.names.includes(`${r.domain}/${r.path}:${r.tag}`)) refs = [r];
    } catch {
      refs = [];
    }
    const same = out.find((s) => s.image.manifestDescriptor.digest === image.manifestDescriptor.digest);
    if (same) {
      for (const r of refs) if (!same.refs.some((x) => familiarString(x) === familiarString(r))) same.refs.push(r);
    } else out.push({ image, refs });
  }
  return out;
}

/** Writes the named images as an archive to `out` (a stream: the caller owns files and atomic renames). */
export async function saveArchive(store: Store, specs: string[], format: ArchiveFormat, out: Writable): Promise<void> {
  if (specs.length === 0) throw new HoistError('E_USAGE', 'hoist save needs at least one image', { exitCode: 125 });
  const selected = await select(store, specs);
  const pack = tar.pack();
  const done = pipeline(pack, out);
  try {
    if (format === 'oci') await writeOCI(store, selected, pack);
    else await writeDocker(store, selected, pack);
    pack.finalize();
  } catch (e) {
    pack.destroy(e as Error);
    await done.catch(() => undefined);
    throw e;
  }
  await done;
}

async function writeOCI(store: Store, selected: Selected[], pack: tar.Pack): Promise<void> {
  await addBuffer(pack, 'oci-layout', Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' })));
  await new Promise<void>((res, rej) => pack.entry(header('blobs/', 0, 'directory'), (e) => (e ? rej(e) : res())));
  await new Promise<void>((res, rej) => pack.entry(header('blobs/sha256/', 0, 'directory'), (e) => (e ? rej(e) : res())));
  const written = new Set<Digest>();
  const blob = async (d: Descriptor) => {
    if (written.has(d.digest)) return;
    written.add(d.digest);
    const size = await store.blobSize(d.digest);
    if (size === undefined) throw new HoistError('E_BLOB_MISSING', `blob ${d.digest} is missing from the store`, { hint: 'run `hoist system check`; re-load the image' });
    await addStream(pack, `blobs/sha256/${digestHex(d.digest)}`, size, store.openBlob(d.digest));
  };
  const index: ImageIndex = { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [] };
  const dockerManifest: DockerArchiveEntry[] = [];
  for (const { image, refs } of selected) {
    for (const l of image.manifest.layers) await blob(l);
    await blob(image.manifest.config);
    await blob(image.manifestDescriptor);
    const base: Descriptor = { mediaType: image.manifestDescriptor.mediaType, digest: image.manifestDescriptor.digest, size: image.manifestDescriptor.size };
    // Docker 25+ and containerd read the full name; umoci and skopeo select by the tag-only ref name.
    if (refs.length === 0) index.manifests.push(base);
    for (const r of refs) {
      index.manifests.push({ ...base, annotations: { [Annotation.ContainerdName]: `${r.domain}/${r.path}:${r.tag}`, [Annotation.RefName]: r.tag! } });
    }
    dockerManifest.push({
      Config: `blobs/sha256/${digestHex(image.id)}`,
      RepoTags: refs.map((r) => familiarString(r)),
      Layers: image.manifest.layers.map((l) => `blobs/sha256/${digestHex(l.digest)}`),
    });
  }
  await addBuffer(pack, 'index.json', Buffer.from(JSON.stringify(index)));
  // Lets docker versions older than 25 (which only read manifest.json) load the OCI archive too.
  await addBuffer(pack, 'manifest.json', Buffer.from(JSON.stringify(dockerManifest)));
}

async function writeDocker(store: Store, selected: Selected[], pack: tar.Pack): Promise<void> {
  const written = new Set<string>();
  const manifest: DockerArchiveEntry[] = [];
  const repositories: Record<string, Record<string, string>> = {};
  const work = await store.tmpDir('save');
  try {
    for (const { image, refs } of selected) {
      const layers = imageLayers(image);
      const paths: string[] = [];
      for (const l of layers) {
        const hex = digestHex(l.diffID);
        const path = `${hex}/layer.tar`;
        paths.push(path);
        if (written.has(path)) continue;
        written.add(path);
        await new Promise<void>((res, rej) => pack.entry(header(`${hex}/`, 0, 'directory'), (e) => (e ? rej(e) : res())));
        await addUncompressedLayer(store, pack, path, l.descriptor, l.diffID, work);
      }
      const cfgName = `${digestHex(image.id)}.json`;
      if (!written.has(cfgName)) {
        written.add(cfgName);
        await addBuffer(pack, cfgName, await store.readBlob(image.id));
      }
      manifest.push({ Config: cfgName, RepoTags: refs.map((r) => familiarString(r)), Layers: paths });
      const top = layers[layers.length - 1];
      for (const r of refs) {
        if (!top) break;
        (repositories[familiarRepository(r)] ??= {})[r.tag!] = digestHex(top.diffID);
      }
    }
    await addBuffer(pack, 'manifest.json', Buffer.from(JSON.stringify(manifest)));
    await addBuffer(pack, 'repositories', Buffer.from(JSON.stringify(repositories)));
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/**
 * Docker archives carry uncompressed layer.tar files. A tar header needs the size
 * first, so a compressed blob is decompressed to tmp/ (never into memory), checked
 * against its diff ID, then copied in.
 */
async function addUncompressedLayer(store: Store, pack: tar.Pack, path: string, d: Descriptor, diffID: Digest, work: string): Promise<void> {
  const head = Buffer.alloc(6);
  const fh = await open(store.blobPath(d.digest), 'r').catch(() => {
    throw new HoistError('E_BLOB_MISSING', `layer ${d.digest} is missing from the store`, { hint: 'run `hoist system check`; re-load the image' });
  });
  let n: number;
  try {
    n = (await fh.read(head, 0, 6, 0)).bytesRead;
  } finally {
    await fh.close();
  }
  if (detectCompression(head.subarray(0, n)) === 'uncompressed' && d.digest === diffID) {
    const size = (await stat(store.blobPath(d.digest))).size;
    await addStream(pack, path, size, store.openBlob(d.digest));
    return;
  }
  const tmp = join(work, digestHex(diffID));
  const h = new HashingStream();
  await pipeline(decompressAuto(store.openBlob(d.digest)), h, createWriteStream(tmp));
  if (h.digest() !== diffID) {
    throw new HoistError('E_CORRUPT', `layer ${d.digest} decompresses to ${h.digest()}, not its diff ID ${diffID}`, { hint: 'run `hoist system check` and re-load the image' });
  }
  await addStream(pack, path, h.size, createReadStream(tmp));
  await rm(tmp, { force: true });
}
