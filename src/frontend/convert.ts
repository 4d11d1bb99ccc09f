/**
 * Dockerfile stages → build graph + image config, following BuildKit's
 * dockerfile2llb: stage resolution and `--target`, reachability, ARG/ENV scoping
 * and expansion, the automatic platform ARGs, ONBUILD triggers, and the config and
 * history each stage accumulates.
 */
import type { DockerfileAST, Range } from '../dockerfile/ast.js';
import { DockerfileError } from '../dockerfile/errors.js';
import { parseDockerfile } from '../dockerfile/parser.js';
import { ShellLexer, type ShellEnv } from '../dockerfile/shell.js';
import {
  parseInstruction, parseMount, type AddCommand, type ArgCommand, type Command, type CopyCommand, type FromCommand, type Mount,
  type RunCommand, type Stage, type Stages,
} from '../dockerfile/instructions.js';
import type { Digest } from '../image/digest.js';
import type { ContainerConfig, HistoryEntry, ImageConfig } from '../image/types.js';
import { HoistError } from '../util/errors.js';
import { digestOf, type CopySource, type ExecMount, type LayerRef, type Vertex } from '../llb/ops.js';
import { literalPath, parseChecksum, urlFilename } from '../llb/http.js';
import { parseGitRef } from '../llb/git.js';
import { goDuration, goQuote, goQuoteRune, goQuoteSlice, goSlice } from './gofmt.js';
import { destRelativeToWorkdir, goClean, normalizePath, normalizeWorkdir } from './paths.js';

export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const HISTORY_COMMENT = 'buildkit.dockerfile.v0';

/** The target platform of the build (only the host's is supported). */
export interface PlatformSpec {
  os: string;
  architecture: string;
  variant?: string;
}

/** A base image resolved from the store. */
export interface ResolvedBase {
  /** Fully normalised name, e.g. `docker.io/library/busybox:latest`. */
  name: string;
  id: Digest;
  config: ImageConfig;
  layers: LayerRef[];
  /** Manifest digest in the registry, when the image came from (or was checked against) one; the FROM vertex shows it. */
  digest?: Digest;
}

export interface ConvertOptions {
  ast: DockerfileAST;
  stages: Stages;
  buildArgs: Map<string, string>;
  target?: string;
  labels: Record<string, string>;
  noCache: boolean;
  platform: PlatformSpec;
  resolveImage(ref: string, where: () => DockerfileError): Promise<ResolvedBase>;
}

/** The image a stage produces: config (no rootfs yet) and history; layers come from the solved vertex. */
export interface StageImage extends Omit<ImageConfig, 'rootfs'> {
  config: ContainerConfig;
  history: HistoryEntry[];
}

export interface ConvertResult {
  vertex: Vertex;
  image: StageImage;
  /** Base images used, for the "load metadata" progress lines. */
  baseImages: string[];
  /** The local context vertex (shared by every COPY and bind mount from the context). */
  context: Vertex;
  /** Names of the stages that will be built, in order. */
  stagesBuilt: string[];
  /** History entries of the final image that came from its base image. */
  baseHistoryLength: number;
}

interface ArgKV {
  key: string;
  value?: string;
}

/** Per-stage dispatch state (BuildKit's dispatchState). */
interface DState {
  stage: Stage;
  index: number;
  /** Name in progress lines: the stage name, `stage-N`, or '' for a one-stage file. */
  stageName: string;
  base?: DState;
  /** Resolved base image (unless scratch or a stage). */
  baseImage?: ResolvedBase;
  scratch: boolean;
  /** Stages this one reads (`--from`, mounts), with the line that does. */
  deps: Map<DState, Range>;
  /** Commands with their `--from` stages. */
  commands: { cmd: Command; sources: DState[]; onbuild: boolean }[];
  vertex: Vertex;
  image: StageImage;
  env: string[];
  workdir: string;
  user: string;
  buildArgs: ArgKV[];
  cmdIndex: number;
  cmdTotal: number;
  dispatched: boolean;
  cmdSet: boolean;
  baseHistoryLen: number;
  /** A state for an image named only in `--from` (no FROM line). */
  unregistered?: boolean;
  location: Range;
}

function clone<T>(v: T): T {
  return v === undefined ? v : (JSON.parse(JSON.stringify(v)) as T);
}

function parseKeyValue(kv: string): [string, string] {
  const i = kv.indexOf('=');
  return i < 0 ? [kv, ''] : [kv.slice(0, i), kv.slice(i + 1)];
}

/** Variables for expansion from `KEY=value` strings (a later KEY wins). */
function envMap(list: string[]): Map<string, string> {
  return new Map(list.map(parseKeyValue));
}

/** Replaces KEY in place or appends it (BuildKit's addEnv, used for both the state and the image). */
export function addEnv(env: string[], k: string, v: string): string[] {
  const i = env.findIndex((e) => parseKeyValue(e)[0] === k);
  if (i >= 0) env[i] = `${k}=${v}`;
  else env.push(`${k}=${v}`);
  return env;
}

/** BuildKit's platforms.Format. */
function formatPlatform(p: PlatformSpec): string {
  return p.variant ? `${p.os}/${p.architecture}/${p.variant}` : `${p.os}/${p.architecture}`;
}

