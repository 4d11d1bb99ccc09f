import type { HoistCommand } from '../command.js';
import { HoistError } from '../../util/errors.js';
import { resolveRoot } from '../../util/root.js';
import { containerRunning, findContainer, helperAlive, removeContainerDir, waitStopped } from '../../sandbox/container.js';

export const rmCommand: HoistCommand = {
  command: 'rm <containers..>',
  describe: 'Remove containers (-f kills running ones first)',
  builder: (y) =>
    y
      .positional('containers', { type: 'string', array: true })
      .option('force', { alias: 'f', type: 'boolean', default: false, describe: 'Kill a running container, then remove it' }),
  handler: async (args, io) => {
    const root = resolveRoot(args.root as string | undefined, io.env, io.cwd);
    let status = 0;
    for (const ref of (args.containers as string[]).map(String)) {
      try {
        const c = await findContainer(root, ref);
        if (c.state === 'running' && helperAlive(c)) {
          if (!args.force) {
            throw new HoistError('E_RUNNING', `cannot remove container ${c.name}: it is running`, { hint: 'stop it first, or use hoist rm -f' });
          }
          if (c.initPid && containerRunning(c)) {
            try {
              process.kill(c.initPid, 'SIGKILL');
            } catch {
              // exited meanwhile
            }
          }
          await waitStopped(root, c, 10_000);
        }
        await removeContainerDir(root, c);
        io.stdout.write(ref + '\n');
      } catch (e) {
        io.stderr.write(`error: ${(e as Error).message}\n`);
        status = 1;
      }
    }
    return status;
  },
};
