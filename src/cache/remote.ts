/**
 * Build cache export and import (`--cache-to`, `--cache-from`), so that a fresh machine
 * reuses the layers of an earlier build.
 *
 * An exported cache is one OCI artifact: an image manifest whose config blob lists the
 * cache records (key → layer diff ID, blob descriptor, creation time) and whose layers
 * are the layer blobs the records name. `type=local` keeps it in an OCI image layout
 * (`DIR/oci-layout`, `DIR/index.json`, `DIR/blobs/sha256/…`), named by the ref-name
 * annotation `tag` (default `latest`); `type=registry` pushes it under a reference.
 *
 * Import reads the manifest and the record list when the build starts; a blob is only
 * fetched when a step's key misses locally and is in the imported list. It is verified
 * (blob digest, size, and diff ID of its content) before it enters the store, then the
 * record is written to the local index as the original, `created` included, so history
 * and image ID come out the same. As in BuildKit, a cache that cannot be read, or a blob
 * that fails verification, is a miss with a warning, never a failed build.
 */
import { constants, createReadStream } from 'node:fs';
import { copyFile, mkdir, open, readFile, readdir, rename, rm, stat, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { HashingStream, type Ingested, type Store } from '../image/store.js';
import { isDigest, sha256Of, type Digest } from '../image/digest.js';
import { compressionOfMediaType, diffIDOf } from '../image/layer.js';
import { withFileLock } from '../image/lock.js';
import { pidAlive } from '../image/tmpdir.js';
import { familiarString, parseReference, repositoryName, type Reference } from '../image/reference.js';
import { Annotation, MediaType, type Descriptor, type ImageIndex } from '../image/types.js';
import type { LayerRef } from '../llb/ops.js';
import { RegistryClient, repoScope, type ClientOptions } from '../registry/client.js';
import { readBytesLimited, responseError } from '../registry/errors.js';
import { downloadBlob, fetchManifest } from '../registry/pull.js';
import { pushBlob, withRestarts } from '../registry/push.js';
import { recordSources } from '../registry/sources.js';
import { HoistError } from '../util/errors.js';
import type { CacheRecord } from './index.js';
import { tmpNameBeside, writeFileAtomic } from '../util/atomic.js';

/** The artifact type of an exported cache manifest. */
export const CACHE_ARTIFACT_TYPE = 'application/vnd.hoist.cache.v1';
/** The media type of its config blob (the record list). */
export const CACHE_CONFIG_TYPE = 'application/vnd.hoist.cache.config.v1+json';
/** Largest record list read from a cache (the config blob). */
const MAX_CACHE_CONFIG = 64 * 1024 * 1024;
/** Largest index.json read from a local cache layout. */
const MAX_LAYOUT_INDEX = 4 * 1024 * 1024;

/** `--cache-to`: where and how much to export. */
export type CacheExportSpec = { mode: 'min' | 'max'; ignoreError: boolean } & (
  | { type: 'local'; dest: string; tag: string }
  | { type: 'registry'; ref: string }
);

/** `--cache-from`: a cache to import. */
export type CacheImportSpec = { type: 'local'; src: string; tag: string; digest?: Digest } | { type: 'registry'; ref: string };

/** The config blob of a cache artifact. */
interface CacheConfig {
  schemaVersion: 1;
  mediaType: typeof CACHE_CONFIG_TYPE;
  records: CacheRecord[];
}

const usage = (msg: string, hint?: string): HoistError => new HoistError('E_USAGE', msg, { hint, exitCode: 125 });

function fieldsOf(flag: string, spec: string): Map<string, string> {
  const f = new Map<string, string>();
  for (const part of spec.split(',')) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw usage(`invalid ${flag} field ${JSON.stringify(part)} in ${JSON.stringify(spec)}`, `write ${flag} type=local,${flag === '--cache-to' ? 'dest' : 'src'}=DIR or type=registry,ref=HOST/REPO:TAG`);
    f.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  return f;
}

function checkFields(flag: string, f: Map<string, string>, allowed: string[]): void {
  for (const k of f.keys()) {
    if (!allowed.includes(k)) throw usage(`${flag}: unknown field ${JSON.stringify(k)} for type=${f.get('type')}`, `fields: ${allowed.join(', ')}`);
  }
}

function checkType(flag: string, type: string): void {
  if (type === 'local' || type === 'registry') return;
  if (['inline', 'gha', 's3', 'azblob'].includes(type)) throw usage(`${flag} type=${type} is not supported by hoist`, 'use type=local or type=registry');
  throw usage(`unknown ${flag} type ${JSON.stringify(type)}`, 'types: local, registry');
}

function checkRef(flag: string, ref: string | undefined, forPush: boolean): string {
  if (!ref) throw usage(`${flag} type=registry needs ref=HOST/REPOSITORY:TAG`);
  let r: Reference;
  try {
    r = parseReference(ref);
  } catch (e) {
    throw usage(`${flag}: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (forPush && r.digest) throw usage(`${flag}: ref=${ref} names a digest; a cache is exported under a tag`);
  return ref;
}

/** Parses `--cache-to type=local,dest=DIR[,mode=min|max][,tag=T]` or `type=registry,ref=REF[,mode=…]` (`ignore-error=true` too). */
export function parseCacheTo(spec: string): CacheExportSpec {
  const f = fieldsOf('--cache-to', spec);
  const type = f.get('type') ?? (f.has('dest') ? 'local' : f.has('ref') ? 'registry' : '');
  if (!type) throw usage(`--cache-to ${JSON.stringify(spec)} has no type`, 'write --cache-to type=local,dest=DIR or type=registry,ref=HOST/REPO:TAG');
  checkType('--cache-to', type);
  const mode = f.get('mode') ?? 'min';
  if (mode !== 'min' && mode !== 'max') throw usage(`--cache-to: invalid mode ${JSON.stringify(mode)}`, 'mode=min exports the final image\'s steps, mode=max every step');
  const ie = f.get('ignore-error') ?? 'false';
  if (ie !== 'true' && ie !== 'false') throw usage(`--cache-to: ignore-error must be true or false, not ${JSON.stringify(ie)}`);
  const common = { mode, ignoreError: ie === 'true' } as const;
  if (type === 'local') {
    checkFields('--cache-to', f, ['type', 'dest', 'mode', 'tag', 'ignore-error']);
    const dest = f.get('dest');
    if (!dest) throw usage('--cache-to type=local needs dest=DIRECTORY');
    return { ...common, type: 'local', dest, tag: f.get('tag') || 'latest' };
  }
  checkFields('--cache-to', f, ['type', 'ref', 'mode', 'ignore-error']);
  return { ...common, type: 'registry', ref: checkRef('--cache-to', f.get('ref'), true) };
}

/** Parses `--cache-from type=local,src=DIR[,tag=T|digest=D]`, `type=registry,ref=REF`, or a bare reference (registry). */
export function parseCacheFrom(spec: string): CacheImportSpec {
  if (!spec.includes('=')) return { type: 'registry', ref: checkRef('--cache-from', spec, false) };
  const f = fieldsOf('--cache-from', spec);
  const type = f.get('type') ?? (f.has('src') ? 'local' : f.has('ref') ? 'registry' : '');
  if (!type) throw usage(`--cache-from ${JSON.stringify(spec)} has no type`, 'write --cache-from type=local,src=DIR or type=registry,ref=HOST/REPO:TAG');
  checkType('--cache-from', type);
  if (type === 'local') {
    checkFields('--cache-from', f, ['type', 'src', 'tag', 'digest']);
    const src = f.get('src');
    if (!src) throw usage('--cache-from type=local needs src=DIRECTORY');
    const d = f.get('digest');
    if (d !== undefined && !isDigest(d)) throw usage(`--cache-from: digest=${d} is not a sha256 digest`);
    return { type: 'local', src, tag: f.get('tag') || 'latest', ...(d ? { digest: d } : {}) };
  }
  checkFields('--cache-from', f, ['type', 'ref']);
  return { type: 'registry', ref: checkRef('--cache-from', f.get('ref'), false) };
}

/** What a cache import or export names in progress lines. */
export function describeCache(s: CacheImportSpec | CacheExportSpec): string {
  if (s.type === 'registry') return s.ref;
  return s.type === 'local' && 'dest' in s ? resolve(s.dest) : resolve((s as { src: string }).src);
}

// ---------------------------------------------------------------- the artifact

/** The cache artifact for `records`: config bytes, manifest bytes, and the layer descriptors. */
export function cacheArtifact(records: CacheRecord[]): { config: Buffer; configDesc: Descriptor; manifest: Buffer; manifestDesc: Descriptor; layers: Descriptor[] } {
  // sorted, so that the same cache gives the same bytes whatever order parallel steps finished in
  const recs = [...records].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const cfg: CacheConfig = { schemaVersion: 1, mediaType: CACHE_CONFIG_TYPE, records: recs.map((r) => ({ key: r.key, ...(r.layer ? { layer: r.layer } : {}), created: r.created })) };
  const config = Buffer.from(JSON.stringify(cfg));
  const configDesc: Descriptor = { mediaType: CACHE_CONFIG_TYPE, digest: sha256Of(config), size: config.length };
  const layers: Descriptor[] = [];
  const seen = new Set<string>();
  for (const r of recs) {
    if (!r.layer || seen.has(r.layer.blob.digest)) continue;
    seen.add(r.layer.blob.digest);
    layers.push({ mediaType: r.layer.blob.mediaType, digest: r.layer.blob.digest, size: r.layer.blob.size });
  }
  const m = { schemaVersion: 2, mediaType: MediaType.OciManifest, artifactType: CACHE_ARTIFACT_TYPE, config: configDesc, layers };
  const manifest = Buffer.from(JSON.stringify(m));
  return { config, configDesc, manifest, manifestDesc: { mediaType: MediaType.OciManifest, digest: sha256Of(manifest), size: manifest.length, artifactType: CACHE_ARTIFACT_TYPE }, layers };
}

/** Checks a manifest is a hoist cache and returns its config descriptor and layers. */
function parseCacheManifest(bytes: Buffer, where: string): { config: Descriptor; layers: Descriptor[] } {
  let m: { mediaType?: string; artifactType?: string; config?: Descriptor; layers?: Descriptor[] };
  try {
    m = JSON.parse(bytes.toString('utf8')) as typeof m;
  } catch {
    throw new HoistError('E_CACHE_IMPORT', `${where}: the cache manifest is not valid JSON`);
  }
  if (m?.config?.mediaType !== CACHE_CONFIG_TYPE || !isDigest(m.config.digest) || !Array.isArray(m.layers)) {
    throw new HoistError('E_CACHE_IMPORT', `${where} is not a hoist build cache (config media type ${JSON.stringify(m?.config?.mediaType ?? null)})`, {
      hint: 'export it with hoist build --cache-to; BuildKit caches are a different format',
    });
  }
  for (const l of m.layers) if (!isDigest(l?.digest) || typeof l.size !== 'number') throw new HoistError('E_CACHE_IMPORT', `${where}: the cache manifest has an invalid layer descriptor`);
  return { config: m.config, layers: m.layers };
}

const isRFC3339 = (v: unknown): v is string =>
  typeof v === 'string' && /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/.test(v) && !Number.isNaN(Date.parse(v));

/** Parses and checks the record list: every layer a record names must be one of the manifest's layers. */
function parseCacheConfig(bytes: Buffer, layers: Descriptor[], where: string): CacheRecord[] {
  let c: CacheConfig;
  try {
    c = JSON.parse(bytes.toString('utf8')) as CacheConfig;
  } catch {
    throw new HoistError('E_CACHE_IMPORT', `${where}: the cache record list is not valid JSON`);
  }
  if (c?.schemaVersion !== 1 || !Array.isArray(c.records)) throw new HoistError('E_CACHE_IMPORT', `${where}: unsupported cache record list (schemaVersion ${JSON.stringify(c?.schemaVersion ?? null)})`);
  const byDigest = new Map(layers.map((l) => [l.digest, l]));
  const out: CacheRecord[] = [];
  for (const r of c.records) {
    // the times go into the image config and history as they are: only RFC 3339 ones are taken
    if (!isDigest(r?.key) || !isRFC3339(r.created)) continue;
    if (r.layer) {
      const l = r.layer;
      const d = byDigest.get(l.blob?.digest);
      if (!isDigest(l.diffID) || !d || d.size !== l.blob.size || typeof l.blob.mediaType !== 'string' || (l.created !== undefined && !isRFC3339(l.created))) continue;
      const layer: LayerRef = { diffID: l.diffID, blob: { mediaType: l.blob.mediaType, digest: l.blob.digest, size: l.blob.size }, ...(l.created !== undefined ? { created: l.created } : {}) };
      out.push({ key: r.key, layer, created: r.created });
    } else out.push({ key: r.key, created: r.created });
  }
  return out;
}

// ---------------------------------------------------------------- export

/** Progress of an export, as status lines. */
export type Say = (text: string) => void;

async function fileSha256(path: string): Promise<Digest | undefined> {
  const h = new HashingStream();
  try {
    await pipeline(createReadStream(path), h, async function (s: AsyncIterable<Buffer>) {
      for await (const _ of s) {
        /* drain */
      }
    });
  } catch {
    return undefined;
  }
  return h.digest();
}

/** Puts a blob into `blobs/sha256/` of a layout unless an intact copy is there (a damaged one is replaced). */
async function layoutPut(dir: string, d: Descriptor, from: { path: string } | { data: Buffer }): Promise<boolean> {
  const dst = join(dir, 'blobs', 'sha256', d.digest.slice(7));
  const st = await stat(dst).catch(() => null);
  if (st?.isFile() && st.size === d.size && (await fileSha256(dst)) === d.digest) return false;
  if ('data' in from) {
    await writeFileAtomic(dst, from.data);
    return true;
  }
  const tmp = tmpNameBeside(dst);
  // a reflink where the filesystem can, a copy elsewhere; never a hard link (the cache dir must not alias the store)
  await copyFile(from.path, tmp, constants.COPYFILE_FICLONE);
  const fh = await open(tmp, 'r+');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, dst);
  return true;
}

async function readLayoutIndex(dir: string): Promise<ImageIndex> {
  let text: string;
  try {
    text = await readFile(join(dir, 'index.json'), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [] };
    throw e;
  }
  let idx: ImageIndex;
  try {
    idx = JSON.parse(text) as ImageIndex;
  } catch {
    throw new HoistError('E_CACHE_EXPORT', `${join(dir, 'index.json')} is not valid JSON`, { hint: 'remove the directory or choose another dest=' });
  }
  if (!idx || !Array.isArray(idx.manifests)) throw new HoistError('E_CACHE_EXPORT', `${join(dir, 'index.json')} is not an OCI image index`, { hint: 'remove the directory or choose another dest=' });
  return idx;
}

/**
 * Writes the cache into the OCI layout `dir`: blobs first, then index.json replaced
 * atomically (entries under other tags are kept), then blobs no hoist cache in the
 * layout refers to any more are removed, so a cache reused run after run stays small.
 */
export async function exportLocal(store: Store, records: CacheRecord[], dest: string, tag: string, say: Say): Promise<Digest> {
  const dir = resolve(dest);
  const art = cacheArtifact(records);
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
  return withFileLock(join(dir, 'index.json.lock'), async () => {
    for (const l of art.layers) {
      if (!(await store.hasBlob(l.digest))) throw new HoistError('E_CACHE_EXPORT', `layer ${l.digest} is missing from the store`, { hint: 'run `hoist system check`' });
      if (await layoutPut(dir, l, { path: store.blobPath(l.digest) })) say(`writing layer ${l.digest} done`);
    }
    await layoutPut(dir, art.configDesc, { data: art.config });
    say(`writing config ${art.configDesc.digest} done`);
    await layoutPut(dir, art.manifestDesc, { data: art.manifest });
    const idx = await readLayoutIndex(dir);
    idx.schemaVersion = 2;
    idx.mediaType = MediaType.OciIndex;
    idx.manifests = idx.manifests.filter((d) => d?.annotations?.[Annotation.RefName] !== tag);
    idx.manifests.push({ ...art.manifestDesc, annotations: { [Annotation.RefName]: tag } });
    const st = await stat(join(dir, 'oci-layout')).catch(() => null);
    if (!st) await writeFileAtomic(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    await writeFileAtomic(join(dir, 'index.json'), JSON.stringify(idx));
    say(`writing cache manifest ${art.manifestDesc.digest} done`);
    await pruneLayout(dir, idx);
    return art.manifestDesc.digest;
  });
}

/** Removes blobs of a layout that no entry of its index refers to, when every entry is a hoist cache (anything else is left alone). */
async function pruneLayout(dir: string, idx: ImageIndex): Promise<void> {
  const keep = new Set<string>();
  for (const d of idx.manifests) {
    if (d.artifactType !== CACHE_ARTIFACT_TYPE || !isDigest(d.digest)) return;
    keep.add(d.digest);
    try {
      const m = parseCacheManifest(await readFile(join(dir, 'blobs', 'sha256', d.digest.slice(7))), d.digest);
      keep.add(m.config.digest);
      for (const l of m.layers) keep.add(l.digest);
    } catch {
      return;
    }
  }
  for (const n of await readdir(join(dir, 'blobs', 'sha256')).catch(() => [] as string[])) {
    // a blob no cache names, or the temporary file of an export that was killed
    const tmp = /^[a-f0-9]{64}\.tmp-(\d+)-[a-f0-9]+$/.exec(n);
    const stale = tmp ? !pidAlive(Number(tmp[1])) : /^[a-f0-9]{64}$/.test(n) && !keep.has(`sha256:${n}`);
    if (stale) await unlink(join(dir, 'blobs', 'sha256', n)).catch(() => undefined);
  }
}

/** Pushes the cache under `ref`: blobs the registry lacks (mounted from a sibling repository when it can), then the manifest. */
export async function exportRegistry(store: Store, records: CacheRecord[], ref: string, opts: ClientOptions, say: Say): Promise<Digest> {
  const r = parseReference(ref);
  const display = familiarString(r);
  const art = cacheArtifact(records);
  const client = new RegistryClient(r.domain, opts);
  // the config goes through the store like any other blob, so the push code reads it from there
  await store.putBlob(art.config, CACHE_CONFIG_TYPE);
  for (const d of [...art.layers, art.configDesc]) {
    if (!(await store.hasBlob(d.digest))) throw new HoistError('E_CACHE_EXPORT', `layer ${d.digest} is missing from the store`, { hint: 'run `hoist system check`' });
    const { how, from } = await withRestarts(() => pushBlob(client, store, r.path, d, 64 * 1024 * 1024), opts);
    const what = d === art.configDesc ? 'config' : 'layer';
    say(`writing ${what} ${d.digest}${how === 'exists' ? ' (already there)' : how === 'mounted' ? ` (mounted from ${from})` : ''} done`);
  }
  const res = await client.request(`/v2/${r.path}/manifests/${r.tag ?? 'latest'}`, {
    method: 'PUT',
    headers: { 'content-type': MediaType.OciManifest },
    body: () => new Uint8Array(art.manifest),
    scopes: [repoScope(r.path, 'pull,push')],
  });
  if (res.status !== 201 && res.status !== 200) throw await responseError(res, `uploading the cache manifest to ${display}`, { credentials: await client.credentialsDescription() });
  await res.body?.cancel().catch(() => undefined);
  await recordSources(store, repositoryName(r), [art.configDesc.digest, ...art.layers.map((l) => l.digest)]).catch(() => undefined);
  say(`writing cache manifest ${art.manifestDesc.digest} done`);
  return art.manifestDesc.digest;
}

// ---------------------------------------------------------------- import

/** Where an imported cache's blobs come from. */
interface Source {
  name: string;
  fetch(store: Store, dir: string, d: Descriptor): Promise<Ingested>;
}

/** Reads the manifest and record list of a local cache layout. */
async function openLocal(spec: Extract<CacheImportSpec, { type: 'local' }>): Promise<{ source: Source; records: CacheRecord[] }> {
  const dir = resolve(spec.src);
  const name = dir;
  let idx: ImageIndex;
  try {
    // a FIFO or a device (or a symlink to one) would block or never end: only a regular file of sane size is read
    const st = await stat(join(dir, 'index.json'));
    if (!st.isFile()) throw new HoistError('E_CACHE_IMPORT', `${join(dir, 'index.json')}: not a regular file`);
    if (st.size > MAX_LAYOUT_INDEX) throw new HoistError('E_CACHE_IMPORT', `${join(dir, 'index.json')}: larger than ${MAX_LAYOUT_INDEX} bytes`);
    idx = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as ImageIndex;
  } catch (e) {
    if (e instanceof HoistError) throw e;
    const why = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : 'not valid JSON';
    throw new HoistError('E_CACHE_IMPORT', `${join(dir, 'index.json')}: ${why}`);
  }
  const entry = (idx?.manifests ?? []).find((d) => (spec.digest ? d?.digest === spec.digest : d?.annotations?.[Annotation.RefName] === spec.tag));
  if (!entry || !isDigest(entry.digest)) throw new HoistError('E_CACHE_IMPORT', `${name}: no cache ${spec.digest ? `with digest ${spec.digest}` : `tagged ${spec.tag}`}`);
  const readSmall = async (d: Digest, max: number, what: string): Promise<Buffer> => {
    const p = join(dir, 'blobs', 'sha256', d.slice(7));
    const st = await stat(p).catch(() => null);
    if (!st?.isFile()) throw new HoistError('E_CACHE_IMPORT', `${name}: the ${what} ${d} is missing`);
    if (st.size > max) throw new HoistError('E_CACHE_IMPORT', `${name}: the ${what} ${d} is larger than ${max} bytes`);
    const b = await readFile(p);
    if (sha256Of(b) !== d) throw new HoistError('E_CACHE_IMPORT', `${name}: the ${what} ${d} does not match its digest`);
    return b;
  };
  const m = parseCacheManifest(await readSmall(entry.digest, 4 * 1024 * 1024, 'cache manifest'), name);
  const records = parseCacheConfig(await readSmall(m.config.digest, MAX_CACHE_CONFIG, 'cache record list'), m.layers, name);
  const source: Source = {
    name,
    fetch: async (store, tmp, d) => {
      const p = join(dir, 'blobs', 'sha256', d.digest.slice(7));
      // stat before open: a FIFO would block the open, a device (/dev/zero) or an oversized file would fill the disk
      const st = await stat(p);
      if (!st.isFile()) throw new Error('not a regular file');
      if (st.size !== d.size) throw new Error(`${st.size} bytes where the cache says ${d.size}`);
      return store.ingest(createReadStream(p, { start: 0, end: Math.max(0, d.size - 1) }), tmp, { digest: d.digest, size: d.size });
    },
  };
  return { source, records };
}

/** Reads the manifest and record list of a cache in a registry. */
async function openRegistry(spec: Extract<CacheImportSpec, { type: 'registry' }>, opts: ClientOptions): Promise<{ source: Source; records: CacheRecord[] }> {
  const r = parseReference(spec.ref);
  const display = familiarString(r);
  const client = new RegistryClient(r.domain, opts);
  const got = await fetchManifest(client, r.path, r.digest ?? r.tag ?? 'latest', display);
  const m = parseCacheManifest(got.bytes, display);
  const res = await client.requestOK(`/v2/${r.path}/blobs/${m.config.digest}`, { scopes: [repoScope(r.path, 'pull')] }, `downloading the cache record list of ${display}`);
  const cfg = await readBytesLimited(res, MAX_CACHE_CONFIG);
  if (sha256Of(cfg) !== m.config.digest) throw new HoistError('E_CACHE_IMPORT', `${display}: the cache record list does not match its digest ${m.config.digest}`);
  const records = parseCacheConfig(cfg, m.layers, display);
  const source: Source = {
    name: display,
    fetch: (st, tmp, d) => downloadBlob(client, st, tmp, r.path, d, opts),
  };
  return { source, records };
}

/** One `--cache-from` as it was read, for progress. */
export interface ImportResult {
  name: string;
  records: number;
  error?: string;
}

/**
 * The caches given with `--cache-from`, merged (the first that has a key wins). The
 * solver asks {@link CacheImports.fetch} for a key that missed locally.
 */
export class CacheImports {
  private readonly records = new Map<string, { rec: CacheRecord; source: Source; registry?: string }>();
  private readonly blobs = new Map<string, Promise<void>>();
  private tmp?: Promise<string>;

  private constructor(private readonly store: Store) {}

  /** Opens every spec; one that cannot be read is reported in `results` and skipped. */
  static async open(store: Store, specs: CacheImportSpec[], opts: ClientOptions): Promise<{ imports: CacheImports; results: ImportResult[] }> {
    const imports = new CacheImports(store);
    const results: ImportResult[] = [];
    for (const s of specs) {
      const name = describeCache(s);
      try {
        const { source, records } = s.type === 'local' ? await openLocal(s) : await openRegistry(s, opts);
        const registry = s.type === 'registry' ? repositoryName(parseReference(s.ref)) : undefined;
        for (const rec of records) if (!imports.records.has(rec.key)) imports.records.set(rec.key, { rec, source, ...(registry ? { registry } : {}) });
        results.push({ name, records: records.length });
      } catch (e) {
        results.push({ name, records: 0, error: e instanceof Error ? e.message : String(e) });
      }
    }
    return { imports, results };
  }

  /** How many keys the imported caches hold. */
  get size(): number {
    return this.records.size;
  }

  /**
   * The imported record for `key` with its layer blob now in the store (verified by
   * digest, size and diff ID), or undefined when no imported cache has the key. A blob
   * that fails verification throws (the caller treats it as a miss) and stores nothing.
   */
  async fetch(key: string): Promise<CacheRecord | undefined> {
    const hit = this.records.get(key);
    if (!hit) return undefined;
    const layer = hit.rec.layer;
    if (!layer) return hit.rec;
    // a record is checked even when its blob is stored already: a hostile cache could pair a
    // stored blob with another layer's diff ID, and the image would carry the wrong diff ID
    const k = `${layer.blob.digest} ${layer.diffID} ${layer.blob.mediaType}`;
    let p = this.blobs.get(k);
    if (!p) {
      p = (async () => {
        if (await this.store.hasBlob(layer.blob.digest)) await this.verify(this.store.blobPath(layer.blob.digest), layer, hit.source.name);
        else await this.fetchBlob(hit.source, layer, hit.registry);
      })();
      this.blobs.set(k, p);
    }
    await p;
    return hit.rec;
  }

  /** Refuses a blob whose content is not the layer the record names (diff ID) or not the compression its media type says. */
  private async verify(path: string, layer: LayerRef, from: string): Promise<void> {
    const d = layer.blob.digest;
    const got = await diffIDOf(createReadStream(path)).catch(() => undefined);
    if (got?.diffID !== layer.diffID) {
      throw new HoistError('E_CACHE_IMPORT', `cache blob ${d} from ${from} does not hold the layer its record names (diff ID ${got?.diffID ?? 'unreadable'}, expected ${layer.diffID})`);
    }
    const want = compressionOfMediaType(layer.blob.mediaType);
    if (want !== got.compression) {
      throw new HoistError('E_CACHE_IMPORT', `cache blob ${d} from ${from} is ${got.compression} but its record says media type ${JSON.stringify(layer.blob.mediaType)}`);
    }
  }

  private async fetchBlob(source: Source, layer: LayerRef, registry: string | undefined): Promise<void> {
    this.tmp ??= this.store.tmpDir('cache-import');
    const dir = await this.tmp;
    const d: Descriptor = { mediaType: layer.blob.mediaType, digest: layer.blob.digest, size: layer.blob.size };
    let ing: Ingested;
    try {
      ing = await source.fetch(this.store, dir, d);
    } catch (e) {
      const why = e instanceof HoistError && e.code === 'E_DIGEST_MISMATCH' ? 'does not match its digest (corrupt or altered)' : `cannot be read: ${e instanceof Error ? e.message : String(e)}`;
      throw new HoistError('E_CACHE_IMPORT', `cache blob ${d.digest} from ${source.name} ${why}`);
    }
    try {
      await this.verify(ing.tmpPath, layer, source.name);
      await this.store.commit([ing]);
    } finally {
      await rm(ing.tmpPath, { force: true }).catch(() => undefined);
    }
    if (registry) await recordSources(this.store, registry, [d.digest]).catch(() => undefined);
  }

  /** Removes the import's work directory. */
  async close(): Promise<void> {
    if (this.tmp) await rm(await this.tmp, { recursive: true, force: true }).catch(() => undefined);
  }
}
