import type { Argv } from 'yargs';
import type { HoistCommand } from '../command.js';
import { HoistError } from '../../util/errors.js';
import { resolveRoot } from '../../util/root.js';
import { containerRunning, findContainer } from '../../sandbox/container.js';
import { runSandbox } from '../../sandbox/helper.js';
import { mergeEnv } from '../../sandbox/imageconfig.js';
import { forwardSignals, foregroundStdio, processOptions, reparse } from './run.js';

const execOptions = (y: Argv): Argv => processOptions(y);

const EXEC_USAGE = 'hoist exec [OPTIONS] CONTAINER COMMAND [ARG...]\n\nRun a command in a running container, joining its namespaces.';

export const execCommand: HoistCommand = {
  command: 'exec [container] [command..]',
  describe: 'Run a command in a running container (joining its namespaces)',
  builder: (y) => execOptions(y.parserConfiguration({ 'halt-at-non-option': true })),
  handler: async (raw, io) => {
    const { opts: args, words, help } = reparse(raw, 'exec', execOptions, EXEC_USAGE);
    if (help !== undefined) {
      io.stdout.write(help + '\n');
      return 0;
    }
    if (words.length < 2) throw new HoistError('E_USAGE', '"hoist exec" needs a container and a command', { hint: 'hoist exec [OPTIONS] CONTAINER COMMAND [ARG...]', exitCode: 125 });
    const root = resolveRoot((args.root ?? raw.root) as string | undefined, io.env, io.cwd);
    let c;
    try {
      c = await findContainer(root, words[0]!);
    } catch (e) {
      if (e instanceof HoistError) throw new HoistError(e.code, e.message, { hint: e.hint, exitCode: 125 });
      throw e;
    }
    if (!containerRunning(c) || !c.initPid) {
      throw new HoistError('E_NOT_RUNNING', `container ${c.name} is not running`, { hint: `start it with hoist start ${c.name}`, exitCode: 125 });
    }
    const list = (v: unknown): string[] => (v === undefined ? [] : Array.isArray(v) ? v.map(String) : [String(v)]);
    const workdir = args.workdir as string | undefined;
    if (workdir !== undefined && !workdir.startsWith('/')) throw new HoistError('E_BAD_WORKDIR', `the working directory ${JSON.stringify(workdir)} is not an absolute path`, { exitCode: 125 });
    const fwd = forwardSignals();
    try {
      const r = await runSandbox(
        {
          mode: 'exec',
          pid: c.initPid,
          args: words.slice(1),
          env: mergeEnv(c.config.env, list(args.env), io.env),
          cwd: workdir ?? c.config.cwd,
          user: (args.user as string | undefined) ?? c.config.user,
          hostname: c.config.hostname,
          tty: !!args.tty,
          openStdin: !!args.interactive,
        },
        { ...foregroundStdio(io, !!args.interactive), onStart: ({ helperPid }) => fwd.setPid(helperPid) },
      );
      return r.exitCode;
    } finally {
      fwd.dispose();
    }
  },
};
