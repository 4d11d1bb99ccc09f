/**
 * Typed instructions: the parser's AST → validated commands grouped into stages.
 *
 * Behaviour follows BuildKit's `frontend/dockerfile/instructions` package: the same
 * argument counts, flags (from grammar/instructions.ts), defaults and messages, so a
 * Dockerfile BuildKit refuses is refused here with the same words, pointing at the
 * line and column of the offending word. Values stay as written (quotes and `$VAR`
 * references included) where BuildKit expands them later; values BuildKit checks only
 * after expansion (`--chmod`, `--mount` options) are checked now unless they hold a
 * `$` reference, in which case they are marked unresolved for the frontend.
 *
 * Only DockerfileError ever leaves this module.
 */
import { INSTRUCTIONS, INSTRUCTION_NAMES, NETWORK_MODES, RESERVED_STAGE_NAMES, SECURITY_MODES, STAGE_NAME_PATTERN } from '../../grammar/instructions.js';
import type { DockerfileAST, Heredoc, Instruction, Range } from './ast.js';
import { ChmodSyntaxError, parseChmod, type ChmodSpec } from './chmod.js';
import { DockerfileError, visible } from './errors.js';
import { goTrimSpace } from './gotext.js';
import { DurationError, parseGoDuration } from './instructions/duration.js';
import { parseFlags, type ParsedFlags } from './instructions/flags.js';
import { parseMount, type Mount } from './instructions/mounts.js';
import { clip, InstructionProblem, suggest } from './instructions/problem.js';
import { parseDockerfile, parseHeredocMarker, type ParseOptions } from './parser.js';

export type { Mount, BindMount, CacheMount, TmpfsMount, SecretMount, SshMount, MountType, CacheSharing, WordExpander } from './instructions/mounts.js';
export { parseMount } from './instructions/mounts.js';
export type { ChmodSpec, ChmodOp } from './chmod.js';
export { parseChmod, applyChmod } from './chmod.js';

/** Fields every command has. */
export interface CommandBase {
  /** The keyword as written (`run`, `RUN`, `Run`). */
  keyword: string;
  /** The instruction's source, continuation-joined and trimmed, as BuildKit's `String()`. */
  source: string;
  location: Range;
}

/** `FROM [--platform=p] image [AS name]`. */
export interface FromCommand extends CommandBase {
  kind: 'from';
  baseName: string;
  platform?: string;
  /** Lower-cased, as BuildKit stores it. */
  stageName?: string;
}

/** A heredoc used as a script or file by RUN (BuildKit's ShellInlineFile). */
export interface InlineFile {
  name: string;
  /** Body as written; strip leading tabs of each line when `chomp` is set. */
  data: string;
  chomp: boolean;
  /** False when the delimiter was quoted: no variable expansion in the body. */
  expand: boolean;
}

/** Shell form (one string run by the SHELL) or exec form (a JSON array). */
export interface CommandLine {
  form: 'shell' | 'exec';
  /** Shell form: exactly one string; exec form: the array (possibly empty). */
  cmdLine: string[];
}

export type NetworkMode = (typeof NETWORK_MODES)[number];
export type SecurityMode = (typeof SECURITY_MODES)[number];

/** `RUN [--mount=...] [--network=...] [--security=...] command`. */
export interface RunCommand extends CommandBase, CommandLine {
  kind: 'run';
  heredocs: InlineFile[];
  mounts: Mount[];
  network: NetworkMode;
  security: SecurityMode;
  /** Flags given, in order. */
  flagsUsed: string[];
}

/** `CMD`. An empty `cmdLine` clears the inherited command. */
export interface CmdCommand extends CommandBase, CommandLine {
  kind: 'cmd';
}

/** `ENTRYPOINT`. An empty `cmdLine` (`ENTRYPOINT []` or a bare `ENTRYPOINT`) resets it to none. */
export interface EntrypointCommand extends CommandBase, CommandLine {
  kind: 'entrypoint';
}

/** A file whose content is a heredoc (`COPY <<EOF /dest`). */
export interface HeredocSource {
  /** The heredoc name, used as the file name. */
  path: string;
  /** Content with `<<-` tabs already stripped. */
  data: string;
  expand: boolean;
}

