import { HoistError, isHoistError } from '../util/errors.js';
import { HEADER_FUNCS, parseTemplate, renderTemplate, renderTemplatePartial, type TemplateNodes } from '../image/template.js';
import { tabwrite } from '../image/format.js';

/**
 * `--format` for the list commands (images, ps, history) as docker's formatter package
 * has it: `table TEMPLATE` prints a header row of column titles (the template rendered
 * against the titles) and aligns the tab-separated cells; `json` is `{{json .}}`; any
 * other template prints one line per row. Literal `\t` and `\n` in the format are a tab
 * and a newline. Rows are plain objects of strings whose keys are docker's field names.
 */
export interface ListFormat {
  table: boolean;
  nodes: TemplateNodes;
}

function formatError(e: unknown, fields: Record<string, string>): never {
  if (isHoistError(e) && e.code === 'E_TEMPLATE') {
    throw new HoistError('E_TEMPLATE', `template parsing error: ${e.message}`, {
      hint: `fields: ${Object.keys(fields).map((k) => `.${k}`).join(' ')}; e.g. --format "table {{.${Object.keys(fields)[0]}}}\\t{{.${Object.keys(fields)[1]}}}" or --format json`,
      exitCode: 1,
    });
  }
  throw e;
}

/** The user's `--format`, or undefined when it asks for the command's default table (absent, empty or bare `table`). */
export function customFormat(v: unknown): string | undefined {
  return v === undefined || v === '' || v === 'table' ? undefined : String(v);
}

/** Parses a `--format` value; `headers` maps each field name to its column title. */
export function parseListFormat(source: string, headers: Record<string, string>): ListFormat {
  let src = source;
  const table = src.startsWith('table');
  if (table) src = src.slice('table'.length);
  else if (src === 'json') src = '{{json .}}';
  src = src.replace(/^ +| +$/g, '').replaceAll('\\t', '\t').replaceAll('\\n', '\n');
  try {
    return { table, nodes: parseTemplate(src) };
  } catch (e) {
    formatError(e, headers);
  }
}

/** Renders rows; `typeName` names the row type in errors about unknown fields. */
export function renderList(f: ListFormat, rows: object[], headers: Record<string, string>, typeName: string): string {
  let body = '';
  try {
    for (const r of rows) {
      // keys in byte order: `{{json .}}` prints them as Go's encoding/json prints a map
      const sorted = Object.fromEntries(Object.entries(r).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
      body += renderTemplate(f.nodes, sorted, { strict: { typeName } }) + '\n';
    }
  } catch (e) {
    formatError(e, headers);
  }
  if (!f.table) return body;
  // as docker: the header is the template run on the titles with functions that leave them as they are
  const header = renderTemplatePartial(f.nodes, headers, { funcs: HEADER_FUNCS });
  return tabwrite(header + '\n' + body);
}

/** Parses repeated `--filter key=value` flags (docker's FilterOpt) into key → values. */
export function parseFilters(list: readonly string[], accepted: readonly string[], example: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const f of list) {
    const eq = f.indexOf('=');
    if (eq <= 0) throw new HoistError('E_FILTER', `bad format of filter (expected name=value): ${f}`, { hint: `e.g. --filter ${example}`, exitCode: 125 });
    const k = f.slice(0, eq).trim().toLowerCase();
    if (!accepted.includes(k)) throw new HoistError('E_FILTER', `invalid filter '${k}'`, { hint: `filters: ${accepted.join(', ')}`, exitCode: 1 });
    out.set(k, [...(out.get(k) ?? []), f.slice(eq + 1)]);
  }
  return out;
}

/** Go's strconv.Quote, as docker's COMMAND column uses it. */
export function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '"' || ch === '\\') out += '\\' + ch;
    else if (c === 7) out += '\\a';
    else if (c === 8) out += '\\b';
    else if (c === 12) out += '\\f';
    else if (c === 10) out += '\\n';
    else if (c === 13) out += '\\r';
    else if (c === 9) out += '\\t';
    else if (c === 11) out += '\\v';
    else if (c < 0x20 || c === 0x7f) out += '\\x' + c.toString(16).padStart(2, '0');
    else if ((c >= 0x80 && c < 0xa0) || c === 0xad || c === 0x2028 || c === 0x2029 || (c >= 0xd800 && c < 0xe000) || c === 0xfeff)
      out += c > 0xffff ? '\\U' + c.toString(16).padStart(8, '0') : '\\u' + c.toString(16).padStart(4, '0');
    else out += ch;
  }
  return out + '"';
}

/** Go's time.Time.String() of a Unix time (seconds) in the local zone: `2024-01-02 15:04:05 +0000 UTC`. */
export function goTimeString(iso: string | undefined): string {
  const ms = iso ? Date.parse(iso) : NaN;
  if (Number.isNaN(ms)) return 'N/A';
  const d = new Date(Math.floor(ms / 1000) * 1000);
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  const off = -d.getTimezoneOffset();
  const sign = off < 0 ? '-' : '+';
  const zoneNum = `${sign}${p(Math.floor(Math.abs(off) / 60))}${p(Math.abs(off) % 60)}`;
  let abbr = off === 0 ? 'UTC' : (new Intl.DateTimeFormat('en-US', { timeZoneName: 'short' }).formatToParts(d).find((x) => x.type === 'timeZoneName')?.value ?? '');
  // Go prints a zone without an abbreviation as its offset (`+01`)
  if (/^GMT[+-]/.test(abbr) || abbr === '') abbr = `${sign}${p(Math.floor(Math.abs(off) / 60))}${Math.abs(off) % 60 ? p(Math.abs(off) % 60) : ''}`;
  return `${p(d.getFullYear(), 4)}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())} ${zoneNum} ${abbr}`;
}

/** Go's path.Match (as docker's reference filter uses it): `*` and `?` do not cross `/`, `[...]` classes, `\` escapes. */
export function pathMatch(pattern: string, name: string): boolean {
  let re = '^';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '\\' && i + 1 < pattern.length) re += '\\' + pattern[++i];
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 2);
      if (end < 0) return false; // Go: ErrBadPattern, no match
      let cls = pattern.slice(i + 1, end);
      if (cls.startsWith('^')) cls = '^' + cls.slice(1).replace(/[\]\\]/g, '\\$&');
      else cls = cls.replace(/[\]\\^]/g, '\\$&');
      re += `[${cls}]`;
      i = end;
    } else re += c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  }
  try {
    return new RegExp(re + '$', 'u').test(name);
  } catch {
    return false;
  }
}
