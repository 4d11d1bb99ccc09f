import type { HoistCommand } from '../command.js';
import { openStore } from '../../image/open.js';
import { digestHex } from '../../image/digest.js';
import { ago, humanSize } from '../../image/format.js';
import { imageSize } from '../../image/ops.js';
import { familiarRepository, familiarString, parseReference, type Reference } from '../../image/reference.js';
import { containersByImage } from '../../image/containers.js';
import { customFormat, goTimeString, parseFilters, parseListFormat, pathMatch, renderList } from '../listformat.js';
import { HoistError } from '../../util/errors.js';

/** docker's column titles of `images --format "table …"`. */
const HEADERS = {
  ID: 'IMAGE ID',
  Repository: 'REPOSITORY',
  Tag: 'TAG',
  Digest: 'DIGEST',
  CreatedSince: 'CREATED',
  CreatedAt: 'CREATED AT',
  Size: 'SIZE',
  Containers: 'CONTAINERS',
  VirtualSize: 'SIZE',
};
const DEFAULT_TABLE = 'table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{if .CreatedSince }}{{.CreatedSince}}{{else}}N/A{{end}}\t{{.Size}}';
const DEFAULT_TABLE_DIGEST = 'table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{if .CreatedSince }}{{.CreatedSince}}{{else}}N/A{{end}}\t{{.Size}}';
const FILTERS = ['dangling', 'reference', 'label', 'before', 'since'] as const;

/** One row: docker's image fields (keys sorted, as `{{json .}}` prints them). */
interface ImageRow {
  Containers: string;
  CreatedAt: string;
  CreatedSince: string;
  Digest: string;
  ID: string;
  Repository: string;
  Size: string;
  Tag: string;
  VirtualSize: string;
}

function boolFilter(key: string, v: string): boolean {
  const l = v.toLowerCase();
  if (l === 'true' || l === '1') return true;
  if (l === 'false' || l === '0') return false;
  throw new HoistError('E_FILTER', `invalid filter '${key}=${v}'`, { hint: `${key} is true or false`, exitCode: 1 });
}

export const imagesCommand: HoistCommand = {
  command: 'images [repository]',
  describe: 'List images in the store',
  builder: (y) =>
    y
      .positional('repository', { type: 'string', describe: 'Only this repository (NAME or NAME:TAG)' })
      .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'Only image IDs' })
      .option('digests', { type: 'boolean', default: false, describe: 'Show manifest digests' })
      .option('trunc', { type: 'boolean', default: true, describe: 'Truncate image IDs (--no-trunc shows them whole)' })
      .option('filter', { alias: 'f', type: 'string', array: true, default: [] as string[], describe: 'Filter: dangling=true|false, reference=PATTERN, label=KEY[=VALUE], before=IMAGE, since=IMAGE' })
      .option('format', { type: 'string', describe: 'Go template ("table {{.Repository}}\\t{{.Tag}}"), or json; fields .ID .Repository .Tag .Digest .CreatedSince .CreatedAt .Size .Containers' })
      .option('all', { alias: 'a', type: 'boolean', default: false, describe: 'Accepted for Docker compatibility (hoist has no intermediate images)' }),
  handler: async (args, io) => {
    let format = customFormat(args.format);
    // as docker: --digests adds the column to a custom table that lacks it
    if (format?.startsWith('table') && args.digests && !format.includes('{{.Digest}}')) format += '\t{{.Digest}}';
    // parse before any work: a bad template or filter fails at once
    const fmt = parseListFormat(format ?? (args.digests ? DEFAULT_TABLE_DIGEST : DEFAULT_TABLE), HEADERS);
    const filters = parseFilters(((args.filter as string[] | undefined) ?? []).map(String), FILTERS, 'dangling=true');
    const store = await openStore(args.root as string | undefined, io.env, io.cwd);
    let filter: { ref: Reference; tagGiven: boolean } | undefined;
    if (args.repository) {
      const spec = String(args.repository);
      const ref = parseReference(spec);
      filter = { ref, tagGiven: /:[^/]*$/.test(spec) };
    }
    const dangling = filters.get('dangling')?.map((v) => boolFilter('dangling', v));
    const patterns = filters.get('reference');
    const labels = filters.get('label') ?? [];
    const createdOf = async (spec: string) => Date.parse((await store.findImage(spec)).config.created ?? '') || 0;
    const before = await Promise.all((filters.get('before') ?? []).map(createdOf));
    const since = await Promise.all((filters.get('since') ?? []).map(createdOf));
    const used = await containersByImage(store.root);
    // Declared as "trunc" so yargs' boolean negation turns --no-trunc into trunc=false.
    const noTrunc = args.trunc === false;
    const rows: (ImageRow & { time: number })[] = [];
    for (const img of await store.listImages()) {
      const time = Date.parse(img.config.created ?? '') || 0;
      if (dangling && !dangling.some((d) => d === (img.names.length === 0))) continue;
      if (before.some((t) => !(time < t)) || since.some((t) => !(time > t))) continue;
      const imgLabels = img.config.config?.Labels ?? {};
      if (
        !labels.every((l) => {
          const eq = l.indexOf('=');
          return eq < 0 ? Object.hasOwn(imgLabels, l) : imgLabels[l.slice(0, eq)] === l.slice(eq + 1);
        })
      )
        continue;
      const size = humanSize(imageSize(img));
      const base = {
        Containers: String(used.get(img.id)?.length ?? 0),
        CreatedAt: goTimeString(img.config.created),
        CreatedSince: ago(img.config.created),
        Digest: img.manifestDescriptor.digest,
        ID: noTrunc ? img.id : digestHex(img.id).slice(0, 12),
        Size: size,
        VirtualSize: size,
        time,
      };
      const refs = img.names.map((n) => parseReference(n));
      if (refs.length === 0) {
        if (!filter && !patterns) rows.push({ ...base, Repository: '<none>', Tag: '<none>' });
        continue;
      }
      for (const r of refs) {
        if (filter && (r.domain !== filter.ref.domain || r.path !== filter.ref.path || (filter.tagGiven && r.tag !== filter.ref.tag))) continue;
        // docker's reference filter: path.Match against the familiar reference or name
        if (patterns && !patterns.some((p) => pathMatch(p, familiarString(r)) || pathMatch(p, familiarRepository(r)))) continue;
        rows.push({ ...base, Repository: familiarRepository(r), Tag: r.tag ?? '<none>' });
      }
    }
    rows.sort((a, b) => b.time - a.time || a.Repository.localeCompare(b.Repository) || a.Tag.localeCompare(b.Tag));
    if (args.quiet && format === undefined) {
      const seen = new Set<string>();
      for (const r of rows) if (!seen.has(r.ID)) (seen.add(r.ID), io.stdout.write(r.ID + '\n'));
      return;
    }
    io.stdout.write(renderList(fmt, rows.map(({ time: _, ...r }) => r), HEADERS, 'image'));
  },
};
