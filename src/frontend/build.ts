/**
 * One build, end to end: context → Dockerfile → frontend → solver → exporter.
 * The CLI (`hoist build`), the tests and the benchmarks all call {@link build}.
 */
import { createWriteStream } from 'node:fs';
import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { CacheExportSpec, CacheImportSpec, CacheImports } from '../cache/remote.js';
import { BuildContext } from '../context/context.js';
import { parseStages } from '../dockerfile/instructions.js';
import { parseDockerfile } from '../dockerfile/parser.js';
import type { Digest } from '../image/digest.js';
import { hostPlatform, type Store } from '../image/store.js';
import { normalizeName } from '../image/reference.js';
import { exportImage } from '../exporter/image.js';
import type { Progress } from '../progress/progress.js';
import { materializeRootfs, prepareSnapshots } from '../snapshot/store.js';
import { chainIDs, openLayer } from '../image/chainid.js';
import { digestOf } from '../llb/ops.js';
import type { CacheRecord } from '../cache/index.js';
import { openBuildLease } from '../cache/lease.js';
import { Solver, StepError, type SecretSource } from '../solver/solver.js';
import { HoistError } from '../util/errors.js';
import { convert } from './convert.js';
import { BaseImageResolver, pushNames, type BuildRegistryOptions } from './registry.js';

/** Where the result goes (`--output`). */
export type BuildOutput =
  | { type: 'image'; push?: boolean; names?: string[] }
  | { type: 'oci' | 'docker'; dest: string | Writable }
  | { type: 'local'; dest: string }
  | { type: 'tar'; dest: string | Writable };

export interface BuildOptions {
  store: Store;
  /** Context directory (null: no context, e.g. a Dockerfile from stdin with `-`). */
  contextDir: string | null;
  dockerfileText: string;
  /** The Dockerfile's path, for `<Dockerfile>.dockerignore` and messages (undefined: `<context>/Dockerfile`). */
  dockerfilePath?: string;
  dockerfileName?: string;
  tags: string[];
  buildArgs: Map<string, string>;
  target?: string;
  noCache: boolean;
  labels: Record<string, string>;
  secrets: Map<string, SecretSource>;
  output: BuildOutput;
  progress: Progress;
  env: NodeJS.ProcessEnv;
  /** `--cache-to`: export the build cache to these places after the build. */
  cacheTo?: CacheExportSpec[];
  /** `--cache-from`: caches a step may be taken from when it misses locally. */
  cacheFrom?: CacheImportSpec[];
  /** Registry access for FROM images and pushes: `--pull`, insecure hosts, DOCKER_CONFIG (default: the build's env). */
  registry?: BuildRegistryOptions;
}

export interface BuildResult {
  id: Digest;
  config: Record<string, unknown>;
  names: string[];
}

let internalSeq = 0;
function internal(p: Progress, name: string, status?: string): string {
  const id = `internal-${internalSeq++}`;
  p.emit({ type: 'start', id, name });
  if (status) p.emit({ type: 'status', id, text: status });
  p.emit({ type: 'done', id });
  return id;
}

/**
 * A parser or stage warning as BuildKit's lint warnings read (linter.LintFormatShort):
 * `Rule: message (line N)`; the rule name comes from a trailing `(Rule)` when there is one.
 */
export function formatWarning(w: { message: string; line: number }): string {
  const m = /^(.*) \(([A-Z][A-Za-z]+)\)$/s.exec(w.message);
  const msg = m ? `${m[2]}: ${m[1]}` : w.message;
  return w.line > 0 ? `${msg} (line ${w.line})` : msg;
}