/** A `--chmod` value holding a `$` reference: parse it with parseChmod after expansion. */
export interface UnresolvedChmod {
  kind: 'unresolved';
  text: string;
}

interface CopyBase extends CommandBase {
  /** Source paths as written (not expanded). */
  sources: string[];
  /** Sources written as heredocs. */
  heredocSources: HeredocSource[];
  dest: string;
  chown?: string;
  chmod?: ChmodSpec | UnresolvedChmod;
  link: boolean;
  exclude: string[];
}

/** `COPY [--from] [--chown] [--chmod] [--link] [--parents] [--exclude]... src... dest`. */
export interface CopyCommand extends CopyBase {
  kind: 'copy';
  from?: string;
  parents: boolean;
}

/** `ADD [--chown] [--chmod] [--link] [--checksum] [--keep-git-dir] [--unpack] [--exclude]... src... dest`. */
export interface AddCommand extends CopyBase {
  kind: 'add';
  checksum?: string;
  /** Absent when the flag was not given (BuildKit's nil). */
  keepGitDir?: boolean;
  /** Absent when the flag was not given: local archives are unpacked, remote ones not. */
  unpack?: boolean;
}

/** One `key=value` of ENV or LABEL; `legacy` for the `ENV key value` form. */
export interface KeyValue {
  key: string;
  value: string;
  legacy: boolean;
}

export interface EnvCommand extends CommandBase {
  kind: 'env';
  pairs: KeyValue[];
}

export interface LabelCommand extends CommandBase {
  kind: 'label';
  labels: KeyValue[];
}

/** `ARG a b=1`: values as written (quotes kept, expanded later). */
export interface ArgCommand extends CommandBase {
  kind: 'arg';
  args: { key: string; value?: string }[];
}

export interface ExposeCommand extends CommandBase {
  kind: 'expose';
  /** Sorted, as BuildKit sorts them; validated after expansion by the frontend. */
  ports: string[];
}

export interface VolumeCommand extends CommandBase {
  kind: 'volume';
  volumes: string[];
}

export interface UserCommand extends CommandBase {
  kind: 'user';
  user: string;
}

export interface WorkdirCommand extends CommandBase {
  kind: 'workdir';
  path: string;
}

export interface ShellCommand extends CommandBase {
  kind: 'shell';
  shell: string[];
}

export interface StopSignalCommand extends CommandBase {
  kind: 'stopsignal';
  signal: string;
}

/** The image config's Healthcheck: durations in nanoseconds, 0 = inherit the default. */
export interface HealthConfig {
  /** `["NONE"]`, `["CMD", exec...]` or `["CMD-SHELL", command]`. */
  test: string[];
  interval?: number;
  timeout?: number;
  startPeriod?: number;
  startInterval?: number;
  retries?: number;
}

export interface HealthcheckCommand extends CommandBase {
  kind: 'healthcheck';
  health: HealthConfig;
}

export interface OnbuildCommand extends CommandBase {
  kind: 'onbuild';
  /** The trigger's source (with heredoc bodies), stored in the image config. */
  expression: string;
  /** The trigger, validated now. */
  trigger: Command;
}

export interface MaintainerCommand extends CommandBase {
  kind: 'maintainer';
  maintainer: string;
}

/** Every command that can appear inside a stage. */
export type Command =
  | RunCommand | CmdCommand | EntrypointCommand | CopyCommand | AddCommand | EnvCommand | LabelCommand
  | ArgCommand | ExposeCommand | VolumeCommand | UserCommand | WorkdirCommand | ShellCommand
  | StopSignalCommand | HealthcheckCommand | OnbuildCommand | MaintainerCommand;

/** A build stage: a FROM and the commands up to the next FROM. */
export interface Stage {
  /** Lower-cased stage name (absent for unnamed stages). */
  name?: string;
  /** Image, stage name or `scratch`, as written (not expanded). */
  base: string;
  platform?: string;
  from: FromCommand;
  commands: Command[];
  location: Range;
}

