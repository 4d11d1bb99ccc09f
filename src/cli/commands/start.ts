import type { HoistCommand } from '../command.js';
import { HoistError } from '../../util/errors.js';
import { openStore } from '../../image/open.js';
import { findContainer, helperAlive } from '../../sandbox/container.js';
import { startContainer } from '../../sandbox/lifecycle.js';
import { forwardSignals, foregroundStdio } from './run.js';

export const startCommand: HoistCommand = {
  command: 'start <containers..>',
  describe: 'Start stopped containers again (in the background unless -a)',
  builder: (y) =>
    y
      .positional('containers', { type: 'string', array: true })
      .option('attach', { alias: 'a', type: 'boolean', default: false, describe: "Attach to the container's output and wait for it" })
      .option('interactive', { alias: 'i', type: 'boolean', default: false, describe: 'Attach stdin (with -a)' }),
  handler: async (args, io) => {
    const store = await openStore(args.root as string | undefined, io.env, io.cwd);
    const refs = (args.containers as string[]).map(String);
    if (args.attach && refs.length > 1) throw new HoistError('E_USAGE', 'start -a takes one container', { exitCode: 1 });
    let status = 0;
    for (const ref of refs) {
      try {
        const c = await findContainer(store.root, ref);
        if (c.state === 'running' && helperAlive(c)) {
          io.stdout.write(ref + '\n');
          continue;
        }
        const img = await store.findImage(c.image).catch(() => {
          throw new HoistError('E_NO_IMAGE', `the image ${c.imageName} (${c.image}) of container ${c.name} is no longer in the store`, { hint: 'load or pull it again' });
        });
        if (args.attach) {
          const fwd = forwardSignals();
          try {
            const r = await startContainer(store, img, c, { ...foregroundStdio(io, !!args.interactive && c.config.openStdin), onStart: (p) => fwd.setPid(p) });
            return r.exitCode;
          } finally {
            fwd.dispose();
          }
        }
        const r = await startContainer(store, img, c, { detach: true });
        if (r.setupError !== undefined || !r.initPid) throw new HoistError('E_START', `container ${c.name} did not start: ${r.setupError ?? `exit ${r.exitCode}`}`);
        io.stdout.write(ref + '\n');
      } catch (e) {
        io.stderr.write(`error: ${(e as Error).message}\n`);
        status = 1;
      }
    }
    return status;
  },
};
