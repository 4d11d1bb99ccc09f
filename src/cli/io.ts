import type { Writable, Readable } from 'node:stream';

/** Where a command reads and writes; the CLI passes process streams, tests pass buffers. */
export interface CliIO {
  stdin: Readable;
  stdout: Writable;
  stderr: Writable;
  /** Environment of the invoking process (HOIST_ROOT, HOME, ...). */
  env: NodeJS.ProcessEnv;
  cwd: string;
}

/** Global options every command receives. */
export interface GlobalOptions {
  root?: string;
  debug?: boolean;
}