/** The Dockerfile as stages, with the ARGs declared before the first FROM. */
export interface Stages {
  stages: Stage[];
  metaArgs: ArgCommand[];
  /** Non-fatal findings, e.g. flags BuildKit ignores. */
  warnings: { message: string; line: number }[];
}

/** Types one instruction; throws DockerfileError pointing at the offending word. */
export function parseInstruction(ast: DockerfileAST, ins: Instruction): Command | FromCommand {
  const ctx = new Ctx(ast, ins);
  try {
    return typed(ctx, ins, false);
  } catch (e) {
    throw ctx.toError(e);
  }
}

/** Types every instruction and groups them into stages, with BuildKit's stage rules. */
export function parseStages(ast: DockerfileAST): Stages {
  const stages: Stage[] = [];
  const metaArgs: ArgCommand[] = [];
  const warnings: { message: string; line: number }[] = [];
  const seen = new Map<string, number>();
  for (const ins of ast.instructions) {
    const ctx = new Ctx(ast, ins);
    let cmd: Command | FromCommand;
    try {
      cmd = typed(ctx, ins, false);
    } catch (e) {
      throw ctx.toError(e);
    }
    warnings.push(...ctx.warnings);
    if (cmd.kind === 'from') {
      if (cmd.stageName !== undefined) {
        const nameWord = ins.args[2];
        // BuildKit builds these and only warns (lint rules ReservedStageName and
        // DuplicateStageName); a later stage of the same name shadows the earlier one.
        if (RESERVED_STAGE_NAMES.includes(cmd.stageName)) {
          warnings.push({ line: ins.range.startLine,
            message: `Stage name should not use the same name as reserved stage ${JSON.stringify(cmd.stageName)} (ReservedStageName)` });
        }
        const prev = seen.get(cmd.stageName);
        if (prev !== undefined) {
          warnings.push({ line: ins.range.startLine,
            message: `Duplicate stage name ${JSON.stringify(clip(cmd.stageName))}, stage names should be unique (first defined on line ${prev}) (DuplicateStageName)` });
        }
        seen.set(cmd.stageName, ins.range.startLine);
      }
      const stage: Stage = { base: cmd.baseName, from: cmd, commands: [], location: cmd.location };
      if (cmd.stageName !== undefined) stage.name = cmd.stageName;
      if (cmd.platform !== undefined) stage.platform = cmd.platform;
      stages.push(stage);
      continue;
    }
    if (stages.length === 0) {
      if (cmd.kind === 'arg') {
        metaArgs.push(cmd);
        continue;
      }
      throw ctx.error('E_STAGE', `no build stage in current context: ${ins.keyword.toUpperCase()} comes before the first FROM`, ins.keyword,
        'only ARG may come before the first FROM; start the build with FROM <image>');
    }
    stages[stages.length - 1].commands.push(cmd);
  }
  if (stages.length === 0) {
    const last = ast.instructions[ast.instructions.length - 1];
    throw new Ctx(ast, last).error('E_STAGE', 'dockerfile contains no stages to build', undefined, 'add a FROM <image> instruction');
  }
  return { stages, metaArgs, warnings };
}

/** Parses Dockerfile text straight into stages (parser + typed layer); throws only DockerfileError. */
export function parseDockerfileStages(text: string, opts: ParseOptions = {}): Stages & { ast: DockerfileAST } {
  const ast = parseDockerfile(text, opts);
  return { ...parseStages(ast), ast };
}

/** Per-instruction context: where to point errors. */
class Ctx {
  warnings: { message: string; line: number }[] = [];
  constructor(readonly ast: DockerfileAST, readonly ins: Instruction) {}

