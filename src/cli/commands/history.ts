import type { HoistCommand } from '../command.js';
import { openStore } from '../../image/open.js';
import { digestHex } from '../../image/digest.js';
import { ago, ellipsis, humanSize, table } from '../../image/format.js';
import { historyOf } from '../../image/ops.js';

export const historyCommand: HoistCommand = {
  command: 'history <image>',
  describe: "Show an image's history: one row per step, newest first",
  builder: (y) =>
    y
      .positional('image', { type: 'string' })
      .option('trunc', { type: 'boolean', default: true, describe: 'Truncate IDs and CREATED BY (--no-trunc shows them whole)' })
      .option('human', { alias: 'H', type: 'boolean', default: true, describe: 'Human-readable sizes and dates' })
      .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'Only IDs' }),
  handler: async (args, io) => {
    const store = await openStore(args.root as string | undefined, io.env, io.cwd);
    const img = await store.findImage(String(args.image));
    const rows = historyOf(img);
    // Declared as "trunc" so yargs' boolean negation turns --no-trunc into trunc=false.
    const noTrunc = args.trunc === false;
    const id = (x: string) => (x.startsWith('sha256:') && !noTrunc ? digestHex(x as `sha256:${string}`).slice(0, 12) : x);
    if (args.quiet) {
      for (const r of rows) io.stdout.write(id(r.id) + '\n');
      return;
    }
    const human = args.human !== false;
    io.stdout.write(
      table(
        ['IMAGE', 'CREATED', 'CREATED BY', 'SIZE', 'COMMENT'],
        rows.map((r) => [
          id(r.id),
          human ? ago(r.created) : (r.created ?? ''),
          noTrunc ? r.createdBy : ellipsis(r.createdBy.replace(/\s+/g, ' '), 45),
          human ? humanSize(r.size) : String(r.size),
          r.comment,
        ]),
      ),
    );
  },
};
