import { rm } from 'node:fs/promises';
import { Readable, Transform } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import PQueue from 'p-queue';
import { HoistError } from '../util/errors.js';
import { digestHex, parseDigest, sha256Of, type Digest } from '../image/digest.js';
import { familiarString, formatReference, parseReference, repositoryName, type Reference } from '../image/reference.js';
import { hostPlatform, MAX_JSON_BLOB, nameOf, validateManifest, type Ingested, type Store } from '../image/store.js';
import { Annotation, isIndexType, isManifestType, type Descriptor, type ImageConfig, type ImageIndex, type ImageManifest } from '../image/types.js';
import { ACCEPT_MANIFESTS, RegistryClient, repoScope, type ClientOptions } from './client.js';
import { isRetryableNetError, networkError, readBytesLimited } from './errors.js';
import { recordSources } from './sources.js';

/** Options of pullImage: client options plus progress and parallelism. */
export interface PullOptions extends ClientOptions {
  /** Receives Docker-like progress lines (`a3ed95caeb02: Pull complete`). */
  progress?: (line: string) => void;
  /** Blobs downloaded at once (default 3). */
  concurrency?: number;
  /** A client to reuse (tokens stay cached); must be for the reference's registry. */
  client?: RegistryClient;
}

/** What a pull did. */
export interface PullResult {
  /** The full normalised name that now points at the image (undefined when pulled by digest only). */
  name?: string;
  reference: Reference;
  /** Digest of what the tag points at in the registry (an index for multi-platform images). */
  digest: Digest;
  /** Image ID (config digest). */
  id: Digest;
  /** False when the store already had this exact image under the name. */
  updated: boolean;
}

/** A manifest (or index) as fetched: its exact bytes and what they are. */
export interface FetchedManifest {
  bytes: Buffer;
  mediaType: string;
  digest: Digest;
}

const SCHEMA1 = /application\/vnd\.docker\.distribution\.manifest\.v1\+(pretty)?jws|application\/vnd\.docker\.distribution\.manifest\.v1\+json/;

/** Fetches the manifest `tagOrDigest` of `path`, verifying its digest when the reference or the registry names one. */
export async function fetchManifest(client: RegistryClient, path: string, tagOrDigest: string, display: string): Promise<FetchedManifest> {
  const res = await client.requestOK(
    `/v2/${path}/manifests/${tagOrDigest}`,
    { headers: { accept: ACCEPT_MANIFESTS }, scopes: [repoScope(path, 'pull')] },
    `fetching the manifest of ${display}`,
    display,
  );
  const bytes = await readBytesLimited(res, MAX_JSON_BLOB);
  const digest = sha256Of(bytes);
  const want = tagOrDigest.startsWith('sha256:') ? tagOrDigest : res.headers.get('docker-content-digest');
  if (want && want.startsWith('sha256:') && want !== digest) {
    throw new HoistError('E_DIGEST_MISMATCH', `the manifest of ${display} does not match its digest: expected ${want}, got ${digest}`, {
      hint: 'the registry or something between it and you altered the manifest; try again or use another mirror',
    });
  }
  let mediaType = (res.headers.get('content-type') ?? '').split(';')[0]!.trim();
  let parsed: { mediaType?: string; schemaVersion?: number };
  try {
    parsed = JSON.parse(bytes.toString('utf8')) as typeof parsed;
  } catch {
    throw new HoistError('E_MANIFEST', `the manifest of ${display} is not valid JSON`);
  }
  if (typeof parsed?.mediaType === 'string' && parsed.mediaType) mediaType = parsed.mediaType;
  if (SCHEMA1.test(mediaType) || parsed?.schemaVersion === 1) {
    throw new HoistError('E_MANIFEST', `${display} uses the deprecated Docker image manifest v1 (schema 1), which hoist does not read`, { hint: 'push the image again with a current docker or skopeo' });
  }
  if (!isManifestType(mediaType) && !isIndexType(mediaType)) {
    // OCI manifests may omit mediaType: tell them apart by shape.
    const p = parsed as { manifests?: unknown; config?: unknown };
    if (Array.isArray(p.manifests)) mediaType = 'application/vnd.oci.image.index.v1+json';
    else if (p.config) mediaType = 'application/vnd.oci.image.manifest.v1+json';
    else throw new HoistError('E_MANIFEST', `${display} has unsupported media type ${JSON.stringify(mediaType)}`);
  }
  return { bytes, mediaType, digest };
}

/** Stops a download that runs past its declared size (a hostile registry could send forever). */
class SizeLimit extends Transform {
  private n = 0;
  constructor(private readonly max: number) {
    super();
  }
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: (err?: Error | null, data?: Buffer) => void): void {
    this.n += chunk.length;
    if (this.n > this.max) cb(new HoistError('E_DIGEST_MISMATCH', `the registry sent more than the ${this.max} bytes the descriptor declares`));
    else cb(null, chunk);
  }
}

