import type { HoistCommand } from '../command.js';
import { isHoistError } from '../../util/errors.js';
import { openStore } from '../../image/open.js';
import { inspectImage } from '../../image/ops.js';
import { parseTemplate, renderTemplate } from '../../image/template.js';

export const inspectCommand: HoistCommand = {
  command: 'inspect <images..>',
  describe: 'Show image details as JSON (or through a Go-template --format)',
  builder: (y) =>
    y
      .positional('images', { type: 'string', array: true })
      .option('format', { alias: 'f', type: 'string', describe: 'Go template, e.g. "{{.Config.Env}}" or "{{json .Config}}"' })
      .option('type', { choices: ['image'] as const, describe: 'Object type (only images are inspected here)' })
      .example('hoist inspect --format "{{.Id}}" busybox', 'sha256:…'),
  handler: async (args, io) => {
    const store = await openStore(args.root as string | undefined, io.env, io.cwd);
    const tpl = args.format !== undefined ? parseTemplate(String(args.format)) : undefined;
    const results: unknown[] = [];
    let status = 0;
    for (const spec of (args.images as string[]).map(String)) {
      try {
        const img = await store.findImage(spec);
        results.push(await inspectImage(store, img));
      } catch (e) {
        if (!isHoistError(e)) throw e;
        io.stderr.write(`error: ${e.format()}\n`);
        status = 1;
      }
    }
    if (tpl) for (const r of results) io.stdout.write(renderTemplate(tpl, r) + '\n');
    else io.stdout.write(JSON.stringify(results, null, 4) + '\n');
    return status;
  },
};