  /**
   * Finds `word` after the keyword in the instruction's lines (a `--flag=value` whose
   * value was quoted is found by its `--flag` part); falls back to the keyword.
   */
  locate(word?: string, nth = 1): { line: number; column: number } {
    const { startLine, endLine } = this.ins.range;
    const lines = this.ast.lines;
    const keyword = (): { line: number; column: number } | undefined => {
      const text = lines[startLine - 1] ?? '';
      const idx = text.indexOf(this.ins.keyword);
      return idx >= 0 ? { line: startLine, column: [...text.slice(0, idx)].length + 1 } : undefined;
    };
    const search = (w: string): { line: number; column: number } | undefined => {
      let seen = 0;
      for (let l = startLine; l <= Math.min(endLine, lines.length); l++) {
        const text = lines[l - 1] ?? '';
        let idx = text.indexOf(w, l === startLine ? keywordEnd(text, this.ins.keyword) : 0);
        while (idx >= 0) {
          if (++seen === nth) return { line: l, column: [...text.slice(0, idx)].length + 1 };
          idx = text.indexOf(w, idx + w.length);
        }
      }
      return undefined;
    };
    if (word) {
      const hit = search(word) ?? (word.startsWith('--') && word.includes('=') ? search(word.slice(0, word.indexOf('='))) : undefined);
      if (hit) return hit;
    }
    return keyword() ?? { line: startLine, column: 0 };
  }

  error(code: string, message: string, word?: string, hint?: string, nth = 1): DockerfileError {
    const { line, column } = this.locate(word, nth);
    return new DockerfileError(code, message, { file: this.ast.file, line, column, sourceLine: this.ast.lines[line - 1] }, hint);
  }

  toError(e: unknown): DockerfileError {
    if (e instanceof DockerfileError) return e;
    if (e instanceof InstructionProblem) return this.error(e.code, e.message, e.word, e.hint, e.nth);
    // a bug below must still reach the user as a located error, not a stack trace
    const msg = e instanceof Error ? e.message : String(e);
    return this.error('E_INTERNAL', `internal error while reading ${this.ins.keyword.toUpperCase()}: ${msg}`, undefined,
      'please report this Dockerfile as a hoist bug');
  }
}

function keywordEnd(text: string, keyword: string): number {
  const idx = text.indexOf(keyword);
  return idx >= 0 ? idx + keyword.length : 0;
}

const problem = (code: string, message: string, word?: string, hint?: string) => new InstructionProblem(code, message, word, hint);

function base(ins: Instruction): CommandBase {
  return { keyword: ins.keyword, source: goTrimSpace(ins.original), location: { ...ins.range } };
}

function flagsOf(ins: Instruction, cmd: string): ParsedFlags {
  return parseFlags(ins.flags, INSTRUCTIONS[cmd].flags, cmd.toUpperCase());
}

/** Checks that an instruction that takes no flags got none. */
function noFlags(ins: Instruction): void {
  flagsOf(ins, ins.cmd);
}

function typed(ctx: Ctx, ins: Instruction, inOnbuild: boolean): Command | FromCommand {
  switch (ins.cmd) {
    case 'from': return parseFrom(ins);
    case 'run': return parseRun(ins);
    case 'cmd':
    case 'entrypoint': {
      noFlags(ins);
      const c = { kind: ins.cmd, ...base(ins), ...commandLine(ins) } as CmdCommand | EntrypointCommand;
      return c;
    }
    case 'copy':
    case 'add': return parseCopyAdd(ins);
    case 'env':
    case 'label': {
      noFlags(ins);
      const pairs = keyValues(ins);
      return ins.cmd === 'env' ? { kind: 'env', ...base(ins), pairs } : { kind: 'label', ...base(ins), labels: pairs };
    }
    case 'arg': return parseArg(ins);
    case 'expose': {
      if (ins.args.length === 0) throw atLeastOne('EXPOSE');
      noFlags(ins);
      return { kind: 'expose', ...base(ins), ports: [...ins.args].sort() };
    }
    case 'volume': {
      if (ins.args.length === 0) throw atLeastOne('VOLUME');
      noFlags(ins);
      const volumes = ins.args.map(goTrimSpace);
      if (volumes.some((v) => v === '')) {
        throw problem('E_INVALID_ARGS', 'VOLUME specified can not be an empty string', undefined, 'remove the empty "" entry');
      }
      return { kind: 'volume', ...base(ins), volumes };
    }
    case 'user':
    case 'workdir':
    case 'stopsignal':
    case 'maintainer': {
      const name = ins.cmd.toUpperCase();
      if (ins.args.length !== 1) {
        throw problem('E_INVALID_ARGS', `${name} requires exactly one argument`, undefined, `write ${INSTRUCTIONS[ins.cmd].forms[0]}`);
      }
      noFlags(ins);
      const v = ins.args[0];
      if (ins.cmd === 'user') return { kind: 'user', ...base(ins), user: v };
      if (ins.cmd === 'workdir') return { kind: 'workdir', ...base(ins), path: v };
      if (ins.cmd === 'stopsignal') return { kind: 'stopsignal', ...base(ins), signal: v };
      return { kind: 'maintainer', ...base(ins), maintainer: v };
    }
    case 'shell': {
      noFlags(ins);
      if (ins.args.length === 0) throw atLeastOne('SHELL');
      if (!ins.json) {
        throw problem('E_INVALID_ARGS', `SHELL requires the arguments to be in JSON form`, ins.args[0],
          `write SHELL ${JSON.stringify(ins.args[0].split(/\s+/).filter(Boolean))}`);
      }
      return { kind: 'shell', ...base(ins), shell: [...ins.args] };
    }
    case 'healthcheck': return parseHealthcheck(ctx, ins);
    case 'onbuild': return parseOnbuild(ctx, ins);
    default:
      throw unknownInstruction(ins, inOnbuild);
  }
}