/** Runs a build. */
export async function build(o: BuildOptions): Promise<BuildResult> {
  const root = o.store.root;
  const file = o.dockerfileName ?? 'Dockerfile';
  const progress = o.progress;
  const definition = internal(progress, `[internal] load build definition from ${file}`, `transferring dockerfile: ${Buffer.byteLength(o.dockerfileText)}B done`);
  if (o.dockerfileText.length === 0) {
    throw new HoistError('E_EMPTY_DOCKERFILE', `the Dockerfile ${file} cannot be empty`, { hint: 'start it with FROM <image>' });
  }
  const ast = parseDockerfile(o.dockerfileText, { file });
  const stages = parseStages(ast);
  // BuildKit builds despite these and shows each on the definition's vertex, one line with its line number
  for (const w of [...ast.warnings, ...stages.warnings].sort((a, b) => a.line - b.line)) {
    progress.emit({ type: 'status', id: definition, text: `WARN: ${formatWarning(w)}` });
  }
  let emptyCtx: string | undefined;
  let ctxDir = o.contextDir;
  if (!ctxDir) {
    emptyCtx = await o.store.tmpDir('empty-context');
    ctxDir = emptyCtx;
  }
  // what this build uses stays out of any concurrent `builder prune` / `system prune`
  const lease = await openBuildLease(o.store);
  try {
    const context = await BuildContext.open(ctxDir, o.dockerfilePath ?? (o.contextDir ? undefined : '-'), join(root, 'cache', 'stat'));
    internal(progress, '[internal] load .dockerignore', `transferring context: ${context.patterns.length ? 'patterns loaded' : '2B'} done`);
    // FROM images: the local store first, else (or with --pull, when the tag moved) the registry
    const bases = new BaseImageResolver(o.store, progress, { env: o.env, ...o.registry });
    const resolveImage = bases.resolve;
    const conv = await convert({ ast, stages, buildArgs: o.buildArgs, target: o.target, labels: o.labels, noCache: o.noCache, platform: hostPlatform(), resolveImage });
    const imports = await importCaches(o);
    const solver = new Solver({ store: o.store, root, context, progress: bases.wrap(progress, conv.vertex), secrets: o.secrets, env: o.env, ...(imports ? { imports } : {}) });
    let solved;
    try {
      solved = await solver.solve(conv.vertex);
    } catch (e) {
      if (e instanceof StepError) throw stepFailure(e, ast.lines);
      throw e;
    } finally {
      await context.save().catch(() => undefined);
      await imports?.close();
    }
    void digestOf;
    const exportId = 'export';
    const out = o.output;
    if (out.type === 'local' || out.type === 'tar') {
      progress.emit({ type: 'start', id: exportId, name: out.type === 'local' ? 'exporting to client directory' : 'exporting to client tarball' });
      const chains = chainIDs(solved.layers.map((l) => l.diffID));
      const dirs = await prepareSnapshots(root, solved.layers.map((l, i) => ({ diffID: l.diffID, chainID: chains[i]!, open: async () => openLayer(o.store, l.blob as never) })));
      const { tarDirectory } = await import('../snapshot/diff.js');
      const tmp = await o.store.tmpDir('export');
      try {
        const fsDir = join(tmp, 'rootfs');
        await materializeRootfs(dirs, fsDir);
        if (out.type === 'local') {
          const dest = resolve(out.dest);
          await mkdir(dest, { recursive: true });
          if ((await readdir(dest)).length > 0) {
            throw new HoistError('E_OUTPUT', `output directory ${dest} is not empty`, { hint: 'pass a new or empty directory as dest=' });
          }
          await rm(dest, { recursive: true });
          await rename(fsDir, dest).catch(async () => {
            await mkdir(dest, { recursive: true });
            await materializeRootfs(dirs, dest);
          });
        } else {
          const target = typeof out.dest === 'string' ? createWriteStream(resolve(out.dest)) : out.dest;
          await pipeline(tarDirectory(fsDir), target);
        }
      } finally {
        await rm(tmp, { recursive: true, force: true });
      }
      progress.emit({ type: 'done', id: exportId });
      await exportCaches(o, solver.records, solved.keys ?? []);
      return { id: '' as Digest, config: {}, names: [] };
    }
    progress.emit({ type: 'start', id: exportId, name: 'exporting to image' });
    progress.emit({ type: 'status', id: exportId, text: 'exporting layers done' });
    // the image exporter's name= names the image too; with push=true (--push, type=registry) those
    // names (else the -t tags) go to their registries, as buildx does
    const extra = out.type === 'image' ? (out.names ?? []).filter((n) => !o.tags.some((t) => normalizeName(t) === normalizeName(n))) : [];
    const pushTo = out.type === 'image' && out.push ? (out.names?.length ? out.names : o.tags) : [];
    const img = await exportImage(o.store, conv.image, solved.layers, conv.baseHistoryLength, [...o.tags, ...extra]);
    progress.emit({ type: 'status', id: exportId, text: `writing image ${img.id} done` });
    for (const t of [...o.tags, ...extra]) progress.emit({ type: 'status', id: exportId, text: `naming to ${normalizeName(t)} done` });
    if (out.type === 'oci' || out.type === 'docker') {
      const target = typeof out.dest === 'string' ? createWriteStream(resolve(out.dest)) : out.dest;
      const { saveArchive } = await import('../image/archive-save.js');
      await saveArchive(o.store, o.tags.length ? o.tags : [img.id], out.type, target);
      progress.emit({ type: 'status', id: exportId, text: `sending tarball done` });
    }
    if (pushTo.length) await pushNames(o.store, pushTo, bases.registries, progress, exportId);
    progress.emit({ type: 'done', id: exportId });
    await exportCaches(o, solver.records, solved.keys ?? []);
    return { id: img.id, config: img.config, names: [...o.tags, ...extra] };
  } finally {
    await lease.release();
    progress.close();
    if (emptyCtx) await rm(emptyCtx, { recursive: true, force: true });
  }
}

