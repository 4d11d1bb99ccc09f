import type { HoistCommand } from '../command.js';
import { openStore } from '../../image/open.js';
import { parseReference } from '../../image/reference.js';
import { pushImage } from '../../registry/push.js';
import { clientOptionsFrom, withRegistryOptions } from '../../registry/cliopts.js';

export const pushCommand: HoistCommand = {
  command: 'push <image>',
  describe: 'Upload an image to a registry (name it for the registry first with hoist tag)',
  builder: (y) =>
    withRegistryOptions(y)
      .positional('image', { type: 'string' })
      .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'Print only the manifest digest' })
      // Upload chunk size in bytes; blobs above it go up in PATCH requests (tests use it to force chunking).
      .option('chunk-size', { type: 'number', hidden: true })
      .example('hoist tag app localhost:5000/app:v1 && hoist push localhost:5000/app:v1', 'push to a local registry'),
  handler: async (args, io) => {
    const spec = String(args.image);
    parseReference(spec);
    const store = await openStore(args.root as string | undefined, io.env, io.cwd);
    const chunk = args.chunkSize as number | undefined;
    const res = await pushImage(store, spec, {
      ...clientOptionsFrom(args, io.env),
      ...(chunk && chunk > 0 ? { chunkSize: Math.floor(chunk) } : {}),
      progress: args.quiet ? undefined : (l) => io.stdout.write(l + '\n'),
    });
    if (args.quiet) io.stdout.write(`${res.digest}\n`);
  },
};
