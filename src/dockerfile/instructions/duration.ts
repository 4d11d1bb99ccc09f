/**
 * Go's time.ParseDuration, for HEALTHCHECK's `--interval`, `--timeout`,
 * `--start-period` and `--start-interval` (`1h30m`, `1.5s`, `300ms`, `0`).
 */

const UNIT_NS: Record<string, bigint> = {
  ns: 1n,
  us: 1_000n,
  'µs': 1_000n, // U+00B5 micro sign
  'μs': 1_000n, // U+03BC Greek mu
  ms: 1_000_000n,
  s: 1_000_000_000n,
  m: 60_000_000_000n,
  h: 3_600_000_000_000n,
};
const MAX_NS = (1n << 63n) - 1n;

/** Why a duration was refused, in Go's words (`time: unknown unit "d" in duration "5d"`). */
export class DurationError extends Error {}

/** Parses a Go duration into nanoseconds; throws {@link DurationError}. */
export function parseGoDuration(text: string): bigint {
  const quoted = JSON.stringify(text.length > 60 ? text.slice(0, 60) + '…' : text);
  const invalid = (): never => {
    throw new DurationError(`time: invalid duration ${quoted}`);
  };
  let s = text;
  let neg = false;
  if (s !== '' && (s[0] === '-' || s[0] === '+')) {
    neg = s[0] === '-';
    s = s.slice(1);
  }
  if (s === '0') return 0n;
  if (s === '') invalid();
  let total = 0n;
  while (s !== '') {
    const m = /^([0-9]*)(?:\.([0-9]*))?/.exec(s)!;
    const intPart = m[1];
    const frac = m[2];
    if (intPart === '' && (frac === undefined || frac === '')) invalid();
    s = s.slice(m[0].length);
    const u = /^[^0-9.]*/.exec(s)![0];
    if (u === '') throw new DurationError(`time: missing unit in duration ${quoted}`);
    const unit = UNIT_NS[u];
    if (unit === undefined) throw new DurationError(`time: unknown unit ${JSON.stringify(u.length > 20 ? u.slice(0, 20) + '…' : u)} in duration ${quoted}`);
    s = s.slice(u.length);
    let v = BigInt(intPart === '' ? '0' : intPart) * unit;
    if (frac) {
      // Go truncates the fractional part toward zero at nanosecond precision
      v += (BigInt(frac) * unit) / 10n ** BigInt(frac.length);
    }
    total += v;
    if (total > MAX_NS + (neg ? 1n : 0n)) invalid();
  }
  return neg ? -total : total;
}

/** Formats nanoseconds the way Go's Duration.String does (`1m30s`, `500ms`). */
export function formatGoDuration(ns: bigint): string {
  if (ns === 0n) return '0s';
  const neg = ns < 0n;
  let u = neg ? -ns : ns;
  let out: string;
  if (u < 1_000_000_000n) {
    const [unit, name] = u < 1_000n ? [1n, 'ns'] : u < 1_000_000n ? [1_000n, 'µs'] : [1_000_000n, 'ms'];
    out = decimal(u, unit) + name;
  } else {
    const h = u / 3_600_000_000_000n;
    u %= 3_600_000_000_000n;
    const m = u / 60_000_000_000n;
    u %= 60_000_000_000n;
    out = (h > 0n ? `${h}h` : '') + (h > 0n || m > 0n ? `${m}m` : '') + decimal(u, 1_000_000_000n) + 's';
  }
  return (neg ? '-' : '') + out;
}

function decimal(v: bigint, unit: bigint): string {
  const whole = v / unit;
  const rest = v % unit;
  if (rest === 0n) return String(whole);
  const digits = String(unit).length - 1;
  return `${whole}.${String(rest).padStart(digits, '0').replace(/0+$/, '')}`;
}
