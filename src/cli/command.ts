import type { Argv, ArgumentsCamelCase } from 'yargs';
import type { CliIO } from './io.js';

/** One `hoist` subcommand: yargs metadata plus a handler that gets the CLI's streams. */
export interface HoistCommand {
  command: string | readonly string[];
  describe: string;
  builder?: (y: Argv) => Argv<any>;
  /** Returns the exit status (0 when omitted). */
  handler: (args: ArgumentsCamelCase<any>, io: CliIO) => Promise<number | void>;
}