/** Reads the `--cache-from` caches, one progress vertex each; one that cannot be read is an error on its vertex, not a failed build (as in BuildKit). */
async function importCaches(o: BuildOptions): Promise<CacheImports | undefined> {
  if (!o.cacheFrom?.length || o.noCache) return undefined;
  const { CacheImports } = await import('../cache/remote.js');
  const { imports, results } = await CacheImports.open(o.store, o.cacheFrom, { env: o.env, ...o.registry });
  for (const r of results) {
    const id = `cache-import-${internalSeq++}`;
    o.progress.emit({ type: 'start', id, name: `importing cache manifest from ${r.name}` });
    if (r.error) o.progress.emit({ type: 'error', id, message: r.error });
    else o.progress.emit({ type: 'done', id });
  }
  return imports;
}

/**
 * `--cache-to`: mode=min exports the records of the steps that made the result's layers,
 * mode=max every record the build used or made (intermediate stages included). A failed
 * export fails the build unless the spec says ignore-error=true.
 */
async function exportCaches(o: BuildOptions, records: Map<string, CacheRecord>, keys: string[]): Promise<void> {
  if (!o.cacheTo?.length) return;
  const { describeCache, exportLocal, exportRegistry } = await import('../cache/remote.js');
  for (const spec of o.cacheTo) {
    const recs = spec.mode === 'max' ? [...records.values()] : keys.map((k) => records.get(k)).filter((r): r is CacheRecord => r !== undefined);
    const id = `cache-export-${internalSeq++}`;
    o.progress.emit({ type: 'start', id, name: spec.type === 'local' ? 'exporting cache to client directory' : 'exporting cache to registry' });
    o.progress.emit({ type: 'status', id, text: 'preparing build cache for export done' });
    const say = (text: string) => o.progress.emit({ type: 'status', id, text });
    try {
      if (spec.type === 'local') await exportLocal(o.store, recs, spec.dest, spec.tag, say);
      else await exportRegistry(o.store, recs, spec.ref, { env: o.env, ...o.registry }, say);
      o.progress.emit({ type: 'done', id });
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      o.progress.emit({ type: 'error', id, message: msg });
      if (spec.ignoreError) continue;
      throw new HoistError(e instanceof HoistError ? e.code : 'E_CACHE_EXPORT', `failed to export the build cache to ${describeCache(spec)}: ${msg}`, {
        hint: e instanceof HoistError && e.hint ? e.hint : 'fix the destination, or add ignore-error=true to --cache-to to keep the image anyway',
      });
    }
  }
}

/** A failed step, shown as BuildKit shows it: the step, its last output, the Dockerfile lines. */
function stepFailure(e: StepError, lines: string[]): HoistError {
  const v = e.vertex;
  let msg = '';
  if (e.lastLines.length) {
    msg += `------\n > ${v.name}:\n${e.lastLines.map((l) => l).join('\n')}\n------\n`;
  }
  const loc = v.location;
  if (loc) {
    msg += `${loc.file}:${loc.line}${loc.endLine !== loc.line ? `-${loc.endLine}` : ''}\n--------------------\n`;
    const from = Math.max(1, loc.line - 2);
    const to = Math.min(lines.length, loc.endLine + 2);
    for (let i = from; i <= to; i++) {
      const mark = i >= loc.line && i <= loc.endLine ? '>>>' : '   ';
      msg += ` ${String(i).padStart(3)} | ${mark} ${lines[i - 1] ?? ''}\n`;
    }
    msg += '--------------------\n';
    msg += `failed to solve: ${loc.stage ? `stage ${loc.stage}: ` : ''}${v.name}: ${e.message}`;
  } else msg += `failed to solve: ${e.message}`;
  return new HoistError(e.code, msg, { hint: e.hint });
}
