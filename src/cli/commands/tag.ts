import type { HoistCommand } from '../command.js';
import { openStore } from '../../image/open.js';
import { tagImage } from '../../image/ops.js';

export const tagCommand: HoistCommand = {
  command: 'tag <source> <target>',
  describe: 'Give an image another name (TARGET) ',
  builder: (y) =>
    y
      .positional('source', { type: 'string', describe: 'Existing image: name or ID' })
      .positional('target', { type: 'string', describe: 'New name, NAME[:TAG]' })
      .example('hoist tag busybox registry.example.com:5000/base/busybox:1', ''),
  handler: async (args, io) => {
    const store = await openStore(args.root as string | undefined, io.env, io.cwd);
    await tagImage(store, String(args.source), String(args.target));
  },
};
