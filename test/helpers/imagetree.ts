// imagetree: reads an image archive (`docker save` form, or an OCI archive) and computes the
// final filesystem tree by applying its layers in order, whiteouts included, in memory: only
// metadata and per-file digests are kept, file bytes are streamed through a hash. The build
// conformance goldens (fixtures/build/*/golden.json) are made with it from the reference
// engine's images, and the conformance test makes the same summary of hoist's images, so both
// sides go through exactly the same code.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { Readable, pipeline } from 'node:stream';
import { createGunzip } from 'node:zlib';
import tar from 'tar-stream';

/** The kinds of filesystem object a layer can hold. */
export type EntryType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo';

/** One path of an image's final filesystem, as the conformance goldens record it. */
export interface TreeEntry {
  /** Absolute, normalised ("/etc/passwd"); the root directory itself is never listed. */
  path: string;
  type: EntryType;
  /** Permission and setuid/setgid/sticky bits as a 4-digit octal string ("0755", "1777"). */
  mode: string;
  uid: number;
  gid: number;
  /** Bytes of content (files and hardlinks; 0 for everything else). */
  size: number;
  /** "sha256:<hex>" of the content (files and hardlinks only). */
  sha256?: string;
  /** Target of a symlink (verbatim) or of a hardlink (absolute path). */
  link?: string;
  /** Device numbers "major:minor" (char and block devices only). */
  dev?: string;
  /** Extended attributes (PAX SCHILY.xattr.*), only when a layer carries any. */
  xattrs?: Record<string, string>;
}

/** An image read from an archive. */
export interface ImageArchive {
  /** The image config blob, parsed. */
  config: ImageConfig;
  /** Layer diff IDs as the config lists them (empty for an image with no layers). */
  diffIds: string[];
  /** Number of layers in the manifest. */
  layerCount: number;
  /** The final filesystem, keyed by path. */
  tree: Map<string, TreeEntry>;
  /** RepoTags (docker archives) or ref names (OCI archives). */
  names: string[];
}

/** The parts of an OCI/Docker image config the goldens use. */
export interface ImageConfig {
  architecture?: string;
  os?: string;
  variant?: string;
  config?: Record<string, unknown>;
  rootfs?: { type?: string; diff_ids?: string[] };
  history?: { created_by?: string; empty_layer?: boolean; comment?: string }[];
  [k: string]: unknown;
}

/** One history entry as recorded (timestamps left out: they never match between engines). */
export interface GoldenHistory {
  created_by: string;
  empty_layer: boolean;
  comment?: string;
}

/** The content of fixtures/build/<case>/golden.json. */
export interface Golden {
  /** The image config's "config" object, plus its "architecture" and "os" (and "variant" and "author" when set). */
  config: Record<string, unknown>;
  history: GoldenHistory[];
  /** Number of layers of the image, base layers included. */
  layers: number;
  /** The base the tree is relative to: its name and diff IDs; null when the tree is the full tree. */
  base: { image: string; diffIds: string[] } | null;
  /** Paths added or changed relative to the base (all paths when base is null), sorted by path. */
  tree: TreeEntry[];
  /** Paths of the base that the image no longer has, sorted. */
  removed: string[];
}

const MAX_JSON = 8 * 1024 * 1024;

/** Normalises a path inside a layer to "/a/b"; refuses ".." so a hostile archive cannot confuse the tree. */
export function normPath(p: string): string {
  const parts: string[] = [];
  for (const seg of p.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') throw new Error(`imagetree: layer path ${JSON.stringify(p)} contains "..": refusing the archive`);
    parts.push(seg);
  }
  return '/' + parts.join('/');
}

const parentOf = (p: string): string => p.slice(0, p.lastIndexOf('/')) || '/';
const baseName = (p: string): string => p.slice(p.lastIndexOf('/') + 1);

/** Formats the permission part of a tar mode the way goldens store it. */
export const modeString = (mode: number): string => (mode & 0o7777).toString(8).padStart(4, '0');

type Change =
  | { kind: 'opaque'; dir: string }
  | { kind: 'whiteout'; path: string }
  | { kind: 'entry'; entry: TreeEntry };