/** Downloads one blob into `dir` (a store tmp dir), verified by digest and size while streaming; retries dropped connections. */
export async function downloadBlob(client: RegistryClient, store: Store, dir: string, path: string, desc: Descriptor, opts: { retries?: number; retryBaseMs?: number } = {}): Promise<Ingested> {
  const digest = parseDigest(desc.digest, 'blob digest');
  const attempts = (opts.retries ?? 3) + 1;
  let last: unknown;
  for (let a = 0; a < attempts; a++) {
    if (a > 0) await sleep((opts.retryBaseMs ?? 250) * 2 ** (a - 1));
    const res = await client.requestOK(`/v2/${path}/blobs/${digest}`, { scopes: [repoScope(path, 'pull')] }, `downloading blob ${digest} of ${client.host}/${path}`);
    if (!res.body) throw new HoistError('E_REGISTRY', `the registry sent no body for blob ${digest}`);
    try {
      const web = Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>);
      const src = new SizeLimit(desc.size);
      // pipe() does not forward errors: a dropped connection must fail the ingest, not crash the process.
      web.on('error', (err) => src.destroy(err));
      // The ingest attaches its own listeners only after opening its temporary file; an error before
      // that must not be an unhandled 'error' event (the ingest still sees it: the stream is errored).
      src.on('error', () => undefined);
      src.on('close', () => web.destroy());
      web.pipe(src);
      return await store.ingest(src, dir, { digest, size: desc.size });
    } catch (e) {
      last = e;
      if (!isRetryableNetError(e)) {
        if (e instanceof HoistError && e.code === 'E_DIGEST_MISMATCH') {
          throw new HoistError('E_DIGEST_MISMATCH', `blob ${digest} from ${client.host}/${path} does not match its digest: ${e.message}`, {
            hint: 'the registry served corrupt or altered content; nothing was stored; try again or report it to the registry operator',
          });
        }
        throw e;
      }
    }
  }
  throw networkError(last, client.host, `/v2/${path}/blobs/${digest}`, false);
}

/** Picks linux/<host arch> from a manifest list / OCI index. */
function pickPlatform(idx: ImageIndex, display: string): Descriptor {
  const hp = hostPlatform();
  const list = (idx.manifests ?? []).filter((d) => d && isManifestType(d.mediaType));
  const hit = list.find((d) => d.platform?.os === hp.os && d.platform?.architecture === hp.architecture && (!hp.variant || !d.platform?.variant || d.platform.variant === hp.variant));
  if (!hit) {
    const have = list.map((d) => `${d.platform?.os ?? '?'}/${d.platform?.architecture ?? '?'}`).join(', ') || 'none';
    throw new HoistError('E_PLATFORM', `${display} has no image for ${hp.os}/${hp.architecture} (it has: ${have})`);
  }
  return hit;
}

