/**
 * Go's notion of whitespace (unicode.IsSpace), which BuildKit uses to trim lines.
 * It differs from JavaScript's `\s`: U+0085 is a space, U+FEFF is not.
 */
export function isGoSpace(ch: string): boolean {
  return isGoSpaceCode(ch.charCodeAt(0));
}

function isGoSpaceCode(c: number): boolean {
  if (c <= 0x20) return c === 0x20 || (c >= 0x09 && c <= 0x0d);
  if (c < 0x85) return false;
  return c === 0x85 || c === 0xa0 || c === 0x1680 || (c >= 0x2000 && c <= 0x200a) ||
    c === 0x2028 || c === 0x2029 || c === 0x202f || c === 0x205f || c === 0x3000;
}

/** strings.TrimLeftFunc(s, unicode.IsSpace). */
export function goTrimLeftSpace(s: string): string {
  let i = 0;
  while (i < s.length && isGoSpaceCode(s.charCodeAt(i))) i++;
  return i === 0 ? s : s.slice(i);
}

/** strings.TrimSpace. */
export function goTrimSpace(s: string): string {
  let end = s.length;
  while (end > 0 && isGoSpaceCode(s.charCodeAt(end - 1))) end--;
  let start = 0;
  while (start < end && isGoSpaceCode(s.charCodeAt(start))) start++;
  return start === 0 && end === s.length ? s : s.slice(start, end);
}