function atLeastOne(name: string): InstructionProblem {
  return problem('E_INVALID_ARGS', `${name} requires at least one argument`, undefined, `write ${INSTRUCTIONS[name.toLowerCase()].forms[0]}`);
}

const INVISIBLE_NAMES: Record<number, string> = {
  0x00a0: 'non-breaking space', 0x1680: 'ogham space mark', 0x180e: 'Mongolian vowel separator',
  0x2000: 'en quad', 0x2001: 'em quad', 0x2002: 'en space', 0x2003: 'em space', 0x2004: 'three-per-em space',
  0x2005: 'four-per-em space', 0x2006: 'six-per-em space', 0x2007: 'figure space', 0x2008: 'punctuation space',
  0x2009: 'thin space', 0x200a: 'hair space', 0x200b: 'zero-width space', 0x200c: 'zero-width non-joiner',
  0x200d: 'zero-width joiner', 0x200e: 'left-to-right mark', 0x200f: 'right-to-left mark', 0x2028: 'line separator',
  0x2029: 'paragraph separator', 0x202f: 'narrow no-break space', 0x205f: 'medium mathematical space',
  0x2060: 'word joiner', 0x3000: 'ideographic space', 0xfeff: 'zero-width no-break space (byte order mark)',
  0x00ad: 'soft hyphen', 0x0085: 'next line (NEL)',
};

function unknownInstruction(ins: Instruction, inOnbuild: boolean): InstructionProblem {
  const word = ins.keyword;
  const odd = [...word].find((ch) => INVISIBLE_NAMES[ch.codePointAt(0)!] !== undefined || /[\u0000-\u001f\u007f]/.test(ch));
  const where = inOnbuild ? ' in ONBUILD trigger' : '';
  if (odd) {
    const cp = odd.codePointAt(0)!;
    const label = `U+${cp.toString(16).toUpperCase().padStart(4, '0')}`;
    const what = INVISIBLE_NAMES[cp] ?? 'control character';
    const cleaned = [...word].filter((ch) => ch !== odd).join('');
    const before = word.slice(0, word.indexOf(odd));
    const intended = INSTRUCTIONS[before.toLowerCase()] ? before : INSTRUCTIONS[cleaned.toLowerCase()] ? cleaned : undefined;
    const article = /^[aeiou]/i.test(what) ? 'an' : 'a';
    return problem('E_UNKNOWN_INSTRUCTION',
      `unknown instruction "${visible(clip(word))}"${where} — the line contains ${article} ${what} (${label})`, inOnbuild ? word : undefined,
      intended
        ? `replace the ${what} after ${intended} with a plain space (it was probably pasted from a web page)`
        : `remove the ${what} (${label}); instructions are separated from their arguments by plain spaces or tabs`);
  }
  const guess = suggest(word, INSTRUCTION_NAMES, false);
  return problem('E_UNKNOWN_INSTRUCTION', `unknown instruction: ${clip(word)}${where}${guess ? ` (did you mean ${guess}?)` : ''}`, inOnbuild ? word : undefined,
    `instructions: ${INSTRUCTION_NAMES.join(', ')}`);
}

