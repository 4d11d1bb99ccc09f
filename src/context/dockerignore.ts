// .dockerignore handling with BuildKit's semantics: the file is read like
// moby/patternmatcher's ignorefile.ReadAll, patterns are matched like
// patternmatcher.PatternMatcher (including its glob → Go-regexp translation), and the
// context walk prunes directories the way tonistiigi/fsutil's filter does.
//
// The translated regexps are executed by a small Thompson-NFA engine instead of
// JavaScript's backtracking RegExp: Go's RE2 runs in linear time, and a hostile
// pattern such as `**/**/**/**/**/x` must not be able to stall a build here either.

import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { HoistError } from '../util/errors.js';

/** One pattern of an ignore file, after BuildKit's line clean-up. */
export interface IgnorePattern {
  /** The pattern exactly as ignorefile.ReadAll returns it, e.g. `!docs/README.md`. */
  raw: string;
  /** The pattern without its `!`, as the matcher uses it. */
  pattern: string;
  /** True for a `!` exception (re-includes what earlier patterns excluded). */
  exclusion: boolean;
  /** 1-based line number in the ignore file (0 when the pattern did not come from a file). */
  line: number;
}

/** Longest line bufio.Scanner accepts; BuildKit fails on longer ones, so do we. */
const MAX_LINE_BYTES = 64 * 1024;
/** Largest ignore file read; real ones are a few hundred bytes. */
const MAX_IGNORE_FILE_BYTES = 16 * 1024 * 1024;
/** Symlink hops allowed while locating an ignore file, as Linux's MAXSYMLINKS. */
const MAX_SYMLINK_HOPS = 40;

// ---------------------------------------------------------------------------
// Go string helpers

/** Go's unicode.IsSpace, which strings.TrimSpace uses (differs from JS trim on U+0085 and U+FEFF). */
function isGoSpace(c: string): boolean {
  switch (c) {
    case '\t': case '\n': case '\v': case '\f': case '\r': case ' ':
    case '\u0085': case '\u00a0': case '\u1680': case '\u2028': case '\u2029':
    case '\u202f': case '\u205f': case '\u3000':
      return true;
    default:
      return c >= '\u2000' && c <= '\u200a';
  }
}

function goTrimSpace(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && isGoSpace(s[a]!)) a++;
  while (b > a && isGoSpace(s[b - 1]!)) b--;
  return s.slice(a, b);
}

/** Go's path.Clean: drops empty and `.` elements, folds `..`, keeps a leading `/`. */
export function goClean(p: string): string {
  if (p === '') return '.';
  const rooted = p.startsWith('/');
  const out: string[] = [];
  for (const c of p.split('/')) {
    if (c === '' || c === '.') continue;
    if (c === '..') {
      if (out.length > 0 && out[out.length - 1] !== '..') out.pop();
      else if (!rooted) out.push('..');
      continue;
    }
    out.push(c);
  }
  const s = (rooted ? '/' : '') + out.join('/');
  return s === '' ? '.' : s;
}

/** Go's path.Dir. */
function goDir(p: string): string {
  const i = p.lastIndexOf('/');
  return goClean(p.slice(0, i + 1));
}

// ---------------------------------------------------------------------------
// filepath.Match syntax check (patternmatcher.New rejects what it rejects)

/** Returns why `pattern` is not valid filepath.Match syntax, or null when it is. */
function globSyntaxError(pattern: string): string | null {
  let rest = Array.from(pattern);
  while (rest.length > 0) {
    let k = 0;
    while (k < rest.length && rest[k] === '*') k++;
    rest = rest.slice(k);
    // A chunk runs to the next `*` outside brackets, as filepath's scanChunk decides.
    let inRange = false;
    let j = 0;
    for (; j < rest.length; j++) {
      const c = rest[j];
      if (c === '\\') {
        if (j + 1 < rest.length) j++;
      } else if (c === '[') inRange = true;
      else if (c === ']') inRange = false;
      else if (c === '*' && !inRange) break;
    }
    const why = chunkSyntaxError(rest.slice(0, j));
    if (why) return why;
    rest = rest.slice(j);
  }
  return null;
}

