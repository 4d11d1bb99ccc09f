/**
 * What the typed layer's helpers throw before a location is known. The instruction
 * parser turns each one into a DockerfileError pointing at `word` in the source.
 */
export class InstructionProblem extends Error {
  constructor(
    readonly code: string,
    message: string,
    /** Text to point the caret at (a flag, a word), when one is to blame. */
    readonly word?: string,
    readonly hint?: string,
    /** Which occurrence of `word` is meant (1 = first), when the same text appears more than once. */
    readonly nth = 1,
  ) {
    super(message);
  }
}

/** Levenshtein distance (insertions, deletions, substitutions). */
export function editDistance(a: string, b: string): number {
  const A = [...a];
  const B = [...b];
  let prev = Array.from({ length: B.length + 1 }, (_, j) => j);
  for (let i = 1; i <= A.length; i++) {
    const cur = [i];
    for (let j = 1; j <= B.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (A[i - 1] === B[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[B.length];
}

/**
 * The closest option within edit distance 2, as BuildKit's suggest package picks it
 * (none when `value` matches an option exactly: then the mistake is elsewhere).
 * Case-insensitive matches come back in the case style of `value`.
 */
export function suggest(value: string, options: readonly string[], caseSensitive: boolean): string | undefined {
  const v = caseSensitive ? value : value.toLowerCase();
  let best: string | undefined;
  let min = 3;
  for (const opt of options) {
    const o = caseSensitive ? opt : opt.toLowerCase();
    if (o === v) return undefined;
    const d = editDistance(v, o);
    if (d < min) {
      min = d;
      best = caseSensitive ? o : matchCase(o, value);
    }
  }
  return best;
}

function matchCase(opt: string, orig: string): string {
  if (orig === orig.toLowerCase()) return opt.toLowerCase();
  if (orig === orig.toUpperCase()) return opt.toUpperCase();
  return opt;
}

/** Shortens a user-supplied word for a message (the full text stays visible in the quoted source line). */
export function clip(word: string, max = 60): string {
  const chars = [...word];
  return chars.length <= max ? word : chars.slice(0, max).join('') + '…';
}
