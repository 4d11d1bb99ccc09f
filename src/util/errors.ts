/** Base class of every error hoist reports to a user: a code, a message, an optional hint. */
export class HoistError extends Error {
  /** Stable machine-readable code, e.g. `E_PARSE`, `E_NOT_FOUND`. */
  readonly code: string;
  /** One line on how to fix it, shown after the message. */
  readonly hint?: string;
  /** Process exit status the CLI uses when this error ends a command. */
  readonly exitCode: number;

  constructor(code: string, message: string, opts: { hint?: string; exitCode?: number; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'HoistError';
    this.code = code;
    this.hint = opts.hint;
    this.exitCode = opts.exitCode ?? 1;
  }

  /** Human-readable rendering used by the CLI. */
  format(): string {
    return this.hint ? `${this.message}\nhint: ${this.hint}` : this.message;
  }
}

/** True for errors hoist raised on purpose (as opposed to bugs). */
export function isHoistError(e: unknown): e is HoistError {
  return e instanceof HoistError;
}
