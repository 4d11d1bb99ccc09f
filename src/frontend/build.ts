/**
 * One build, end to end: context → Dockerfile → frontend → solver → exporter.
 * The CLI (`hoist build`), the tests and the benchmarks all call {@link build}.
 */
import { createWriteStream } from 'node:fs';
import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BuildContext } from '../context/context.js';
import { DockerfileError } from '../dockerfile/errors.js';
import { parseStages } from '../dockerfile/instructions.js';
import { parseDockerfile } from '../dockerfile/parser.js';
import { saveArchive } from '../image/archive-save.js';
import { imageLayers } from '../image/chainid.js';
import type { Digest } from '../image/digest.js';
import { hostPlatform, type Store } from '../image/store.js';
import { normalizeName } from '../image/reference.js';
import { exportImage } from '../exporter/image.js';
import type { Progress } from '../progress/progress.js';
import { materializeRootfs } from '../snapshot/store.js';
import { tarDirectory } from '../snapshot/diff.js';
import { prepareSnapshots } from '../snapshot/store.js';
import { chainIDs, openLayer } from '../image/chainid.js';
import { digestOf } from '../llb/ops.js';
import { Solver, StepError, type SecretSource } from '../solver/solver.js';
import { HoistError } from '../util/errors.js';
import { convert, type ResolvedBase } from './convert.js';

/** Where the result goes (`--output`). */
export type BuildOutput =
  | { type: 'image' }
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
  try {
    const context = await BuildContext.open(ctxDir, o.dockerfilePath ?? (o.contextDir ? undefined : '-'), join(root, 'cache', 'stat'));
    internal(progress, '[internal] load .dockerignore', `transferring context: ${context.patterns.length ? 'patterns loaded' : '2B'} done`);
    const metadataShown = new Set<string>();
    const resolveImage = async (ref: string, where: () => DockerfileError): Promise<ResolvedBase> => {
      let img;
      try {
        img = await o.store.findImage(ref);
      } catch (e) {
        const w = where();
        throw new DockerfileError('E_NO_IMAGE', `${ref}: image not found in the local store`, w.location,
          `load it first (hoist load -i image.tar) or build it; hoist does not pull from registries in builds yet`);
      }
      const name = img.names[0] ?? ref;
      if (!metadataShown.has(name)) internal(progress, `[internal] load metadata for ${name}`);
      metadataShown.add(name);
      return {
        name, id: img.id, config: img.config,
        layers: imageLayers(img).map((l) => ({ diffID: l.diffID, blob: { mediaType: l.descriptor.mediaType, digest: l.descriptor.digest as Digest, size: l.descriptor.size } })),
      };
    };
    const conv = await convert({ ast, stages, buildArgs: o.buildArgs, target: o.target, labels: o.labels, noCache: o.noCache, platform: hostPlatform(), resolveImage });
    const solver = new Solver({ store: o.store, root, context, progress, secrets: o.secrets, env: o.env });
    let solved;
    try {
      solved = await solver.solve(conv.vertex);
    } catch (e) {
      if (e instanceof StepError) throw stepFailure(e, ast.lines);
      throw e;
    } finally {
      await context.save().catch(() => undefined);
    }
    void digestOf;
    const exportId = 'export';
    const out = o.output;
    if (out.type === 'local' || out.type === 'tar') {
      progress.emit({ type: 'start', id: exportId, name: out.type === 'local' ? 'exporting to client directory' : 'exporting to client tarball' });
      const chains = chainIDs(solved.layers.map((l) => l.diffID));
      const dirs = await prepareSnapshots(root, solved.layers.map((l, i) => ({ diffID: l.diffID, chainID: chains[i]!, open: async () => openLayer(o.store, l.blob as never) })));
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
      return { id: '' as Digest, config: {}, names: [] };
    }
    progress.emit({ type: 'start', id: exportId, name: 'exporting to image' });
    progress.emit({ type: 'status', id: exportId, text: 'exporting layers done' });
    const img = await exportImage(o.store, conv.image, solved.layers, conv.baseHistoryLength, o.tags);
    progress.emit({ type: 'status', id: exportId, text: `writing image ${img.id} done` });
    for (const t of o.tags) progress.emit({ type: 'status', id: exportId, text: `naming to ${normalizeName(t)} done` });
    if (out.type === 'oci' || out.type === 'docker') {
      const target = typeof out.dest === 'string' ? createWriteStream(resolve(out.dest)) : out.dest;
      await saveArchive(o.store, o.tags.length ? o.tags : [img.id], out.type, target);
      progress.emit({ type: 'status', id: exportId, text: `sending tarball done` });
    }
    progress.emit({ type: 'done', id: exportId });
    return { id: img.id, config: img.config, names: o.tags };
  } finally {
    progress.close();
    if (emptyCtx) await rm(emptyCtx, { recursive: true, force: true });
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