function parseFrom(ins: Instruction): FromCommand {
  const args = ins.args;
  let stageName: string | undefined;
  if (args.length === 3 && args[1].toLowerCase() === 'as') {
    stageName = args[2].toLowerCase();
    if (!STAGE_NAME_PATTERN.test(stageName)) {
      throw problem('E_STAGE', `invalid name for build stage: ${JSON.stringify(clip(args[2]))}, name can't start with a number or contain symbols`, args[2],
        'stage names start with a letter and contain only letters, digits, "-", "_" and "."');
    }
  } else if (args.length !== 1) {
    throw problem('E_INVALID_ARGS', 'FROM requires either one or three arguments', args.length > 1 ? args[1] : undefined,
      'write FROM [--platform=<platform>] <image> [AS <name>]');
  }
  const flags = flagsOf(ins, 'from');
  const cmd: FromCommand = { kind: 'from', ...base(ins), baseName: args[0] };
  const platform = flags.strings.get('platform');
  if (platform !== undefined && platform !== '') cmd.platform = platform;
  if (stageName !== undefined) cmd.stageName = stageName;
  return cmd;
}

function commandLine(ins: Instruction): CommandLine {
  if (ins.json) return { form: 'exec', cmdLine: [...ins.args] };
  return { form: 'shell', cmdLine: ins.args.length === 0 ? [] : [ins.args.join(' ')] };
}

function parseRun(ins: Instruction): RunCommand {
  const flags = flagsOf(ins, 'run');
  const network = flags.strings.get('network') ?? 'default';
  if (!(NETWORK_MODES as readonly string[]).includes(network)) {
    throw problem('E_INVALID_FLAG', `invalid network mode ${JSON.stringify(clip(network))}`, flags.words.get('network'),
      `--network takes one of: ${NETWORK_MODES.join(', ')}`);
  }
  const security = flags.strings.get('security') ?? 'sandbox';
  if (!(SECURITY_MODES as readonly string[]).includes(security)) {
    throw problem('E_INVALID_FLAG', `security ${JSON.stringify(clip(security))} is not valid`, flags.words.get('security'),
      `--security takes one of: ${SECURITY_MODES.join(', ')}`);
  }
  const mounts: Mount[] = [];
  for (const spec of flags.lists.get('mount') ?? []) {
    try {
      mounts.push(parseMount(spec));
    } catch (e) {
      if (e instanceof InstructionProblem) throw problem(e.code, e.message, `--mount=${spec}`, e.hint);
      throw e;
    }
  }
  return {
    kind: 'run',
    ...base(ins),
    ...commandLine(ins),
    heredocs: ins.heredocs.map((h) => ({ name: h.name, data: h.content, chomp: h.chomp, expand: h.expand })),
    mounts,
    network: network as NetworkMode,
    security: security as SecurityMode,
    flagsUsed: [...flags.used],
  };
}

/** BuildKit's MustParseHeredoc: the heredoc a word names, or undefined. */
function heredocMarker(word: string): Heredoc | undefined {
  try {
    return parseHeredocMarker(word);
  } catch {
    return undefined;
  }
}

