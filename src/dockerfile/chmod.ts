/**
 * `COPY/ADD --chmod` values: octal (`0755`) or symbolic chmod(1) modes (`u+x,g-w`, `go=u-w`, `a+X`).
 *
 * BuildKit first tries the value as an octal number up to 07777; anything else goes to
 * a port of BSD's setmode(3). The symbolic grammar here accepts exactly the strings that
 * parser accepts, and {@link applyChmod} gives the same result, so a Dockerfile that
 * builds with BuildKit builds the same here.
 */

const S_ISUID = 0o4000;
const S_ISGID = 0o2000;
const S_ISTXT = 0o1000;
const RWXU = 0o700;
const RWXG = 0o070;
const RWXO = 0o007;
const R_ALL = 0o444;
const W_ALL = 0o222;
const X_ALL = 0o111;
const STANDARD = S_ISUID | S_ISGID | RWXU | RWXG | RWXO;
const ALL_BITS = STANDARD | S_ISTXT;

/**
 * One step of a symbolic mode: set (`+`), clear (`-`), conditional execute (`X`),
 * or copy another class's bits (`u`, `g`, `o`) into the selected classes.
 */
export interface ChmodOp {
  op: '+' | '-' | 'X' | 'u' | 'g' | 'o';
  /** Bits the step touches (for a copy: the mask the copied bits are limited to). */
  bits: number;
  /** For copies: clear the destination first, set the copied bits, and which classes receive them. */
  copy?: { clear: boolean; set: boolean; user: boolean; group: boolean; other: boolean };
}

/** A validated `--chmod` value. */
export type ChmodSpec =
  | { kind: 'octal'; text: string; mode: number }
  | { kind: 'symbolic'; text: string; ops: ChmodOp[] };

/** Why a `--chmod` value was refused; `numeric` when it looked like a number (BuildKit words that case differently). */
export class ChmodSyntaxError extends Error {
  constructor(readonly value: string, readonly numeric: boolean, reason: string) {
    const shown = value.length > 60 ? value.slice(0, 60) + '…' : value;
    super(numeric
      ? `invalid chmod parameter: '${shown}'. it should be octal string and between 0 and 07777`
      : `invalid chmod parameter: '${shown}': ${reason}`);
  }
}

/** Parses a `--chmod` value; throws {@link ChmodSyntaxError}. */
export function parseChmod(text: string): ChmodSpec {
  if (/^[0-7]+$/.test(text)) {
    // Go's ParseUint(s, 8, 32) then the 07777 limit; leading zeros are fine.
    const mode = parseInt(text, 8);
    if (mode > 0o7777) throw new ChmodSyntaxError(text, true, 'out of range');
    return { kind: 'octal', text, mode };
  }
  if (text.length > 0 && text[0] >= '0' && text[0] <= '9') {
    throw new ChmodSyntaxError(text, true, 'not octal');
  }
  return { kind: 'symbolic', text, ops: parseSymbolic(text) };
}

function parseSymbolic(s: string): ChmodOp[] {
  const bad = (why: string): never => {
    throw new ChmodSyntaxError(s, false, why);
  };
  if (s === '') bad('empty mode');
  const ops: ChmodOp[] = [];
  let i = 0;
  // umask 0: every bit a clause without a class letter names is allowed
  const mask = ALL_BITS;
  for (;;) {
    let who = 0;
    for (;;) {
      if (i >= s.length) bad('a clause must have an operator (+, - or =) after the classes');
      const c = s[i];
      if (c === 'a') who |= STANDARD;
      else if (c === 'u') who |= S_ISUID | RWXU;
      else if (c === 'g') who |= S_ISGID | RWXG;
      else if (c === 'o') who |= RWXO;
      else break;
      i++;
    }
    let equalDone = false;
    for (;;) {
      // one operator and its permission letters; several may follow each other (`u+r-w`)
      const op = s[i++];
      if (op === '=') equalDone = false;
      else if (op !== '+' && op !== '-') bad(`unexpected ${JSON.stringify(op ?? '')} where an operator (+, - or =) belongs`);
      who &= ~S_ISTXT;
      let perm = 0;
      let permX = 0;
      for (;; i++) {
        const b = i < s.length ? s[i] : '';
        if (b === 'r') perm |= R_ALL;
        else if (b === 'w') perm |= W_ALL;
        else if (b === 'x') perm |= X_ALL;
        else if (b === 'X') {
          if (op !== '-') permX = X_ALL;
          else perm |= X_ALL;
        } else if (b === 's') {
          if (who === 0 || (who & ~RWXO) !== 0) perm |= S_ISUID | S_ISGID;
        } else if (b === 't') {
          if (who === 0 || (who & ~RWXO) !== 0) {
            who |= S_ISTXT;
            perm |= S_ISTXT;
          }
        } else if (b === 'u' || b === 'g' || b === 'o') {
          if (perm !== 0) {
            addOp(ops, op, who, perm, mask);
            perm = 0;
          }
          if (op === '=') equalDone = true;
          if (permX !== 0) {
            addOp(ops, 'X', who, permX, mask);
            permX = 0;
          }
          addCopy(ops, b, who, op, mask);
        } else {
          if (perm !== 0 || (op === '=' && !equalDone)) {
            if (op === '=') equalDone = true;
            addOp(ops, op, who, perm, mask);
          }
          if (permX !== 0) addOp(ops, 'X', who, permX, mask);
          break;
        }
      }
      if (i >= s.length) return compress(ops);
      if (s[i] === ',') break;
    }
    i++;
  }
}

