/**
 * The Dockerfile parser: text → instructions, compatible with BuildKit's frontend parser.
 *
 * It reproduces BuildKit's line handling exactly (so that its dump of any file is
 * byte-for-byte BuildKit's): leading whitespace trimmed with Unicode's notion of space,
 * the instruction word split on ASCII whitespace only, comments removed before
 * continuation joining, comments and empty lines allowed between continued lines,
 * parser directives only at the very top, and the per-instruction argument shapes:
 *
 * - ENV, LABEL: key, value, separator triples (`=` or `""` for the legacy form)
 * - ARG: one argument per word (quotes kept)
 * - FROM, EXPOSE: whitespace-separated words
 * - COPY, ADD, VOLUME: a JSON array, else whitespace-separated words
 * - RUN, CMD, ENTRYPOINT, SHELL: a JSON array, else the rest of the line as one argument
 * - HEALTHCHECK: the type word, then as RUN
 * - MAINTAINER, USER, WORKDIR, STOPSIGNAL: the rest of the line
 * - ONBUILD: the nested instruction in `sub`
 * - anything else: no arguments (the typed layer reports it as unknown)
 *
 * Quote removal and variable expansion happen later (see shell.ts).
 */
import type { DockerfileAST, Directive, Heredoc, Instruction } from './ast.js';
import { DockerfileError } from './errors.js';
import { isGoSpace, goTrimSpace, goTrimLeftSpace } from './gotext.js';
import { ShellLexer } from './shell.js';

/** Options of {@link parseDockerfile}. */
export interface ParseOptions {
  /** File name used in error messages (default `Dockerfile`). */
  file?: string;
}

