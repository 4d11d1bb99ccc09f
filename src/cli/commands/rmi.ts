import type { HoistCommand } from '../command.js';
import { isHoistError } from '../../util/errors.js';
import { openStore } from '../../image/open.js';
import { removeImage } from '../../image/ops.js';

export const rmiCommand: HoistCommand = {
  command: 'rmi <images..>',
  describe: 'Remove images (by name: untag; by ID or last name: delete)',
  builder: (y) =>
    y
      .positional('images', { type: 'string', array: true })
      .option('force', { alias: 'f', type: 'boolean', default: false, describe: 'Remove even if several names or a container refer to it' }),
  handler: async (args, io) => {
    const store = await openStore(args.root as string | undefined, io.env, io.cwd);
    let status = 0;
    for (const spec of (args.images as string[]).map(String)) {
      try {
        const r = await removeImage(store, spec, !!args.force);
        for (const u of r.untagged) io.stdout.write(`Untagged: ${u}\n`);
        for (const d of r.deleted) io.stdout.write(`Deleted: ${d}\n`);
      } catch (e) {
        // Like docker: report each failure, carry on with the other images, fail at the end.
        if (!isHoistError(e)) throw e;
        io.stderr.write(`error: ${e.format()}\n`);
        status = 1;
      }
    }
    return status;
  },
};
