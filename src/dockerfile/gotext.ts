/**
 * Go's notion of whitespace (unicode.IsSpace), which BuildKit uses to trim lines.
 * It differs from JavaScript's `\s`: U+0085 is a space, U+FEFF is not.
 */
export function isGoSpace(ch: string): boolean {
  switch (ch) {
    case ' ': case '\t': case '\n': case '\v': case '\f': case '\r': case '\u0085': case '\u00a0':
    case '\u1680': case '\u2028': case '\u2029': case '\u202f': case '\u205f': case '\u3000':
      return true;
    default:
      return ch >= '\u2000' && ch <= '\u200a';
  }
}

/** strings.TrimLeftFunc(s, unicode.IsSpace). */
export function goTrimLeftSpace(s: string): string {
  let i = 0;
  while (i < s.length && isGoSpace(s[i])) i++;
  return i === 0 ? s : s.slice(i);
}

/** strings.TrimSpace. */
export function goTrimSpace(s: string): string {
  let end = s.length;
  while (end > 0 && isGoSpace(s[end - 1])) end--;
  return goTrimLeftSpace(s.slice(0, end));
}