function chunkSyntaxError(ch: string[]): string | null {
  const badClass = 'malformed character class (a "[" needs a closing "]", ranges need both ends; escape a literal "[" as "\\[")';
  let i = 0;
  // filepath's getEsc: one (possibly escaped) class character that must be followed by more.
  const classChar = (): boolean => {
    if (i >= ch.length || ch[i] === '-' || ch[i] === ']') return false;
    if (ch[i] === '\\') {
      i++;
      if (i >= ch.length) return false;
    }
    i++;
    return i < ch.length;
  };
  while (i < ch.length) {
    const c = ch[i];
    if (c === '[') {
      i++;
      if (ch[i] === '^') i++;
      for (let n = 0; ; n++) {
        if (i < ch.length && ch[i] === ']' && n > 0) {
          i++;
          break;
        }
        if (!classChar()) return badClass;
        if (ch[i] === '-') {
          i++;
          if (!classChar()) return badClass;
        }
      }
    } else if (c === '\\') {
      i += 2;
      if (i > ch.length) return 'trailing backslash (escape a literal backslash as "\\\\")';
    } else {
      i++;
    }
  }
  return null;
}

// ---------------------------------------------------------------------------
// Glob → regexp translation, as patternmatcher's Pattern.compile

/** How a pattern is matched; the same four modes patternmatcher picks. */
export type MatchKind = 'exact' | 'prefix' | 'suffix' | 'regexp';

/** Translates a cleaned pattern the way patternmatcher does; `regexp` is Go regexp syntax. */
export function translatePattern(pattern: string): { kind: MatchKind; regexp?: string } {
  const cps = Array.from(pattern);
  let re = '^';
  let kind: MatchKind = 'exact';
  let k = 0;
  for (let tok = 0; k < cps.length; tok++) {
    const ch = cps[k++]!;
    if (ch === '*') {
      if (cps[k] === '*') {
        k++;
        if (cps[k] === '/') k++; // `**/` behaves as `**`
        if (k >= cps.length) {
          if (kind === 'exact') kind = 'prefix';
          else {
            re += '.*';
            kind = 'regexp';
          }
        } else {
          re += '(.*/)?'; // any number of directories, including none
          kind = 'regexp';
        }
        if (tok === 0) kind = 'suffix';
      } else {
        re += '[^/]*';
        kind = 'regexp';
      }
    } else if (ch === '?') {
      re += '[^/]';
      kind = 'regexp';
    } else if (ch.length === 1 && '.+()|{}$'.includes(ch)) {
      re += '\\' + ch;
    } else if (ch === '\\') {
      if (k < cps.length) {
        re += '\\' + cps[k++]!;
        kind = 'regexp';
      } else re += '\\';
    } else if (ch === '[' || ch === ']') {
      re += ch;
      kind = 'regexp';
    } else {
      re += ch;
    }
  }
  if (kind !== 'regexp') return { kind };
  return { kind, regexp: re + '$' };
}

// ---------------------------------------------------------------------------
// A linear-time engine for the subset of Go (RE2, Perl flags) syntax the
// translation can produce. User text reaches it through `[...]`, `^` and `\x`.

/** A pattern problem, turned into a HoistError by the caller that knows file and line. */
class PatternSyntaxError extends Error {}

const MAX_RUNE = 0x10ffff;

type ReNode =
  | { k: 'set'; r: number[] } // sorted, merged [lo, hi, lo, hi, ...]
  | { k: 'cat'; items: ReNode[] }
  | { k: 'rep'; op: string; sub: ReNode }
  | { k: 'bot' }
  | { k: 'eot' };

function normRanges(r: number[]): number[] {
  const pairs: [number, number][] = [];
  for (let i = 0; i < r.length; i += 2) pairs.push([r[i]!, r[i + 1]!]);
  pairs.sort((a, b) => a[0] - b[0]);
  const out: number[] = [];
  for (const [lo, hi] of pairs) {
    if (out.length > 0 && lo <= out[out.length - 1]! + 1) out[out.length - 1] = Math.max(out[out.length - 1]!, hi);
    else out.push(lo, hi);
  }
  return out;
}

function negRanges(r: number[]): number[] {
  const n = normRanges(r);
  const out: number[] = [];
  let next = 0;
  for (let i = 0; i < n.length; i += 2) {
    if (n[i]! > next) out.push(next, n[i]! - 1);
    next = n[i + 1]! + 1;
  }
  if (next <= MAX_RUNE) out.push(next, MAX_RUNE);
  return out;
}

