/**
 * Solves the build graph: each vertex once (equal vertices are merged by digest),
 * independent vertices in parallel on a p-queue (bounded by twice the CPU count, at
 * least 8: a step is mostly a child process waiting on a sleep, a download or the
 * disk, so a CPU-count bound made independent stages run one after another), and every
 * step first looked up by its cache key:
 *
 *   key = sha256(op digest, input keys, content digests of the context paths it reads)
 *
 * A hit reuses the stored layer without running anything; a miss runs the step's
 * worker (RUN in the sandbox, COPY/ADD/WORKDIR in the copy worker) and records it.
 */
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import PQueue from 'p-queue';
import { CacheIndex, type CacheRecord } from '../cache/index.js';
import type { CacheImports } from '../cache/remote.js';
import type { BuildContext } from '../context/context.js';
import { IgnoreMatcher } from '../context/dockerignore.js';
import { chainIDs, openLayer } from '../image/chainid.js';
import type { Digest } from '../image/digest.js';
import type { Store } from '../image/store.js';
import { canonicalJSON, digestOf, opDigest, sha256Digest, type ExecOp, type FileOp, type GitOp, type HttpOp, type LayerRef, type Vertex } from '../llb/ops.js';
import type { Progress } from '../progress/progress.js';
import { prepareSnapshots, readSnapshotMeta, snapshotDir, type SnapshotMeta } from '../snapshot/store.js';
import { HoistError } from '../util/errors.js';
import { CopyWorkers } from './copypool.js';
import type { CopySourceRoot, CopySpec } from './copyworker.js';
import { acquireCacheMount, cacheMountName, type CacheMountLease, type CacheMountRequest } from './cachemount.js';
import { hasGlob, resolveInRoot, resolveWildcards } from './rootpath.js';
import type { RunMount } from './runner.js';

/** What a solved vertex is: a stack of layers (or the host context). */
export interface Solved {
  layers: LayerRef[];
  /** The cache key (for the context: a constant; its content enters the keys of the steps that read it). */
  key: string;
  local?: boolean;
  /** An http source: the directory holding its one file (downloaded on first call when not stored). */
  download?: () => Promise<string>;
  /** A git source: its checked-out tree (checked out on first call), removed once every step that took it releases it. */
  checkout?: () => Promise<{ dir: string; release(): Promise<void> }>;
  /** Cache keys of the steps that made `layers` (the records `--cache-to mode=min` exports). */
  keys?: string[];
  /**
   * Pending while a base image is still being unpacked: a step on top waits for it
   * before it runs or counts as cached, but computes its cache key (hashing the
   * context) meanwhile.
   */
  ready?: Promise<void>;
}

/** A build secret given with `--secret id=…,src=…|env=…`. */
export interface SecretSource {
  file?: string;
  env?: string;
}

export interface SolverOptions {
  store: Store;
  root: string;
  context: BuildContext;
  progress: Progress;
  secrets: Map<string, SecretSource>;
  env: NodeJS.ProcessEnv;
  concurrency?: number;
  /** Caches given with `--cache-from`: asked for a key that misses locally. */
  imports?: CacheImports;
}

/** A RUN step that failed: the command, its exit status, where it came from and its last output. */
export class StepError extends HoistError {
  constructor(
    message: string,
    readonly vertex: Vertex,
    readonly lastLines: string[],
    opts: { hint?: string; code?: string } = {},
  ) {
    super(opts.code ?? 'E_STEP', message, { hint: opts.hint });
  }
}

const LAST_LINES = 10;

/** A user error from a step's worker, reported as that step's failure (with its Dockerfile line). */
function asStepError(e: unknown, v: Vertex): unknown {
  return e instanceof HoistError && !(e instanceof StepError) ? new StepError(e.message, v, [], { code: e.code, hint: e.hint }) : e;
}

/** Solves vertices of one build. */
export class Solver {
  private readonly memo = new Map<string, Promise<Solved>>();
  private readonly queue: PQueue;
  private readonly cache: CacheIndex;
  private readonly snapshotDirs = new Map<string, Promise<string[]>>();
  private readonly copyWorkers = new CopyWorkers();
  /** The graph has COPY/ADD/WORKDIR steps: the first step that runs starts a copy worker ahead of them. */
  private fileOps = false;
  private warmed = false;
  /** Every cache record this build used or made, by key (what `--cache-to mode=max` exports). */
  readonly records = new Map<string, CacheRecord>();

