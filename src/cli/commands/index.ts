import type { HoistCommand } from '../command.js';
import { parseCommand, outlineCommand } from './parse.js';
import { loadCommand } from './load.js';

/** Every registered subcommand, in the order `hoist --help` lists them. */
export const commands: HoistCommand[] = [
  parseCommand,
  outlineCommand,
  loadCommand,
];
