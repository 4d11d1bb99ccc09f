import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import PQueue from 'p-queue';
import { HoistError } from '../util/errors.js';
import { digestHex, parseDigest, type Digest } from '../image/digest.js';
import { familiarString, parseReference, repositoryName, type Reference } from '../image/reference.js';
import type { Store } from '../image/store.js';
import { MediaType, type Descriptor } from '../image/types.js';
import { RegistryClient, repoScope, type ClientOptions } from './client.js';
import { responseError } from './errors.js';
import { recordSources, sourcesOf } from './sources.js';

/** Options of pushImage. */
export interface PushOptions extends ClientOptions {
  /** Receives Docker-like progress lines (`a3ed95caeb02: Pushed`). */
  progress?: (line: string) => void;
  /** Blobs uploaded at once (default 3). */
  concurrency?: number;
  /** Blobs larger than this go up in PATCH chunks of this size (default 64 MiB). */
  chunkSize?: number;
  /** A client to reuse; must be for the reference's registry. */
  client?: RegistryClient;
}

/** What a push did. */
export interface PushResult {
  reference: Reference;
  /** Digest of the pushed manifest. */
  digest: Digest;
  size: number;
  /** How each blob got there. */
  blobs: { digest: Digest; how: 'exists' | 'mounted' | 'uploaded' }[];
}

const DEFAULT_CHUNK = 64 * 1024 * 1024;
const NON_DISTRIBUTABLE = new Set<string>([MediaType.OciLayerNondistributable, MediaType.OciLayerNondistributableGzip, MediaType.DockerForeignLayerGzip]);

/** Resolves an upload `Location` header (often relative) against the registry base. */
function locationOf(res: Response, base: string, what: string): string {
  const loc = res.headers.get('location');
  if (!loc) throw new HoistError('E_REGISTRY', `${what}: the registry answered ${res.status} without a Location header`);
  return new URL(loc, base + '/').toString();
}

function withDigest(location: string, digest: Digest): string {
  const u = new URL(location);
  u.searchParams.set('digest', digest);
  return u.toString();
}

/** Uploads one blob: HEAD (skip if present), then mount from a sibling repository, else monolithic or chunked upload. */
export async function pushBlob(client: RegistryClient, store: Store, path: string, desc: Descriptor, chunkSize: number): Promise<{ how: 'exists' | 'mounted' | 'uploaded'; from?: string }> {
  const digest = parseDigest(desc.digest, 'blob digest');
  const scope = repoScope(path, 'pull,push');
  const head = await client.request(`/v2/${path}/blobs/${digest}`, { method: 'HEAD', scopes: [scope] });
  await head.body?.cancel().catch(() => undefined);
  if (head.ok) return { how: 'exists' };
  if (head.status !== 404) throw await responseError(head, `checking whether ${client.host}/${path} has blob ${digest}`, { credentials: await client.credentialsDescription() });

  const base = await client.baseURL();
  let location: string | undefined;
  for (const src of (await sourcesOf(store, digest)).reverse()) {
    const slash = src.indexOf('/');
    const srcHost = src.slice(0, slash);
    const srcPath = src.slice(slash + 1);
    if (srcHost !== client.host || srcPath === path) continue;
    const res = await client.request(`/v2/${path}/blobs/uploads/?mount=${digest}&from=${encodeURIComponent(srcPath)}`, {
      method: 'POST',
      headers: { 'content-length': '0' },
      scopes: [scope, repoScope(srcPath, 'pull')],
    });
    await res.body?.cancel().catch(() => undefined);
    if (res.status === 201) return { how: 'mounted', from: srcPath };
    if (res.status === 202) {
      // The registry could not mount and opened an ordinary upload session instead.
      location = locationOf(res, base, `mounting ${digest}`);
      break;
    }
    // Any other answer (e.g. no pull right on the source) just means: upload it.
  }
  const size = desc.size;
  const what = `uploading blob ${digest} to ${client.host}/${path}`;
  const cred = async () => ({ credentials: await client.credentialsDescription() });
  if (!location) {
    const res = await client.request(`/v2/${path}/blobs/uploads/`, { method: 'POST', headers: { 'content-length': '0' }, scopes: [scope] });
    await (res.status === 202 ? res.body?.cancel().catch(() => undefined) : undefined);
    if (res.status !== 202) throw await responseError(res, what, await cred());
    location = locationOf(res, base, what);
  }
  const file = store.blobPath(digest);
  const stream = (start: number, end: number) => () => Readable.toWeb(createReadStream(file, { start, end: end - 1 })) as unknown as BodyInit;
  if (size <= chunkSize) {
    const res = await client.request(withDigest(location, digest), {
      method: 'PUT',
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) },
      body: size > 0 ? stream(0, size) : () => new Uint8Array(0),
      scopes: [scope],
      // A streamed body cannot be rewound mid-session; a failed upload is restarted by the caller.
      retry: false,
    });
    if (res.status !== 201) throw await responseError(res, what, await cred());
    await res.body?.cancel().catch(() => undefined);
    return { how: 'uploaded' };
  }
  for (let off = 0; off < size; off += chunkSize) {
    const end = Math.min(size, off + chunkSize);
    const res = await client.request(location, {
      method: 'PATCH',
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(end - off), 'content-range': `${off}-${end - 1}` },
      body: stream(off, end),
      scopes: [scope],
      retry: false,
    });
    if (res.status !== 202) throw await responseError(res, `${what} (chunk at byte ${off})`, await cred());
    await res.body?.cancel().catch(() => undefined);
    location = locationOf(res, base, what);
  }
  const fin = await client.request(withDigest(location, digest), { method: 'PUT', headers: { 'content-length': '0' }, scopes: [scope], retry: false });
  if (fin.status !== 201) throw await responseError(fin, `${what} (finishing)`, await cred());
  await fin.body?.cancel().catch(() => undefined);
  return { how: 'uploaded' };
}

