import type { HoistCommand } from '../command.js';
import { openStore } from '../../image/open.js';
import { digestHex } from '../../image/digest.js';
import { ago, humanSize, table } from '../../image/format.js';
import { imageSize } from '../../image/ops.js';
import { familiarRepository, parseReference, type Reference } from '../../image/reference.js';

export const imagesCommand: HoistCommand = {
  command: 'images [repository]',
  describe: 'List images in the store',
  builder: (y) =>
    y
      .positional('repository', { type: 'string', describe: 'Only this repository (NAME or NAME:TAG)' })
      .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'Only image IDs' })
      .option('digests', { type: 'boolean', default: false, describe: 'Show manifest digests' })
      .option('trunc', { type: 'boolean', default: true, describe: 'Truncate image IDs (--no-trunc shows them whole)' })
      .option('all', { alias: 'a', type: 'boolean', default: false, describe: 'Accepted for Docker compatibility (hoist has no intermediate images)' }),
  handler: async (args, io) => {
    const store = await openStore(args.root as string | undefined, io.env, io.cwd);
    let filter: { ref: Reference; tagGiven: boolean } | undefined;
    if (args.repository) {
      const spec = String(args.repository);
      const ref = parseReference(spec);
      filter = { ref, tagGiven: /:[^/]*$/.test(spec) };
    }
    // Declared as "trunc" so yargs' boolean negation turns --no-trunc into trunc=false.
    const noTrunc = args.trunc === false;
    const rows: { repo: string; tag: string; digest: string; id: string; created: string; size: string; time: number }[] = [];
    for (const img of await store.listImages()) {
      const id = noTrunc ? img.id : digestHex(img.id).slice(0, 12);
      const refs = img.names.map((n) => parseReference(n));
      const base = { digest: img.manifestDescriptor.digest, id, created: ago(img.config.created), size: humanSize(imageSize(img)), time: Date.parse(img.config.created ?? '') || 0 };
      if (refs.length === 0) {
        if (!filter) rows.push({ ...base, repo: '<none>', tag: '<none>' });
        continue;
      }
      for (const r of refs) {
        if (filter && (r.domain !== filter.ref.domain || r.path !== filter.ref.path || (filter.tagGiven && r.tag !== filter.ref.tag))) continue;
        rows.push({ ...base, repo: familiarRepository(r), tag: r.tag ?? '<none>' });
      }
    }
    rows.sort((a, b) => b.time - a.time || a.repo.localeCompare(b.repo) || a.tag.localeCompare(b.tag));
    if (args.quiet) {
      const seen = new Set<string>();
      for (const r of rows) if (!seen.has(r.id)) (seen.add(r.id), io.stdout.write(r.id + '\n'));
      return;
    }
    const headers = ['REPOSITORY', 'TAG', ...(args.digests ? ['DIGEST'] : []), 'IMAGE ID', 'CREATED', 'SIZE'];
    io.stdout.write(table(headers, rows.map((r) => [r.repo, r.tag, ...(args.digests ? [r.digest] : []), r.id, r.created, r.size])));
  },
};