const MAX_LINE_BYTES = 64 * 1024 - 1;
const DIRECTIVES = new Set(['syntax', 'escape', 'check']);
const HEREDOC_INSTRUCTIONS = new Set(['run', 'copy', 'add']);
const reDirective = /^([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*([^\n]+?)[\t\n\f\r ]*$/;
const reAsciiSpace = /[\t\v\f\r ]+/;
const reHeredoc = /^(\d*)<<(-?)[\t\n\f\r ]*([^<]*)$/;

type LineParser = (rest: string, st: ParserState) => { args: string[]; json: boolean; sub?: Instruction };

/** Mutable parser state: the escape token and the directive scanner. */
interface ParserState {
  escape: string;
  continuation: RegExp;
  directivesDone: boolean;
  seen: Set<string>;
  directives: Directive[];
  lineNo: number;
}

class LineError extends Error {}

/** Parses Dockerfile text into instructions; throws only {@link DockerfileError}. */
export function parseDockerfile(text: string, opts: ParseOptions = {}): DockerfileAST {
  const file = opts.file ?? 'Dockerfile';
  const rawLines = splitLines(text);
  const displayLines = rawLines.map((l, i) => (i === 0 ? stripBOM(l) : l).replace(/\r?\n$/, ''));
  const fail = (msg: string, line: number, column = 0, hint?: string): never => {
    throw new DockerfileError('E_PARSE', msg, { file, line, column, sourceLine: displayLines[line - 1] }, hint);
  };

  const st: ParserState = { escape: '\\', continuation: continuationRegex('\\'), directivesDone: false, seen: new Set(), directives: [], lineNo: 0 };
  const instructions: Instruction[] = [];
  const warnings: { message: string; line: number }[] = [];
  let comments: string[] = [];
  let i = 0;
  let current = 0;

  const processLine = (token: string, stripLeft: boolean): { text: string; directive: boolean } => {
    token = trimNewline(token);
    if (stripLeft) token = goTrimLeftSpace(token);
    const directive = possibleDirective(st, token, current + 1, fail);
    return { text: isComment(token) ? '' : token, directive };
  };

  while (i < rawLines.length) {
    let raw = rawLines[i++];
    if (current === 0) raw = stripBOM(raw);
    checkLength(raw, current + 1, fail);
    if (isComment(raw)) {
      const c = goTrimSpace(raw.slice(1));
      if (c === '') comments = [];
      else comments.push(c);
    }
    const first = processLine(raw, true);
    if (first.directive) comments.pop();
    current++;
    const startLine = current;
    let [line, endOfLine] = trimContinuation(first.text, st);
    if (endOfLine && line === '') continue;

    let emptyContinuation = false;
    while (!endOfLine && i < rawLines.length) {
      const next = rawLines[i++];
      checkLength(next, current + 1, fail);
      const p = processLine(next, false);
      current++;
      if (isComment(next)) continue;
      if (goTrimLeftSpace(trimNewline(p.text)) === '') {
        emptyContinuation = true;
        continue;
      }
      const [part, eol] = trimContinuation(p.text, st);
      line += part;
      endOfLine = eol;
    }
    if (emptyContinuation) {
      warnings.push({ message: `Empty continuation line found in: ${line}`, line: current });
    }

    let node: Instruction;
    try {
      node = nodeFromLine(line, st, comments);
    } catch (e) {
      if (e instanceof LineError) {
        const col = columnOf(displayLines[startLine - 1], line);
        fail(e.message, startLine, col, hintFor(e.message));
      }
      throw e;
    }

    const target = node.cmd === 'onbuild' && node.sub ? node.sub : node;
    if (HEREDOC_INSTRUCTIONS.has(target.cmd) && !target.json && line.includes('<<')) {
      let docs: Heredoc[];
      try {
        docs = heredocsFromLine(line);
      } catch (e) {
        if (e instanceof DockerfileError || e instanceof LineError || isHoistLike(e)) {
          fail(`invalid heredoc: ${(e as Error).message}`, startLine, 0);
        }
        throw e;
      }
      for (const doc of docs) {
        let content = '';
        let terminated = false;
        while (i < rawLines.length) {
          const body = rawLines[i++];
          current++;
          let candidate = trimNewline(body);
          if (doc.chomp) candidate = candidate.replace(/^\t+/, '');
          if (candidate === doc.name) {
            terminated = true;
            break;
          }
          content += body;
        }
        if (!terminated) {
          fail(`unterminated heredoc: no line "${doc.name}" closes the heredoc started here`, startLine,
            columnOfHeredoc(displayLines[startLine - 1], doc.name),
            `end the heredoc with a line containing only ${doc.name}${doc.chomp ? ' (leading tabs allowed with <<-)' : ''}`);
        }
        doc.content = content;
        node.heredocs.push(doc);
      }
    }
    node.range = { startLine, startCol: 1, endLine: current, endCol: 0 };
    instructions.push(node);
    comments = [];
  }

  if (instructions.length === 0) {
    fail('file with no instructions', Math.max(current, 1), 0, 'a Dockerfile needs at least a FROM instruction');
  }
  return { file, instructions, directives: st.directives, escapeToken: st.escape, warnings, lines: displayLines };
}

function isHoistLike(e: unknown): boolean {
  return typeof e === 'object' && e !== null && 'code' in e && 'exitCode' in e;
}

/** Splits into lines that keep their `\n`, like bufio.ScanLines without dropping it. */
function splitLines(text: string): string[] {
  const out: string[] = [];
  let start = 0;
  for (;;) {
    const nl = text.indexOf('\n', start);
    if (nl < 0) {
      if (start < text.length) out.push(text.slice(start));
      return out;
    }
    out.push(text.slice(start, nl + 1));
    start = nl + 1;
  }
}

function stripBOM(s: string): string {
  return s.charCodeAt(0) === 0xfeff ? s.slice(1) : s;
}

function trimNewline(s: string): string {
  let end = s.length;
  while (end > 0 && (s[end - 1] === '\n' || s[end - 1] === '\r')) end--;
  return s.slice(0, end);
}

function isComment(s: string): boolean {
  return goTrimLeftSpace(s).startsWith('#');
}

function checkLength(raw: string, line: number, fail: (m: string, l: number, c?: number, h?: string) => never): void {
  if (raw.length > MAX_LINE_BYTES / 3 && Buffer.byteLength(trimNewline(raw)) > MAX_LINE_BYTES) {
    fail(`dockerfile line greater than max allowed size of ${MAX_LINE_BYTES}`, line, 0, 'split the line with \\ continuations');
  }
}

function continuationRegex(esc: string): RegExp {
  const e = '\\' + esc;
  return new RegExp(`([^${e}])${e}[ \\t]*$|^${e}[ \\t]*$`, 's');
}

function trimContinuation(line: string, st: ParserState): [string, boolean] {
  if (st.continuation.test(line)) return [line.replace(st.continuation, '$1'), false];
  return [line, true];
}

function possibleDirective(st: ParserState, line: string, lineNo: number, fail: (m: string, l: number, c?: number, h?: string) => never): boolean {
  if (st.directivesDone) return false;
  if (!line.startsWith('#')) {
    st.directivesDone = true;
    return false;
  }
  const m = reDirective.exec(goTrimLeftSpace(line.slice(1)));
  if (!m) {
    st.directivesDone = true;
    return false;
  }
  const name = m[1].toLowerCase();
  if (!DIRECTIVES.has(name)) {
    st.directivesDone = true;
    return false;
  }
  if (st.seen.has(name)) {
    fail(`only one ${name} parser directive can be used`, lineNo, 1, `remove the second "# ${name}=" line`);
  }
  st.seen.add(name);
  const value = m[2];
  if (name === 'escape') {
    if (value !== '\\' && value !== '`') {
      fail(`invalid escape token '${value}' does not match \` or \\`, lineNo, line.indexOf(value) + 1, 'use "# escape=\\" or "# escape=`"');
    }
    st.escape = value;
    st.continuation = continuationRegex(value);
  }
  st.directives.push({ name, value, line: lineNo });
  return true;
}

const DISPATCH: Record<string, LineParser> = {
  add: parseMaybeJSONToList,
  arg: parseNameOrNameVal,
  cmd: parseMaybeJSON,
  copy: parseMaybeJSONToList,
  entrypoint: parseMaybeJSON,
  env: (rest, st) => parseNameVal(rest, 'ENV', st),
  expose: parseWhitespaceDelimited,
  from: parseWhitespaceDelimited,
  healthcheck: parseHealthConfig,
  label: (rest, st) => parseNameVal(rest, 'LABEL', st),
  maintainer: parseString,
  onbuild: parseSubCommand,
  run: parseMaybeJSON,
  shell: parseMaybeJSON,
  stopsignal: parseString,
  user: parseString,
  volume: parseMaybeJSONToList,
  workdir: parseString,
};

function nodeFromLine(line: string, st: ParserState, comments: string[]): Instruction {
  const { cmd, flags, args } = splitCommand(line, st);
  const fn = DISPATCH[cmd.toLowerCase()];
  // BuildKit's parseIgnore yields one empty argument for an unknown instruction.
  const parsed = fn ? fn(args, st) : { args: [''], json: false };
  return {
    cmd: cmd.toLowerCase(),
    keyword: cmd,
    flags,
    args: parsed.args,
    json: parsed.json,
    sub: parsed.sub,
    heredocs: [],
    original: line,
    comments: [...comments],
    range: { startLine: 0, startCol: 0, endLine: 0, endCol: 0 },
  };
}

function splitCommand(line: string, st: ParserState): { cmd: string; flags: string[]; args: string } {
  const trimmed = goTrimSpace(line);
  const m = reAsciiSpace.exec(trimmed);
  if (!m) return { cmd: trimmed, flags: [], args: '' };
  const cmd = trimmed.slice(0, m.index);
  const { rest, flags } = extractFlags(trimmed.slice(m.index + m[0].length), st.escape);
  return { cmd, flags, args: goTrimSpace(rest) };
}

/** Takes the leading `--flag` words off a line (quotes removed, escapes applied). */
function extractFlags(line: string, esc: string): { rest: string; flags: string[] } {
  const flags: string[] = [];
  let phase: 'spaces' | 'word' | 'quote' = 'spaces';
  let word = '';
  let quote = '';
  let blankOK = false;
  for (let pos = 0; pos <= line.length; pos++) {
    const ch = pos < line.length ? line[pos] : '';
    if (phase === 'spaces') {
      if (pos === line.length) break;
      if (isGoSpace(ch)) continue;
      if (ch !== '-' || pos + 1 === line.length || line[pos + 1] !== '-') return { rest: line.slice(pos), flags };
      phase = 'word';
    }
    if (pos === line.length) {
      if (word !== '--' && (blankOK || word.length > 0)) flags.push(word);
      break;
    }
    if (phase === 'word') {
      if (isGoSpace(ch)) {
        phase = 'spaces';
        if (word === '--') return { rest: line.slice(pos), flags };
        if (blankOK || word.length > 0) flags.push(word);
        word = '';
        blankOK = false;
        continue;
      }
      if (ch === "'" || ch === '"') {
        quote = ch;
        blankOK = true;
        phase = 'quote';
        continue;
      }
      let c = ch;
      if (c === esc) {
        if (pos + 1 === line.length) continue;
        c = line[++pos];
      }
      word += c;
      continue;
    }
    // inside quotes
    if (ch === quote) {
      phase = 'word';
      continue;
    }
    let c = ch;
    if (c === esc) {
      if (pos + 1 === line.length) {
        phase = 'word';
        continue;
      }
      c = line[++pos];
    }
    word += c;
  }
  return { rest: '', flags };
}

/** Splits words keeping quotes and escapes, as BuildKit's parseWords. */
function parseWords(rest: string, esc: string): string[] {
  const words: string[] = [];
  let phase: 'spaces' | 'word' | 'quote' = 'spaces';
  let quote = '';
  let blankOK = false;
  let word = '';
  const chars = [...rest];
  for (let pos = 0; pos <= chars.length; pos++) {
    let ch = pos < chars.length ? chars[pos] : '';
    if (phase === 'spaces') {
      if (pos === chars.length) break;
      if (isGoSpace(ch)) continue;
      phase = 'word';
    }
    if (pos === chars.length) {
      if (blankOK || word.length > 0) words.push(word);
      break;
    }
    if (phase === 'word') {
      if (isGoSpace(ch)) {
        phase = 'spaces';
        if (blankOK || word.length > 0) words.push(word);
        word = '';
        blankOK = false;
        continue;
      }
      if (ch === "'" || ch === '"') {
        quote = ch;
        blankOK = true;
        phase = 'quote';
      }
      if (ch === esc) {
        if (pos + 1 === chars.length) continue;
        word += ch;
        ch = chars[++pos];
      }
      word += ch;
      continue;
    }
    if (ch === quote) phase = 'word';
    if (ch === esc && quote !== "'") {
      if (pos + 1 === chars.length) {
        phase = 'word';
        continue;
      }
      word += ch;
      ch = chars[++pos];
    }
    word += ch;
  }
  return words;
}

function parseNameVal(rest: string, key: string, st: ParserState): { args: string[]; json: boolean } {
  const words = parseWords(rest, st.escape);
  if (words.length === 0) return { args: [], json: false };
  if (!words[0].includes('=')) {
    const m = reAsciiSpace.exec(rest);
    if (!m) throw new LineError(`${key} must have two arguments`);
    return { args: [rest.slice(0, m.index), rest.slice(m.index + m[0].length), ''], json: false };
  }
  const args: string[] = [];
  for (const w of words) {
    const eq = w.indexOf('=');
    if (eq < 0) throw new LineError(`Syntax error - can't find = in ${goQuote(w)}. Must be of the form: name=value`);
    args.push(w.slice(0, eq), w.slice(eq + 1), '=');
  }
  return { args, json: false };
}

function parseNameOrNameVal(rest: string, st: ParserState): { args: string[]; json: boolean } {
  return { args: parseWords(rest, st.escape), json: false };
}

function parseWhitespaceDelimited(rest: string): { args: string[]; json: boolean } {
  if (rest === '') return { args: [], json: false };
  return { args: rest.split(/[\t\v\f\r ]+/), json: false };
}

function parseString(rest: string): { args: string[]; json: boolean } {
  return { args: rest === '' ? [] : [rest], json: false };
}

const NOT_JSON = Symbol('not json');
const NOT_STRINGS = 'when using JSON array syntax, arrays must be comprised of strings only';

function parseJSON(rest: string): string[] | typeof NOT_JSON {
  rest = goTrimLeftSpace(rest);
  if (!rest.startsWith('[')) return NOT_JSON;
  let value: unknown;
  try {
    value = JSON.parse(rest);
  } catch {
    return NOT_JSON;
  }
  if (!Array.isArray(value)) return NOT_JSON;
  for (const v of value) if (typeof v !== 'string') throw new LineError(NOT_STRINGS);
  return value as string[];
}

function parseMaybeJSON(rest: string): { args: string[]; json: boolean } {
  if (rest === '') return { args: [], json: false };
  const j = parseJSON(rest);
  if (j !== NOT_JSON) return { args: j, json: true };
  return { args: [rest], json: false };
}

function parseMaybeJSONToList(rest: string): { args: string[]; json: boolean } {
  const j = parseJSON(rest);
  if (j !== NOT_JSON) return { args: j, json: true };
  return parseWhitespaceDelimited(rest);
}

function parseHealthConfig(rest: string): { args: string[]; json: boolean } {
  let sep = 0;
  while (sep < rest.length && !isGoSpace(rest[sep])) sep++;
  let next = sep;
  while (next < rest.length && isGoSpace(rest[next])) next++;
  if (sep === 0) return { args: [], json: false };
  const cmd = parseMaybeJSON(rest.slice(next));
  return { args: [rest.slice(0, sep), ...cmd.args], json: cmd.json };
}

function parseSubCommand(rest: string, st: ParserState): { args: string[]; json: boolean; sub?: Instruction } {
  if (rest === '') return { args: [], json: false };
  return { args: [], json: false, sub: nodeFromLine(rest, st, []) };
}

/** Finds the heredoc markers (`<<EOF`, `<<-"EOF"`, `3<<EOF`) on an instruction line. */
export function heredocsFromLine(line: string): Heredoc[] {
  const raw = new ShellLexer('\\', { rawQuotes: true, rawEscapes: true, skipUnsetEnv: true });
  const words = raw.processWords(line, new Map());
  const docs: Heredoc[] = [];
  for (const w of words) {
    const d = parseHeredocMarker(w);
    if (d) docs.push(d);
  }
  return docs;
}

/** Parses one `<<[-]WORD` marker, or returns undefined when the word is not one. */
export function parseHeredocMarker(word: string): Heredoc | undefined {
  const m = reHeredoc.exec(word);
  if (!m) return undefined;
  const rest = m[3];
  if (rest.length === 0) return undefined;
  const plain = new ShellLexer('\\', { skipUnsetEnv: true }).processWords(rest, new Map());
  if (plain.length !== 1) return undefined;
  const rawWords = new ShellLexer('\\', { skipUnsetEnv: true, rawQuotes: true }).processWords(rest, new Map());
  if (rawWords.length !== plain.length) throw new LineError(`inconsistent heredoc marker: ${rest}`);
  const quotes = (s: string) => (s.match(/['"]/g) ?? []).length;
  const doc: Heredoc = { name: plain[0], content: '', expand: quotes(plain[0]) === quotes(rawWords[0]), chomp: m[2] === '-' };
  if (m[1] !== '') doc.fd = Number(m[1]);
  return doc;
}

function columnOf(sourceLine: string | undefined, logical: string): number {
  if (!sourceLine) return 0;
  const word = goTrimSpace(logical).split(/[\t\v\f\r ]+/)[0];
  const idx = word ? sourceLine.indexOf(word) : -1;
  return idx >= 0 ? idx + 1 : 0;
}

function columnOfHeredoc(sourceLine: string | undefined, name: string): number {
  if (!sourceLine) return 0;
  const idx = sourceLine.indexOf('<<');
  return idx >= 0 && sourceLine.includes(name) ? idx + 1 : 0;
}

function hintFor(msg: string): string | undefined {
  if (msg.includes('must have two arguments')) return 'write KEY=VALUE (or the legacy form KEY VALUE)';
  if (msg.startsWith('Syntax error')) return 'every word must be NAME=VALUE; quote values that contain spaces';
  if (msg === NOT_STRINGS) return 'quote every element, e.g. ["echo", "1"]';
  return undefined;
}

/** Go's strconv.Quote, used by the dump format and some messages. */
export function goQuote(s: string): string {
  if (rePlainASCII.test(s)) return '"' + s + '"';
  let out = '"';
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    if (ch === '"' || ch === '\\') out += '\\' + ch;
    else if (isGoPrint(cp)) out += ch;
    else if (cp === 7) out += '\\a';
    else if (cp === 8) out += '\\b';
    else if (cp === 12) out += '\\f';
    else if (cp === 10) out += '\\n';
    else if (cp === 13) out += '\\r';
    else if (cp === 9) out += '\\t';
    else if (cp === 11) out += '\\v';
    else if (cp < 0x20 || cp === 0x7f) out += '\\x' + cp.toString(16).padStart(2, '0');
    else if (cp === 0xfffd && ch !== '\ufffd') out += '\\x' + cp.toString(16);
    else if (cp < 0x10000) out += '\\u' + cp.toString(16).padStart(4, '0');
    else out += '\\U' + cp.toString(16).padStart(8, '0');
  }
  return out + '"';
}

const rePrint = /[\p{L}\p{M}\p{N}\p{P}\p{S}]/u;
const rePlainASCII = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

function isGoPrint(cp: number): boolean {
  if (cp < 0x80) return cp >= 0x20 && cp < 0x7f;
  if (cp >= 0xd800 && cp <= 0xdfff) return false;
  return rePrint.test(String.fromCodePoint(cp));
}

/** BuildKit's dump of one instruction: `(cmd ["--flag"] "arg" ...)` without the parentheses. */
export function dumpInstruction(n: Instruction): string {
  let s = n.keyword.toLowerCase();
  if (n.flags.length > 0) s += ' [' + n.flags.map(goQuote).join(' ') + ']';
  if (n.sub) s += ' (' + dumpInstruction(n.sub) + ')';
  for (const a of n.args) s += ' ' + goQuote(a);
  return goTrimSpace(s);
}

/** BuildKit's dump format of a whole file (one line per instruction, final newline). */
export function dumpAST(ast: DockerfileAST): string {
  return ast.instructions.map((n) => '(' + dumpInstruction(n) + ')\n').join('');
}