  constructor(private readonly o: SolverOptions) {
    this.queue = new PQueue({ concurrency: o.concurrency ?? Math.max(8, 2 * availableParallelism()) });
    this.cache = new CacheIndex(o.root);
  }

  /** Solves `v` (and everything below it). */
  solve(v: Vertex): Promise<Solved> {
    return this.solveInner(v).then(async (s) => {
      await s.ready;
      return s;
    });
  }

  private solveInner(v: Vertex): Promise<Solved> {
    const d = digestOf(v);
    let p = this.memo.get(d);
    if (!p) {
      if (v.op.type === 'file') this.fileOps = true;
      p = this.solveOnce(v);
      this.memo.set(d, p);
    }
    return p;
  }

  private async solveOnce(v: Vertex): Promise<Solved> {
    const op = v.op;
    if (op.type === 'scratch') return { layers: [], key: sha256Digest('scratch') };
    if (op.type === 'local') return this.solveLocal(v);
    if (op.type === 'http') return this.solveHttp(v, op);
    if (op.type === 'git') return this.solveGit(v, op);
    if (op.type === 'image') {
      const id = digestOf(v);
      this.o.progress.emit({ type: 'start', id, name: v.name });
      const ready = this.snapshots(op.layers).then(() => this.o.progress.emit({ type: 'done', id }));
      ready.catch(() => undefined); // the steps that wait for it report the failure
      return { layers: op.layers, key: sha256Digest(canonicalJSON({ image: op.imageID })), ready };
    }
    const inputs = await Promise.all(v.inputs.map((i) => this.solveInner(i)));
    if (op.type === 'merge') {
      const ready = inputs.some((i) => i.ready) ? Promise.all(inputs.map((i) => i.ready)).then(() => undefined) : undefined;
      ready?.catch(() => undefined);
      return {
        layers: [...inputs[0]!.layers, ...inputs[1]!.layers], key: sha256Digest(canonicalJSON({ merge: inputs.map((i) => i.key) })), keys: [...(inputs[0]!.keys ?? []), ...(inputs[1]!.keys ?? [])],
        ...(ready ? { ready } : {}),
      };
    }
    const key = await this.cacheKey(v, inputs);
    await Promise.all(inputs.map((i) => i.ready));
    const id = digestOf(v);
    const parent = inputs[0]!;
    const keys = [...(parent.keys ?? []), key];
    if (!v.ignoreCache) {
      const rec = await this.lookup(key, v, id);
      if (rec) {
        this.records.set(key, rec);
        this.o.progress.emit({ type: 'start', id, name: v.name });
        this.o.progress.emit({ type: 'cached', id });
        return { layers: rec.layer ? [...parent.layers, rec.layer] : parent.layers, key, keys };
      }
    }
    if (this.fileOps && !this.warmed && process.getuid?.() === 0) {
      this.warmed = true;
      this.copyWorkers.warm();
    }
    return this.queue.add(async () => {
      this.o.progress.emit({ type: 'start', id, name: v.name });
      try {
        const layer = op.type === 'exec' ? await this.runExec(v, op, inputs, id) : await this.runFile(v, op as FileOp, inputs);
        const rec: CacheRecord = { key, layer, created: layer.created ?? new Date().toISOString() };
        await this.cache.put(rec);
        this.records.set(key, rec);
        this.o.progress.emit({ type: 'done', id });
        return { layers: [...parent.layers, layer], key, keys };
      } catch (e) {
        const msg = e instanceof HoistError ? e.message : (e as Error).message;
        this.o.progress.emit({ type: 'error', id, message: msg });
        throw e;
      }
    }) as Promise<Solved>;
  }

  /**
   * A usable cache record for `key`: the local one while its blob is in the store, else
   * one from an imported cache (its blob fetched and verified, the record then kept
   * locally). An imported blob that cannot be fetched or verified is a miss, with a
   * warning on the step, as BuildKit treats cache import failures.
   */
  private async lookup(key: string, v: Vertex, id: string): Promise<CacheRecord | undefined> {
    const rec = await this.cache.get(key);
    if (rec && (!rec.layer || (await this.o.store.hasBlob(rec.layer.blob.digest)))) return rec;
    if (!this.o.imports) return undefined;
    try {
      const imp = await this.o.imports.fetch(key);
      if (imp) await this.cache.put(imp);
      return imp;
    } catch (e) {
      this.o.progress.emit({ type: 'start', id, name: v.name });
      this.o.progress.emit({ type: 'status', id, text: `WARN: ${(e as Error).message}; running the step` });
      return undefined;
    }
  }