/** Reads one archive member fully as JSON (small members only). */
async function readJson(stream: AsyncIterable<Buffer>, name: string): Promise<unknown> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of stream) {
    n += c.length;
    if (n > MAX_JSON) throw new Error(`imagetree: ${name} is larger than ${MAX_JSON} bytes; not a manifest or config`);
    chunks.push(c);
  }
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

/** tar-stream entries are streamx readables: async-iterable byte chunks. */
const chunks = (s: unknown): AsyncIterable<Buffer> => s as AsyncIterable<Buffer>;

/** Drains a stream without keeping it. */
async function drain(stream: AsyncIterable<Buffer>): Promise<void> {
  for await (const _ of stream) void _;
}

/** Wraps a layer stream in the decompressor its first bytes call for (gzip, zstd or none). */
async function openLayer(src: AsyncIterable<Buffer>, name: string): Promise<Readable> {
  const it = src[Symbol.asyncIterator]();
  const head: Buffer[] = [];
  let have = 0;
  let ended = false;
  while (have < 4) {
    const r = await it.next();
    if (r.done) {
      ended = true;
      break;
    }
    head.push(r.value);
    have += r.value.length;
  }
  const magic = Buffer.concat(head);
  const rest = Readable.from(
    (async function* () {
      yield* head;
      if (ended) return;
      for (;;) {
        const r = await it.next();
        if (r.done) return;
        yield r.value;
      }
    })(),
  );
  if (magic[0] === 0x1f && magic[1] === 0x8b) {
    return pipeline(rest, createGunzip(), () => undefined);
  }
  if (magic.length >= 4 && magic.readUInt32LE(0) === 0xfd2fb528) {
    // Node 20 has no zstd; the zstd tool is installed wherever hoist's tests run.
    const p = spawn('zstd', ['-dcq'], { stdio: ['pipe', 'pipe', 'inherit'] });
    pipeline(rest, p.stdin, () => undefined);
    p.on('error', (e) => p.stdout.destroy(new Error(`imagetree: cannot run zstd to read ${name}: ${e.message}`)));
    p.on('exit', (code) => {
      if (code !== 0) p.stdout.destroy(new Error(`imagetree: zstd failed (exit ${code}) on ${name}`));
    });
    return p.stdout;
  }
  return rest;
}

const typeOf = (t: tar.Header['type'] | undefined): EntryType | null => {
  switch (t) {
    case 'file':
    case 'contiguous-file':
      return 'file';
    case 'directory':
      return 'dir';
    case 'symlink':
      return 'symlink';
    case 'link':
      return 'hardlink';
    case 'character-device':
      return 'char';
    case 'block-device':
      return 'block';
    case 'fifo':
      return 'fifo';
    default:
      return null;
  }
};

/** Parses one layer tar into its list of changes (whiteouts and entries), hashing file contents. */
async function readLayer(src: AsyncIterable<Buffer>, name: string): Promise<Change[]> {
  const changes: Change[] = [];
  const ex = tar.extract();
  const layer = await openLayer(src, name);
  pipeline(layer, ex as unknown as NodeJS.WritableStream, () => undefined);
  layer.on('error', (err) => ex.destroy(err));
  for await (const e of ex) {
    const h = e.header;
    const pax = (h.pax ?? {}) as Record<string, string>;
    const path = normPath(h.name);
    const base = baseName(path);
    if (base === '.wh..wh..opq') {
      changes.push({ kind: 'opaque', dir: parentOf(path) });
      await drain(chunks(e));
      continue;
    }
    if (base.startsWith('.wh.')) {
      changes.push({ kind: 'whiteout', path: normPath(parentOf(path) + '/' + base.slice(4)) });
      await drain(chunks(e));
      continue;
    }
    const type = typeOf(h.type);
    if (type === null) throw new Error(`imagetree: ${name}: entry ${JSON.stringify(h.name)} has unsupported tar type ${h.type}`);
    if (path === '/') {
      await drain(chunks(e));
      continue;
    }
    const entry: TreeEntry = { path, type, mode: modeString(h.mode ?? 0), uid: h.uid ?? 0, gid: h.gid ?? 0, size: 0 };
    if (type === 'file') {
      const hash = createHash('sha256');
      let size = 0;
      for await (const c of chunks(e)) {
        hash.update(c);
        size += c.length;
      }
      entry.size = size;
      entry.sha256 = `sha256:${hash.digest('hex')}`;
    } else {
      await drain(chunks(e));
    }
    if (type === 'symlink') entry.link = h.linkname ?? '';
    if (type === 'hardlink') entry.link = normPath(h.linkname ?? '');
    if (type === 'char' || type === 'block') entry.dev = `${h.devmajor ?? 0}:${h.devminor ?? 0}`;
    const xattrs: Record<string, string> = {};
    for (const [k, v] of Object.entries(pax)) if (k.startsWith('SCHILY.xattr.')) xattrs[k.slice(13)] = v;
    if (Object.keys(xattrs).length > 0) entry.xattrs = Object.fromEntries(Object.entries(xattrs).sort(([a], [b]) => (a < b ? -1 : 1)));
    changes.push({ kind: 'entry', entry });
  }
  return changes;
}