const cp = (s: string): number => s.codePointAt(0)!;
const rng = (s: string): number[] => {
  // "a-z0-9_" style, ASCII only
  const out: number[] = [];
  for (let i = 0; i < s.length; i++) {
    if (s[i + 1] === '-' && i + 2 < s.length) {
      out.push(cp(s[i]!), cp(s[i + 2]!));
      i += 2;
    } else out.push(cp(s[i]!), cp(s[i]!));
  }
  return out;
};

/** Perl classes as Go defines them (ASCII only). */
const PERL: Record<string, number[]> = {
  d: rng('0-9'),
  s: rng('\t\n\f\r '),
  w: rng('0-9A-Za-z_'),
};

/** POSIX classes as Go's regexp/syntax defines them. */
const POSIX: Record<string, number[]> = {
  alnum: rng('0-9A-Za-z'),
  alpha: rng('A-Za-z'),
  ascii: [0, 0x7f],
  blank: rng('\t '),
  cntrl: [0, 0x1f, 0x7f, 0x7f],
  digit: rng('0-9'),
  graph: [0x21, 0x7e],
  lower: rng('a-z'),
  print: [0x20, 0x7e],
  punct: [0x21, 0x2f, 0x3a, 0x40, 0x5b, 0x60, 0x7b, 0x7e],
  space: rng('\t\n\v\f\r '),
  upper: rng('A-Z'),
  word: rng('0-9A-Za-z_'),
  xdigit: rng('0-9A-Fa-f'),
};