function parseCopyAdd(ins: Instruction): CopyCommand | AddCommand {
  const name = ins.cmd.toUpperCase();
  if (ins.args.length < 2) {
    throw problem('E_INVALID_ARGS', `${name} requires at least two arguments, but only one was provided. Destination could not be determined`,
      ins.args[0], `write ${INSTRUCTIONS[ins.cmd].forms[0]}`);
  }
  const flags = flagsOf(ins, ins.cmd);
  const dest = ins.args[ins.args.length - 1];
  if (!ins.json && heredocMarker(dest)) {
    throw problem('E_INVALID_ARGS', `${name} cannot accept a heredoc as a destination`, dest, 'the last argument must be a path');
  }
  const bodies = new Map(ins.heredocs.map((h) => [h.name, h]));
  const sources: string[] = [];
  const heredocSources: HeredocSource[] = [];
  for (const src of ins.args.slice(0, -1)) {
    const marker = ins.json ? undefined : heredocMarker(src);
    if (!marker) {
      sources.push(src);
      continue;
    }
    let data = bodies.get(marker.name)?.content ?? '';
    if (marker.chomp) data = data.replace(/^\t+/gm, '');
    heredocSources.push({ path: marker.name, data, expand: marker.expand });
  }
  const cmd = {
    kind: ins.cmd,
    ...base(ins),
    sources,
    heredocSources,
    dest,
  } as CopyCommand | AddCommand;
  const chown = flags.strings.get('chown');
  if (chown !== undefined && chown !== '') cmd.chown = chown;
  const chmodText = flags.strings.get('chmod');
  if (chmodText !== undefined && chmodText !== '') {
    if (chmodText.includes('$')) {
      cmd.chmod = { kind: 'unresolved', text: chmodText };
    } else {
      try {
        cmd.chmod = parseChmod(chmodText);
      } catch (e) {
        if (!(e instanceof ChmodSyntaxError)) throw e;
        throw problem('E_INVALID_FLAG', e.message, flags.words.get('chmod'),
          'use an octal mode up to 07777 (0755) or a symbolic mode like u+x,g-w or u=rwx,go=rx');
      }
    }
  }
  cmd.link = flags.bools.get('link') ?? false;
  cmd.exclude = [...(flags.lists.get('exclude') ?? [])];
  if (cmd.kind === 'copy') {
    const from = flags.strings.get('from');
    if (from !== undefined && from !== '') cmd.from = from;
    cmd.parents = flags.bools.get('parents') ?? false;
  } else {
    const checksum = flags.strings.get('checksum');
    if (checksum !== undefined && checksum !== '') cmd.checksum = checksum;
    if (flags.bools.has('keep-git-dir')) cmd.keepGitDir = flags.bools.get('keep-git-dir');
    if (flags.bools.has('unpack')) cmd.unpack = flags.bools.get('unpack');
  }
  return cmd;
}

function keyValues(ins: Instruction): KeyValue[] {
  const name = ins.cmd.toUpperCase();
  if (ins.args.length === 0) throw atLeastOne(name);
  if (ins.args.length % 3 !== 0) throw problem('E_INVALID_ARGS', `Bad input to ${name}, too many arguments`);
  const out: KeyValue[] = [];
  for (let i = 0; i < ins.args.length; i += 3) {
    if (ins.args[i] === '') throw problem('E_INVALID_ARGS', `${name} names can not be blank`, '=', `write ${name} key=value`);
    out.push({ key: ins.args[i], value: ins.args[i + 1], legacy: ins.args[i + 2] === '' });
  }
  return out;
}

function parseArg(ins: Instruction): ArgCommand {
  if (ins.args.length === 0) throw atLeastOne('ARG');
  noFlags(ins);
  const args = ins.args.map((word) => {
    const eq = word.indexOf('=');
    if (eq < 0) return { key: word };
    if (eq === 0) throw problem('E_INVALID_ARGS', 'ARG names can not be blank', word, 'write ARG name[=default]');
    return { key: word.slice(0, eq), value: word.slice(eq + 1) };
  });
  return { kind: 'arg', ...base(ins), args };
}

const DURATION_FLAGS = [
  ['interval', 'interval'],
  ['timeout', 'timeout'],
  ['start-period', 'startPeriod'],
  ['start-interval', 'startInterval'],
] as const;

