/**
 * Word expansion for Dockerfile instructions, reproducing BuildKit's shell lexer
 * (frontend/dockerfile/shell/lex.go): quote removal, the escape token (`\` or the
 * backtick), `$name`/`${name}` and the `${name<op>word}` forms, word splitting.
 *
 * It is not a shell: no command substitution, no globbing of file names, no `=`
 * assignment forms. Where BuildKit's behaviour is odd it is kept, because a build
 * must mean the same thing here as under BuildKit; such spots carry a comment.
 */
import { HoistError } from '../util/errors.js';
import { isGoSpace } from './gotext.js';
import { goQuote } from './parser.js';

/** Where variables come from: a Map (or anything with `get`) or a lookup function; `undefined` = unset. */
export type ShellEnv = { get(name: string): string | undefined } | ((name: string) => string | undefined);

/** The two escape tokens the `# escape=` directive allows. */
export type EscapeToken = '\\' | '`';

/** BuildKit's ShellLex knobs, used by the parser (heredoc markers) and the frontend. */
export interface ShellLexerOptions {
  /** Keep quote characters in the output (BuildKit RawQuotes). */
  rawQuotes?: boolean;
  /** Keep escape tokens in the output (BuildKit RawEscapes). */
  rawEscapes?: boolean;
  /** Treat `'` and `"` as ordinary characters (BuildKit SkipProcessQuotes). */
  skipProcessQuotes?: boolean;
  /** Leave references to unset variables as written (BuildKit SkipUnsetEnv). */
  skipUnsetEnv?: boolean;
}

/** Result of {@link ShellLexer.processWordWithMatches}. */
export interface ShellWordResult {
  /** The expanded word (whitespace kept). */
  result: string;
  /** The expanded word split on unquoted whitespace. */
  words: string[];
  /** Names that were looked up and found. */
  matched: Set<string>;
  /** Names that were looked up and not set. */
  unmatched: Set<string>;
}

/**
 * Substitutions nest through recursion; BuildKit (Go) has growable stacks, we do
 * not, so absurd nesting is refused instead of overflowing the stack.
 */
const MAX_NESTING = 500;

/** A BuildKit-compatible shell-word lexer for one escape token. Not safe for concurrent re-entry. */
export class ShellLexer {
  readonly escapeToken: EscapeToken;
  rawQuotes: boolean;
  rawEscapes: boolean;
  skipProcessQuotes: boolean;
  skipUnsetEnv: boolean;

  constructor(escapeToken: string = '\\', opts: ShellLexerOptions = {}) {
    if (escapeToken !== '\\' && escapeToken !== '`') {
      throw new HoistError('E_SHELL', `invalid escape token ${goQuote(escapeToken)}`, {
        hint: 'the escape directive accepts only \\ or `',
      });
    }
    this.escapeToken = escapeToken;
    this.rawQuotes = opts.rawQuotes ?? false;
    this.rawEscapes = opts.rawEscapes ?? false;
    this.skipProcessQuotes = opts.skipProcessQuotes ?? false;
    this.skipUnsetEnv = opts.skipUnsetEnv ?? false;
  }

  /** Expands variables and removes quotes and escapes; whitespace inside the word is kept. */
  processWord(word: string, env: ShellEnv): string {
    return run(this, word, env, true).result;
  }

  /** Expands, then splits on unquoted whitespace (whitespace that came from a variable splits too). */
  processWords(word: string, env: ShellEnv): string[] {
    return run(this, word, env, false).words;
  }

  /** Like processWord, also telling which variable names were found and which were not. */
  processWordWithMatches(word: string, env: ShellEnv): ShellWordResult {
    return run(this, word, env, true);
  }
}

/** A lexing failure; turned into a HoistError naming the whole word at the top. */
class LexFail {
  constructor(readonly message: string, readonly hint?: string, readonly remappable = true) {}
}

const HINT_SYNTAX = 'check the ${...} syntax; write a literal $ as \\$ (or `$ with the backtick escape token)';
const HINT_QUOTE = 'close the quote, or escape the quote character to keep it literally';

function run(lx: ShellLexer, word: string, env: ShellEnv, capture: boolean): ShellWordResult {
  const w = new WordRun(lx, word, env, capture);
  try {
    const { text, words } = w.stopOn(EOF, lx.rawEscapes);
    return { result: text, words, matched: w.matched, unmatched: w.unmatched };
  } catch (e) {
    if (e instanceof LexFail) {
      throw new HoistError('E_SHELL', `failed to process ${goQuote(word)}: ${e.message}`, { hint: e.hint });
    }
    throw e;
  }
}

