import type { HoistCommand } from '../command.js';

/**
 * Every subcommand, in the order `hoist --help` lists them, each loaded on demand:
 * `hoist build` imports the build command's module graph and nothing else, so
 * short commands (and no-op builds) do not pay for loading the whole program.
 */
export const commandLoaders: readonly (readonly [name: string, load: () => Promise<HoistCommand>])[] = [
  ['parse', async () => (await import('./parse.js')).parseCommand],
  ['outline', async () => (await import('./outline.js')).outlineCommand],
  ['load', async () => (await import('./load.js')).loadCommand],
  ['save', async () => (await import('./save.js')).saveCommand],
  ['images', async () => (await import('./images.js')).imagesCommand],
  ['image', async () => (await import('./image.js')).imageCommand],
  ['tag', async () => (await import('./tag.js')).tagCommand],
  ['rmi', async () => (await import('./rmi.js')).rmiCommand],
  ['inspect', async () => (await import('./inspect.js')).inspectCommand],
  ['history', async () => (await import('./history.js')).historyCommand],
  ['system', async () => (await import('./system.js')).systemCommand],
  ['builder', async () => (await import('./builder.js')).builderCommand],
  ['build', async () => (await import('./build.js')).buildCommand],
  ['run', async () => (await import('./run.js')).runCommand],
  ['ps', async () => (await import('./ps.js')).psCommand],
  ['logs', async () => (await import('./logs.js')).logsCommand],
  ['stop', async () => (await import('./stop.js')).stopCommand],
  ['kill', async () => (await import('./kill.js')).killCommand],
  ['start', async () => (await import('./start.js')).startCommand],
  ['rm', async () => (await import('./rm.js')).rmCommand],
  ['exec', async () => (await import('./exec.js')).execCommand],
  ['commit', async () => (await import('./commit.js')).commitCommand],
  ['pull', async () => (await import('./pull.js')).pullCommand],
  ['push', async () => (await import('./push.js')).pushCommand],
  ['login', async () => (await import('./login.js')).loginCommand],
  ['logout', async () => (await import('./logout.js')).logoutCommand],
];

/** Global options that take a value (their value is not the command name). */
const VALUE_OPTIONS = new Set(['--root']);

/** The command named on the command line, if it is one of hoist's. */
export function invokedCommand(argv: readonly string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') return undefined;
    if (a.startsWith('-')) {
      if (VALUE_OPTIONS.has(a)) i++;
      continue;
    }
    return commandLoaders.some(([n]) => n === a) ? a : undefined;
  }
  return undefined;
}

/**
 * The commands to register for this command line: only the invoked one when it is
 * known, otherwise all of them (for `hoist --help`, and so a typo gets suggestions).
 */
export async function loadCommands(argv: readonly string[]): Promise<HoistCommand[]> {
  const name = invokedCommand(argv);
  if (!name && argv.some((a) => a === '--version' || a === '-v')) return [];
  const chosen = name ? commandLoaders.filter(([n]) => n === name) : commandLoaders;
  return Promise.all(chosen.map(([, load]) => load()));
}
