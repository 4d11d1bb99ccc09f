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
import { psCommand } from './ps.js';
import { logsCommand } from './logs.js';
import { stopCommand } from './stop.js';
import { killCommand } from './kill.js';
import { startCommand } from './start.js';
import { rmCommand } from './rm.js';
import { execCommand } from './exec.js';
import { commitCommand } from './commit.js';
import { pullCommand } from './pull.js';
import { pushCommand } from './push.js';
import { loginCommand } from './login.js';
import { logoutCommand } from './logout.js';

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
  psCommand,
  logsCommand,
  stopCommand,
  killCommand,
  startCommand,
  rmCommand,
  execCommand,
  commitCommand,
  pullCommand,
  pushCommand,
  loginCommand,
  logoutCommand,
];