/** End of input; no code point is the empty string. */
const EOF = '';

/** Go prints rune -1 (scanner.EOF) as U+FFFD in messages; keep that for identical errors. */
function goRune(ch: string): string {
  return ch === EOF ? '\ufffd' : ch;
}

const reDigit = /^\p{Nd}$/u;
const reLetter = /^\p{L}$/u;
const isDigit = (ch: string): boolean => ch !== EOF && reDigit.test(ch);
const isLetter = (ch: string): boolean => ch !== EOF && reLetter.test(ch);

/** POSIX special parameters; never set in a Dockerfile, but they end a name. */
function isSpecialParam(ch: string): boolean {
  return ch.length === 1 && '@*#?-$!0'.includes(ch);
}

/** State of one expansion: a cursor over the word's code points. */
class WordRun {
  private readonly s: string[];
  private i: number;
  private rawEscapes: boolean;
  /**
   * The word being accumulated for splitting. BuildKit keeps one such buffer per
   * lexer and every nested `${...}` clears it, so text before a `${x:-...}`-style
   * substitution in the same word is dropped from processWords' output. Shared
   * here on purpose to give the same words.
   */
  private wordBuf = '';
  private depth = 0;
  readonly matched = new Set<string>();
  readonly unmatched = new Set<string>();

  constructor(private readonly lx: ShellLexer, word: string, private readonly env: ShellEnv, private readonly capture: boolean) {
    this.s = Array.from(word);
    // Go's text/scanner skips a byte-order mark at the very start.
    this.i = this.s[0] === '\ufeff' ? 1 : 0;
    this.rawEscapes = lx.rawEscapes;
  }

  private peek(): string {
    return this.i < this.s.length ? this.s[this.i] : EOF;
  }

  private next(): string {
    return this.i < this.s.length ? this.s[this.i++] : EOF;
  }

  /** Reads up to `stop` (consumed) or the end when stop is EOF. */
  stopOn(stop: string, rawEscapes: boolean): { text: string; words: string[] } {
    const saved = this.rawEscapes;
    this.rawEscapes = rawEscapes;
    try {
      return this.stopOnInner(stop);
    } finally {
      this.rawEscapes = saved;
    }
  }

  private stopOnInner(stop: string): { text: string; words: string[] } {
    const esc = this.lx.escapeToken;
    const quotes = !this.lx.skipProcessQuotes;
    let text = '';
    const words: string[] = [];
    let inWord = false;
    this.wordBuf = '';
    const addRaw = (str: string): void => {
      this.wordBuf += str;
      inWord = true;
    };
    const addChar = (ch: string): void => {
      if (isGoSpace(ch)) {
        if (inWord && this.wordBuf.length > 0) {
          words.push(this.wordBuf);
          this.wordBuf = '';
          inWord = false;
        }
      } else {
        addRaw(ch);
      }
    };
    const getWords = (): string[] => {
      if (this.wordBuf.length > 0) {
        words.push(this.wordBuf);
        this.wordBuf = '';
        inWord = false;
      }
      return words;
    };

    while (this.peek() !== EOF) {
      const ch = this.peek();
      if (stop !== EOF && ch === stop) {
        this.next();
        return { text, words: getWords() };
      }
      if (ch === '$') {
        const v = this.dollar();
        text += v;
        // Expanded values split on their whitespace, like an unquoted shell expansion.
        for (const c of v) addChar(c);
      } else if (ch === '<') {
        const v = this.possibleHeredoc();
        text += v;
        addRaw(v);
      } else if (quotes && ch === "'") {
        const v = this.singleQuoted();
        text += v;
        addRaw(v);
      } else if (quotes && ch === '"') {
        const v = this.doubleQuoted();
        text += v;
        addRaw(v);
      } else {
        let c = this.next();
        if (c === esc) {
          if (this.rawEscapes) {
            addRaw(c);
            text += c;
          }
          c = this.next();
          // An escape at the very end is dropped (a line continuation already joined).
          if (c === EOF) break;
          addRaw(c);
        } else {
          addChar(c);
        }
        text += c;
      }
    }
    if (stop !== EOF) {
      throw new LexFail(`unexpected end of statement while looking for matching ${stop}`, HINT_SYNTAX);
    }
    return { text, words: getWords() };
  }

  private singleQuoted(): string {
    const raw = this.lx.rawQuotes;
    let out = '';
    const q = this.next();
    if (raw) out += q;
    for (;;) {
      const c = this.next();
      if (c === EOF) throw new LexFail('unexpected end of statement while looking for matching single-quote', HINT_QUOTE);
      if (c === "'") {
        if (raw) out += c;
        return out;
      }
      out += c;
    }
  }

