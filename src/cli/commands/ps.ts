import type { HoistCommand } from '../command.js';
import { resolveRoot } from '../../util/root.js';
import { ago, ellipsis, humanDuration, table } from '../../image/format.js';
import { listContainers, type ContainerRecord } from '../../sandbox/container.js';

/** Docker's STATUS column. */
export function statusText(c: ContainerRecord, now = Date.now()): string {
  if (c.state === 'running') return `Up ${humanDuration(now - Date.parse(c.startedAt ?? c.created))}`;
  if (c.state === 'exited') return `Exited (${c.exitCode ?? 0}) ${ago(c.finishedAt, now)}`;
  return 'Created';
}

export const psCommand: HoistCommand = {
  command: 'ps',
  describe: 'List containers (running ones unless -a)',
  builder: (y) =>
    y
      .option('all', { alias: 'a', type: 'boolean', default: false, describe: 'Show all containers' })
      .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'Only container IDs' })
      .option('trunc', { type: 'boolean', default: true, describe: 'Truncate IDs and commands (--no-trunc shows them whole)' }),
  handler: async (args, io) => {
    const root = resolveRoot(args.root as string | undefined, io.env, io.cwd);
    const all = (await listContainers(root)).filter((c) => args.all || c.state === 'running');
    const trunc = args.trunc !== false;
    const id = (c: ContainerRecord) => (trunc ? c.id.slice(0, 12) : c.id);
    if (args.quiet) {
      for (const c of all) io.stdout.write(id(c) + '\n');
      return;
    }
    const rows = all.map((c) => {
      const cmd = JSON.stringify(c.config.args.join(' '));
      return [id(c), c.imageName, trunc ? ellipsis(cmd, 20) : cmd, ago(c.created), statusText(c), c.name];
    });
    io.stdout.write(table(['CONTAINER ID', 'IMAGE', 'COMMAND', 'CREATED', 'STATUS', 'NAMES'], rows));
  },
};
