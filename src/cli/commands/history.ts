import type { HoistCommand } from '../command.js';
import { openStore } from '../../image/open.js';
import { digestHex } from '../../image/digest.js';
import { ago, ellipsis, humanSize } from '../../image/format.js';
import { historyOf } from '../../image/ops.js';
import { customFormat, parseListFormat, renderList } from '../listformat.js';

/** docker's column titles of `history --format "table …"`. */
const HEADERS = {
  ID: 'IMAGE',
  CreatedSince: 'CREATED',
  CreatedAt: 'CREATED AT',
  CreatedBy: 'CREATED BY',
  Size: 'SIZE',
  Comment: 'COMMENT',
};
const DEFAULT_TABLE = 'table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}';
const NON_HUMAN_TABLE = 'table {{.ID}}\t{{.CreatedAt}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}';

/** RFC 3339 in UTC to the second, as docker's history prints CreatedAt. */
function rfc3339(iso: string | undefined): string {
  const t = iso ? Date.parse(iso) : NaN;
  return Number.isNaN(t) ? 'N/A' : new Date(Math.floor(t / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}

export const historyCommand: HoistCommand = {
  command: 'history <image>',
  describe: "Show an image's history: one row per step, newest first",
  builder: (y) =>
    y
      .positional('image', { type: 'string' })
      .option('trunc', { type: 'boolean', default: true, describe: 'Truncate IDs and CREATED BY (--no-trunc shows them whole)' })
      .option('human', { alias: 'H', type: 'boolean', default: true, describe: 'Human-readable sizes and dates' })
      .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'Only IDs' })
      .option('format', { type: 'string', describe: 'Go template ("table {{.ID}}\\t{{.CreatedBy}}"), or json; fields .ID .CreatedSince .CreatedAt .CreatedBy .Size .Comment' }),
  handler: async (args, io) => {
    const human = args.human !== false;
    const custom = customFormat(args.format);
    // as docker: a custom format wins over -q
    const fmt = parseListFormat(custom ?? (args.quiet ? '{{.ID}}' : human ? DEFAULT_TABLE : NON_HUMAN_TABLE), HEADERS);
    const store = await openStore(args.root as string | undefined, io.env, io.cwd);
    const img = await store.findImage(String(args.image));
    // Declared as "trunc" so yargs' boolean negation turns --no-trunc into trunc=false.
    const trunc = args.trunc !== false;
    const id = (x: string) => (x.startsWith('sha256:') && trunc ? digestHex(x as `sha256:${string}`).slice(0, 12) : x);
    const rows = historyOf(img).map((r) => {
      // docker turns tabs into spaces; a truncated cell also keeps to one line here
      const by = r.createdBy.replace(/\t/g, ' ');
      const createdAt = rfc3339(r.created);
      return {
        Comment: r.comment,
        CreatedAt: createdAt,
        CreatedBy: trunc ? ellipsis(by.replace(/[\r\n]+/g, ' '), 45) : by,
        CreatedSince: human ? ago(r.created) : createdAt,
        ID: id(r.id),
        Size: human ? humanSize(r.size) : String(r.size),
      };
    });
    io.stdout.write(renderList(fmt, rows, HEADERS, 'history'));
  },
};
