import yargs from 'yargs';
import { readFileSync } from 'node:fs';
import { HoistError } from '../util/errors.js';
import type { CliIO } from './io.js';
import { loadCommands } from './commands/index.js';

const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };

/** Exit status for errors in hoist's own usage or setup, as Docker uses it. */
export const EXIT_USAGE = 125;

/** Runs the CLI with the given arguments and streams; resolves to the exit status. */
export async function main(argv: string[], io: CliIO = processIO()): Promise<number> {
  let exitCode = 0;
  let failed = false;
  const y = yargs(argv)
    .scriptName('hoist')
    .usage('hoist: build images from Dockerfiles and run containers, without a daemon.\n\nUsage: hoist <command> [options]')
    .option('root', {
      type: 'string',
      describe: 'Store root (default: $HOIST_ROOT, /var/lib/hoist as root, ~/.local/share/hoist otherwise)',
      global: true,
    })
    .option('debug', { type: 'boolean', describe: 'Show internal stack traces on errors', global: true, hidden: true })
    .version(pkg.version)
    .alias('version', 'v')
    .help()
    .alias('help', 'h')
    .strict()
    .demandCommand(1, 'hoist needs a command; see `hoist --help`')
    .recommendCommands()
    .wrap(Math.min(100, process.stdout.columns || 100))
    .parserConfiguration({ 'halt-at-non-option': false })
    .fail((msg, err, yy) => {
      failed = true;
      if (err) throw err;
      io.stderr.write(`hoist: ${msg}\nSee 'hoist --help'.\n`);
      exitCode = EXIT_USAGE;
      void yy;
    });
  for (const c of await loadCommands(argv)) {
    y.command({
      command: c.command as string | readonly string[],
      describe: c.describe,
      builder: c.builder ?? ((x: any) => x),
      handler: async (args: any) => {
        const code = await c.handler(args, io);
        exitCode = typeof code === 'number' ? code : 0;
      },
    });
  }
  try {
    await y.parseAsync();
  } catch (e) {
    if (e instanceof HoistError) {
      io.stderr.write(`error: ${e.format()}\n`);
      if (argv.includes('--debug') && e.stack) io.stderr.write(e.stack + '\n');
      return e.exitCode;
    }
    io.stderr.write(`hoist: internal error: ${(e as Error)?.message ?? String(e)}\n`);
    if (argv.includes('--debug')) io.stderr.write(String((e as Error)?.stack) + '\n');
    else io.stderr.write('(run again with --debug for a stack trace, and please report it)\n');
    return EXIT_USAGE;
  }
  return failed && exitCode === 0 ? EXIT_USAGE : exitCode;
}

function processIO(): CliIO {
  return { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, env: process.env, cwd: process.cwd() };
}