/** Removes a path and everything below it. */
function removeSubtree(tree: Map<string, TreeEntry>, path: string, keepSelf = false): void {
  if (!keepSelf) tree.delete(path);
  const prefix = path === '/' ? '/' : path + '/';
  for (const k of [...tree.keys()]) if (k.startsWith(prefix)) tree.delete(k);
}

/** Applies one layer's changes to a tree: whiteouts hide lower layers only, then entries land in tar order. */
export function applyChanges(tree: Map<string, TreeEntry>, changes: readonly Change[], layerName = 'layer'): void {
  for (const c of changes) {
    if (c.kind === 'opaque') removeSubtree(tree, c.dir, true);
    else if (c.kind === 'whiteout') removeSubtree(tree, c.path);
  }
  for (const c of changes) {
    if (c.kind !== 'entry') continue;
    const e = { ...c.entry };
    const old = tree.get(e.path);
    // A non-directory replacing a directory takes the directory's contents with it (tar semantics).
    if (old && old.type === 'dir' && e.type !== 'dir') removeSubtree(tree, e.path);
    if (e.type === 'hardlink') {
      const target = tree.get(e.link!);
      if (!target) throw new Error(`imagetree: ${layerName}: hardlink ${e.path} points at ${e.link}, which does not exist`);
      e.size = target.size;
      if (target.sha256) e.sha256 = target.sha256;
    }
    tree.set(e.path, e);
  }
}

interface ArchiveIndex {
  json: Map<string, unknown>;
}

