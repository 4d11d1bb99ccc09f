import type { HoistCommand } from '../command.js';
import { resolveRoot } from '../../util/root.js';
import { findContainer, stopContainer } from '../../sandbox/container.js';

export const stopCommand: HoistCommand = {
  command: 'stop <containers..>',
  describe: "Stop containers: the image's STOPSIGNAL (default SIGTERM), then SIGKILL after a grace period",
  builder: (y) =>
    y
      .positional('containers', { type: 'string', array: true })
      .option('time', { alias: 't', type: 'number', default: 10, describe: 'Seconds to wait before SIGKILL' }),
  handler: async (args, io) => {
    const root = resolveRoot(args.root as string | undefined, io.env, io.cwd);
    let status = 0;
    for (const ref of (args.containers as string[]).map(String)) {
      try {
        await stopContainer(root, await findContainer(root, ref), Math.max(0, Number(args.time)));
        io.stdout.write(ref + '\n');
      } catch (e) {
        io.stderr.write(`error: ${(e as Error).message}\n`);
        status = 1;
      }
    }
    return status;
  },
};
