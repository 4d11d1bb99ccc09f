/**
 * The build's side of the registry client: FROM images resolved from the local store or
 * pulled (BuildKit's "load metadata" and FROM vertices), `--pull` re-checks, and pushing
 * the exported image (`--push`, `--output type=image,push=true`, `type=registry`).
 */
import { DockerfileError } from '../dockerfile/errors.js';
import { imageLayers } from '../image/chainid.js';
import { digestHex, type Digest } from '../image/digest.js';
import { familiarString, formatReference, parseReference, type Reference } from '../image/reference.js';
import { hostPlatform, type ResolvedImage, type Store } from '../image/store.js';
import { isIndexType, type ImageIndex } from '../image/types.js';
import { digestOf, type Vertex } from '../llb/ops.js';
import type { Progress, ProgressEvent } from '../progress/progress.js';
import type { ClientOptions, RegistryClient } from '../registry/index.js';

/** The registry client is loaded only when a build talks to a registry (a local FROM needs none of it). */
const registry = () => import('../registry/index.js');
import { HoistError } from '../util/errors.js';
import type { ResolvedBase } from './convert.js';

/** How a build talks to registries. */
export interface BuildRegistryOptions extends ClientOptions {
  /** `--pull`: ask the registry for the current digest of every FROM image (a local image pinned by digest needs no network). */
  pull?: boolean;
}

/** Sizes as BuildKit's progress prints them (`3.64MB`). */
export function formatSize(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let v = n;
  let u = 0;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return u === 0 ? `${v}B` : `${v.toFixed(2)}${units[u]}`;
}

const secs = (ms: number): string => `${(ms / 1000).toFixed(1)}s`;

/** One registry client per host for the whole build, so tokens are fetched once. */
export class Registries {
  private readonly clients = new Map<string, RegistryClient>();
  constructor(readonly options: ClientOptions) {}
  async client(domain: string): Promise<RegistryClient> {
    let c = this.clients.get(domain);
    if (!c) {
      c = new (await registry()).RegistryClient(domain, this.options);
      this.clients.set(domain, c);
    }
    return c;
  }
}

let seq = 0;

/**
 * Resolves FROM images for convert(): the local store first; a missing image (or, with
 * `--pull`, one whose tag moved in the registry) is pulled. Each image gets BuildKit's
 * `[internal] load metadata for NAME` vertex; what the registry did shows on the FROM vertex.
 */
export class BaseImageResolver {
  private readonly memo = new Map<string, Promise<ResolvedBase>>();
  /** Lines for the FROM vertex of an image (by image ID): the registry resolve and the layer downloads. */
  private readonly fromLines = new Map<Digest, string[]>();
  readonly registries: Registries;

  constructor(private readonly store: Store, private readonly progress: Progress, private readonly opts: BuildRegistryOptions) {
    this.registries = new Registries(opts);
  }

  /** The `resolveImage` callback of convert(). */
  readonly resolve = (ref: string, where: () => DockerfileError): Promise<ResolvedBase> => {
    let key = ref;
    try {
      key = formatReference(parseReference(ref));
    } catch {
      /* not a name: resolved (or refused) below */
    }
    let p = this.memo.get(key);
    if (!p) {
      p = this.resolveOnce(ref, where);
      this.memo.set(key, p);
    }
    return p;
  };