  private doubleQuoted(): string {
    const raw = this.lx.rawQuotes;
    const esc = this.lx.escapeToken;
    let out = '';
    const q = this.next();
    if (raw) out += q;
    for (;;) {
      const p = this.peek();
      if (p === EOF) throw new LexFail('unexpected end of statement while looking for matching double-quote', HINT_QUOTE);
      if (p === '"') {
        this.next();
        if (raw) out += p;
        return out;
      }
      if (p === '$') {
        out += this.dollar();
        continue;
      }
      let c = this.next();
      if (c === esc) {
        if (this.rawEscapes) out += c;
        const n = this.peek();
        if (n === EOF) continue;
        // Inside double quotes only ", $ and the escape token itself can be escaped;
        // before anything else the escape token stays literal.
        if (n === '"' || n === '$' || n === esc) c = this.next();
      }
      out += c;
    }
  }

  /** `<<` followed by blanks is kept together so heredoc markers survive word splitting. */
  private possibleHeredoc(): string {
    this.next();
    if (this.peek() !== '<') return '<';
    this.next();
    let out = '<<';
    for (let p = this.peek(); p === ' ' || p === '\t' || p === '\r'; p = this.peek()) out += this.next();
    return out;
  }

  private lookup(name: string): string | undefined {
    const env = this.env;
    const v = typeof env === 'function' ? env(name) : env.get(name);
    const value = typeof v === 'string' ? v : undefined;
    if (this.capture) (value === undefined ? this.unmatched : this.matched).add(name);
    return value;
  }

  private readName(): string {
    let name = '';
    while (this.peek() !== EOF) {
      const ch = this.peek();
      if (name === '' && isDigit(ch)) {
        // Positional parameters take every following digit: $123abc is ${123}abc.
        while (isDigit(this.peek())) name += this.next();
        return name;
      }
      if (name === '' && isSpecialParam(ch)) return this.next();
      if (!isLetter(ch) && !isDigit(ch) && ch !== '_') break;
      name += this.next();
    }
    return name;
  }

  /** Reads a nested word up to `stop`; running out of input reports `missing`. */
  private nested(stop: string, rawEscapes: boolean, missing: string): string {
    try {
      return this.stopOn(stop, rawEscapes).text;
    } catch (e) {
      if (e instanceof LexFail && e.remappable && this.peek() === EOF) throw new LexFail(missing, HINT_SYNTAX);
      throw e;
    }
  }

  private dollar(): string {
    if (++this.depth > MAX_NESTING) {
      throw new LexFail(`substitutions nested more than ${MAX_NESTING} levels deep`, 'simplify the word', false);
    }
    try {
      return this.dollarInner();
    } finally {
      this.depth--;
    }
  }

  private dollarInner(): string {
    this.next(); // the $
    const skipUnset = this.lx.skipUnsetEnv;

    if (this.peek() !== '{') {
      const name = this.readName();
      if (name === '') return '$';
      const v = this.lookup(name);
      if (v === undefined && skipUnset) return '$' + name;
      return v ?? '';
    }

    this.next(); // the {
    const first = this.peek();
    if (first === EOF) throw new LexFail("syntax error: missing '}'", HINT_SYNTAX);
    if (first === '{' || first === '}' || first === ':') throw new LexFail('syntax error: bad substitution', HINT_SYNTAX);
    const name = this.readName();
    let op = this.next();
    let mod = goRune(op);

    if (op === '}') {
      const v = this.lookup(name);
      if (v === undefined && skipUnset) return '${' + name + '}';
      return v ?? '';
    }
    if (op === '/') return this.replace(name);

    let nullIsUnset = false;
    if (op === ':') {
      // BuildKit reads whatever follows the colon and only then checks the operator,
      // so `${a:x}` fails as "unsupported modifier (:x)" after reading up to `}`.
      nullIsUnset = true;
      op = this.next();
      mod += goRune(op);
    } else if (op !== '+' && op !== '-' && op !== '?' && op !== '#' && op !== '%') {
      throw new LexFail(`unsupported modifier (${mod}) in substitution`, HINT_SYNTAX);
    }

    const trims = op === '#' || op === '%';
    if (nullIsUnset && trims) throw new LexFail(`unsupported modifier (${mod}) in substitution`, HINT_SYNTAX);
    // Trim patterns keep their escapes: the pattern compiler gives them meaning.
    let word = this.nested('}', trims, "syntax error: missing '}'");

    const v = this.lookup(name);
    if (v === undefined && skipUnset) return '${' + name + mod + word + '}';
    const value = v ?? '';
    const empty = v === undefined || (nullIsUnset && value === '');

    switch (op) {
      case '-':
        return empty ? word : value;
      case '+':
        return empty ? '' : word;
      case '?':
        if (v === undefined) {
          throw new LexFail(`${name}: ${word || 'is not allowed to be unset'}`, `set ${name} (ENV, ARG or --build-arg) before this line`);
        }
        if (nullIsUnset && value === '') {
          throw new LexFail(`${name}: ${word || 'is not allowed to be empty'}`, `give ${name} a non-empty value before this line`);
        }
        return value;
      case '#':
      case '%': {
        // `##`/`%%` remove the longest match, `#`/`%` the shortest.
        const greedy = word.startsWith(op);
        if (greedy) word = word.slice(1);
        return op === '%' ? trimSuffix(word, value, greedy) : trimPrefix(word, value, greedy);
      }
      default:
        throw new LexFail(`unsupported modifier (${mod}) in substitution`, HINT_SYNTAX);
    }
  }