/** Converts a parsed Dockerfile to the graph of the target stage. */
export async function convert(opts: ConvertOptions): Promise<ConvertResult> {
  const { ast, stages } = opts;
  const lex = new ShellLexer(ast.escapeToken);
  const file = ast.file;
  const at = (r: Range, msg: string, hint?: string): DockerfileError =>
    new DockerfileError('E_BUILD', msg, { file, line: r.startLine, column: 0, sourceLine: ast.lines[r.startLine - 1] }, hint);

  const targetName = opts.target ?? stages.stages[stages.stages.length - 1]!.name ?? '';
  // the automatic platform ARGs, overridable by --build-arg
  let globalArgs: string[] = [];
  const plat = opts.platform;
  for (const [k, v] of [
    ['BUILDPLATFORM', formatPlatform(plat)], ['BUILDOS', plat.os], ['BUILDOSVERSION', ''], ['BUILDARCH', plat.architecture],
    ['BUILDVARIANT', plat.variant ?? ''], ['TARGETPLATFORM', formatPlatform(plat)], ['TARGETOS', plat.os], ['TARGETOSVERSION', ''],
    ['TARGETARCH', plat.architecture], ['TARGETVARIANT', plat.variant ?? ''], ['TARGETSTAGE', targetName || 'default'],
  ] as const) {
    addEnv(globalArgs, k, opts.buildArgs.get(k) ?? v);
  }
  for (const cmd of stages.metaArgs) {
    for (const kp of cmd.args) {
      let value = opts.buildArgs.get(kp.key);
      if (value === undefined && kp.value !== undefined) value = expandAt(lex, kp.value, envMap(globalArgs), cmd.location, at);
      // a global ARG without a default is empty in the reference, even for the automatic platform ARGs
      addEnv(globalArgs, kp.key, value ?? '');
    }
  }
  const globalEnv = envMap(globalArgs);

  const context: Vertex = { op: { type: 'local', name: 'context' }, inputs: [], name: '[internal] load build context' };
  const scratchVertex = (): Vertex => ({ op: { type: 'scratch' }, inputs: [], name: 'scratch' });

  // --- build dispatch states (BuildKit's buildDispatchStates)
  const all: DState[] = [];
  const byName = new Map<string, DState>();
  stages.stages.forEach((st, i) => {
    const base = expandAt(lex, st.base, globalEnv, st.location, at);
    if (base === '') throw at(st.location, `base name (${st.base}) should not be blank`, 'set the ARG used in FROM, e.g. with --build-arg');
    if (st.platform !== undefined) {
      const p = expandAt(lex, st.platform, globalEnv, st.location, at);
      if (p !== formatPlatform(plat) && p !== `${plat.os}/${plat.architecture}`) {
        throw at(st.location, `FROM --platform=${p} is not supported: hoist builds for ${formatPlatform(plat)} only`,
          'remove --platform or use $BUILDPLATFORM/$TARGETPLATFORM');
      }
    }
    const ds: DState = {
      stage: { ...st, base }, index: i, stageName: st.name ?? `stage-${i}`, scratch: false, deps: new Map(), commands: [],
      vertex: scratchVertex(), image: emptyImage(plat), env: [], workdir: '/', user: '', buildArgs: [], cmdIndex: 0, cmdTotal: 0,
      dispatched: false, cmdSet: false, baseHistoryLen: 0, location: st.location,
    };
    const baseStage = byName.get(base.toLowerCase());
    if (baseStage) ds.base = baseStage;
    if (st.name) byName.set(st.name, ds);
    all.push(ds);
    let total = base !== 'scratch' && !ds.base ? 1 : 0;
    for (const c of st.commands) if (['add', 'copy', 'run', 'workdir'].includes(c.kind)) total++;
    ds.cmdTotal = total;
  });

  const target = opts.target === undefined ? all[all.length - 1]! : byName.get(opts.target.toLowerCase());
  if (!target) {
    // a duplicated name is one stage as far as --target goes (the last one)
    const names = [...new Set(all.filter((d) => d.stage.name).map((d) => d.stage.name!))];
    throw new HoistError('E_TARGET', `target stage ${JSON.stringify(opts.target)} could not be found`, {
      hint: names.length ? `stages in this Dockerfile: ${names.join(', ')}` : 'this Dockerfile has no named stages; name one with FROM ... AS <name>',
    });
  }

  const findSource = (from: string, r: Range): DState => {
    const named = byName.get(from.toLowerCase());
    if (named) return named;
    if (/^[0-9]+$/.test(from)) {
      const idx = Number(from);
      if (idx >= all.length) throw at(r, `invalid stage index ${idx}`, `this Dockerfile has stages 0 to ${all.length - 1}`);
      return all[idx]!;
    }
    // an image named only in --from: a hidden stage with no commands
    const st: Stage = { base: from, from: { kind: 'from', keyword: 'FROM', source: `FROM ${from}`, location: r, baseName: from }, commands: [], location: r };
    const ds: DState = {
      stage: st, index: all.length, stageName: '', scratch: false, deps: new Map(), commands: [], vertex: scratchVertex(), image: emptyImage(plat),
      env: [], workdir: '/', user: '', buildArgs: [], cmdIndex: 0, cmdTotal: 0, dispatched: false, cmdSet: false, baseHistoryLen: 0, unregistered: true, location: r,
    };
    byName.set(from.toLowerCase(), ds);
    all.push(ds);
    return ds;
  };

  const toCommand = (d: DState, cmd: Command, onbuild: boolean): { cmd: Command; sources: DState[]; onbuild: boolean } => {
    const sources: DState[] = [];
    if (cmd.kind === 'copy' && cmd.from !== undefined) {
      if (cmd.from.includes('$') && lex.processWord(cmd.from, envMap([])) !== cmd.from) {
        throw at(cmd.location, 'variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround');
      }
      sources.push(findSource(cmd.from, cmd.location));
    }
    if (cmd.kind === 'run') {
      for (const m of cmd.mounts) {
        const from = 'from' in m ? m.from : undefined;
        if (from) sources.push(findSource(from, cmd.location));
      }
    }
    for (const s of sources) if (!d.deps.has(s)) d.deps.set(s, cmd.location);
    return { cmd, sources, onbuild };
  };

  for (const d of [...all]) d.commands = d.stage.commands.map((c) => toCommand(d, c, false));
  checkCycles(all, at);
  if (all.filter((d) => !d.unregistered).length === 1) all[0]!.stageName = '';

  // --- reachability, base images and ONBUILD triggers (resolveStages)
  const reachable = new Set<DState>();
  const addReachable = (d: DState): void => {
    if (reachable.has(d)) return;
    reachable.add(d);
    if (d.base) addReachable(d.base);
    for (const s of d.deps.keys()) addReachable(s);
  };
  const baseImages: string[] = [];
  const resolved = new Set<DState>();
  const onbuildDone = new Set<DState>();
  for (;;) {
    reachable.clear();
    addReachable(target);
    for (const d of all) {
      if (!reachable.has(d) || d.base || resolved.has(d)) continue;
      resolved.add(d);
      if (d.stage.base.toLowerCase() === 'scratch') {
        d.scratch = true;
        continue;
      }
      const img = await opts.resolveImage(d.stage.base, () => at(d.location, `failed to resolve image ${d.stage.base}`));
      d.baseImage = img;
      if (!baseImages.includes(img.name)) baseImages.push(img.name);
    }
    let newDeps = false;
    for (const d of reachable) {
      if (onbuildDone.has(d)) continue;
      onbuildDone.add(d);
      let triggers: string[] = [];
      if (d.base) {
        for (const c of d.base.commands) if (c.cmd.kind === 'onbuild') triggers.push(c.cmd.expression);
      } else if (d.baseImage) {
        triggers = [...(d.baseImage.config.config?.OnBuild ?? [])];
      }
      if (triggers.length === 0) continue;
      const cmds = triggers.map((t) => {
        const parsed = parseDockerfile(t, { file: `${file} (ONBUILD trigger from ${d.stage.base})` });
        if (parsed.instructions.length !== 1) throw at(d.location, 'onbuild trigger should be a single expression');
        const ins = { ...parsed.instructions[0]!, range: d.location };
        const c = parseInstruction(parsed, ins);
        if (c.kind === 'from') throw at(d.location, 'FROM is not allowed as an ONBUILD trigger');
        const tc = toCommand(d, c as Command, true);
        if (tc.sources.length) newDeps = true;
        return tc;
      });
      d.commands = [...cmds, ...d.commands];
      d.cmdTotal += cmds.length;
    }
    if (!newDeps) break;
    checkCycles(all, at);
  }

  // FROM vertices (named before dispatch so they take index 1)
  for (const d of all) {
    if (!reachable.has(d) || d.base) continue;
    if (d.scratch) {
      d.image = emptyImage(plat);
      continue;
    }
    const img = d.baseImage!;
    d.image = imageFromBase(img.config, plat);
    d.baseHistoryLen = d.image.history.length;
    const from: Vertex = {
      op: { type: 'image', ref: img.name, imageID: img.id, layers: img.layers },
      inputs: [],
      name: prefix(d, `FROM ${img.name}${img.digest && !img.name.includes('@') ? `@${img.digest}` : ''}`),
      location: { file, line: d.location.startLine, endLine: d.location.endLine, stage: d.stageName },
    };
    if (img.layers.length === 0) d.scratch = true;
    else d.vertex = from;
  }

  // --- dispatch in file order
  const stagesBuilt: string[] = [];
  for (const d of all) {
    if (!reachable.has(d)) continue;
    if (d.base) {
      if (!d.base.dispatched) throw at(d.location, `stage ${d.base.stageName} must be defined before ${d.stageName}`);
      d.vertex = d.base.vertex;
      d.image = clone(d.base.image);
      d.image.config.OnBuild = undefined;
      d.env = [...d.base.env];
      d.workdir = d.base.workdir;
      d.user = d.base.user;
      d.buildArgs = [...d.buildArgs, ...d.base.buildArgs];
      d.baseHistoryLen = d.base.baseHistoryLen;
    } else {
      if (!d.image.config.Env?.some((e) => parseKeyValue(e)[0] === 'PATH')) {
        d.image.config.Env = [...(d.image.config.Env ?? []), `PATH=${DEFAULT_PATH}`];
      }
      d.env = [...(d.image.config.Env ?? [])];
      d.workdir = d.image.config.WorkingDir ? normalizeWorkdir('/', d.image.config.WorkingDir) : '/';
      d.user = d.image.config.User ?? '';
      d.image.config.OnBuild = undefined;
    }
    if (d.image.config.Env === undefined || !d.image.config.Env.some((e) => parseKeyValue(e)[0] === 'PATH')) {
      d.image.config.Env = [...(d.image.config.Env ?? []), `PATH=${DEFAULT_PATH}`];
      if (!d.env.some((e) => parseKeyValue(e)[0] === 'PATH')) d.env.push(`PATH=${DEFAULT_PATH}`);
    }
    d.dispatched = true;
    if (!d.unregistered) stagesBuilt.push(d.stageName || 'default');
    for (const c of d.commands) {
      try {
        dispatch(d, c.cmd, c.sources, c.onbuild);
      } catch (e) {
        if (e instanceof DockerfileError) throw e;
        if (e instanceof HoistError) throw at(c.cmd.location, e.message, e.hint);
        throw e;
      }
    }
  }

  const finalImage = target.image;
  if (Object.keys(opts.labels).length) finalImage.config.Labels = { ...(finalImage.config.Labels ?? {}), ...opts.labels };
  return { vertex: target.vertex, image: finalImage, baseImages, context, stagesBuilt, baseHistoryLength: target.baseHistoryLen };

  // ---------------------------------------------------------------------------

  function prefix(d: DState, str: string): string {
    if (d.cmdTotal === 0) return str;
    let out = '[';
    if (d.stageName) out += d.stageName + ' ';
    d.cmdIndex++;
    const width = 1 + Math.floor(Math.log10(d.cmdTotal));
    out += `${String(d.cmdIndex).padStart(width)}/${d.cmdTotal}] `;
    return out + str;
  }

  function envOf(d: DState): Map<string, string> {
    return envMap(d.env);
  }

  function ex(d: DState, word: string, r: Range): string {
    return expandAt(lex, word, envOf(d), r, at);
  }

  function history(d: DState, createdBy: string, withLayer: boolean, buildkitSuffix: boolean): void {
    d.image.history.push({ created_by: buildkitSuffix ? createdBy + ' # buildkit' : createdBy, comment: HISTORY_COMMENT, ...(withLayer ? {} : { empty_layer: true }) });
  }

  function displayName(d: DState, source: string): string {
    const raw = new ShellLexer(ast.escapeToken, { rawQuotes: true, skipUnsetEnv: true });
    let s: string;
    try {
      s = raw.processWord(source, envOf(d));
    } catch {
      s = source;
    }
    const sp = s.indexOf(' ');
    return sp < 0 ? s.toUpperCase() : s.slice(0, sp).toUpperCase() + s.slice(sp);
  }

  function loc(d: DState, r: Range): Vertex['location'] {
    return { file, line: r.startLine, endLine: r.endLine, stage: d.stage.name ?? d.stageName };
  }

  function withShell(d: DState, args: string[]): string[] {
    const shell = d.image.config.Shell && d.image.config.Shell.length ? [...d.image.config.Shell] : ['/bin/sh', '-c'];
    return [...shell, args.join(' ')];
  }

  function dispatch(d: DState, cmd: Command, sources: DState[], onbuild: boolean): void {
    const r = cmd.location;
    const cfg = d.image.config;
    const pfx = (s: string): string => prefix(d, (onbuild ? 'ONBUILD ' : '') + s);
    switch (cmd.kind) {
      case 'maintainer':
        d.image.author = cmd.maintainer;
        history(d, `MAINTAINER ${cmd.maintainer}`, false, false);
        return;
      case 'env': {
        let msg = 'ENV';
        for (const kv of cmd.pairs) {
          const key = ex(d, kv.key, r);
          const value = ex(d, kv.value, r);
          msg += ` ${key}=${value}`;
          addEnv(d.env, key, value);
          cfg.Env = addEnv(cfg.Env ?? [], key, value);
        }
        history(d, msg, false, false);
        return;
      }
      case 'label': {
        let msg = 'LABEL';
        cfg.Labels = cfg.Labels ?? {};
        for (const kv of cmd.labels) {
          const key = ex(d, kv.key, r);
          const value = ex(d, kv.value, r);
          cfg.Labels[key] = value;
          msg += ` ${key}=${value}`;
        }
        history(d, msg, false, false);
        return;
      }
      case 'arg': dispatchArg(d, cmd); return;
      case 'workdir': {
        const wd = normalizeWorkdir(d.workdir, ex(d, cmd.path, r));
        cfg.WorkingDir = wd;
        d.workdir = wd;
        let withLayer = false;
        if (wd !== '/') {
          d.vertex = {
            op: { type: 'file', action: 'mkdir', sources: [], dest: wd, unpack: false, keepOwner: true, exclude: [], parents: true, ...(d.user ? { user: d.user } : {}) },
            inputs: [d.vertex], name: pfx(displayName(d, cmd.source)), location: loc(d, r), ignoreCache: opts.noCache,
          };
          withLayer = true;
        }
        history(d, `WORKDIR ${wd}`, withLayer, false);
        return;
      }
      case 'user': {
        const u = ex(d, cmd.user, r);
        d.user = u;
        cfg.User = u;
        history(d, `USER ${u}`, false, false);
        return;
      }
      case 'volume': {
        cfg.Volumes = cfg.Volumes ?? {};
        const vols = cmd.volumes.map((v) => ex(d, v, r));
        for (const v of vols) {
          if (v === '') throw at(r, 'VOLUME specified can not be an empty string');
          cfg.Volumes[v] = {};
        }
        history(d, `VOLUME ${goSlice(vols)}`, false, false);
        return;
      }
      case 'stopsignal': {
        const sig = ex(d, cmd.signal, r);
        if (!validSignal(sig)) throw at(r, `Invalid signal: ${sig}`, 'use a signal name like SIGTERM or a number like 15');
        cfg.StopSignal = sig;
        history(d, `STOPSIGNAL ${sig}`, false, false);
        return;
      }
      case 'shell':
        cfg.Shell = [...cmd.shell];
        history(d, `SHELL ${goSlice(cmd.shell)}`, false, false);
        return;
      case 'onbuild':
        cfg.OnBuild = [...(cfg.OnBuild ?? []), cmd.expression];
        return;
      case 'cmd': {
        const args = cmd.form === 'shell' ? withShell(d, cmd.cmdLine) : [...cmd.cmdLine];
        cfg.Cmd = args;
        cfg.ArgsEscaped = true;
        d.cmdSet = true;
        history(d, `CMD ${goQuoteSlice(args)}`, false, false);
        return;
      }
      case 'entrypoint': {
        const args = cmd.form === 'shell' ? withShell(d, cmd.cmdLine) : [...cmd.cmdLine];
        cfg.Entrypoint = args;
        if (!d.cmdSet) cfg.Cmd = null;
        history(d, `ENTRYPOINT ${goQuoteSlice(args)}`, false, false);
        return;
      }
      case 'healthcheck': {
        const h = cmd.health;
        const hc = { Test: h.test, Interval: h.interval ?? 0, Timeout: h.timeout ?? 0, StartPeriod: h.startPeriod ?? 0, StartInterval: h.startInterval ?? 0, Retries: h.retries ?? 0 };
        cfg.Healthcheck = compactHealth(hc);
        // the reference formats the config pointer with %q: durations quoted, Retries as a quoted rune
        const q = (ns: number): string => goQuote(goDuration(ns));
        history(d, `HEALTHCHECK &{${goQuoteSlice(hc.Test)} ${q(hc.Interval)} ${q(hc.Timeout)} ${q(hc.StartPeriod)} ${q(hc.StartInterval)} ${goQuoteRune(hc.Retries)}}`, false, false);
        return;
      }
      case 'expose': {
        const env = envOf(d);
        const ports: string[] = [];
        for (const p of cmd.ports) ports.push(...lex.processWords(p, env));
        const specs = ports.flatMap((p) => parsePort(p, (m) => at(r, m)));
        cfg.ExposedPorts = cfg.ExposedPorts ?? {};
        for (const p of specs) cfg.ExposedPorts[p] = {};
        history(d, `EXPOSE map[${[...new Set(specs)].sort().map((p) => `${p}:{}`).join(' ')}]`, false, false);
        return;
      }
      case 'run': dispatchRun(d, cmd, sources, pfx); return;
      case 'copy':
      case 'add': dispatchCopy(d, cmd, sources, pfx); return;
    }
  }

  function dispatchArg(d: DState, c: ArgCommand): void {
    const strs: string[] = [];
    for (const a of c.args) {
      const arg: ArgKV = { key: a.key, value: a.value };
      const fromCli = opts.buildArgs.get(a.key);
      if (arg.value === undefined && fromCli === undefined) {
        const g = globalEnv.get(a.key);
        if (g !== undefined) arg.value = g;
      }
      const written = a.value !== undefined ? ex(d, a.value, c.location) : undefined;
      if (fromCli !== undefined) arg.value = fromCli;
      else if (written !== undefined) arg.value = written;
      if (arg.value !== undefined && a.key !== 'BUILDKIT_SBOM_SCAN_CONTEXT' && a.key !== 'BUILDKIT_SBOM_SCAN_STAGE') addEnv(d.env, a.key, arg.value);
      d.buildArgs.push(arg);
      // the reference records the default written in the Dockerfile, not the --build-arg value
      strs.push(written !== undefined ? `${a.key}=${written}` : a.key);
    }
    history(d, `ARG ${strs.join(' ')}`, false, false);
  }

  function dispatchRun(d: DState, c: RunCommand, sources: DState[], pfx: (s: string) => string): void {
    let args = [...c.cmdLine];
    let customName = c.source;
    const files: { path: string; data: string; mode: number }[] = [];
    const mounts: ExecMount[] = [];
    const inputs: Vertex[] = [d.vertex];
    if (c.heredocs.length > 0) {
      const first = c.heredocs[0]!;
      const marker = /^<<-?(["']?)([^"'\s]+)\1$/.exec(args[0]?.trim() ?? '');
      if (c.form === 'shell' && marker && marker[2] === first.name) {
        let data = first.data;
        if (first.chomp) data = data.replace(/^\t+/gm, '');
        if (data.startsWith('#!')) {
          files.push({ path: `/dev/pipes/${first.name}`, data, mode: 0o755 });
          args = [`/dev/pipes/${first.name}`];
        } else args = [data];
        const trimmed = first.data.trim().replace(/\r\n/g, '\n').split('\n');
        customName += ` (${trimmed[0]}${trimmed.length > 1 ? '...' : ''})`;
      } else {
        let b = args[0] ?? '';
        for (const h of c.heredocs) b += '\n' + h.data + h.name;
        args = [b];
      }
    }
    const prependShell = c.form === 'shell';
    if (prependShell && files.length === 0) args = withShell(d, args);
    for (const m0 of c.mounts) {
      const m: Mount = m0.unresolved ? parseMount(m0.spec, (w) => ex(d, w, c.location)) : m0;
      const src = 'from' in m && m.from ? sources.find((s) => s === byName.get(m.from!.toLowerCase())) : undefined;
      const inputIndex = (v: Vertex): number => {
        let i = inputs.indexOf(v);
        if (i < 0) i = inputs.push(v) - 1;
        return i;
      };
      const target = m.target ? normalizePath(d.workdir, m.target, false) : '';
      switch (m.type) {
        case 'bind':
          if (!target) throw at(c.location, 'mount target must be specified');
          mounts.push({ type: 'bind', target, input: inputIndex(src ? src.vertex : context), source: goClean('/' + (m.source ?? '')), readonly: m.readonly });
          break;
        case 'cache': {
          if (!target) throw at(c.location, 'mount target must be specified');
          // BuildKit: the id defaults to the target as written (cleaned); uid/gid/mode make a cache of their own
          // (a fresh directory with that owner and mode) unless a source path is given
          const source = goClean('/' + (m.source ?? ''));
          const cm: ExecMount = {
            type: 'cache', target, id: m.id || goClean(m.target!), sharing: m.sharing, mode: m.mode ?? 0o755, uid: m.uid ?? 0, gid: m.gid ?? 0, readonly: m.readonly,
            ...(source === '/' && (m.mode !== undefined || m.uid !== undefined || m.gid !== undefined) ? { perms: true } : {}),
          };
          if (src) cm.input = inputIndex(src.vertex);
          if (src || source !== '/') cm.source = source;
          mounts.push(cm);
          break;
        }
        case 'tmpfs':
          if (!target) throw at(c.location, 'mount target must be specified');
          mounts.push({ type: 'tmpfs', target, ...(m.size !== undefined ? { size: m.size } : {}) });
          break;
        case 'secret': {
          const id = m.id ?? '';
          const tgt = m.env && !m.target ? undefined : m.target ? normalizePath(d.workdir, m.target, false) : `/run/secrets/${id}`;
          mounts.push({ type: 'secret', id, ...(tgt ? { target: tgt } : {}), ...(m.env ? { env: m.env } : {}), required: m.required, mode: m.mode ?? 0o400, uid: m.uid ?? 0, gid: m.gid ?? 0 });
          break;
        }
        case 'ssh':
          throw at(c.location, 'RUN --mount=type=ssh is not supported by hoist yet', 'copy what you need with a secret mount instead');
      }
    }
    const network = c.network === 'default' ? 'default' : c.network;
    d.vertex = {
      op: { type: 'exec', args, env: [...d.env], cwd: d.workdir, user: d.user, network, mounts, ...(files.length ? { files } : {}) },
      inputs, name: pfx(displayName(d, customName)), location: loc(d, c.location), ignoreCache: opts.noCache,
    };
    history(d, 'RUN ' + runCommandString(args, d.buildArgs, envOf(d)), true, true);
  }

  function dispatchCopy(d: DState, c: CopyCommand | AddCommand, sources: DState[], pfx: (s: string) => string): void {
    const r = c.location;
    const destRaw = ex(d, c.dest, r);
    const dest = destRelativeToWorkdir(d.workdir, destRaw);
    const chown = c.chown !== undefined ? ex(d, c.chown, r) : undefined;
    let chmod: string | undefined;
    if (c.chmod) {
      chmod = c.chmod.kind === 'unresolved' ? ex(d, c.chmod.text, r) : chmodText(c);
    }
    if (c.kind === 'add' && c.checksum && !(c.sources.length === 1 && (/^https?:\/\//.test(ex(d, c.sources[0]!, r)) || parseGitRef(ex(d, c.sources[0]!, r)).git))) {
      throw at(r, c.sources.length !== 1 ? "checksum can't be specified for multiple sources" : 'checksum requires HTTP(S) or Git sources');
    }
    let msg = c.kind === 'add' ? 'ADD' : 'COPY';
    if (c.kind === 'copy' && c.parents) msg += ' --parents';
    if (chown) msg += ` --chown=${chown}`;
    if (chmod) msg += ` --chmod=${chmod}`;
    for (const e of c.exclude) msg += ` --exclude=${e}`;
    const fromStage = sources[0];
    const inputs: Vertex[] = [];
    const srcVertex = fromStage ? fromStage.vertex : context;
    const copySources: CopySource[] = [];
    // the step's name, taken before the sources so that an http source vertex can share it (as in BuildKit)
    const name = pfx(displayName(d, c.source));
    // as BuildKit's dispatchCopy: options in a git URL's query set these for this source and the ones after it
    let keepGitDir = c.kind === 'add' ? c.keepGitDir : undefined;
    let gitChecksum = c.kind === 'add' && c.checksum !== undefined ? ex(d, c.checksum, r) : '';
    for (const s0 of c.sources) {
      const s = ex(d, s0, r);
      msg += ` ${s}`;
      const git = parseGitRef(s);
      if (git.git) {
        if ('error' in git) throw at(r, git.error, 'fix the query of the git URL (ref, tag, branch, subdir, checksum, keep-git-dir, submodules)');
        if (c.kind === 'copy') throw at(r, "source can't be a git ref for COPY", 'use ADD for remote sources');
        const g = git.ref;
        if (keepGitDir !== undefined && g.keepGitDir !== undefined && keepGitDir !== g.keepGitDir) throw at(r, 'inconsistent keep-git-dir configuration', 'give keep-git-dir once: as --keep-git-dir or in the URL');
        if (g.keepGitDir !== undefined) keepGitDir = g.keepGitDir;
        if (gitChecksum !== '' && g.checksum !== '' && gitChecksum !== g.checksum) throw at(r, `checksum mismatch ${goQuote(gitChecksum)} != ${goQuote(g.checksum)}`, 'give the commit once: as --checksum or in the URL');
        if (g.checksum !== '') gitChecksum = g.checksum;
        const gitVertex: Vertex = {
          op: {
            type: 'git', remote: g.remote, ref: g.ref, subdir: g.subdir, keepGitDir: keepGitDir === true, ...(gitChecksum !== '' ? { checksum: gitChecksum } : {}),
            skipSubmodules: g.submodules === false, fetchByCommit: g.fetchByCommit,
          },
          inputs: [], name, location: loc(d, r), ignoreCache: opts.noCache,
        };
        // the whole tree goes into the destination directory; a repository is never unpacked
        copySources.push({ input: inputs.push(gitVertex), path: '/', unpack: false });
        continue;
      }
      if (/^https?:\/\//.test(s)) {
        if (c.kind === 'copy') throw at(r, "source can't be a URL for COPY", 'use ADD for remote sources');
        // BuildKit names the file after the URL path, never Content-Disposition; remote archives are unpacked only with --unpack
        const filename = urlFilename(s);
        const checksum = c.checksum !== undefined ? parseChecksum(ex(d, c.checksum, r)) : undefined;
        const http: Vertex = {
          op: { type: 'http', url: s, filename, ...(checksum ? { checksum } : {}) }, inputs: [], name, location: loc(d, r), ignoreCache: opts.noCache,
        };
        copySources.push({ input: inputs.push(http), path: literalPath(filename), unpack: c.kind === 'add' ? c.unpack ?? false : false });
        continue;
      }
      let idx = inputs.indexOf(srcVertex);
      if (idx < 0) idx = inputs.push(srcVertex) - 1;
      copySources.push({ input: idx + 1, path: c.kind === 'copy' && c.parents ? s : normalizePath('/', s, false) });
    }
    const env = envOf(d);
    for (const h of c.heredocSources) {
      msg += ` <<${h.path}`;
      const data = h.expand ? new ShellLexer('\\', { skipProcessQuotes: true }).processWord(h.data, env) : h.data;
      copySources.push({ input: -1, path: h.path, inline: { name: h.path, data } });
    }
    msg += ` ${destRaw}`;
    const fileOp = {
      type: 'file' as const, action: 'copy' as const, sources: copySources, dest,
      ...(chown ? { chown } : {}), ...(chmod ? { chmod } : {}),
      unpack: c.kind === 'add' ? c.unpack ?? true : false,
      keepOwner: !!fromStage, exclude: [...c.exclude], parents: c.kind === 'copy' && c.parents,
    };
    if (c.link && !chmod) {
      const copied: Vertex = { op: fileOp, inputs: [scratchVertex(), ...inputs], name, location: loc(d, r), ignoreCache: opts.noCache };
      d.vertex = { op: { type: 'merge' }, inputs: [d.vertex, copied], name: `LINK ${name}`, location: loc(d, r), ignoreCache: opts.noCache };
    } else {
      d.vertex = { op: fileOp, inputs: [d.vertex, ...inputs], name, location: loc(d, r), ignoreCache: opts.noCache };
    }
    history(d, msg, true, true);
  }
}

function chmodText(c: CopyCommand | AddCommand): string | undefined {
  // the typed command keeps the parsed form; history wants the text as written
  const m = /--chmod=(\S+)/.exec(c.source);
  return m ? m[1] : undefined;
}

function expandAt(lex: ShellLexer, word: string, env: ShellEnv, r: Range, at: (r: Range, m: string, h?: string) => DockerfileError): string {
  try {
    return lex.processWord(word, env);
  } catch (e) {
    if (e instanceof HoistError) throw at(r, e.message, e.hint);
    throw e;
  }
}

function emptyImage(p: PlatformSpec): StageImage {
  return {
    architecture: p.architecture, os: p.os, ...(p.variant ? { variant: p.variant } : {}),
    config: { Env: [`PATH=${DEFAULT_PATH}`], WorkingDir: '/' }, history: [],
  };
}

function imageFromBase(base: ImageConfig, p: PlatformSpec): StageImage {
  const img = clone(base) as ImageConfig;
  const { rootfs: _r, created: _c, ...rest } = img;
  void _r;
  void _c;
  return { ...rest, architecture: img.architecture || p.architecture, os: img.os || p.os, config: img.config ?? {}, history: img.history ?? [] } as StageImage;
}

function compactHealth(h: { Test: string[]; Interval: number; Timeout: number; StartPeriod: number; StartInterval: number; Retries: number }): Record<string, unknown> {
  const out: Record<string, unknown> = { Test: h.Test };
  if (h.Interval) out.Interval = h.Interval;
  if (h.Timeout) out.Timeout = h.Timeout;
  if (h.StartPeriod) out.StartPeriod = h.StartPeriod;
  if (h.StartInterval) out.StartInterval = h.StartInterval;
  if (h.Retries) out.Retries = h.Retries;
  return out;
}

/** `|N K=V ... args` as BuildKit writes RUN history when build args are in scope. */
function runCommandString(args: string[], buildArgs: ArgKV[], env: Map<string, string>): string {
  const tmp: string[] = [];
  const idx = new Map<string, number>();
  for (const a of buildArgs) {
    const v = env.get(a.key) ?? a.value ?? '';
    const i = idx.get(a.key);
    if (i !== undefined) tmp[i] = `${a.key}=${v}`;
    else {
      idx.set(a.key, tmp.length);
      tmp.push(`${a.key}=${v}`);
    }
  }
  const pre = tmp.length ? [`|${tmp.length}`, ...tmp] : [];
  return [...pre, ...args].join(' ');
}

function checkCycles(all: DState[], at: (r: Range, m: string, h?: string) => DockerfileError): void {
  const state = new Map<DState, 1 | 2>();
  const visit = (d: DState, path: DState[]): void => {
    const s = state.get(d);
    if (s === 2) return;
    if (s === 1) {
      const cycle = path.slice(path.indexOf(d));
      const names = cycle.concat(d).map((x) => x.stage.name ?? x.stageName).join(' -> ');
      // point at the line where the first stage of the cycle reads the next one
      const where = d.deps.get(cycle[1] ?? d) ?? d.location;
      throw at(where, `circular dependency detected on stage: ${d.stage.name ?? d.stageName} (${names})`, 'a stage cannot read from a stage that reads from it; break the cycle');
    }
    state.set(d, 1);
    for (const dep of d.deps.keys()) visit(dep, [...path, d]);
    if (d.base) visit(d.base, [...path, d]);
    state.set(d, 2);
  };
  for (const d of all) visit(d, []);
}

const SIGNALS = ['ABRT', 'ALRM', 'BUS', 'CHLD', 'CLD', 'CONT', 'FPE', 'HUP', 'ILL', 'INT', 'IO', 'IOT', 'KILL', 'PIPE', 'POLL', 'PROF', 'PWR', 'QUIT',
  'SEGV', 'STKFLT', 'STOP', 'SYS', 'TERM', 'TRAP', 'TSTP', 'TTIN', 'TTOU', 'URG', 'USR1', 'USR2', 'VTALRM', 'WINCH', 'XCPU', 'XFSZ'];

function validSignal(s: string): boolean {
  if (/^[0-9]+$/.test(s)) return Number(s) > 0 && Number(s) < 65;
  const n = s.toUpperCase().replace(/^SIG/, '');
  if (SIGNALS.includes(n)) return true;
  return /^RTM(IN|AX)([+-][0-9]+)?$/.test(n);
}

/** `[ip:]public:private/proto` → `private/proto` entries (ranges expanded), as nat.ParsePortSpecs. */
function parsePort(spec: string, fail: (m: string) => Error): string[] {
  let rest = spec;
  let proto = 'tcp';
  const slash = rest.lastIndexOf('/');
  if (slash >= 0) {
    proto = rest.slice(slash + 1).toLowerCase();
    rest = rest.slice(0, slash);
  }
  if (!['tcp', 'udp', 'sctp'].includes(proto)) throw fail(`invalid proto: ${proto}`);
  const parts = rest.split(':');
  const container = parts[parts.length - 1]!;
  const m = /^([0-9]+)(?:-([0-9]+))?$/.exec(container);
  if (!m) throw fail(`invalid containerPort: ${container}`);
  const lo = Number(m[1]);
  const hi = m[2] !== undefined ? Number(m[2]) : lo;
  if (lo > 65535 || hi > 65535 || hi < lo) throw fail(`invalid containerPort: ${container}`);
  const out: string[] = [];
  for (let p = lo; p <= hi; p++) out.push(`${p}/${proto}`);
  return out;
}

export { digestOf };