function parseHealthcheck(ctx: Ctx, ins: Instruction): HealthcheckCommand {
  if (ins.args.length === 0) throw atLeastOne('HEALTHCHECK');
  const typ = ins.args[0].toUpperCase();
  const rest = ins.args.slice(1);
  if (typ === 'NONE') {
    if (rest.length !== 0) throw problem('E_INVALID_ARGS', 'HEALTHCHECK NONE takes no arguments', rest[0], 'write HEALTHCHECK NONE alone');
    if (ins.flags.length > 0) {
      // BuildKit does not read flags for NONE; say so instead of failing a file it accepts
      ctx.warnings.push({ message: `HEALTHCHECK NONE ignores its flags (${ins.flags.join(' ')})`, line: ins.range.startLine });
    }
    return { kind: 'healthcheck', ...base(ins), health: { test: ['NONE'] } };
  }
  const flags = flagsOf(ins, 'healthcheck');
  if (typ !== 'CMD') {
    throw problem('E_INVALID_ARGS', `Unknown type ${JSON.stringify(clip(typ))} in HEALTHCHECK (try CMD)`, ins.args[0],
      'write HEALTHCHECK [--flags] CMD <command> or HEALTHCHECK NONE');
  }
  const cmdLine = ins.json ? rest : rest.length === 0 ? [] : [rest.join(' ')];
  if (cmdLine.length === 0) throw problem('E_INVALID_ARGS', 'Missing command after HEALTHCHECK CMD', ins.args[0]);
  const health: HealthConfig = { test: [ins.json ? 'CMD' : 'CMD-SHELL', ...cmdLine] };
  for (const [flag, field] of DURATION_FLAGS) {
    const text = flags.strings.get(flag) ?? '';
    let ns = 0n;
    if (text !== '') {
      try {
        ns = parseGoDuration(text);
      } catch (e) {
        if (!(e instanceof DurationError)) throw e;
        throw problem('E_INVALID_FLAG', `invalid --${flag}: ${e.message}`, flags.words.get(flag),
          'write a duration such as 30s, 1m30s or 500ms (units: ns, us, ms, s, m, h)');
      }
      if (ns !== 0n && ns < 1_000_000n) {
        throw problem('E_INVALID_FLAG', `Interval "${flag}" cannot be less than 1ms`, flags.words.get(flag), 'use at least 1ms, or 0 for the default');
      }
    }
    health[field] = Number(ns);
  }
  const retries = flags.strings.get('retries') ?? '';
  health.retries = 0;
  if (retries !== '') {
    if (!/^[+-]?[0-9]+$/.test(retries) || Math.abs(Number(retries)) > 2 ** 31 - (retries.startsWith('-') ? 0 : 1)) {
      throw problem('E_INVALID_FLAG', `invalid --retries value ${JSON.stringify(clip(retries))}: must be an integer`, flags.words.get('retries'),
        'write --retries=<count>, e.g. --retries=3');
    }
    const n = Number(retries);
    if (n < 0) throw problem('E_INVALID_FLAG', `--retries cannot be negative (${n})`, flags.words.get('retries'));
    health.retries = n;
  }
  return { kind: 'healthcheck', ...base(ins), health };
}

function parseOnbuild(ctx: Ctx, ins: Instruction): OnbuildCommand {
  const sub = ins.sub;
  if (!sub) throw atLeastOne('ONBUILD');
  noFlags(ins);
  const trigger = goTrimSpace(sub.keyword).toUpperCase();
  if (trigger === 'ONBUILD') {
    throw problem('E_INVALID_ARGS', 'Chaining ONBUILD via `ONBUILD ONBUILD` isn\'t allowed', sub.keyword, 'put the trigger instruction directly after ONBUILD');
  }
  if (trigger === 'MAINTAINER' || trigger === 'FROM') {
    throw problem('E_INVALID_ARGS', `${trigger} isn't allowed as an ONBUILD trigger`, sub.keyword,
      trigger === 'FROM' ? 'a child image chooses its own base; remove this ONBUILD' : 'use LABEL org.opencontainers.image.authors instead');
  }
  // the trigger runs in the child build; checking it now reports mistakes where they are written
  const sublike: Instruction = { ...sub, range: ins.range, heredocs: ins.heredocs };
  const typedTrigger = typed(ctx, sublike, true) as Command;
  let expression = ins.original.replace(/^[\t\n\f\r ]*ONBUILD[\t\n\f\r ]*/i, '');
  for (const h of ins.heredocs) expression += '\n' + h.content + h.name;
  return { kind: 'onbuild', ...base(ins), expression, trigger: typedTrigger };
}
