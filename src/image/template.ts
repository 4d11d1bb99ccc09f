import { HoistError } from '../util/errors.js';

/**
 * A subset of Go's text/template, as `docker inspect --format` and the list commands'
 * `--format` use it: field chains (`.Config.Env`), `.`, `$`, string/number literals,
 * pipelines (`|`), the functions json, index, join, len, upper, lower, title, split,
 * pad, truncate (docker's), println, print, printf, eq, ne, lt, le, gt, ge, not, and, or,
 * and the actions if/else/end, range/else/end (with `$i, $v :=` variables), with `{{-`/`-}}` trimming.
 */

type Value = unknown;

/** A parsed template. */
export type TemplateNodes = Node[];

type Node =
  | { kind: 'text'; text: string }
  | { kind: 'action'; pipe: Cmd[] }
  | { kind: 'if'; pipe: Cmd[]; then: Node[]; else: Node[] }
  | { kind: 'range'; pipe: Cmd[]; vars: string[]; body: Node[]; else: Node[] };

/** One command of a pipeline: a function name with arguments, or a single operand. */
interface Cmd {
  args: Arg[];
}
type Arg = { t: 'field'; base: '.' | string; path: string[] } | { t: 'str'; v: string } | { t: 'num'; v: number } | { t: 'ident'; v: string } | { t: 'bool'; v: boolean } | { t: 'nil' };

function tplError(msg: string): HoistError {
  return new HoistError('E_TEMPLATE', `template: ${msg}`, { hint: 'e.g. --format "{{.Config.Env}}" or "{{json .Config}}"', exitCode: 125 });
}

function tokenize(src: string): Arg[][] {
  // Returns the pipeline as commands split on '|'.
  const cmds: Arg[][] = [[]];
  let i = 0;
  while (i < src.length) {
    const c = src[i]!;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (c === '|') {
      cmds.push([]);
      i++;
      continue;
    }
    const cur = cmds[cmds.length - 1]!;
    if (c === '"' || c === '`') {
      let j = i + 1;
      let s = '';
      while (j < src.length && src[j] !== c) {
        if (c === '"' && src[j] === '\\' && j + 1 < src.length) {
          const n = src[j + 1]!;
          s += n === 'n' ? '\n' : n === 't' ? '\t' : n;
          j += 2;
          continue;
        }
        s += src[j];
        j++;
      }
      if (j >= src.length) throw tplError(`unterminated string in ${JSON.stringify(src)}`);
      cur.push({ t: 'str', v: s });
      i = j + 1;
      continue;
    }
    const m = /^[^\s|()]+/.exec(src.slice(i));
    if (!m) throw tplError(`unexpected ${JSON.stringify(c)} in ${JSON.stringify(src)}`);
    const w = m[0];
    i += w.length;
    if (w === '.' ) cur.push({ t: 'field', base: '.', path: [] });
    else if (w.startsWith('.')) cur.push({ t: 'field', base: '.', path: w.slice(1).split('.') });
    else if (w.startsWith('$')) {
      const [v, ...rest] = w.split('.');
      cur.push({ t: 'field', base: v!, path: rest });
    } else if (/^-?\d+(\.\d+)?$/.test(w)) cur.push({ t: 'num', v: Number(w) });
    else if (w === 'true' || w === 'false') cur.push({ t: 'bool', v: w === 'true' });
    else if (w === 'nil') cur.push({ t: 'nil' });
    else if (/^[A-Za-z_]\w*$/.test(w)) cur.push({ t: 'ident', v: w });
    else throw tplError(`bad word ${JSON.stringify(w)} in ${JSON.stringify(src)}`);
  }
  for (const c of cmds) if (c.length === 0) throw tplError(`missing command in pipeline ${JSON.stringify(src)}`);
  return cmds;
}

