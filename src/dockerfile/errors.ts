import { HoistError } from '../util/errors.js';

/** Where an error points in a Dockerfile: 1-based line and column (column 0 = unknown). */
export interface SourceLocation {
  file: string;
  line: number;
  column: number;
  /** The text of that line, shown with a caret under `column`. */
  sourceLine?: string;
}

/** A Dockerfile error with a location: `Dockerfile:12:5: message`, the line, a caret, a hint. */
export class DockerfileError extends HoistError {
  readonly location: SourceLocation;
  /** The bare message without location prefix. */
  readonly detail: string;

  constructor(code: string, detail: string, location: SourceLocation, hint?: string) {
    super(code, `${location.file}:${location.line}${location.column ? ':' + location.column : ''}: ${detail}`, { hint });
    this.name = 'DockerfileError';
    this.location = location;
    this.detail = detail;
  }

  override format(): string {
    let out = this.message;
    const src = this.location.sourceLine;
    if (src !== undefined) {
      const shown = visible(src);
      out += `\n  ${String(this.location.line).padStart(4)} | ${shown}`;
      if (this.location.column > 0) {
        const prefix = visible([...src].slice(0, this.location.column - 1).join(''));
        out += `\n       | ${' '.repeat([...prefix].length)}^`;
      }
    }
    if (this.hint) out += `\nhint: ${this.hint}`;
    return out;
  }
}

/** Shows invisible characters (tabs kept) so a user can see what the parser saw. */
export function visible(s: string): string {
  return s.replace(/[\u0000-\u0008\u000b-\u001f\u007f\u0080-\u00a0\u1680\u2000-\u200f\u2028-\u202f\u205f\u3000\ufeff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
