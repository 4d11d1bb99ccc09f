import type { HoistCommand } from '../command.js';
import { confirm } from '../prompt.js';
import { openStore } from '../../image/open.js';
import { humanSize } from '../../image/format.js';
import { parseDuration, parseMemBytes, pruneBuildCache, type CachePruneOptions } from '../../cache/prune.js';
import { HoistError } from '../../util/errors.js';

const NORMAL_WARNING = 'WARNING! This will remove all dangling build cache. Are you sure you want to continue?';
const ALL_WARNING = 'WARNING! This will remove all build cache. Are you sure you want to continue?';

/** `--filter key=value` flags as docker's builder prune takes them (until / unused-for, type). */
export function parseCacheFilters(list: string[]): Pick<CachePruneOptions, 'until' | 'type'> {
  const out: Pick<CachePruneOptions, 'until' | 'type'> = {};
  for (const f of list) {
    const eq = f.indexOf('=');
    if (eq <= 0) throw new HoistError('E_FILTER', `bad format of filter (expected name=value): ${f}`, { hint: 'e.g. --filter until=24h', exitCode: 125 });
    const k = f.slice(0, eq).toLowerCase();
    const v = f.slice(eq + 1);
    if (k === 'until' || k === 'unused-for') out.until = parseDuration(v);
    else if (k === 'type') {
      if (v !== 'regular' && v !== 'exec.cachemount') throw new HoistError('E_FILTER', `invalid filter 'type=${v}'`, { hint: 'types: regular, exec.cachemount', exitCode: 125 });
      out.type = v;
    } else throw new HoistError('E_FILTER', `invalid filter '${k}'`, { hint: 'builder prune filters: until=DURATION, type=regular|exec.cachemount', exitCode: 125 });
  }
  return out;
}

export const builderCommand: HoistCommand = {
  command: ['builder <action>', 'buildx <action>'],
  describe: 'Manage the build cache: prune (remove build cache, as docker builder prune)',
  builder: (y) =>
    y
      .positional('action', { choices: ['prune'] as const })
      .option('all', { alias: 'a', type: 'boolean', default: false, describe: 'Remove all unused build cache, not just dangling ones' })
      .option('force', { alias: 'f', type: 'boolean', default: false, describe: 'Do not prompt for confirmation' })
      .option('filter', { type: 'string', array: true, default: [] as string[], describe: 'Provide filter values (e.g. "until=24h")' })
      .option('keep-storage', { type: 'string', describe: 'Amount of disk space to keep for cache' }),
  handler: async (args, io) => {
    const opts: CachePruneOptions = {
      all: args.all as boolean,
      ...parseCacheFilters((args.filter as string[] | undefined) ?? []),
      ...(args.keepStorage !== undefined ? { keepStorage: parseMemBytes(String(args.keepStorage)) } : {}),
    };
    const store = await openStore(args.root as string | undefined, io.env, io.cwd);
    // as docker: without -f, ask; anything but "y" (including no terminal: EOF) cancels with status 0
    if (!args.force && !(await confirm(io, opts.all ? ALL_WARNING : NORMAL_WARNING))) return 0;
    const r = await pruneBuildCache(store, opts);
    if (r.deleted.length) io.stdout.write(`Deleted build cache objects:\n${r.deleted.map((id) => `${id}\n`).join('')}\n`);
    io.stdout.write(`Total reclaimed space: ${humanSize(r.reclaimedBytes)}\n`);
    return 0;
  },
};