const isAlnum = (c: number): boolean => (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
const unhex = (c: number | undefined): number => {
  if (c === undefined) return -1;
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
};

class ReParser {
  private i = 0;
  private readonly s: number[];

  constructor(src: string) {
    this.s = Array.from(src, cp);
  }

  parse(): ReNode {
    const node = this.seq(0);
    if (this.i < this.s.length) throw new PatternSyntaxError('unexpected ")" in translated expression');
    return node;
  }

  private text(from: number, to: number): string {
    return String.fromCodePoint(...this.s.slice(from, to));
  }

  private unsupported(what: string): never {
    throw new PatternSyntaxError(
      `uses the Go regexp feature ${what}, which BuildKit passes through but hoist does not support; write the character literally or use a [...] class`,
    );
  }

  private seq(depth: number): ReNode {
    const items: ReNode[] = [];
    let lastRepeat = false;
    const s = this.s;
    while (this.i < s.length) {
      const c = s[this.i]!;
      const ch = String.fromCodePoint(c);
      if (ch === ')') {
        if (depth === 0) throw new PatternSyntaxError('unexpected ")"');
        break;
      }
      if (ch === '*' || ch === '+' || ch === '?') {
        const start = this.i++;
        if (s[this.i] === cp('?')) this.i++; // non-greedy: the same strings match
        if (items.length === 0) throw new PatternSyntaxError(`missing argument to repetition operator: ${ch}`);
        if (lastRepeat) throw new PatternSyntaxError(`invalid nested repetition operator: ${this.text(start - 1, this.i)}`);
        items[items.length - 1] = { k: 'rep', op: ch, sub: items[items.length - 1]! };
        lastRepeat = true;
        continue;
      }
      lastRepeat = false;
      if (ch === '|') this.unsupported('"|"');
      if (ch === '(') {
        if (s[this.i + 1] === cp('?')) this.unsupported('"(?"');
        this.i++;
        const sub = this.seq(depth + 1);
        if (s[this.i] !== cp(')')) throw new PatternSyntaxError('missing closing )');
        this.i++;
        items.push(sub);
      } else if (ch === '^') {
        this.i++;
        items.push({ k: 'bot' });
      } else if (ch === '$') {
        this.i++;
        items.push({ k: 'eot' });
      } else if (ch === '.') {
        this.i++;
        items.push({ k: 'set', r: [0, 9, 11, MAX_RUNE] }); // `.` stops at newline in Go
      } else if (ch === '[') {
        items.push({ k: 'set', r: this.cls() });
      } else if (ch === '\\') {
        const n = s[this.i + 1];
        const nc = n === undefined ? '' : String.fromCodePoint(n);
        if (nc === 'A' || nc === 'z') {
          this.i += 2;
          items.push({ k: nc === 'A' ? 'bot' : 'eot' });
        } else if (nc === 'b' || nc === 'B') {
          this.unsupported(`\\${nc}`);
        } else if (nc === 'p' || nc === 'P') {
          this.unsupported(`\\${nc}`);
        } else if (nc === 'Q') {
          this.i += 2;
          while (this.i < s.length && !(s[this.i] === cp('\\') && s[this.i + 1] === cp('E'))) {
            items.push({ k: 'set', r: [s[this.i]!, s[this.i]!] });
            this.i++;
          }
          if (this.i < s.length) this.i += 2;
        } else if (nc in PERL || nc.toLowerCase() in PERL) {
          this.i += 2;
          const base = PERL[nc.toLowerCase()]!;
          items.push({ k: 'set', r: nc === nc.toLowerCase() ? base : negRanges(base) });
        } else {
          const r = this.escape();
          items.push({ k: 'set', r: [r, r] });
        }
      } else {
        this.i++;
        items.push({ k: 'set', r: [c, c] });
      }
    }
    return items.length === 1 ? items[0]! : { k: 'cat', items };
  }

  /** Go's parseEscape: the escape at this.i as one code point. */
  private escape(): number {
    const s = this.s;
    const start = this.i;
    this.i++;
    const c = s[this.i++];
    if (c === undefined) throw new PatternSyntaxError('trailing backslash at end of expression');
    if (c < 0x80 && !isAlnum(c)) return c;
    const octal = (x: number | undefined): boolean => x !== undefined && x >= 48 && x <= 55;
    if ((c >= 49 && c <= 55 && octal(s[this.i])) || c === 48) {
      let r = c - 48;
      for (let n = 1; n < 3 && octal(s[this.i]); n++) r = r * 8 + s[this.i++]! - 48;
      return r;
    }
    if (c === cp('x')) {
      if (s[this.i] === cp('{')) {
        this.i++;
        let r = 0;
        let n = 0;
        while (s[this.i] !== cp('}')) {
          const v = unhex(s[this.i++]);
          if (v < 0) throw this.badEscape(start);
          r = r * 16 + v;
          if (r > MAX_RUNE) throw this.badEscape(start);
          n++;
        }
        this.i++;
        if (n === 0) throw this.badEscape(start);
        return r;
      }
      const x = unhex(s[this.i++]);
      const y = unhex(s[this.i++]);
      if (x < 0 || y < 0) throw this.badEscape(start);
      return x * 16 + y;
    }
    const simple: Record<string, number> = { a: 7, f: 12, n: 10, r: 13, t: 9, v: 11 };
    const v = simple[String.fromCodePoint(c)];
    if (v !== undefined) return v;
    throw this.badEscape(start);
  }

  private badEscape(start: number): PatternSyntaxError {
    return new PatternSyntaxError(`invalid escape sequence: ${this.text(start, Math.min(this.i, this.s.length))}`);
  }

  /** Go's parseClass with Perl flags (ClassNL: a negated class also matches newline). */
  private cls(): number[] {
    const s = this.s;
    const start = this.i;
    this.i++;
    let negate = false;
    if (s[this.i] === cp('^')) {
      negate = true;
      this.i++;
    }
    const r: number[] = [];
    const missing = (): PatternSyntaxError =>
      new PatternSyntaxError(`missing closing ]: ${this.text(start, s.length)}`);
    let first = true;
    while (this.i >= s.length || s[this.i] !== cp(']') || first) {
      first = false;
      if (this.i >= s.length) throw missing();
      if (s[this.i] === cp('[') && s[this.i + 1] === cp(':') && this.i + 2 < s.length) {
        const rest = this.text(this.i + 2, s.length);
        const end = rest.indexOf(':]');
        if (end >= 0) {
          const inner = rest.slice(0, end);
          const name = inner.startsWith('^') ? inner.slice(1) : inner;
          const g = Object.hasOwn(POSIX, name) ? POSIX[name] : undefined;
          if (!g) throw new PatternSyntaxError(`invalid character class range: [:${inner}:]`);
          r.push(...(inner.startsWith('^') ? negRanges(g) : g));
          this.i += 2 + Array.from(inner).length + 2;
          continue;
        }
      }
      if (s[this.i] === cp('\\')) {
        const n = s[this.i + 1] === undefined ? '' : String.fromCodePoint(s[this.i + 1]!);
        if (n === 'p' || n === 'P') this.unsupported(`\\${n}`);
        if (n !== '' && n.toLowerCase() in PERL) {
          const base = PERL[n.toLowerCase()]!;
          r.push(...(n === n.toLowerCase() ? base : negRanges(base)));
          this.i += 2;
          continue;
        }
      }
      const from = this.i;
      const lo = this.classChar(missing);
      let hi = lo;
      if (this.i + 1 < s.length && s[this.i] === cp('-') && s[this.i + 1] !== cp(']')) {
        this.i++;
        hi = this.classChar(missing);
        if (hi < lo) throw new PatternSyntaxError(`invalid character class range: ${this.text(from, this.i)}`);
      }
      r.push(lo, hi);
    }
    this.i++;
    return negate ? negRanges(r) : normRanges(r);
  }

  private classChar(missing: () => PatternSyntaxError): number {
    if (this.i >= this.s.length) throw missing();
    if (this.s[this.i] === cp('\\')) return this.escape();
    return this.s[this.i++]!;
  }
}

/** NFA state: 0 = consume a rune in `r`, 1 = split, 2 = begin-of-text, 3 = end-of-text, 4 = match. */
interface NState {
  t: 0 | 1 | 2 | 3 | 4;
  r?: number[];
  out?: NState;
  out1?: NState;
  mark: number;
}

function buildNfa(n: ReNode, next: NState): NState {
  switch (n.k) {
    case 'set':
      return { t: 0, r: n.r, out: next, mark: -1 };
    case 'bot':
      return { t: 2, out: next, mark: -1 };
    case 'eot':
      return { t: 3, out: next, mark: -1 };
    case 'cat': {
      let cur = next;
      for (let j = n.items.length - 1; j >= 0; j--) cur = buildNfa(n.items[j]!, cur);
      return cur;
    }
    case 'rep': {
      if (n.op === '?') return { t: 1, out: buildNfa(n.sub, next), out1: next, mark: -1 };
      const split: NState = { t: 1, out1: next, mark: -1 };
      const body = buildNfa(n.sub, split);
      split.out = body;
      return n.op === '*' ? split : body;
    }
  }
}

function inRanges(r: number[], c: number): boolean {
  for (let i = 0; i < r.length; i += 2) {
    if (c < r[i]!) return false;
    if (c <= r[i + 1]!) return true;
  }
  return false;
}

/** Generation counter for NFA state de-duplication; states are shared between runs. */
let generation = 0;

/** Runs the NFA over `text` from position 0 (translated patterns always start with `^`). */
function runNfa(start: NState, text: string): boolean {
  const cps = Array.from(text, cp);
  const end = cps.length;
  const add = (list: NState[], s: NState, pos: number): void => {
    const stack: NState[] = [s];
    while (stack.length > 0) {
      const x = stack.pop()!;
      if (x.mark === generation) continue;
      x.mark = generation;
      if (x.t === 0 || x.t === 4) list.push(x);
      else if (x.t === 1) stack.push(x.out1!, x.out!);
      else if ((x.t === 2 && pos === 0) || (x.t === 3 && pos === end)) stack.push(x.out!);
    }
  };
  let cur: NState[] = [];
  generation++;
  add(cur, start, 0);
  for (let i = 0; i < end && cur.length > 0; i++) {
    const next: NState[] = [];
    generation++;
    for (const x of cur) if (x.t === 0 && inRanges(x.r!, cps[i]!)) add(next, x.out!, i + 1);
    cur = next;
  }
  return cur.some((x) => x.t === 4);
}

/** Compiles Go regexp text into a matcher; throws PatternSyntaxError. */
function compileRegexp(re: string): (s: string) => boolean {
  const start = buildNfa(new ReParser(re).parse(), { t: 4, mark: -1 });
  return (s) => runNfa(start, s);
}

// ---------------------------------------------------------------------------
// Patterns and the matcher

class CompiledPattern {
  readonly kind: MatchKind;
  private readonly test: (path: string) => boolean;

  constructor(
    readonly pattern: string,
    readonly exclusion: boolean,
  ) {
    const why = globSyntaxError(pattern);
    if (why) throw new PatternSyntaxError(why);
    const t = translatePattern(pattern);
    this.kind = t.kind;
    switch (t.kind) {
      case 'exact':
        this.test = (p) => p === pattern;
        break;
      case 'prefix': {
        const prefix = pattern.slice(0, -2);
        this.test = (p) => p.startsWith(prefix);
        break;
      }
      case 'suffix': {
        const suffix = pattern.slice(2);
        // `**/foo` also matches a top-level `foo`
        this.test = (p) => p.endsWith(suffix) || (suffix.startsWith('/') && p === suffix.slice(1));
        break;
      }
      case 'regexp':
        this.test = compileRegexp(t.regexp!);
        break;
    }
  }

  match(path: string): boolean {
    return this.test(path);
  }
}

function patternError(file: string | null, line: number, text: string, why: string): HoistError {
  const where = file ? `${file}${line > 0 ? `:${line}` : ''}: ` : '';
  return new HoistError('E_DOCKERIGNORE', `${where}invalid ignore pattern ${JSON.stringify(text)}: ${why}`, {
    hint: file ? `fix or remove line ${line} of ${file}` : 'fix or remove the pattern',
  });
}

/** patternmatcher.New's per-pattern step: trim, clean, split off `!`, validate. */
function compileEntry(raw: string, file: string | null, line: number, text = raw): CompiledPattern | null {
  let p = goTrimSpace(raw);
  if (p === '') return null;
  p = goClean(p);
  let exclusion = false;
  if (p.startsWith('!')) {
    if (p.length === 1) throw patternError(file, line, text, 'an exception "!" needs a pattern after it');
    exclusion = true;
    p = p.slice(1);
  }
  try {
    return new CompiledPattern(p, exclusion);
  } catch (e) {
    if (e instanceof PatternSyntaxError) throw patternError(file, line, text, e.message);
    throw e;
  }
}

/**
 * Parses ignore-file text like BuildKit's ignorefile.ReadAll and validates every
 * pattern like patternmatcher.New; invalid patterns throw E_DOCKERIGNORE naming
 * `file`, the line and the pattern.
 */
export function parseDockerignore(text: string, file = '.dockerignore'): IgnorePattern[] {
  const out: IgnorePattern[] = [];
  if (text.startsWith('\ufeff')) text = text.slice(1);
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop(); // a final newline ends the last line, it does not start one
  lines.forEach((rawLine, idx) => {
    const lineNo = idx + 1;
    const line = rawLine.endsWith('\r') ? rawLine.slice(0, -1) : rawLine;
    if (Buffer.byteLength(rawLine) >= MAX_LINE_BYTES) {
      throw new HoistError('E_DOCKERIGNORE', `${file}:${lineNo}: line is longer than 64 KiB`, {
        hint: `BuildKit refuses such files too; shorten line ${lineNo} of ${file}`,
      });
    }
    if (line.startsWith('#')) return; // only a `#` in the first column starts a comment
    let p = goTrimSpace(line);
    if (p === '') return;
    const invert = p.startsWith('!');
    if (invert) p = goTrimSpace(p.slice(1));
    if (p.length > 0) {
      p = goClean(p);
      if (p.length > 1 && p.startsWith('/')) p = p.slice(1);
    }
    const raw = invert ? '!' + p : p;
    const compiled = compileEntry(raw, file, lineNo, goTrimSpace(line))!;
    out.push({ raw, pattern: compiled.pattern, exclusion: compiled.exclusion, line: lineNo });
  });
  return out;
}

/** Decides which context paths an ignore file excludes (patternmatcher semantics: last match wins). */
export class IgnoreMatcher {
  private readonly patterns: CompiledPattern[] = [];
  private readonly hasExclusions: boolean;

  /** Accepts parsed patterns or plain strings (treated like patternmatcher.New's input). */
  constructor(patterns: ReadonlyArray<IgnorePattern | string>, file: string | null = null) {
    for (const p of patterns) {
      const c = typeof p === 'string' ? compileEntry(p, file, 0) : compileEntry(p.raw, file, p.line);
      if (c) this.patterns.push(c);
    }
    this.hasExclusions = this.patterns.some((p) => p.exclusion);
  }

  /** True when there are no patterns at all. */
  get empty(): boolean {
    return this.patterns.length === 0;
  }

  /** True when some pattern is a `!` exception. */
  get exclusions(): boolean {
    return this.hasExclusions;
  }

  /**
   * patternmatcher's MatchesExact: the path itself against the patterns, no parent
   * matching. Like patternmatcher, paths are taken as given: pass clean
   * context-relative POSIX paths (`src/a.ts`, not `./src/a.ts`).
   */
  matches(relPath: string): boolean {
    const file = relPath;
    if (file === '.' || file === '') return false; // the context root itself is never excluded
    let matched = false;
    for (const pat of this.patterns) {
      if (pat.exclusion !== matched) continue;
      if (pat.match(file)) matched = !pat.exclusion;
    }
    return matched;
  }

  /**
   * patternmatcher's MatchesOrParentMatches: a pattern also applies when it matches
   * one of the path's parent directories, so excluding `docs` excludes `docs/a/b`.
   */
  matchesOrParentMatches(relPath: string): boolean {
    const file = relPath;
    if (file === '.' || file === '') return false;
    const parent = goDir(file);
    const parents: string[] = [];
    if (parent !== '.') {
      const dirs = parent.split('/');
      for (let i = 0; i < dirs.length; i++) parents.push(dirs.slice(0, i + 1).join('/'));
    }
    let matched = false;
    for (const pat of this.patterns) {
      if (pat.exclusion !== matched) continue;
      const m = pat.match(file) || parents.some((d) => pat.match(d));
      if (m) matched = !pat.exclusion;
    }
    return matched;
  }

  /**
   * True when some `!` exception could re-include something below `dirRelPath`, so a
   * walker must descend into it even though it is excluded (fsutil's rule: an
   * exception with wildcards could match anywhere; a literal one only under its own path).
   */
  mayIncludeUnder(dirRelPath: string): boolean {
    if (!this.hasExclusions) return false;
    const dir = normRel(dirRelPath);
    if (dir === '.') return true;
    for (const pat of this.patterns) {
      if (!pat.exclusion) continue;
      let s = pat.pattern;
      if (s.endsWith('/**')) s = s.slice(0, -3);
      else if (s.endsWith('/*')) s = s.slice(0, -2);
      if (/[*[\]?^\\]/.test(s)) return true;
      if ((s + '/').startsWith(dir + '/')) return true;
    }
    return false;
  }
}

/** Context-relative POSIX path: leading `/` and `./` dropped, `..` folded. */
function normRel(p: string): string {
  return goClean(p.replace(/^\/+/, ''));
}

// ---------------------------------------------------------------------------
// Finding and reading the ignore file

/**
 * Resolves `name` inside `root` the way a chroot would (absolute symlink targets restart
 * at root, `..` stops at root), so a symlinked ignore file can never be read from
 * outside. Returns null when it does not exist.
 */
async function resolveInRoot(root: string, name: string): Promise<{ path: string; stat: Stats } | null> {
  const cur: string[] = [];
  const pending = [name];
  let hops = 0;
  let st: Stats | null = null;
  while (pending.length > 0) {
    const c = pending.shift()!;
    if (c === '' || c === '.') continue;
    if (c === '..') {
      cur.pop();
      continue;
    }
    const p = join(root, ...cur, c);
    try {
      st = await lstat(p);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return null;
      throw e;
    }
    if (st.isSymbolicLink()) {
      if (++hops > MAX_SYMLINK_HOPS) {
        throw new HoistError('E_DOCKERIGNORE', `${join(root, name)}: too many levels of symbolic links`, {
          hint: 'replace the symlink loop with a regular file',
        });
      }
      const target = await readlink(p);
      if (target.startsWith('/')) cur.length = 0;
      pending.unshift(...target.split('/'));
      continue;
    }
    if (pending.some((x) => x !== '' && x !== '.') && !st.isDirectory()) return null;
    cur.push(c);
  }
  if (!st || cur.length === 0) return null;
  const path = join(root, ...cur);
  // Re-stat: a trailing `..` may have left `st` describing a component that was popped.
  return { path, stat: await lstat(path) };
}

async function readIgnoreFile(root: string, name: string): Promise<{ file: string; text: string } | null> {
  let found: { path: string; stat: Stats } | null;
  try {
    found = await resolveInRoot(root, name);
  } catch (e) {
    if (e instanceof HoistError) throw e;
    throw new HoistError('E_DOCKERIGNORE', `cannot read ${join(root, name)}: ${(e as Error).message}`, {
      hint: 'check the permissions of the build context',
      cause: e,
    });
  }
  // BuildKit treats an ignore "file" it cannot read as a file (a directory, a FIFO) as absent.
  if (!found || !found.stat.isFile()) return null;
  const file = join(root, name);
  if (found.stat.size > MAX_IGNORE_FILE_BYTES) {
    throw new HoistError('E_DOCKERIGNORE', `${file} is ${found.stat.size} bytes; refusing ignore files over 16 MiB`, {
      hint: 'an ignore file lists patterns; this one is probably not what you meant',
    });
  }
  let data: Buffer;
  try {
    data = await readFile(found.path);
  } catch (e) {
    throw new HoistError('E_DOCKERIGNORE', `cannot read ${file}: ${(e as Error).message}`, {
      hint: 'check the permissions of the ignore file',
      cause: e,
    });
  }
  return { file, text: new TextDecoder('utf-8').decode(data) };
}

/**
 * Reads the ignore patterns for a build: `<Dockerfile>.dockerignore` beside the
 * Dockerfile (e.g. `build/app.Dockerfile.dockerignore`) wins over
 * `<context>/.dockerignore`; with neither, there are no patterns. `dockerfilePath`
 * is resolved against the working directory like `-f`; omitted, it is
 * `<context>/Dockerfile`; `-` (Dockerfile on stdin) skips the Dockerfile-specific file.
 */
export async function readDockerignore(
  contextDir: string,
  dockerfilePath?: string,
): Promise<{ file: string | null; patterns: IgnorePattern[] }> {
  const ctx = resolve(contextDir);
  if (dockerfilePath !== '-') {
    const df = dockerfilePath === undefined ? join(ctx, 'Dockerfile') : resolve(dockerfilePath);
    const specific = await readIgnoreFile(dirname(df), basename(df) + '.dockerignore');
    if (specific) return { file: specific.file, patterns: parseDockerignore(specific.text, specific.file) };
  }
  const general = await readIgnoreFile(ctx, '.dockerignore');
  if (general) return { file: general.file, patterns: parseDockerignore(general.text, general.file) };
  return { file: null, patterns: [] };
}

// ---------------------------------------------------------------------------
// Walking the context

/** One context entry that survives the ignore file. */
export interface ContextEntry {
  /** Context-relative POSIX path, e.g. `src/main.ts`. */
  path: string;
  /** lstat of the entry (symlinks are reported, never followed). */
  stat: Stats;
}

const byBytes = (a: string, b: string): number => Buffer.compare(Buffer.from(a), Buffer.from(b));

/**
 * Lists non-ignored context entries depth-first, names in byte order. An excluded
 * directory is entered only when an exception may re-include something in it; it is
 * then reported just before the first re-included entry below it.
 */
export async function* walkContext(contextDir: string, matcher: IgnoreMatcher): AsyncGenerator<ContextEntry> {
  const root = resolve(contextDir);
  let st: Stats;
  try {
    st = await lstat(root);
  } catch (e) {
    throw new HoistError('E_CONTEXT', `build context ${root} does not exist or cannot be read`, {
      hint: 'pass an existing directory as the build context',
      cause: e,
    });
  }
  if (!st.isDirectory()) {
    throw new HoistError('E_CONTEXT', `build context ${root} is not a directory`, {
      hint: 'pass a directory as the build context',
    });
  }
  yield* walkDir(root, '', matcher, []);
}

async function* walkDir(
  root: string,
  rel: string,
  matcher: IgnoreMatcher,
  pending: ContextEntry[],
): AsyncGenerator<ContextEntry> {
  const abs = rel === '' ? root : join(root, rel);
  let names: string[];
  try {
    names = await readdir(abs);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return; // removed while walking
    if (pending.length > 0 && (code === 'EACCES' || code === 'EPERM')) return; // excluded anyway, as fsutil
    throw new HoistError('E_CONTEXT', `cannot read directory ${abs} in the build context: ${(e as Error).message}`, {
      hint: 'fix its permissions or exclude it in .dockerignore',
      cause: e,
    });
  }
  names.sort(byBytes);
  for (const name of names) {
    const path = rel === '' ? name : `${rel}/${name}`;
    let stat: Stats;
    try {
      stat = await lstat(join(abs, name));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw e;
    }
    const entry = { path, stat };
    if (!matcher.matchesOrParentMatches(path)) {
      // Excluded ancestors of a re-included entry are still sent, so the entry has a parent.
      yield* pending.splice(0);
      yield entry;
      if (stat.isDirectory()) yield* walkDir(root, path, matcher, pending);
    } else if (stat.isDirectory() && matcher.mayIncludeUnder(path)) {
      pending.push(entry);
      yield* walkDir(root, path, matcher, pending);
      if (pending[pending.length - 1] === entry) pending.pop();
    }
  }
}