/** Parses a template once; render it with `renderTemplate`. */
export function parseTemplate(src: string): TemplateNodes {
  const parts: ({ text: string } | { action: string })[] = [];
  let i = 0;
  while (i < src.length) {
    const open = src.indexOf('{{', i);
    if (open < 0) {
      parts.push({ text: src.slice(i) });
      break;
    }
    let text = src.slice(i, open);
    let start = open + 2;
    if (src[start] === '-' && /\s/.test(src[start + 1] ?? '')) {
      text = text.replace(/\s+$/, '');
      start++;
    }
    parts.push({ text });
    const close = src.indexOf('}}', start);
    if (close < 0) throw tplError('unclosed action: missing "}}"');
    let inner = src.slice(start, close);
    i = close + 2;
    if (/\s-$/.test(inner)) {
      inner = inner.slice(0, -1);
      const m = /^\s*/.exec(src.slice(i))!;
      i += m[0].length;
    }
    parts.push({ action: inner.trim() });
  }
  let pos = 0;
  const parseList = (stopAt: string[]): { nodes: Node[]; stop: string } => {
    const nodes: Node[] = [];
    while (pos < parts.length) {
      const p = parts[pos++]!;
      if ('text' in p) {
        if (p.text) nodes.push({ kind: 'text', text: p.text });
        continue;
      }
      const a = p.action;
      const word = a.split(/\s+/)[0]!;
      if (stopAt.includes(word)) return { nodes, stop: word };
      if (a.startsWith('/*')) continue;
      if (word === 'if' || word === 'range') {
        let rest = a.slice(word.length).trim();
        let vars: string[] = [];
        const decl = /^(\$\w*)(?:\s*,\s*(\$\w*))?\s*:=\s*/.exec(rest);
        if (decl && word === 'range') {
          vars = decl[2] ? [decl[1]!, decl[2]] : [decl[1]!];
          rest = rest.slice(decl[0].length);
        }
        if (!rest) throw tplError(`missing value for ${word}`);
        const pipe = tokenize(rest).map((args) => ({ args }));
        const body = parseList(['else', 'end']);
        let elseNodes: Node[] = [];
        if (body.stop === 'else') {
          const e = parseList(['end']);
          if (e.stop !== 'end') throw tplError(`unexpected EOF: ${word} without end`);
          elseNodes = e.nodes;
        } else if (body.stop !== 'end') throw tplError(`unexpected EOF: ${word} without end`);
        nodes.push(word === 'if' ? { kind: 'if', pipe, then: body.nodes, else: elseNodes } : { kind: 'range', pipe, vars, body: body.nodes, else: elseNodes });
        continue;
      }
      if (word === 'end' || word === 'else') throw tplError(`unexpected {{${word}}}`);
      nodes.push({ kind: 'action', pipe: tokenize(a).map((args) => ({ args })) });
    }
    return { nodes, stop: '' };
  };
  const r = parseList([]);
  return r.nodes;
}

/** Go's fmt %v rendering of a JSON value (what `{{.X}}` prints). */
export function goString(v: Value): string {
  if (v === undefined) return '<no value>';
  if (v === null) return '<nil>';
  if (Array.isArray(v)) return `[${v.map(goString).join(' ')}]`;
  if (typeof v === 'object') {
    const keys = Object.keys(v as object).sort();
    return `map[${keys.map((k) => `${k}:${goString((v as Record<string, Value>)[k])}`).join(' ')}]`;
  }
  return String(v);
}

function truthy(v: Value): boolean {
  if (v === undefined || v === null || v === false || v === 0 || v === '') return false;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === 'object') return Object.keys(v as object).length > 0;
  return true;
}

/** How a template renders: see `renderTemplate`. */
export interface RenderOptions {
  /** Functions that replace the built-in ones of the same name (docker's table headers). */
  funcs?: Record<string, (...a: Value[]) => Value>;
  /**
   * Fields missing from an object are an error, as for the Go structs docker's list
   * commands render (`can't evaluate field X in type T`), instead of `<no value>`.
   */
  strict?: { typeName: string };
}

type Scope = { dot: Value; vars: Map<string, Value>; opts: RenderOptions };

function field(base: Value, path: string[], expr: string, opts: RenderOptions): Value {
  let cur = base;
  for (const p of path) {
    if (cur === null || cur === undefined) return undefined;
    if (typeof cur !== 'object' || Array.isArray(cur)) throw tplError(`can't evaluate field ${p} in ${expr}: not an object`);
    if (opts.strict && !Object.hasOwn(cur, p)) throw tplError(`executing at <${expr}>: can't evaluate field ${p} in type ${opts.strict.typeName}`);
    cur = (cur as Record<string, Value>)[p];
  }
  return cur;
}

