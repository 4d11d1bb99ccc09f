import type { HoistCommand } from '../command.js';
import { parseCommand } from './parse.js';
import { outlineCommand } from './outline.js';
import { loadCommand } from './load.js';
import { saveCommand } from './save.js';
import { imagesCommand } from './images.js';
import { tagCommand } from './tag.js';
import { rmiCommand } from './rmi.js';
import { inspectCommand } from './inspect.js';
import { historyCommand } from './history.js';
import { systemCommand } from './system.js';
import { buildCommand } from './build.js';
import { runCommand } from './run.js';

/** Every registered subcommand, in the order `hoist --help` lists them. */
export const commands: HoistCommand[] = [
  parseCommand,
  outlineCommand,
  loadCommand,
  saveCommand,
  imagesCommand,
  tagCommand,
  rmiCommand,
  inspectCommand,
  historyCommand,
  systemCommand,
  buildCommand,
  runCommand,
];
