import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, readFile, rename, rm, stat, unlink, utimes, writeFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { randomBytes } from 'node:crypto';
import { HoistError } from '../util/errors.js';
import { digestHex, isDigest, parseDigest, sha256Of, type Digest } from './digest.js';
import { withFileLock } from './lock.js';
import { cleanTmp, makeTmpDir, pidAlive } from './tmpdir.js';
import { Annotation, isIndexType, isManifestType, MediaType, type Descriptor, type ImageConfig, type ImageIndex, type ImageManifest } from './types.js';
import { familiarString, formatReference, parseReference, type Reference } from './reference.js';
import { writeFileAtomic } from '../util/atomic.js';

/** JSON blobs (manifests, configs, indexes) larger than this are refused rather than parsed. */
export const MAX_JSON_BLOB = 8 * 1024 * 1024;
const LAYOUT = JSON.stringify({ imageLayoutVersion: '1.0.0' });

/** A blob written to the store's tmp/ and verified, not yet visible under blobs/. */
export interface Ingested {
  tmpPath: string;
  digest: Digest;
  size: number;
}

/** One name (or the nameless "dangling" entry) in index.json, resolved to its image. */
export interface ImageRecord {
  /** Full normalised name; undefined for an untagged (dangling) image. */
  name?: string;
  ref?: Reference;
  /** The index.json descriptor (manifest, or an index for multi-platform images). */
  target: Descriptor;
  taggedAt?: string;
}

/** A single-platform image resolved down to its manifest and config. */
export interface ResolvedImage {
  manifestDescriptor: Descriptor;
  manifest: ImageManifest;
  /** Image ID, as Docker shows it: the config digest. */
  id: Digest;
  config: ImageConfig;
  /** Every full name pointing at this image. */
  names: string[];
  /** Descriptor stored in index.json (may be an index above the manifest). */
  target: Descriptor;
}

/** Docker's name for Node's architecture. */
export function hostPlatform(): { os: string; architecture: string; variant?: string } {
  const map: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };
  return { os: 'linux', architecture: map[process.arch] ?? process.arch, ...(process.arch === 'arm64' ? { variant: 'v8' } : {}) };
}

/** Hashes a stream as it passes through and counts its bytes. */
export class HashingStream extends Transform {
  readonly hash = createHash('sha256');
  size = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.hash.update(chunk);
    this.size += chunk.length;
    this.push(chunk);
    cb();
  }
  private final?: Digest;
  /** The digest once the stream has ended (may be asked repeatedly). */
  digest(): Digest {
    this.final ??= `sha256:${this.hash.digest('hex')}`;
    return this.final;
  }
}

/** The content store and the image references of a hoist root (an OCI image layout). */
export class Store {
  private constructor(readonly root: string) {}

  /** Opens (creating if needed) the store at `root` and removes what crashed processes left in tmp/. */
  static async open(root: string): Promise<Store> {
    try {
      await mkdir(join(root, 'blobs', 'sha256'), { recursive: true });
      await mkdir(join(root, 'tmp'), { recursive: true, mode: 0o700 });
    } catch (e) {
      throw new HoistError('E_ROOT', `cannot create the store at ${root}: ${(e as Error).message}`, {
        hint: 'pass a writable directory with --root or HOIST_ROOT',
      });
    }
    const s = new Store(root);
    const layout = join(root, 'oci-layout');
    const cur = await readFile(layout, 'utf8').catch(() => null);
    if (cur === null) await s.writeAtomic(layout, LAYOUT);
    else {
      let ver: unknown;
      try {
        ver = (JSON.parse(cur) as { imageLayoutVersion?: unknown }).imageLayoutVersion;
      } catch {
        ver = undefined;
      }
      if (ver !== '1.0.0') throw new HoistError('E_ROOT', `${layout} is not an OCI layout version 1.0.0 marker`, { hint: 'point --root at a hoist store' });
    }
    if ((await stat(join(root, 'index.json')).catch(() => null)) === null) {
      await s.withLock(async () => {
        if ((await stat(join(root, 'index.json')).catch(() => null)) === null) await s.writeIndex({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [] });
      });
    }
    await cleanTmp(root);
    await s.cleanAtomicLeftovers();
    return s;
  }