/** First pass: the small JSON members (manifest.json, index.json, configs, OCI manifests). */
async function indexArchive(file: string): Promise<ArchiveIndex> {
  const json = new Map<string, unknown>();
  const ex = tar.extract();
  pipeline(createReadStream(file), ex as unknown as NodeJS.WritableStream, () => undefined);
  for await (const e of ex) {
    const name = e.header.name.replace(/^\.\//, '');
    if (e.header.type === 'file' && (e.header.size ?? 0) <= MAX_JSON) {
      const parts: Buffer[] = [];
      for await (const c of chunks(e)) parts.push(c);
      const buf = Buffer.concat(parts);
      const first = buf.subarray(0, 1).toString();
      if (first === '{' || first === '[') {
        try {
          json.set(name, JSON.parse(buf.toString('utf8')));
        } catch {
          // a small layer that happens to start with a brace: not metadata
        }
      }
    } else {
      await drain(chunks(e));
    }
  }
  return { json };
}

const blobPath = (digest: string): string => `blobs/${digest.replace(':', '/')}`;

/** Reads an image archive (`docker save` or OCI; pick an image with `name` when it holds several). */
export async function readImageArchive(file: string, name?: string): Promise<ImageArchive> {
  const { json } = await indexArchive(file);
  let configPath: string;
  let layerPaths: string[];
  let names: string[];
  const dm = json.get('manifest.json') as { Config: string; RepoTags?: string[] | null; Layers: string[] }[] | undefined;
  if (dm) {
    const m = name ? dm.find((x) => (x.RepoTags ?? []).includes(name)) : dm[0];
    if (!m) throw new Error(`imagetree: ${file} has no image named ${name}`);
    configPath = m.Config;
    layerPaths = m.Layers;
    names = m.RepoTags ?? [];
  } else {
    const idx = json.get('index.json') as { manifests?: { digest: string; annotations?: Record<string, string> }[] } | undefined;
    if (!idx?.manifests?.length) throw new Error(`imagetree: ${file} has neither manifest.json nor index.json: not an image archive`);
    const refName = (d: { annotations?: Record<string, string> }): string | undefined =>
      d.annotations?.['io.containerd.image.name'] ?? d.annotations?.['org.opencontainers.image.ref.name'];
    const d = name ? idx.manifests.find((x) => refName(x) === name) : idx.manifests[0];
    if (!d) throw new Error(`imagetree: ${file} has no image named ${name}`);
    let man = json.get(blobPath(d.digest)) as { manifests?: { digest: string; platform?: { os?: string } }[]; config?: { digest: string }; layers?: { digest: string }[] };
    if (man?.manifests) {
      // an index inside: take the first image manifest (conformance images are single-platform)
      const inner = man.manifests.find((x) => x.platform?.os !== 'unknown') ?? man.manifests[0]!;
      man = json.get(blobPath(inner.digest)) as typeof man;
    }
    if (!man?.config) throw new Error(`imagetree: ${file}: manifest ${d.digest} not found in the archive`);
    configPath = blobPath(man.config.digest);
    layerPaths = (man.layers ?? []).map((l) => blobPath(l.digest));
    names = idx.manifests.map(refName).filter((x): x is string => !!x);
  }
  const config = json.get(configPath) as ImageConfig | undefined;
  if (!config) throw new Error(`imagetree: ${file}: config ${configPath} not found in the archive`);

  // Second pass: each distinct layer member once, in archive order; applied afterwards in manifest order.
  const wanted = new Set(layerPaths);
  const parsed = new Map<string, Change[]>();
  const ex = tar.extract();
  pipeline(createReadStream(file), ex as unknown as NodeJS.WritableStream, () => undefined);
  for await (const e of ex) {
    const n = e.header.name.replace(/^\.\//, '');
    if (wanted.has(n) && !parsed.has(n) && e.header.type === 'file') parsed.set(n, await readLayer(chunks(e), `${file}:${n}`));
    else await drain(chunks(e));
  }
  const tree = new Map<string, TreeEntry>();
  for (const p of layerPaths) {
    const ch = parsed.get(p);
    if (!ch) throw new Error(`imagetree: ${file}: layer ${p} not found in the archive`);
    applyChanges(tree, ch, p);
  }
  return { config, diffIds: config.rootfs?.diff_ids ?? [], layerCount: layerPaths.length, tree, names };
}

const sameEntry = (a: TreeEntry, b: TreeEntry): boolean => JSON.stringify(canonEntry(a)) === JSON.stringify(canonEntry(b));

/** An entry with its keys in one fixed order, so JSON text of equal entries is equal. */
export function canonEntry(e: TreeEntry): TreeEntry {
  const o: TreeEntry = { path: e.path, type: e.type, mode: e.mode, uid: e.uid, gid: e.gid, size: e.size };
  if (e.sha256 !== undefined) o.sha256 = e.sha256;
  if (e.link !== undefined) o.link = e.link;
  if (e.dev !== undefined) o.dev = e.dev;
  if (e.xattrs !== undefined) o.xattrs = e.xattrs;
  return o;
}

const byPath = (a: { path: string }, b: { path: string }): number => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0);

/** The entries of `tree` that are new or differ from `base`, and the base paths it lacks. */
export function diffTree(base: Map<string, TreeEntry> | null, tree: Map<string, TreeEntry>): { changed: TreeEntry[]; removed: string[] } {
  const changed: TreeEntry[] = [];
  for (const e of tree.values()) {
    const b = base?.get(e.path);
    if (!b || !sameEntry(b, e)) changed.push(canonEntry(e));
  }
  const removed = base ? [...base.keys()].filter((p) => !tree.has(p)).sort() : [];
  return { changed: changed.sort(byPath), removed };
}

/** Whether `img` is built on `base` (its first layers are the base's layers). */
export function isBuiltOn(img: ImageArchive, base: ImageArchive): boolean {
  return base.diffIds.length > 0 && base.diffIds.every((d, i) => img.diffIds[i] === d);
}

/** The golden summary of an image: config, history, layer count, and its tree relative to `base` when built on it. */
export function goldenOf(img: ImageArchive, base?: { name: string; image: ImageArchive }): Golden {
  const onBase = base && isBuiltOn(img, base.image) ? base : undefined;
  const { changed, removed } = diffTree(onBase ? onBase.image.tree : null, img.tree);
  const config: Record<string, unknown> = { ...(img.config.config ?? {}) };
  config.architecture = img.config.architecture;
  config.os = img.config.os;
  if (img.config.variant) config.variant = img.config.variant;
  // MAINTAINER writes the top-level author field; keep it beside the config it belongs with
  if (typeof img.config.author === 'string') config.author = img.config.author;
  const history = (img.config.history ?? []).map((h) => {
    const o: GoldenHistory = { created_by: h.created_by ?? '', empty_layer: h.empty_layer === true };
    if (h.comment !== undefined) o.comment = h.comment;
    return o;
  });
  return {
    config,
    history,
    layers: img.layerCount,
    base: onBase ? { image: onBase.name, diffIds: onBase.image.diffIds } : null,
    tree: changed,
    removed,
  };
}

/** Serialises a golden as it is stored: indented JSON with one tree entry per line. */
export function goldenJson(g: Golden): string {
  const lines = [
    '{',
    `  "config": ${JSON.stringify(g.config, null, 2).replace(/\n/g, '\n  ')},`,
    `  "history": [${g.history.length ? '\n' + g.history.map((h) => '    ' + JSON.stringify(h)).join(',\n') + '\n  ' : ''}],`,
    `  "layers": ${g.layers},`,
    `  "base": ${JSON.stringify(g.base)},`,
    `  "tree": [${g.tree.length ? '\n' + g.tree.map((e) => '    ' + JSON.stringify(canonEntry(e))).join(',\n') + '\n  ' : ''}],`,
    `  "removed": ${JSON.stringify(g.removed)}`,
    '}',
  ];
  return lines.join('\n') + '\n';
}

/** Human-readable differences between an expected and an actual golden (empty when they agree). */
export function compareGoldens(expected: Golden, actual: Golden): string[] {
  const out: string[] = [];
  const keys = new Set([...Object.keys(expected.config), ...Object.keys(actual.config)]);
  for (const k of [...keys].sort()) {
    const a = JSON.stringify(expected.config[k]);
    const b = JSON.stringify(actual.config[k]);
    if (a !== b) out.push(`config.${k}: expected ${a}, got ${b}`);
  }
  const n = Math.max(expected.history.length, actual.history.length);
  for (let i = 0; i < n; i++) {
    const a = JSON.stringify(expected.history[i]);
    const b = JSON.stringify(actual.history[i]);
    if (a !== b) out.push(`history[${i}]: expected ${a}, got ${b}`);
  }
  if (expected.layers !== actual.layers) out.push(`layers: expected ${expected.layers}, got ${actual.layers}`);
  const ea = new Map(expected.tree.map((e) => [e.path, e]));
  const aa = new Map(actual.tree.map((e) => [e.path, e]));
  for (const [p, e] of ea) {
    const a = aa.get(p);
    if (!a) out.push(`tree ${p}: missing (expected ${JSON.stringify(canonEntry(e))})`);
    else if (!sameEntry(e, a)) out.push(`tree ${p}: expected ${JSON.stringify(canonEntry(e))}, got ${JSON.stringify(canonEntry(a))}`);
  }
  for (const [p, a] of aa) if (!ea.has(p)) out.push(`tree ${p}: unexpected ${JSON.stringify(canonEntry(a))}`);
  const er = new Set(expected.removed);
  const ar = new Set(actual.removed);
  for (const p of er) if (!ar.has(p)) out.push(`removed ${p}: expected removed, still present`);
  for (const p of ar) if (!er.has(p)) out.push(`removed ${p}: unexpectedly removed`);
  return out;
}
