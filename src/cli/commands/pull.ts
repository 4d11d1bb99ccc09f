import type { HoistCommand } from '../command.js';
import { openStore } from '../../image/open.js';
import { familiarString, formatReference, parseReference } from '../../image/reference.js';
import { pullImage } from '../../registry/pull.js';
import { clientOptionsFrom, withRegistryOptions } from '../../registry/cliopts.js';

export const pullCommand: HoistCommand = {
  command: 'pull <image>',
  describe: 'Download an image from a registry (NAME[:TAG] or NAME@DIGEST)',
  builder: (y) =>
    withRegistryOptions(y)
      .positional('image', { type: 'string' })
      .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'Print only the image name' })
      .example('hoist pull localhost:5000/app:v1', 'pull from a local registry (plain HTTP is allowed on loopback)'),
  handler: async (args, io) => {
    const ref = parseReference(String(args.image));
    const store = await openStore(args.root as string | undefined, io.env, io.cwd);
    const quiet = !!args.quiet;
    const res = await pullImage(store, ref, {
      ...clientOptionsFrom(args, io.env),
      progress: quiet ? undefined : (l) => io.stdout.write(l + '\n'),
    });
    if (!quiet) {
      io.stdout.write(`Digest: ${res.digest}\n`);
      io.stdout.write(`Status: ${res.updated ? 'Downloaded newer image' : 'Image is up to date'} for ${familiarString(ref)}\n`);
    }
    io.stdout.write(`${formatReference(ref)}\n`);
  },
};
