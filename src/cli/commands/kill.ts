import type { HoistCommand } from '../command.js';
import { resolveRoot } from '../../util/root.js';
import { findContainer, parseSignal, signalContainer } from '../../sandbox/container.js';

export const killCommand: HoistCommand = {
  command: 'kill <containers..>',
  describe: 'Send a signal (default SIGKILL) to running containers',
  builder: (y) =>
    y
      .positional('containers', { type: 'string', array: true })
      .option('signal', { alias: 's', type: 'string', default: 'KILL', describe: 'Signal name or number' }),
  handler: async (args, io) => {
    const root = resolveRoot(args.root as string | undefined, io.env, io.cwd);
    const sig = parseSignal(String(args.signal));
    let status = 0;
    for (const ref of (args.containers as string[]).map(String)) {
      try {
        signalContainer(await findContainer(root, ref), sig);
        io.stdout.write(ref + '\n');
      } catch (e) {
        io.stderr.write(`error: ${(e as Error).message}\n`);
        status = 1;
      }
    }
    return status;
  },
};