/**
 * Runs a whole blob upload again when its connection broke or the registry failed (5xx):
 * an upload session cannot be rewound, so the restart begins with a fresh HEAD and POST.
 */
export async function withRestarts<T>(fn: () => Promise<T>, opts: PushOptions): Promise<T> {
  const attempts = (opts.retries ?? 3) + 1;
  for (let a = 1; ; a++) {
    try {
      return await fn();
    } catch (e) {
      const transient = e instanceof HoistError && (e.code === 'E_REGISTRY_CONNECTION' || (e.code === 'E_REGISTRY' && /answered 5\d\d/.test(e.message)));
      if (!transient || a >= attempts) throw e;
      await sleep((opts.retryBaseMs ?? 250) * 2 ** (a - 1));
    }
  }
}

/** Pushes a local image under `ref` (its name in the store): blobs first (skipping those the registry has), manifest last. */
export async function pushImage(store: Store, ref: string | Reference, opts: PushOptions = {}): Promise<PushResult> {
  const r = typeof ref === 'string' ? parseReference(ref) : ref;
  const display = familiarString(r);
  const say = opts.progress ?? (() => undefined);
  const img = await store.findImage(typeof ref === 'string' ? ref : display).catch((e: unknown) => {
    if (e instanceof HoistError && e.code === 'E_NO_IMAGE') {
      throw new HoistError('E_NO_IMAGE', `no such image: ${display}`, { hint: `name the image for the registry first: hoist tag IMAGE ${display}` });
    }
    throw e;
  });
  const client = opts.client ?? new RegistryClient(r.domain, opts);
  const path = r.path;
  say(`The push refers to repository [${repositoryName(r)}]`);
  const blobs: Descriptor[] = [...img.manifest.layers.filter((l) => !(NON_DISTRIBUTABLE.has(l.mediaType) && l.urls?.length)), img.manifest.config];
  for (const b of blobs) {
    if (!(await store.hasBlob(parseDigest(b.digest, 'blob digest')))) {
      throw new HoistError('E_BLOB_MISSING', `cannot push ${display}: blob ${b.digest} is missing from the store`, { hint: 'run `hoist system check`; pull or load the image again' });
    }
  }
  const queue = new PQueue({ concurrency: opts.concurrency ?? 3 });
  const done: PushResult['blobs'] = [];
  const seen = new Set<string>();
  const jobs: Promise<void>[] = [];
  for (const b of blobs) {
    if (seen.has(b.digest)) continue;
    seen.add(b.digest);
    const short = digestHex(b.digest).slice(0, 12);
    const isLayer = b !== img.manifest.config;
    if (isLayer) say(`${short}: Preparing`);
    jobs.push(
      queue.add(async () => {
        const { how, from } = await withRestarts(() => pushBlob(client, store, path, b, opts.chunkSize ?? DEFAULT_CHUNK), opts);
        done.push({ digest: b.digest, how });
        if (isLayer) say(`${short}: ${how === 'exists' ? 'Layer already exists' : how === 'mounted' ? `Mounted from ${from}` : 'Pushed'}`);
      }) as Promise<void>,
    );
  }
  const settled = await Promise.allSettled(jobs);
  const bad = settled.find((s) => s.status === 'rejected');
  if (bad) {
    queue.clear();
    throw (bad as PromiseRejectedResult).reason;
  }

  // The stored manifest bytes go up unchanged so the registry's digest equals the local one.
  const mdesc = img.manifestDescriptor;
  const bytes = await store.readBlob(parseDigest(mdesc.digest, 'manifest digest'));
  const mediaType = img.manifest.mediaType ?? mdesc.mediaType;
  const target = r.digest ?? r.tag ?? 'latest';
  if (r.digest && r.digest !== mdesc.digest) {
    throw new HoistError('E_REFERENCE', `cannot push ${display}: the local image's manifest is ${mdesc.digest}`, { hint: 'push by tag instead' });
  }
  const res = await client.request(`/v2/${path}/manifests/${target}`, {
    method: 'PUT',
    headers: { 'content-type': mediaType },
    body: () => new Uint8Array(bytes),
    scopes: [repoScope(path, 'pull,push')],
  });
  if (res.status !== 201 && res.status !== 200) throw await responseError(res, `uploading the manifest of ${display}`, { credentials: await client.credentialsDescription() });
  await res.body?.cancel().catch(() => undefined);
  const echoed = res.headers.get('docker-content-digest');
  if (echoed && echoed.startsWith('sha256:') && echoed !== mdesc.digest) {
    throw new HoistError('E_DIGEST_MISMATCH', `the registry stored the manifest of ${display} as ${echoed}, not ${mdesc.digest}`, { hint: 'the registry rewrote the manifest; pull by tag to get its version' });
  }
  await recordSources(store, repositoryName(r), blobs.map((b) => b.digest)).catch(() => undefined);
  say(`${target}: digest: ${mdesc.digest} size: ${bytes.length}`);
  return { reference: r, digest: mdesc.digest, size: bytes.length, blobs: done };
}
