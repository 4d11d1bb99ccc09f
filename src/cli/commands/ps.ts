import type { HoistCommand } from '../command.js';
import { resolveRoot } from '../../util/root.js';
import { ago, ellipsis, humanDuration } from '../../image/format.js';
import { listContainers, type ContainerRecord } from '../../sandbox/container.js';
import { customFormat, goQuote, goTimeString, parseFilters, parseListFormat, renderList } from '../listformat.js';
import { HoistError } from '../../util/errors.js';

/** Docker's STATUS column. */
export function statusText(c: ContainerRecord, now = Date.now()): string {
  if (c.state === 'running') return `Up ${humanDuration(now - Date.parse(c.startedAt ?? c.created))}`;
  if (c.state === 'exited') return `Exited (${c.exitCode ?? 0}) ${ago(c.finishedAt, now)}`;
  return 'Created';
}

/** docker's column titles of `ps --format "table …"`. */
const HEADERS = {
  ID: 'CONTAINER ID',
  Names: 'NAMES',
  Image: 'IMAGE',
  Command: 'COMMAND',
  CreatedAt: 'CREATED AT',
  RunningFor: 'CREATED',
  Ports: 'PORTS',
  State: 'STATE',
  Status: 'STATUS',
  Mounts: 'MOUNTS',
  LocalVolumes: 'LOCAL VOLUMES',
  Networks: 'NETWORKS',
};
const DEFAULT_TABLE = 'table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}';
const FILTERS = ['status', 'name', 'id', 'exited'] as const;
/** docker's container states (a status filter takes these). */
const STATES = ['created', 'restarting', 'running', 'removing', 'paused', 'exited', 'dead'];

/** One row: docker's container fields. */
function row(c: ContainerRecord, trunc: boolean): Record<string, string> {
  const command = c.config.args.join(' ');
  return {
    Command: goQuote(trunc ? ellipsis(command, 20) : command),
    CreatedAt: goTimeString(c.created),
    ID: trunc ? c.id.slice(0, 12) : c.id,
    Image: c.imageName,
    // hoist has no volumes; bind mounts show their source, as docker's do
    LocalVolumes: '0',
    Mounts: c.config.mounts.flatMap((m) => (m.type === 'bind' ? [trunc ? ellipsis(m.source, 15) : m.source] : [])).join(','),
    Names: c.name,
    Networks: c.config.network,
    // hoist publishes no ports (networking is none or host)
    Ports: '',
    RunningFor: ago(c.created),
    State: c.state,
    Status: statusText(c),
  };
}

export const psCommand: HoistCommand = {
  command: 'ps',
  describe: 'List containers (running ones unless -a)',
  builder: (y) =>
    y
      .option('all', { alias: 'a', type: 'boolean', default: false, describe: 'Show all containers' })
      .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'Only container IDs' })
      .option('trunc', { type: 'boolean', default: true, describe: 'Truncate IDs and commands (--no-trunc shows them whole)' })
      .option('last', { alias: 'n', type: 'number', default: -1, describe: 'Show the N last created containers (all states)' })
      .option('latest', { alias: 'l', type: 'boolean', default: false, describe: 'Show the latest created container (all states)' })
      .option('filter', { alias: 'f', type: 'string', array: true, default: [] as string[], describe: 'Filter: status=created|running|exited…, name=REGEX, id=PREFIX, exited=CODE' })
      .option('format', { type: 'string', describe: 'Go template ("table {{.Names}}\\t{{.Status}}"), or json; fields .ID .Image .Command .CreatedAt .RunningFor .Status .Names .Ports .State' }),
  handler: async (args, io) => {
    const custom = customFormat(args.format);
    // as docker: -q wins over a custom format
    const fmt = parseListFormat(args.quiet ? '{{.ID}}' : (custom ?? DEFAULT_TABLE), HEADERS);
    const filters = parseFilters(((args.filter as string[] | undefined) ?? []).map(String), FILTERS, 'status=exited');
    const statuses = filters.get('status') ?? [];
    for (const s of statuses) if (!STATES.includes(s)) throw new HoistError('E_FILTER', `invalid filter 'status=${s}'`, { hint: `statuses: ${STATES.join(', ')}`, exitCode: 1 });
    const names = (filters.get('name') ?? []).map((n) => {
      try {
        return new RegExp(n);
      } catch {
        throw new HoistError('E_FILTER', `invalid filter 'name=${n}': not a regular expression`, { exitCode: 1 });
      }
    });
    const exited = (filters.get('exited') ?? []).map((v) => {
      if (!/^-?\d+$/.test(v)) throw new HoistError('E_FILTER', `invalid filter 'exited=${v}'`, { hint: 'exited takes an exit code, e.g. exited=0', exitCode: 1 });
      return Number(v);
    });
    const ids = filters.get('id') ?? [];
    const root = resolveRoot(args.root as string | undefined, io.env, io.cwd);
    const limit = args.latest ? 1 : Number(args.last);
    // as docker: a status filter or -n/-l lists stopped containers without -a
    const all = args.all || statuses.length > 0 || limit > 0;
    // newest first
    const found = (await listContainers(root)).filter(
      (c) =>
        (all || c.state === 'running') &&
        (statuses.length === 0 || statuses.includes(c.state)) &&
        (names.length === 0 || names.some((re) => re.test(c.name))) &&
        (ids.length === 0 || ids.some((p) => c.id.startsWith(p))) &&
        (exited.length === 0 || (c.state === 'exited' && exited.includes(c.exitCode ?? 0))),
    );
    const list = limit > 0 ? found.slice(0, limit) : found;
    const trunc = args.trunc !== false;
    io.stdout.write(renderList(fmt, list.map((c) => row(c, trunc)), HEADERS, 'container'));
  },
};