  /** `${name/pattern/replacement}` and `${name//pattern/replacement}`. */
  private replace(name: string): string {
    const all = this.peek() === '/';
    if (all) this.next();
    const pattern = this.nested('/', true, "syntax error: missing '/' in ${}");
    const replacement = this.nested('}', true, "syntax error: missing '}'");
    const v = this.lookup(name);
    // BuildKit writes a single slash back here even for `//`; kept for identical output.
    if (v === undefined && this.lx.skipUnsetEnv) return '${' + name + '/' + pattern + '/' + replacement + '}';
    const pat = compilePattern(pattern, true);
    const text = Array.from(v ?? '');
    if (!all) {
      const m = search(pat, text, 0, false);
      if (!m) return text.join('');
      return text.slice(0, m[0]).join('') + replacement + text.slice(m[1]).join('');
    }
    return replaceAll(pat, text, replacement);
  }
}

// ---------------------------------------------------------------------------
// Patterns. BuildKit turns a pattern into a Go regexp: `*` is `.*` (or `.*?` for
// the shortest match), `?` is `.`, `\*` `\?` `\\` are literals, `\}` and `\/` are
// the plain characters, any other escape is an error, every other character is
// literal (no bracket expressions). Go's `.` does not match a newline. We match
// with a small Pike VM instead of a JS RegExp: same leftmost-first answers, no
// exponential backtracking on hostile patterns.

type Atom = { t: 'lit'; c: string } | { t: 'any' } | { t: 'star' };

interface Pattern {
  atoms: Atom[];
  greedy: boolean;
}

function compilePattern(pattern: string, greedy: boolean): Pattern {
  const p = Array.from(pattern);
  let i = p[0] === '\ufeff' ? 1 : 0; // text/scanner again
  const atoms: Atom[] = [];
  while (i < p.length) {
    const c = p[i++];
    if (c === '*') {
      // `.*.*` matches exactly what `.*` does; collapsing keeps the VM shallow.
      if (atoms.length === 0 || atoms[atoms.length - 1].t !== 'star') atoms.push({ t: 'star' });
    } else if (c === '?') {
      atoms.push({ t: 'any' });
    } else if (c === '\\') {
      const n = i < p.length ? p[i] : EOF;
      if (n === '}' || n === '/') continue;
      i++;
      if (n !== '*' && n !== '?' && n !== '\\') {
        throw new LexFail(`invalid pattern (${pattern}) in substitution: invalid escape '\\${goRune(n)}'`,
          'in patterns only \\*, \\?, \\\\, \\} and \\/ are escapes');
      }
      atoms.push({ t: 'lit', c: n });
    } else {
      atoms.push({ t: 'lit', c });
    }
  }
  return { atoms, greedy };
}

/**
 * Leftmost-first match of `pat` in `text` (code points) starting the search at
 * `from`; anchored means the match must start at `from`. Returns [start, end).
 */