/** Go's fmt verbs with flags, width and precision (`%-20s`, `%5d`, `%.2f`, `%q`, `%v`). */
function sprintf(fmt: string, a: Value[]): string {
  let i = 0;
  return fmt.replace(/%([-+# 0]*)(\d+)?(?:\.(\d+))?([svdqftxX%])/g, (_m, flags: string, width: string | undefined, prec: string | undefined, verb: string) => {
    if (verb === '%') return '%';
    if (i >= a.length) return `%!${verb}(MISSING)`;
    const x = a[i++];
    const str = (v: Value) => (typeof v === 'string' ? v : goString(v));
    let s: string;
    if (verb === 'q') s = JSON.stringify(str(x));
    else if (verb === 'd') s = typeof x === 'number' ? String(Math.trunc(x)) : `%!d(${str(x)})`;
    else if (verb === 'f') s = typeof x === 'number' ? x.toFixed(prec === undefined ? 6 : Number(prec)) : `%!f(${str(x)})`;
    else if (verb === 'x' || verb === 'X') {
      s = typeof x === 'number' ? Math.trunc(x).toString(16) : Buffer.from(str(x)).toString('hex');
      if (verb === 'X') s = s.toUpperCase();
    } else {
      s = str(x);
      if (prec !== undefined && verb === 's') s = [...s].slice(0, Number(prec)).join('');
    }
    if (flags.includes('+') && verb === 'd' && typeof x === 'number' && x >= 0) s = '+' + s;
    const w = width === undefined ? 0 : Number(width);
    const pad = Math.max(0, w - [...s].length);
    if (flags.includes('-')) return s + ' '.repeat(pad);
    if (flags.includes('0') && (verb === 'd' || verb === 'f')) return (s.startsWith('-') || s.startsWith('+') ? s[0] + '0'.repeat(pad) + s.slice(1) : '0'.repeat(pad) + s);
    return ' '.repeat(pad) + s;
  });
}

/** Go template's comparison: basic values of the same kind. */
function compare(name: string, a: Value, b: Value): number {
  const basic = (v: Value) => typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean';
  if (!basic(a) || !basic(b)) throw tplError(`error calling ${name}: incompatible types for comparison`);
  if (typeof a !== typeof b) throw tplError(`error calling ${name}: incompatible types for comparison`);
  return a === b ? 0 : (a as string | number) < (b as string | number) ? -1 : 1;
}

const FUNCS: Record<string, (...a: Value[]) => Value> = {
  json: (v) => JSON.stringify(v === undefined ? null : v),
  index: (v, ...keys) => {
    let cur = v;
    for (const k of keys) {
      if (cur === null || cur === undefined) return undefined;
      cur = Array.isArray(cur) ? cur[Number(k)] : (cur as Record<string, Value>)[String(k)];
    }
    return cur;
  },
  join: (v, sep) => (Array.isArray(v) ? v.map((x) => (typeof x === 'string' ? x : goString(x))).join(String(sep ?? '')) : goString(v)),
  len: (v) => (Array.isArray(v) || typeof v === 'string' ? v.length : v && typeof v === 'object' ? Object.keys(v).length : 0),
  upper: (v) => String(v ?? '').toUpperCase(),
  lower: (v) => String(v ?? '').toLowerCase(),
  title: (v) => String(v ?? '').replace(/\b\w/g, (c) => c.toUpperCase()),
  split: (v, sep) => String(v ?? '').split(String(sep)),
  print: (...a) => a.map((x) => (typeof x === 'string' ? x : goString(x))).join(''),
  println: (...a) => a.map((x) => (typeof x === 'string' ? x : goString(x))).join(' ') + '\n',
  printf: (fmt, ...a) => sprintf(String(fmt), a),
  // docker's additions (github.com/docker/cli/templates)
  pad: (v, prefix, suffix) => {
    const s = typeof v === 'string' ? v : goString(v);
    return s === '' ? s : ' '.repeat(Math.max(0, Number(prefix) || 0)) + s + ' '.repeat(Math.max(0, Number(suffix) || 0));
  },
  truncate: (v, n) => {
    const s = typeof v === 'string' ? v : goString(v);
    const chars = [...s];
    return chars.length < Number(n) ? s : chars.slice(0, Math.max(0, Number(n))).join('');
  },
  // Go's builtin comparisons and logic
  eq: (a, ...bs) => {
    if (bs.length === 0) throw tplError('wrong number of args for eq: want at least 2 got 1');
    return bs.some((b) => compare('eq', a, b) === 0);
  },
  ne: (a, b) => compare('ne', a, b) !== 0,
  lt: (a, b) => compare('lt', a, b) < 0,
  le: (a, b) => compare('le', a, b) <= 0,
  gt: (a, b) => compare('gt', a, b) > 0,
  ge: (a, b) => compare('ge', a, b) >= 0,
  not: (v) => !truthy(v),
  and: (...a) => {
    for (const v of a) if (!truthy(v)) return v;
    return a[a.length - 1];
  },
  or: (...a) => {
    for (const v of a) if (truthy(v)) return v;
    return a[a.length - 1];
  },
};

/** docker's HeaderFunctions: in a table's header row these print the column title untouched. */
export const HEADER_FUNCS: Record<string, (...a: Value[]) => Value> = Object.fromEntries(
  ['json', 'split', 'join', 'title', 'lower', 'upper', 'truncate'].map((n) => [n, (v: Value) => v]),
);
// the piped value comes last: `{{.Tag | json}}` and `{{json .Tag}}` both give the title
for (const n of ['split', 'join', 'truncate']) HEADER_FUNCS[n] = (...a: Value[]) => (typeof a[0] === 'string' ? a[0] : a[a.length - 1]);

function evalArg(a: Arg, s: Scope): Value {
  switch (a.t) {
    case 'field': {
      const base = a.base === '.' ? s.dot : s.vars.get(a.base);
      if (a.base !== '.' && !s.vars.has(a.base)) throw tplError(`undefined variable ${a.base}`);
      return field(base, a.path, `${a.base === '.' ? '' : a.base}.${a.path.join('.')}`, s.opts);
    }
    case 'str':
      return a.v;
    case 'num':
      return a.v;
    case 'bool':
      return a.v;
    case 'nil':
      return null;
    case 'ident':
      throw tplError(`function ${JSON.stringify(a.v)} used as a value`);
  }
}

function evalPipe(pipe: Cmd[], s: Scope): Value {
  let prev: Value;
  let first = true;
  for (const c of pipe) {
    const [head, ...rest] = c.args;
    let v: Value;
    if (head!.t === 'ident') {
      const f = s.opts.funcs?.[head!.v] ?? FUNCS[head!.v];
      if (!f) throw tplError(`function ${JSON.stringify(head!.v)} not defined`);
      const args = rest.map((a) => evalArg(a, s));
      if (!first) args.push(prev);
      v = f(...args);
    } else {
      if (rest.length || !first) throw tplError('can only pass a pipeline value to a function');
      v = evalArg(head!, s);
    }
    prev = v;
    first = false;
  }
  return prev;
}

function render(nodes: Node[], s: Scope, out: string[]): void {
  for (const n of nodes) {
    if (n.kind === 'text') out.push(n.text);
    else if (n.kind === 'action') {
      const v = evalPipe(n.pipe, s);
      out.push(typeof v === 'string' ? v : goString(v));
    } else if (n.kind === 'if') render(truthy(evalPipe(n.pipe, s)) ? n.then : n.else, s, out);
    else {
      const v = evalPipe(n.pipe, s);
      const entries: [Value, Value][] = Array.isArray(v)
        ? v.map((x, i) => [i, x])
        : v && typeof v === 'object'
          ? Object.keys(v).sort().map((k) => [k, (v as Record<string, Value>)[k]])
          : [];
      if (v !== null && v !== undefined && typeof v !== 'object') throw tplError(`range can't iterate over ${goString(v)}`);
      if (entries.length === 0) render(n.else, s, out);
      for (const [k, x] of entries) {
        const vars = new Map(s.vars);
        if (n.vars.length === 1) vars.set(n.vars[0]!, x);
        if (n.vars.length === 2) {
          vars.set(n.vars[0]!, k);
          vars.set(n.vars[1]!, x);
        }
        render(n.body, { dot: x, vars, opts: s.opts }, out);
      }
    }
  }
}

/** Renders a parsed template against a value. */
export function renderTemplate(nodes: Node[], data: Value, opts: RenderOptions = {}): string {
  const out: string[] = [];
  render(nodes, { dot: data, vars: new Map([['$', data]]), opts }, out);
  return out.join('');
}

/** Renders what it can: on an error, the output up to it (as Go's Execute leaves it in its buffer). */
export function renderTemplatePartial(nodes: Node[], data: Value, opts: RenderOptions = {}): string {
  const out: string[] = [];
  try {
    render(nodes, { dot: data, vars: new Map([['$', data]]), opts }, out);
  } catch {
    /* keep the output so far */
  }
  return out.join('');
}

/** Parses and renders in one go. */
export function formatTemplate(src: string, data: Value): string {
  return renderTemplate(parseTemplate(src), data);
}