  /** Path of a committed blob. */
  blobPath(d: Digest): string {
    return join(this.root, 'blobs', 'sha256', digestHex(d));
  }

  /** True when the blob is committed. */
  async hasBlob(d: Digest): Promise<boolean> {
    return (await stat(this.blobPath(d)).catch(() => null))?.isFile() ?? false;
  }

  /** True when the blob is committed; bumps its file time so a concurrent prune keeps it (src/cache/prune.ts). */
  private async touchBlob(d: Digest): Promise<boolean> {
    const now = new Date();
    return utimes(this.blobPath(d), now, now).then(() => true, () => false);
  }

  /** Size of a committed blob, or undefined. */
  async blobSize(d: Digest): Promise<number | undefined> {
    return (await stat(this.blobPath(d)).catch(() => null))?.size;
  }

  /** A read stream over a committed blob. */
  openBlob(d: Digest): Readable {
    return createReadStream(this.blobPath(d));
  }

  /** Reads a small blob (manifest, config, index) into memory, refusing oversized ones. */
  async readBlob(d: Digest, max = MAX_JSON_BLOB): Promise<Buffer> {
    const p = this.blobPath(d);
    const st = await stat(p).catch(() => null);
    if (!st) throw new HoistError('E_BLOB_MISSING', `blob ${d} is missing from the store ${this.root}`, { hint: 'run `hoist system check`; re-load or re-pull the image' });
    if (st.size > max) throw new HoistError('E_BLOB_TOO_LARGE', `blob ${d} is ${st.size} bytes, more than the ${max} allowed for JSON metadata`);
    const buf = await readFile(p);
    if (sha256Of(buf) !== d) throw new HoistError('E_CORRUPT', `blob ${d} in ${this.root} is corrupt (its content does not match its digest)`, { hint: 'run `hoist system check`, then re-load the image' });
    return buf;
  }

  /** Reads and parses a JSON blob. */
  async readJSON<T>(d: Digest): Promise<T> {
    const buf = await this.readBlob(d);
    try {
      return JSON.parse(buf.toString('utf8')) as T;
    } catch (e) {
      throw new HoistError('E_CORRUPT', `blob ${d} is not valid JSON: ${(e as Error).message}`);
    }
  }

  /** A private work directory under tmp/ (removed by the next process if this one dies). */
  tmpDir(purpose: string): Promise<string> {
    return makeTmpDir(this.root, purpose);
  }

  /**
   * Streams `src` into a file in `dir` (a tmp dir of this store), hashing as it writes,
   * fsyncs, and checks the expected digest/size; on mismatch the file is removed.
   */
  async ingest(src: Readable, dir: string, expect: { digest?: Digest; size?: number } = {}): Promise<Ingested> {
    const tmpPath = join(dir, `blob-${randomBytes(8).toString('hex')}`);
    const h = new HashingStream();
    const fh = await open(tmpPath, 'wx', 0o644);
    try {
      await pipeline(src, h, createWriteStream('', { fd: fh.fd, autoClose: false }));
      await fh.sync();
    } catch (e) {
      await fh.close().catch(() => undefined);
      await unlink(tmpPath).catch(() => undefined);
      throw e;
    }
    await fh.close();
    const digest = h.digest();
    if ((expect.digest && expect.digest !== digest) || (expect.size !== undefined && expect.size !== h.size)) {
      await unlink(tmpPath).catch(() => undefined);
      throw new HoistError(
        'E_DIGEST_MISMATCH',
        `content does not match its descriptor: expected ${expect.digest ?? '(any digest)'}${expect.size !== undefined ? ` (${expect.size} bytes)` : ''}, got ${digest} (${h.size} bytes)`,
        { hint: 'the archive or download is corrupt or was tampered with; fetch it again' },
      );
    }
    return { tmpPath, digest, size: h.size };
  }

  /** Makes ingested blobs visible under blobs/sha256 (atomic rename; an existing blob wins). */
  async commit(items: Ingested[]): Promise<void> {
    for (const it of items) {
      const dst = this.blobPath(it.digest);
      if (await this.touchBlob(it.digest)) {
        await unlink(it.tmpPath).catch(() => undefined);
        continue;
      }
      await rename(it.tmpPath, dst);
    }
    await this.syncDir(join(this.root, 'blobs', 'sha256'));
  }