  private localDone?: Promise<void>;
  private solveLocal(v: Vertex): Solved {
    const id = digestOf(v);
    this.o.progress.emit({ type: 'start', id, name: v.name });
    this.o.progress.emit({ type: 'done', id });
    return { layers: [], key: 'local', local: true };
  }

  /** `ADD <url>`: the download's cache key (asking the server unless a checksum pins it); CACHED when nothing new came. */
  private async solveHttp(v: Vertex, op: HttpOp): Promise<Solved> {
    const id = digestOf(v);
    this.o.progress.emit({ type: 'start', id, name: v.name });
    try {
      const { resolveHttp } = await import('./http.js');
      const src = await resolveHttp(this.o.root, op, () => this.workDir('http'), { fresh: v.ignoreCache });
      this.o.progress.emit({ type: src.cached ? 'cached' : 'done', id });
      const dir = src.dir;
      return {
        layers: [], key: src.key,
        download: () => dir().catch((e: unknown) => {
          throw asStepError(e, v);
        }),
      };
    } catch (e) {
      const msg = e instanceof HoistError ? e.message : (e as Error).message;
      this.o.progress.emit({ type: 'error', id, message: msg });
      throw asStepError(e, v);
    }
  }

  /** `ADD <git repository>`: the ref resolved to a commit (the cache key); the checkout waits until a step runs. */
  private async solveGit(v: Vertex, op: GitOp): Promise<Solved> {
    const id = digestOf(v);
    this.o.progress.emit({ type: 'start', id, name: v.name });
    try {
      const { resolveGit } = await import('./git.js');
      const src = await resolveGit(op, {
        tmpDir: (p) => this.workDir(p), env: this.o.env,
        secret: async (name) => {
          const s = this.o.secrets.get(name);
          if (!s) return undefined;
          return s.file !== undefined ? readFile(s.file, 'utf8') : this.o.env[s.env ?? name];
        },
        log: (data, stream) => this.o.progress.emit({ type: 'log', id, data, stream }),
      });
      this.o.progress.emit({ type: 'done', id });
      return { layers: [], key: src.key, checkout: () => src.checkout().catch((e: unknown) => { throw asStepError(e, v); }) };
    } catch (e) {
      const msg = e instanceof HoistError ? e.message : (e as Error).message;
      this.o.progress.emit({ type: 'error', id, message: msg });
      throw asStepError(e, v);
    }
  }

  /** Snapshot dirs (lowest first) for a stack of layers, unpacking what is missing. */
  private snapshots(layers: LayerRef[]): Promise<string[]> {
    if (layers.length === 0) return Promise.resolve([]);
    const chains = chainIDs(layers.map((l) => l.diffID));
    const k = chains[chains.length - 1]!;
    let p = this.snapshotDirs.get(k);
    if (!p) {
      p = prepareSnapshots(this.o.root, layers.map((l, i) => ({ diffID: l.diffID, chainID: chains[i]!, open: async () => openLayer(this.o.store, l.blob as never) })));
      this.snapshotDirs.set(k, p);
    }
    return p;
  }

  /** The cache key: op digest, input keys, and for context reads the content of the selected paths. */
  private async cacheKey(v: Vertex, inputs: Solved[]): Promise<string> {
    const op = v.op;
    const parts: unknown[] = [opDigest(op), inputs.map((i) => i.key)];
    if (op.type === 'file') {
      for (const s of op.sources) {
        if (s.inline || !inputs[s.input]?.local) continue;
        parts.push(await this.contextSelection(v, s.path, op.exclude));
      }
    } else if (op.type === 'exec') {
      for (const m of op.mounts) {
        if ((m.type === 'bind' || m.type === 'cache') && m.input !== undefined && inputs[m.input]?.local) {
          parts.push(await this.contextSelection(v, m.type === 'bind' ? m.source : m.source ?? '/', []));
        }
      }
    }
    return sha256Digest(canonicalJSON(parts));
  }