function addOp(ops: ChmodOp[], op: string, who: number, bits: number, mask: number): void {
  if (op === '=') {
    // `=` is "clear the class, then set"
    ops.push({ op: '-', bits: who !== 0 ? who : STANDARD });
    op = '+';
  }
  ops.push({ op: op as '+' | '-' | 'X', bits: who !== 0 ? who & bits : mask & bits });
}

function addCopy(ops: ChmodOp[], from: 'u' | 'g' | 'o', who: number, op: string, mask: number): void {
  const copy = {
    clear: op === '-' || op === '=',
    set: op === '+' || op === '=',
    user: who === 0 || (who & 0o400) !== 0,
    group: who === 0 || (who & 0o040) !== 0,
    other: who === 0 || (who & 0o004) !== 0,
  };
  ops.push({ op: from, bits: who !== 0 ? ALL_BITS : mask, copy });
}

/** Merges runs of +, - and X steps into at most one of each, as setmode(3) does. */
function compress(ops: ChmodOp[]): ChmodOp[] {
  const out: ChmodOp[] = [];
  let i = 0;
  while (i < ops.length) {
    if (ops[i].copy) {
      out.push(ops[i++]);
      continue;
    }
    let set = 0;
    let clr = 0;
    let x = 0;
    for (; i < ops.length && !ops[i].copy; i++) {
      const { op, bits } = ops[i];
      if (op === '-') {
        clr |= bits;
        set &= ~bits;
        x &= ~bits;
      } else if (op === '+') {
        set |= bits;
        clr &= ~bits;
        x &= ~bits;
      } else {
        x |= bits & ~set;
      }
    }
    if (clr) out.push({ op: '-', bits: clr });
    if (set) out.push({ op: '+', bits: set });
    if (x) out.push({ op: 'X', bits: x });
  }
  return out;
}

/** The permission bits (07777) a file gets: `mode` is its current mode, `isDir` enables `X` for directories. */
export function applyChmod(spec: ChmodSpec, mode: number, isDir: boolean): number {
  if (spec.kind === 'octal') return spec.mode;
  const orig = mode & ALL_BITS;
  let m = orig;
  for (const c of spec.ops) {
    if (c.copy) {
      const shift = c.op === 'u' ? 6 : c.op === 'g' ? 3 : 0;
      const value = (m >> shift) & 0o7;
      const targets: number[] = [];
      if (c.copy.user) targets.push(6);
      if (c.copy.group) targets.push(3);
      if (c.copy.other) targets.push(0);
      if (c.copy.clear) {
        const clr = c.copy.set ? 0o7 : value;
        for (const t of targets) m &= ~((clr << t) & c.bits);
      }
      if (c.copy.set) {
        for (const t of targets) m |= (value << t) & c.bits;
      }
    } else if (c.op === '+') {
      m |= c.bits;
    } else if (c.op === '-') {
      m &= ~c.bits;
    } else if ((orig & X_ALL) !== 0 || isDir) {
      m |= c.bits;
    }
  }
  return m & ALL_BITS;
}
