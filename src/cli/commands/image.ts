import type { HoistCommand } from '../command.js';
import { confirm } from '../prompt.js';
import { openStore } from '../../image/open.js';
import { prune, type PruneResult } from '../../image/gc.js';
import { humanSize } from '../../image/format.js';

const DANGLING_WARNING = 'WARNING! This will remove all dangling images.\nAre you sure you want to continue?';
const ALL_WARNING = 'WARNING! This will remove all images without at least one container associated to them.\nAre you sure you want to continue?';

/** docker's report of removed images: `Deleted Images:`, then `untagged: NAME` / `deleted: ID` lines and a blank line. */
export function imagesDeletedText(r: PruneResult): string {
  if (!r.imagesDeleted.length) return '';
  return `Deleted Images:\n${r.imagesDeleted.map((e) => ('untagged' in e ? `untagged: ${e.untagged}\n` : `deleted: ${e.deleted}\n`)).join('')}\n`;
}

export const imageCommand: HoistCommand = {
  command: 'image <action>',
  describe: 'Manage images: prune (remove unused images, as docker image prune)',
  builder: (y) =>
    y
      .positional('action', { choices: ['prune'] as const })
      .option('all', { alias: 'a', type: 'boolean', default: false, describe: 'Remove all unused images, not just dangling ones' })
      .option('force', { alias: 'f', type: 'boolean', default: false, describe: 'Do not prompt for confirmation' }),
  handler: async (args, io) => {
    const store = await openStore(args.root as string | undefined, io.env, io.cwd);
    const all = !!args.all;
    // as docker: without -f, ask; anything but "y" (including no terminal: EOF) cancels with status 0
    if (!args.force && !(await confirm(io, all ? ALL_WARNING : DANGLING_WARNING))) return 0;
    // the removed images' blobs and snapshots go with them; what the build cache uses stays
    const r = await prune(store, { dangling: true, allImages: all, snapshots: true, keepCache: true });
    io.stdout.write(imagesDeletedText(r));
    io.stdout.write(`Total reclaimed space: ${humanSize(r.reclaimedBytes)}\n`);
    return 0;
  },
};