  /** Digest of the context paths a source pattern selects; a missing source is an error naming the file. */
  private async contextSelection(v: Vertex, path: string, exclude: string[]): Promise<unknown> {
    const ctx = this.o.context;
    const clean = path.replace(/\/\.\//, '/');
    const matches = await resolveWildcards(ctx.dir, clean, (rel) => ctx.isIgnored(rel) && !ctx.matcher.mayIncludeUnder(rel));
    if (matches.length === 0) {
      if (hasGlob(clean)) return { path, none: true };
      const rel = clean.replace(/^\/+/, '');
      const by = ctx.ignoredBy(rel);
      const excluded = by ? ` (it is excluded by ${ctx.ignoreFile ?? '.dockerignore'} line ${by.line}: ${by.raw})` : '';
      throw new StepError(`failed to calculate checksum of ref: "/${rel}": not found in the build context${excluded}`, v, [], {
        code: 'E_COPY_SOURCE',
        hint: by ? `remove or negate the pattern "${by.raw}" in ${ctx.ignoreFile}` : `check the path; it is relative to the build context ${ctx.dir}`,
      });
    }
    const ex = exclude.length ? new IgnoreMatcher(exclude) : undefined;
    const out: [string, string][] = [];
    for (const m of matches) {
      // a named symlink is followed inside the context
      const host = await resolveInRoot(ctx.dir, '/' + m);
      const rel = host === ctx.dir ? '' : host.slice(ctx.dir.length + 1);
      if (rel !== '' && ctx.isIgnored(rel) && !ctx.matcher.mayIncludeUnder(rel)) {
        throw new StepError(`failed to calculate checksum of ref: "/${m}" points to "/${rel}", which is excluded by .dockerignore`, v, [], { code: 'E_COPY_SOURCE' });
      }
      out.push([m, await ctx.digest(rel, ex)]);
    }
    return { path, out };
  }

  private async workDir(purpose: string): Promise<string> {
    return this.o.store.tmpDir(purpose);
  }

  /**
   * Turns an upper directory into a stored layer, and keeps the directory itself as
   * the layer's snapshot (it is exactly the unpacked layer, in overlay whiteout form),
   * so the next step does not unpack the blob again.
   */
  private async commitLayer(upper: string, dir: string, parent: LayerRef[]): Promise<LayerRef> {
    const tmpPath = join(dir, 'layer.blob');
    // the tar and gzip code loads with the first step that makes a layer (a cached build makes none)
    const [{ writeLayer }, { diffUpper }] = await Promise.all([import('../image/layer.js'), import('../snapshot/diff.js')]);
    const info = await writeLayer(diffUpper(upper), createWriteStream(tmpPath), 'gzip');
    await this.o.store.commit([{ tmpPath, digest: info.digest, size: info.size }]);
    const chains = chainIDs([...parent.map((l) => l.diffID), info.diffID]);
    const chainID = chains[chains.length - 1]!;
    if (!(await readSnapshotMeta(this.o.root, chainID))) {
      const staging = join(dir, 'snapshot');
      await mkdir(staging);
      await rename(upper, join(staging, 'fs'));
      const meta: SnapshotMeta = {
        chainID, diffID: info.diffID, parent: chains.length > 1 ? chains[chains.length - 2]! : null, whiteouts: 'overlay',
        size: info.uncompressedSize, created: new Date().toISOString(), warnings: [],
      };
      await writeFile(join(staging, 'snapshot.json'), JSON.stringify(meta, null, 2) + '\n');
      await mkdir(join(this.o.root, 'snapshots'), { recursive: true, mode: 0o700 });
      // another process may have made the same snapshot first: theirs is as good
      await rename(staging, snapshotDir(this.o.root, chainID)).catch(() => undefined);
    }
    return { diffID: info.diffID, blob: { mediaType: info.mediaType, digest: info.digest, size: info.size }, created: new Date().toISOString() };
  }

  private async runExec(v: Vertex, op: ExecOp, inputs: Solved[], id: string): Promise<LayerRef> {
    // loaded by the first RUN that runs (with the sandbox client): a no-op rebuild never needs them
    const { etcFromLayers, extraGids, removeMountStubs, resolveUser, runStep } = await import('./runner.js');
    const lowers = await this.snapshots(inputs[0]!.layers);
    const dir = await this.workDir('run');
    const leases: CacheMountLease[] = [];
    try {
      const upper = join(dir, 'upper');
      const work = join(dir, 'work');
      await mkdir(upper, { mode: 0o755 });
      await mkdir(work);
      const readEtc = (n: 'passwd' | 'group') => etcFromLayers([...lowers, upper], n);
      const { gid, home } = await resolveUser(op.user, readEtc).catch((e: unknown) => {
        throw asStepError(e, v);
      });
      const additionalGids = await extraGids(op.user, gid, readEtc);
      const mounts: RunMount[] = [];
      const env = [...op.env];
      // like runc: a process without HOME gets its passwd entry's home
      if (!env.some((e) => e.startsWith('HOME='))) env.push(`HOME=${home}`);
      for (const [i, m] of op.mounts.entries()) {
        if (m.type === 'bind') {
          const src = inputs[m.input]!;
          if (src.local) {
            const host = await resolveInRoot(this.o.context.dir, m.source);
            mounts.push({ type: 'bind', source: host, target: m.target, readonly: m.readonly, scratch: join(dir, `bind-${i}`) });
          } else {
            const l = await this.snapshots(src.layers);
            mounts.push({ type: 'overlay-ro', lowers: l, subpath: m.source, target: m.target, scratch: join(dir, `from-${i}`) });
          }
        } else if (m.type === 'cache') {
          // sharing=shared|private|locked and from= as BuildKit's mount manager (src/solver/cachemount.ts)
          const from = m.input !== undefined ? inputs[m.input] : undefined;
          const source = m.source ?? '/';
          const req: CacheMountRequest = {
            id: m.id, sharing: m.sharing, tmpDir: () => this.workDir('cachemount'),
            ...(from ? { from: from.key, seed: (d: string) => this.seedCache(v, from, source, d) } : {}),
            ...(m.perms ? { perms: { mode: m.mode, uid: m.uid, gid: m.gid } } : {}),
          };
          // two mounts of one cache in the same RUN are the same instance (BuildKit's per-exec mount manager)
          let lease = leases.find((l) => l.name === cacheMountName(req));
          if (!lease) leases.push((lease = await acquireCacheMount(this.o.root, req)));
          let cdir = lease.dir;
          if (!from && source !== '/') {
            // a source path without from= is a directory inside the cache
            cdir = await resolveInRoot(lease.dir, source);
            await mkdir(cdir, { recursive: true, mode: 0o755 });
          }
          mounts.push({ type: 'bind', source: cdir, target: m.target, readonly: m.readonly });
        } else if (m.type === 'tmpfs') {
          mounts.push({ type: 'tmpfs', target: m.target, ...(m.size ? { size: m.size } : {}) });
        } else if (m.type === 'secret') {
          const s = this.o.secrets.get(m.id);
          if (!s) {
            if (m.required) throw new StepError(`secret ${m.id} not found`, v, [], { hint: `pass it with --secret id=${m.id},src=FILE` });
            continue;
          }
          const value = s.file !== undefined ? undefined : this.o.env[s.env ?? m.id] ?? '';
          if (m.env) env.push(`${m.env}=${value ?? (await readFile(s.file!, 'utf8'))}`);
          if (m.target) {
            let file = s.file;
            if (file === undefined) {
              file = join(dir, `secret-${i}`);
              await writeFile(file, value ?? '', { mode: 0o400 });
            }
            mounts.push({ type: 'file', source: file, target: m.target });
          }
        }
      }
      if (op.files?.length) {
        const fdir = join(dir, 'pipes');
        await mkdir(fdir);
        for (const f of op.files) await writeFile(join(fdir, f.path.split('/').pop()!), f.data, { mode: f.mode });
        mounts.push({ type: 'bind', source: fdir, target: '/dev/pipes', readonly: true });
      }
      const last: string[] = [];
      let partial = '';
      const res = await runStep(
        { lowers, upper, work, merged: join(dir, 'merged'), args: op.args, env, cwd: op.cwd, user: op.user, additionalGids, network: op.network, mounts, hostname: 'buildkitsandbox' },
        (chunk, fd) => {
          this.o.progress.emit({ type: 'log', id, data: chunk, stream: fd });
          const lines = (partial + chunk.toString('utf8')).split('\n');
          partial = lines.pop() ?? '';
          last.push(...lines);
          if (last.length > LAST_LINES) last.splice(0, last.length - LAST_LINES);
        },
      );
      if (partial) last.push(partial);
      if (res.exitCode !== 0) {
        const how = res.setupError ? `${res.setupError} (exit code: ${res.exitCode})` : res.signal ? `signal: ${res.signal}` : `exit code: ${res.exitCode}`;
        throw new StepError(`process ${JSON.stringify(op.args.join(' '))} did not complete successfully: ${how}`, v, last.slice(-LAST_LINES), {
          code: 'E_RUN_FAILED', hint: 'fix the command (its last output lines are above) and build again',
        });
      }
      // mount points the sandbox had to create must not end up in the layer
      const targets = ['/proc', '/dev', '/sys', '/etc/resolv.conf', ...op.mounts.map((m) => ('target' in m && m.target ? m.target : '')).filter(Boolean)];
      if (op.files?.length) targets.push('/dev/pipes');
      await removeMountStubs(upper, lowers, targets);
      return await this.commitLayer(upper, dir, inputs[0]!.layers);
    } finally {
      for (const l of leases) await l.release().catch(() => undefined);
      await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    }
  }

  /** A new `from=` cache instance: a copy of `source` in the stage or image `from` (through the copy worker). */
  private async seedCache(v: Vertex, from: Solved, source: string, dest: string): Promise<void> {
    const dir = await this.workDir('cacheseed');
    try {
      const spec: CopySpec = {
        lowers: [], upper: dest, work: join(dir, 'work'), merged: join(dir, 'merged'), action: 'copy',
        roots: [{ kind: 'layers', lowers: await this.snapshots(from.layers) }], copies: [{ root: 0, path: source }],
        dest: '/', unpack: false, keepOwner: true, exclude: [], parents: false, scratch: join(dir, 'scratch'),
      };
      await mkdir(spec.work);
      await mkdir(spec.scratch);
      const specFile = join(dir, 'spec.json');
      await writeFile(specFile, JSON.stringify(spec));
      await this.runWorker(v, specFile).catch((e: unknown) => {
        if (e instanceof StepError && e.code === 'E_COPY_SOURCE') {
          throw new StepError(`cache mount source ${source} not found in the from= stage or image`, v, [], { code: 'E_CACHE_MOUNT', hint: 'check the source= path of the cache mount' });
        }
        throw e;
      });
    } finally {
      await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    }
  }

  private async runFile(v: Vertex, op: FileOp, inputs: Solved[]): Promise<LayerRef> {
    const lowers = await this.snapshots(inputs[0]!.layers);
    const dir = await this.workDir('copy');
    const checkouts: { dir: string; release(): Promise<void> }[] = [];
    try {
      const roots: CopySourceRoot[] = [];
      const rootOf = new Map<number, number>();
      const copies: CopySpec['copies'] = [];
      for (const s of op.sources) {
        if (s.inline) {
          roots.push({ kind: 'inline', name: s.inline.name, data: s.inline.data });
          copies.push({ root: roots.length - 1, path: '/' + s.inline.name.replace(/^\/+/, '') });
          continue;
        }
        let r = rootOf.get(s.input);
        if (r === undefined) {
          const inp = inputs[s.input]!;
          roots.push(inp.local
            ? { kind: 'context', root: this.o.context.dir, ignore: this.o.context.patterns.map((p) => p.raw) }
            : inp.download
              ? { kind: 'layers', lowers: [await inp.download()] }
              : inp.checkout
                ? { kind: 'layers', lowers: [(checkouts[checkouts.push(await inp.checkout()) - 1]!).dir] }
                : { kind: 'layers', lowers: await this.snapshots(inp.layers) });
          r = roots.length - 1;
          rootOf.set(s.input, r);
        }
        copies.push({ root: r, path: s.path, ...(s.unpack !== undefined ? { unpack: s.unpack } : {}) });
      }
      const spec: CopySpec = {
        lowers, upper: join(dir, 'upper'), work: join(dir, 'work'), merged: join(dir, 'merged'), action: op.action, roots, copies,
        dest: op.dest, ...(op.chown ? { chown: op.chown } : {}), ...(op.chmod ? { chmod: op.chmod } : {}), unpack: op.unpack, keepOwner: op.keepOwner,
        exclude: op.exclude, parents: op.parents, ...(op.user ? { user: op.user } : {}), scratch: join(dir, 'scratch'),
      };
      await mkdir(spec.upper, { mode: 0o755 });
      await mkdir(spec.work);
      await mkdir(spec.scratch);
      const specFile = join(dir, 'spec.json');
      await writeFile(specFile, JSON.stringify(spec));
      await this.runWorker(v, specFile);
      return await this.commitLayer(spec.upper, dir, inputs[0]!.layers);
    } finally {
      for (const c of checkouts) await c.release();
      await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    }
  }

  private async runWorker(v: Vertex, specFile: string): Promise<void> {
    if (process.getuid?.() !== 0) {
      throw new HoistError('E_ROOT_REQUIRED', 'COPY/ADD/WORKDIR steps need root (overlay mounts)', { hint: 'run hoist build as root' });
    }
    const r = await this.copyWorkers.run(specFile);
    if (!r.ok) throw new StepError(r.message || 'copy failed', v, [], { code: r.code || 'E_COPY', hint: r.hint });
  }
}

export type { Digest };