  private async resolveOnce(ref: string, where: () => DockerfileError): Promise<ResolvedBase> {
    let r: Reference | undefined;
    let refErr: unknown;
    try {
      r = parseReference(ref);
    } catch (e) {
      refErr = e;
    }
    const full = r ? formatReference(r) : ref;
    const id = `metadata-${seq++}`;
    this.progress.emit({ type: 'start', id, name: `[internal] load metadata for ${full}` });
    const fail = (e: unknown): never => {
      // the registry client's "fetching the manifest of X: " repeats what this message says
      const msg = (e instanceof Error ? e.message : String(e)).replace(/^(fetching the manifest of|resolving) \S+: /, '');
      this.progress.emit({ type: 'error', id, message: msg });
      const w = where();
      if (!(e instanceof HoistError)) throw e;
      throw new DockerfileError(e.code, `failed to resolve source metadata for ${full}: ${msg}`, w.location, e.hint);
    };

    let local: ResolvedImage | undefined;
    try {
      local = await this.store.findImage(ref);
    } catch (e) {
      if (!(e instanceof HoistError && e.code === 'E_NO_IMAGE')) fail(e);
    }
    if (!r) {
      // not a valid name: only an image ID in the store can answer it
      if (local) {
        this.progress.emit({ type: 'done', id });
        return base(local, local.names[0] ?? ref);
      }
      fail(refErr);
    }
    const ref2 = r!;
    const byName = local !== undefined && (local.names.includes(full) || (ref2.digest !== undefined && [local.target.digest, local.manifestDescriptor.digest].includes(ref2.digest)));
    if (local && (!this.opts.pull || !byName || ref2.digest)) {
      // the store has it (an image pinned by digest cannot have changed): no network
      this.progress.emit({ type: 'done', id });
      return base(local, byName ? full : local.names[0] ?? full);
    }

    const display = familiarString(ref2);
    const { fetchManifest, pullImage, resolveDigest } = await registry();
    const client = await this.registries.client(ref2.domain);
    const lines: string[] = [];
    const started = performance.now();
    try {
      let upToDate = false;
      let digest: Digest | undefined;
      if (local) {
        // --pull with a local copy: one HEAD for the tag's current digest
        const remote = await resolveDigest(ref2, { ...this.opts, client });
        digest = remote.digest;
        if (remote.digest === local.target.digest || remote.digest === local.manifestDescriptor.digest) upToDate = true;
        else if (isIndexType(remote.mediaType)) {
          // a pull stores the platform manifest, not the index: look for it in the index
          const idx = JSON.parse((await fetchManifest(client, ref2.path, remote.digest, display)).bytes.toString('utf8')) as ImageIndex;
          const hp = hostPlatform();
          upToDate = (idx.manifests ?? []).some((d) => d.digest === local!.manifestDescriptor.digest && (!d.platform || (d.platform.os === hp.os && d.platform.architecture === hp.architecture)));
        }
      }
      let img = local;
      if (!upToDate) {
        const done = new Map<string, number>();
        let resolvedAt: number | undefined;
        const res = await pullImage(this.store, ref2, {
          ...this.opts, client,
          progress: (l) => {
            // the first layer line comes once the manifest is in
            if (resolvedAt === undefined && /: (Pulling fs layer|Already exists)$/.test(l)) resolvedAt = performance.now() - started;
            const m = /^([a-f0-9]{12}): Download complete$/.exec(l);
            if (m) done.set(m[1]!, performance.now() - started);
          },
        });
        digest = res.digest;
        img = await this.store.findImage(res.name ?? res.id);
        lines.push(`resolve ${full.replace(/@.*$/, '')}@${res.digest} ${secs(resolvedAt ?? performance.now() - started)} done`);
        for (const l of img.manifest.layers) {
          const t = done.get(digestHex(l.digest).slice(0, 12));
          if (t !== undefined) lines.push(`${l.digest} ${formatSize(l.size)} / ${formatSize(l.size)} ${secs(t)} done`);
        }
      } else {
        lines.push(`resolve ${full.replace(/@.*$/, '')}@${digest} ${secs(performance.now() - started)} done`);
      }
      this.fromLines.set(img!.id, lines);
      this.progress.emit({ type: 'done', id });
      return { ...base(img!, full), ...(digest && !ref2.digest ? { digest } : {}) };
    } catch (e) {
      return fail(e);
    }
  }

  /**
   * The progress the solver reports to: when a FROM vertex whose image came from a registry
   * starts, the registry's part (resolve, downloaded layers) follows its header, as in BuildKit.
   */
  wrap(progress: Progress, root: Vertex): Progress {
    const images = new Map<string, Digest>();
    const seen = new Set<Vertex>();
    const walk = (v: Vertex): void => {
      if (seen.has(v)) return;
      seen.add(v);
      if (v.op.type === 'image') images.set(digestOf(v), v.op.imageID);
      v.inputs.forEach(walk);
    };
    walk(root);
    const lines = this.fromLines;
    return {
      emit(e: ProgressEvent): void {
        progress.emit(e);
        if (e.type !== 'start') return;
        const img = images.get(e.id);
        const l = img && lines.get(img);
        if (!l) return;
        lines.delete(img!);
        for (const text of l) progress.emit({ type: 'status', id: e.id, text });
      },
      close: () => progress.close(),
    };
  }
}

function base(img: ResolvedImage, name: string): ResolvedBase {
  return {
    name, id: img.id, config: img.config,
    layers: imageLayers(img).map((l) => ({ diffID: l.diffID, blob: { mediaType: l.descriptor.mediaType, digest: l.descriptor.digest as Digest, size: l.descriptor.size } })),
  };
}

/**
 * Pushes the exported image under each name, as BuildKit's image exporter with push=true
 * (status lines on the export vertex: `pushing layers`, `pushing manifest for NAME@DIGEST`).
 */
export async function pushNames(store: Store, names: string[], registries: Registries, progress: Progress, vertexId: string): Promise<void> {
  const { pushImage } = await registry();
  for (const name of names) {
    const r = parseReference(name);
    const started = performance.now();
    let layersAt = 0;
    let res;
    try {
      res = await pushImage(store, r, {
        ...registries.options, client: await registries.client(r.domain),
        progress: (l) => {
          if (/: (Pushed|Layer already exists|Mounted from .*)$/.test(l)) layersAt = performance.now() - started;
        },
      });
    } catch (e) {
      if (!(e instanceof HoistError)) throw e;
      progress.emit({ type: 'error', id: vertexId, message: e.message });
      throw new HoistError(e.code, `failed to push ${formatReference(r)}: ${e.message}`, { hint: e.hint ?? 'the image is in the local store; push it again with hoist push' });
    }
    progress.emit({ type: 'status', id: vertexId, text: `pushing layers ${secs(layersAt)} done` });
    progress.emit({ type: 'status', id: vertexId, text: `pushing manifest for ${formatReference(r)}@${res.digest} ${secs(performance.now() - started - layersAt)} done` });
  }
}