/** Pulls an image (tag or digest) into the store and names it; blobs the store already has are not downloaded. */
export async function pullImage(store: Store, ref: string | Reference, opts: PullOptions = {}): Promise<PullResult> {
  const r = typeof ref === 'string' ? parseReference(ref) : ref;
  const display = familiarString(r);
  const client = opts.client ?? new RegistryClient(r.domain, opts);
  const say = opts.progress ?? (() => undefined);
  const path = r.path;
  say(`${r.digest ?? r.tag}: Pulling from ${r.path}`);

  const top = await fetchManifest(client, path, r.digest ?? r.tag!, display);
  let m = top;
  if (isIndexType(top.mediaType)) {
    const idx = JSON.parse(top.bytes.toString('utf8')) as ImageIndex;
    const chosen = pickPlatform(idx, display);
    m = await fetchManifest(client, path, parseDigest(chosen.digest, 'manifest digest'), `${display} (${chosen.platform?.os}/${chosen.platform?.architecture})`);
    if (m.digest !== chosen.digest) throw new HoistError('E_DIGEST_MISMATCH', `platform manifest of ${display}: expected ${chosen.digest}, got ${m.digest}`);
    if (!isManifestType(m.mediaType)) throw new HoistError('E_MANIFEST', `${display}: the platform entry ${chosen.digest} is not an image manifest`);
  }
  const manifest = JSON.parse(m.bytes.toString('utf8')) as ImageManifest;
  validateManifest(manifest, `the manifest of ${display}`);

  const dir = await store.tmpDir('pull');
  try {
    const queue = new PQueue({ concurrency: opts.concurrency ?? 3 });
    const ingested: Ingested[] = [];
    const blobs: { desc: Descriptor; layer: boolean }[] = [{ desc: manifest.config, layer: false }, ...manifest.layers.map((desc) => ({ desc, layer: true }))];
    const seen = new Set<string>();
    const jobs: Promise<void>[] = [];
    const failed = new AbortController();
    for (const { desc, layer } of blobs) {
      if (seen.has(desc.digest)) continue;
      seen.add(desc.digest);
      const short = digestHex(desc.digest).slice(0, 12);
      if (await store.hasBlob(desc.digest)) {
        if (layer) say(`${short}: Already exists`);
        continue;
      }
      if (layer) say(`${short}: Pulling fs layer`);
      jobs.push(
        queue.add(async () => {
          if (failed.signal.aborted) return;
          const ing = await downloadBlob(client, store, dir, path, desc, opts);
          ingested.push(ing);
          if (layer) say(`${short}: Download complete`);
        }) as Promise<void>,
      );
    }
    const settled = await Promise.allSettled(jobs.map((j) => j.catch((e: unknown) => {
      failed.abort();
      throw e;
    })));
    const bad = settled.find((s) => s.status === 'rejected');
    if (bad) throw (bad as PromiseRejectedResult).reason;

    // The config must describe exactly these layers before the image becomes visible.
    const cfgIng = ingested.find((i) => i.digest === manifest.config.digest);
    const cfgBytes = cfgIng ? await readBytesOfTmp(cfgIng.tmpPath) : await store.readBlob(parseDigest(manifest.config.digest, 'config digest'));
    let config: ImageConfig;
    try {
      config = JSON.parse(cfgBytes.toString('utf8')) as ImageConfig;
    } catch {
      throw new HoistError('E_MANIFEST', `the image config of ${display} is not valid JSON`);
    }
    if (!Array.isArray(config?.rootfs?.diff_ids) || config.rootfs.diff_ids.length !== manifest.layers.length) {
      throw new HoistError('E_MANIFEST', `the image config of ${display} lists ${config?.rootfs?.diff_ids?.length ?? 'no'} diff IDs for ${manifest.layers.length} layers`);
    }

    // The name points at the platform manifest, not at the index: the store's checker wants every
    // manifest of an index present, and only this platform's was fetched (Docker's classic store does the same).
    const topDesc: Descriptor = { mediaType: m.mediaType, digest: m.digest, size: m.bytes.length };
    const name = r.tag !== undefined && !r.digest ? formatReference(r) : undefined;
    const viaIndex: Record<string, string> = top.digest !== m.digest ? { [Annotation.HoistIndex]: top.digest } : {};
    let updated = true;
    await store.withLock(async () => {
      await store.commit(ingested);
      await store.putBlob(m.bytes, m.mediaType);
      await store.modifyIndexLocked(async (idx) => {
        if (name) {
          const prev = idx.manifests.find((d) => nameOf(d) === name);
          if (prev && prev.digest === topDesc.digest) updated = false;
          await store.setName(name, topDesc, idx, viaIndex);
          if (prev && prev.digest !== topDesc.digest) store.keepDangling(prev, idx);
        } else {
          if (idx.manifests.some((d) => d.digest === topDesc.digest)) updated = false;
          store.keepDangling(topDesc, idx, viaIndex);
        }
      });
    });
    for (const l of manifest.layers) if (ingested.some((i) => i.digest === l.digest)) say(`${digestHex(l.digest).slice(0, 12)}: Pull complete`);
    await recordSources(store, repositoryName(r), [manifest.config.digest, ...manifest.layers.map((l) => l.digest)]).catch(() => undefined);
    return { name, reference: r, digest: top.digest, id: parseDigest(manifest.config.digest, 'config digest'), updated };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function readBytesOfTmp(p: string): Promise<Buffer> {
  const { readFile, stat } = await import('node:fs/promises');
  const st = await stat(p);
  if (st.size > MAX_JSON_BLOB) throw new HoistError('E_BLOB_TOO_LARGE', `the image config is ${st.size} bytes, more than the ${MAX_JSON_BLOB} allowed`);
  return readFile(p);
}

/** Asks the registry which digest a reference currently points at (HEAD, falling back to GET), without pulling. */
export async function resolveDigest(ref: string | Reference, opts: ClientOptions & { client?: RegistryClient } = {}): Promise<{ digest: Digest; mediaType: string; size: number }> {
  const r = typeof ref === 'string' ? parseReference(ref) : ref;
  const client = opts.client ?? new RegistryClient(r.domain, opts);
  const display = familiarString(r);
  const res = await client.requestOK(
    `/v2/${r.path}/manifests/${r.digest ?? r.tag}`,
    { method: 'HEAD', headers: { accept: ACCEPT_MANIFESTS }, scopes: [repoScope(r.path, 'pull')] },
    `resolving ${display}`,
    display,
  );
  const d = res.headers.get('docker-content-digest');
  const mt = (res.headers.get('content-type') ?? '').split(';')[0]!.trim();
  const size = Number(res.headers.get('content-length') ?? NaN);
  if (d && d.startsWith('sha256:') && mt && Number.isFinite(size)) return { digest: parseDigest(d, 'manifest digest'), mediaType: mt, size };
  const m = await fetchManifest(client, r.path, r.digest ?? r.tag!, display);
  return { digest: m.digest, mediaType: m.mediaType, size: m.bytes.length };
}