  /** Writes a small in-memory blob (manifest, config) into the store and returns its descriptor. */
  async putBlob(data: Buffer, mediaType: string): Promise<Descriptor> {
    const digest = sha256Of(data);
    if (!(await this.touchBlob(digest))) {
      const dir = await this.tmpDir('put');
      try {
        const tmp = join(dir, 'blob');
        const fh = await open(tmp, 'wx', 0o644);
        try {
          await fh.writeFile(data);
          await fh.sync();
        } finally {
          await fh.close();
        }
        await this.commit([{ tmpPath: tmp, digest, size: data.length }]);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    }
    return { mediaType, digest, size: data.length };
  }

  private async syncDir(dir: string): Promise<void> {
    const fh = await open(dir, 'r').catch(() => null);
    if (!fh) return;
    try {
      await fh.sync().catch(() => undefined);
    } finally {
      await fh.close();
    }
  }

  /** Removes `index.json.tmp-<pid>-…` files of processes killed between write and rename. */
  private async cleanAtomicLeftovers(): Promise<void> {
    for (const n of await readdir(this.root).catch(() => [] as string[])) {
      const m = /\.tmp-(\d+)-[a-f0-9]+$/.exec(n);
      if (m && Number(m[1]) !== process.pid && !pidAlive(Number(m[1]))) await unlink(join(this.root, n)).catch(() => undefined);
    }
  }

  private async writeAtomic(path: string, data: string): Promise<void> {
    await writeFileAtomic(path, data);
    await this.syncDir(this.root);
  }

  /** Runs `fn` with the store's write lock (index.json updates, garbage collection). */
  withLock<T>(fn: () => Promise<T>): Promise<T> {
    return withFileLock(join(this.root, 'index.lock'), fn);
  }

  /** The current index.json (read without the lock: it is always replaced atomically). */
  async readIndex(): Promise<ImageIndex> {
    const p = join(this.root, 'index.json');
    let text: string;
    try {
      text = await readFile(p, 'utf8');
    } catch (e) {
      throw new HoistError('E_ROOT', `cannot read ${p}: ${(e as Error).message}`);
    }
    let idx: ImageIndex;
    try {
      idx = JSON.parse(text) as ImageIndex;
    } catch (e) {
      throw new HoistError('E_CORRUPT', `${p} is not valid JSON: ${(e as Error).message}`, { hint: 'restore it from a backup or remove the store' });
    }
    if (!idx || !Array.isArray(idx.manifests)) throw new HoistError('E_CORRUPT', `${p} is not an OCI image index (no "manifests" array)`);
    return idx;
  }

  private writeIndex(idx: ImageIndex): Promise<void> {
    return this.writeAtomic(join(this.root, 'index.json'), JSON.stringify(idx, null, 2) + '\n');
  }

  /** Changes index.json under the lock: `fn` edits the manifests array in place. */
  async updateIndex<T>(fn: (idx: ImageIndex) => Promise<T> | T): Promise<T> {
    return this.withLock(() => this.modifyIndexLocked(fn));
  }

  /** Like updateIndex, for callers already holding the lock (they also commit blobs inside it). */
  async modifyIndexLocked<T>(fn: (idx: ImageIndex) => Promise<T> | T): Promise<T> {
    const idx = await this.readIndex();
    const r = await fn(idx);
    await this.writeIndex(idx);
    return r;
  }

  /** The image ID (config digest) an index.json entry leads to. */
  async configDigestOf(target: Descriptor): Promise<Digest> {
    const { manifest } = await this.resolveManifest(target);
    return parseDigest(manifest.config.digest, 'config digest');
  }

  /** Every entry of index.json as an image record. */
  async listRecords(): Promise<ImageRecord[]> {
    const idx = await this.readIndex();
    return idx.manifests.map((d) => recordOf(d));
  }

  /** Follows an index.json descriptor to the manifest for this host's platform. */
  async resolveManifest(target: Descriptor, depth = 0): Promise<{ descriptor: Descriptor; manifest: ImageManifest }> {
    if (depth > 4) throw new HoistError('E_CORRUPT', `image index nesting too deep at ${target.digest}`);
    parseDigest(target.digest, 'descriptor digest');
    if (isManifestType(target.mediaType)) {
      const manifest = await this.readJSON<ImageManifest>(target.digest);
      validateManifest(manifest, target.digest);
      return { descriptor: target, manifest };
    }
    if (isIndexType(target.mediaType)) {
      const idx = await this.readJSON<ImageIndex>(target.digest);
      const chosen = await choosePlatform(idx.manifests ?? [], (d) => this.hasBlob(d.digest));
      if (!chosen) {
        const hp = hostPlatform();
        throw new HoistError('E_PLATFORM', `image index ${target.digest} has no manifest for ${hp.os}/${hp.architecture} in the store`);
      }
      return this.resolveManifest(chosen, depth + 1);
    }
    throw new HoistError('E_MEDIA_TYPE', `unsupported media type ${JSON.stringify(target.mediaType)} for ${target.digest}`);
  }

  /** Resolves one record to manifest + config. */
  async resolveRecord(rec: ImageRecord, names: string[] = rec.name ? [rec.name] : []): Promise<ResolvedImage> {
    const { descriptor, manifest } = await this.resolveManifest(rec.target);
    const id = parseDigest(manifest.config.digest, 'config digest');
    const config = await this.readJSON<ImageConfig>(id);
    return { manifestDescriptor: descriptor, manifest, id, config, names, target: rec.target };
  }

  /** All images in the store, one per distinct index.json target, with their names. */
  async listImages(): Promise<ResolvedImage[]> {
    const recs = await this.listRecords();
    const byTarget = new Map<string, { rec: ImageRecord; names: string[] }>();
    for (const r of recs) {
      const e = byTarget.get(r.target.digest);
      if (e) {
        if (r.name) e.names.push(r.name);
      } else byTarget.set(r.target.digest, { rec: r, names: r.name ? [r.name] : [] });
    }
    const out: ResolvedImage[] = [];
    for (const { rec, names } of byTarget.values()) out.push(await this.resolveRecord(rec, names));
    return out;
  }

  /**
   * Finds an image by name (`busybox`, `host:5000/a/b:tag`, `name@sha256:…`), by ID
   * (`sha256:<hex>` or a unique hex prefix of it), or by manifest digest.
   */
  async findImage(spec: string): Promise<ResolvedImage> {
    const recs = await this.listRecords();
    let ref: Reference | undefined;
    let refErr: unknown;
    try {
      ref = parseReference(spec);
    } catch (e) {
      refErr = e;
    }
    if (ref) {
      const full = formatReference(ref);
      if (ref.digest) {
        const repo = `${ref.domain}/${ref.path}`;
        // a digest names the manifest itself or the index it was pulled through
        const hits = recs.filter((r) => (r.target.digest === ref!.digest || r.target.annotations?.[Annotation.HoistIndex] === ref!.digest) && (!r.ref || `${r.ref.domain}/${r.ref.path}` === repo));
        if (hits.length) return this.withNames(hits[0]!, recs);
      } else {
        const hit = recs.find((r) => r.name === full);
        if (hit) return this.withNames(hit, recs);
      }
    }
    const m = /^(?:sha256:)?([a-f0-9]{1,64})$/.exec(spec);
    if (m) {
      const prefix = m[1]!;
      const images = await this.listImages();
      const hits = images.filter((i) => digestHex(i.id).startsWith(prefix) || digestHex(i.target.digest) === prefix);
      const ids = new Set(hits.map((h) => h.id));
      if (ids.size > 1) throw new HoistError('E_AMBIGUOUS', `image ID prefix ${spec} matches ${ids.size} images`, { hint: 'give more characters of the ID' });
      if (hits.length) return hits[0]!;
    }
    if (!ref && refErr) throw refErr;
    throw new HoistError('E_NO_IMAGE', `no such image: ${spec}`, { hint: 'list images with `hoist images`, or load one with `hoist load -i FILE`', exitCode: 1 });
  }

  private async withNames(rec: ImageRecord, all: ImageRecord[]): Promise<ResolvedImage> {
    const names = all.filter((r) => r.target.digest === rec.target.digest && r.name).map((r) => r.name!);
    return this.resolveRecord(rec, names);
  }

  /** Points `name` at `target`, replacing what the name pointed at before; drops a now-redundant dangling entry. */
  async setName(name: string, target: Descriptor, idx: ImageIndex, extra: Record<string, string> = {}): Promise<void> {
    const ref = parseReference(name);
    const full = formatReference(ref);
    const now = new Date().toISOString();
    const entry: Descriptor = {
      mediaType: target.mediaType,
      digest: target.digest,
      size: target.size,
      ...(target.platform ? { platform: target.platform } : {}),
      annotations: { ...extra, [Annotation.RefName]: familiarString(ref), [Annotation.HoistName]: full, [Annotation.HoistTagged]: now },
    };
    idx.manifests = idx.manifests.filter((d) => nameOf(d) !== full && !(d.digest === target.digest && !nameOf(d)));
    idx.manifests.push(entry);
  }

  /** Adds an untagged entry for `target` unless some entry already keeps it alive. */
  keepDangling(target: Descriptor, idx: ImageIndex, extra: Record<string, string> = {}): void {
    const have = idx.manifests.filter((d) => d.digest === target.digest);
    if (have.length) {
      for (const d of have) if (Object.keys(extra).length) d.annotations = { ...d.annotations, ...extra };
      return;
    }
    const { annotations: _a, ...bare } = target;
    idx.manifests.push({ ...bare, annotations: { ...extra, [Annotation.HoistTagged]: new Date().toISOString() } });
  }

  /** Every committed blob digest. */
  async listBlobs(): Promise<Digest[]> {
    const names = await readdir(join(this.root, 'blobs', 'sha256')).catch(() => [] as string[]);
    return names.map((n) => `sha256:${n}`).filter(isDigest) as Digest[];
  }
}

/** Full normalised name stored on an index.json entry, if any. */
export function nameOf(d: Descriptor): string | undefined {
  const a = d.annotations ?? {};
  const n = a[Annotation.HoistName];
  if (n) return n;
  // Entries written by other tools (umoci, skopeo) only carry the OCI ref name.
  const r = a[Annotation.RefName];
  if (r) {
    try {
      return formatReference(parseReference(r));
    } catch {
      return undefined;
    }
  }
  return undefined;
}

function recordOf(d: Descriptor): ImageRecord {
  const name = nameOf(d);
  let ref: Reference | undefined;
  if (name) {
    try {
      ref = parseReference(name);
    } catch {
      ref = undefined;
    }
  }
  return { name: ref ? name : undefined, ref, target: d, taggedAt: d.annotations?.[Annotation.HoistTagged] };
}

/** Rejects manifests that are structurally unusable before anyone indexes into them. */
export function validateManifest(m: ImageManifest, where: string): void {
  if (!m || typeof m !== 'object' || m.schemaVersion !== 2 || !m.config || !Array.isArray(m.layers)) {
    throw new HoistError('E_MANIFEST', `${where} is not an image manifest (schemaVersion 2 with config and layers)`);
  }
  parseDigest(m.config.digest, 'config digest');
  for (const l of m.layers) {
    parseDigest(l?.digest, 'layer digest');
    if (!Number.isSafeInteger(l.size) || l.size < 0) throw new HoistError('E_MANIFEST', `layer ${l.digest} in ${where} has an invalid size`);
  }
}

/** Picks the host's platform from an index's manifests (only entries `present` says are available). */
export async function choosePlatform(list: Descriptor[], present: (d: Descriptor) => Promise<boolean>): Promise<Descriptor | undefined> {
  const hp = hostPlatform();
  const candidates: Descriptor[] = [];
  for (const d of list) {
    if (!isManifestType(d.mediaType) && !isIndexType(d.mediaType)) continue;
    if (!isDigest(d.digest)) continue;
    if (await present(d)) candidates.push(d);
  }
  const exact = candidates.find((d) => d.platform?.os === hp.os && d.platform?.architecture === hp.architecture);
  if (exact) return exact;
  const unlabeled = candidates.filter((d) => !d.platform);
  if (unlabeled.length === 1) return unlabeled[0];
  return candidates.length === 1 ? candidates[0] : undefined;
}