function search(pat: Pattern, text: string[], from: number, anchored: boolean): [number, number] | undefined {
  const { atoms, greedy } = pat;
  const m = atoms.length; // the accepting state
  const seen = new Int32Array(m + 1).fill(-1);
  let gen = 0;
  type Thread = { pc: number; start: number };

  const add = (list: Thread[], id: number, pc: number, start: number): void => {
    if (seen[pc] === id) return;
    seen[pc] = id;
    if (pc < m && atoms[pc].t === 'star') {
      // The star's own thread waits to consume; the other path skips it. Order = priority.
      if (greedy) {
        list.push({ pc, start });
        add(list, id, pc + 1, start);
      } else {
        add(list, id, pc + 1, start);
        list.push({ pc, start });
      }
    } else {
      list.push({ pc, start });
    }
  };

  let clist: Thread[] = [];
  let cid = gen++;
  let found: [number, number] | undefined;
  for (let pos = from; pos <= text.length; pos++) {
    if (!found && (!anchored || pos === from)) add(clist, cid, 0, pos);
    if (clist.length === 0) {
      if (found || anchored) break;
      continue;
    }
    const nlist: Thread[] = [];
    const nid = gen++;
    const ch = pos < text.length ? text[pos] : EOF;
    for (const th of clist) {
      if (th.pc === m) {
        found = [th.start, pos];
        break; // lower-priority threads lose to this match
      }
      if (ch === EOF) continue;
      const a = atoms[th.pc];
      if (a.t === 'lit') {
        if (a.c === ch) add(nlist, nid, th.pc + 1, th.start);
      } else if (ch !== '\n') {
        add(nlist, nid, a.t === 'star' ? th.pc : th.pc + 1, th.start);
      }
    }
    clist = nlist;
    cid = nid;
  }
  return found;
}

/** Go's Regexp.ReplaceAllString, including how it skips an empty match right after a match. */
function replaceAll(pat: Pattern, text: string[], template: string): string {
  let out = '';
  let lastEnd = 0;
  let pos = 0;
  while (pos <= text.length) {
    const m = search(pat, text, pos, false);
    if (!m) break;
    out += text.slice(lastEnd, m[0]).join('');
    if (m[1] > lastEnd || m[0] === 0) out += expandTemplate(template, text.slice(m[0], m[1]).join(''));
    lastEnd = m[1];
    const width = pos < text.length ? 1 : 0;
    if (pos + width > m[1]) pos += width;
    else if (pos + 1 > m[1]) pos++;
    else pos = m[1];
  }
  return out + text.slice(lastEnd).join('');
}

/**
 * Go's Regexp.Expand as ReplaceAllString applies it to the replacement: `$$` is a
 * dollar, `$0`/`${0}` the whole match, any other `$name`/`${name}` (there are no
 * groups) is empty, and a `$` not starting a name stays literal.
 */
function expandTemplate(template: string, match: string): string {
  let out = '';
  let t = template;
  for (;;) {
    const i = t.indexOf('$');
    if (i < 0) break;
    out += t.slice(0, i);
    t = t.slice(i + 1);
    if (t.startsWith('$')) {
      out += '$';
      t = t.slice(1);
      continue;
    }
    const ref = templateRef(t);
    if (!ref) {
      out += '$';
      continue;
    }
    t = ref.rest;
    if (ref.name === '0') out += match;
  }
  return out + t;
}

function templateRef(str: string): { name: string; rest: string } | undefined {
  const cps = Array.from(str);
  let i = 0;
  const brace = cps[0] === '{';
  if (brace) i++;
  const startName = i;
  while (i < cps.length && (isLetter(cps[i]) || isDigit(cps[i]) || cps[i] === '_')) i++;
  if (i === startName) return undefined;
  const name = cps.slice(startName, i).join('');
  if (brace) {
    if (cps[i] !== '}') return undefined;
    i++;
  }
  return { name, rest: cps.slice(i).join('') };
}

function trimPrefix(pattern: string, value: string, greedy: boolean): string {
  const pat = compilePattern(pattern, greedy);
  const text = Array.from(value);
  const m = search(pat, text, 0, true);
  return m ? text.slice(m[1]).join('') : value;
}

/**
 * Shortest/longest suffix removal, done as BuildKit does it: reverse the value and
 * the pattern (keeping each `\x` pair in order) and remove a prefix.
 */
function trimSuffix(pattern: string, value: string, greedy: boolean): string {
  const rev = Array.from(value).reverse().join('');
  return Array.from(trimPrefix(reversePattern(pattern), rev, greedy)).reverse().join('');
}

function reversePattern(pattern: string): string {
  const p = Array.from(pattern);
  const last = p.length - 1;
  const out = new Array<string>(p.length);
  for (let i = 0; i <= last; ) {
    if (p[i] === '\\' && i !== last) {
      out[last - i - 1] = '\\';
      out[last - i] = p[i + 1];
      i += 2;
    } else {
      out[last - i] = p[i];
      i++;
    }
  }
  return out.join('');
}
