/**
 * The few Go fmt renderings BuildKit uses in history `created_by` strings
 * (`%q` of a string slice, `%v` of a slice or map, time.Duration's String), so
 * hoist's history reads byte for byte like BuildKit's.
 */

/** strconv.Quote. */
export function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\t') out += '\\t';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\x07') out += '\\a';
    else if (ch === '\b') out += '\\b';
    else if (ch === '\f') out += '\\f';
    else if (ch === '\v') out += '\\v';
    else if (cp < 0x20 || cp === 0x7f) out += `\\x${cp.toString(16).padStart(2, '0')}`;
    else if (cp >= 0x80 && cp < 0xa0) out += `\\u${cp.toString(16).padStart(4, '0')}`;
    else out += ch;
  }
  return out + '"';
}

/** `%q` of a []string: `["a" "b"]`. */
export function goQuoteSlice(a: string[] | null | undefined): string {
  return `[${(a ?? []).map(goQuote).join(' ')}]`;
}

/** `%v` of a []string: `[a b]`. */
export function goSlice(a: string[]): string {
  return `[${a.join(' ')}]`;
}

/** time.Duration.String() for nanoseconds. */
export function goDuration(nsIn: number): string {
  if (nsIn === 0) return '0s';
  const neg = nsIn < 0;
  let ns = BigInt(Math.abs(Math.round(nsIn)));
  const sign = neg ? '-' : '';
  if (ns < 1000n) return `${sign}${ns}ns`;
  if (ns < 1_000_000n) return `${sign}${frac(ns, 1000n)}µs`;
  if (ns < 1_000_000_000n) return `${sign}${frac(ns, 1_000_000n)}ms`;
  let out = '';
  const h = ns / 3_600_000_000_000n;
  ns -= h * 3_600_000_000_000n;
  const m = ns / 60_000_000_000n;
  ns -= m * 60_000_000_000n;
  if (h > 0n) out += `${h}h`;
  if (h > 0n || m > 0n) out += `${m}m`;
  out += `${frac(ns, 1_000_000_000n)}s`;
  return sign + out;
}

function frac(v: bigint, unit: bigint): string {
  const whole = v / unit;
  let rest = (v % unit).toString().padStart(unit.toString().length - 1, '0').replace(/0+$/, '');
  return rest ? `${whole}.${rest}` : `${whole}`;
}

/** strconv.QuoteRune (what %q prints for an integer). */
export function goQuoteRune(n: number): string {
  const ch = String.fromCodePoint(n);
  if (ch === "'") return "'\\''";
  if (ch === '\\') return "'\\\\'";
  const q = goQuote(ch);
  return `'${q.slice(1, -1).replace(/\\"/g, '"')}'`;
}
