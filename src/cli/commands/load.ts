import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Readable } from 'node:stream';
import type { HoistCommand } from '../command.js';
import { HoistError } from '../../util/errors.js';
import { openStore } from '../../image/open.js';
import { loadArchive } from '../../image/archive-load.js';
import { familiarString, parseReference } from '../../image/reference.js';

export const loadCommand: HoistCommand = {
  command: 'load',
  describe: 'Load images from a docker save or OCI archive (file or stdin; gzip/zstd-compressed archives too)',
  builder: (y) =>
    y
      .option('input', { alias: 'i', type: 'string', describe: 'Archive to read (default: stdin)' })
      .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'Print nothing on success' })
      .example('hoist load -i busybox.tar', 'Loaded image: busybox:latest')
      .example('docker save app | hoist load', 'read from a pipe'),
  handler: async (args, io) => {
    const input = args.input as string | undefined;
    let src: Readable;
    if (input !== undefined && input !== '-') {
      const path = resolve(io.cwd, input);
      const st = await stat(path).catch(() => null);
      if (!st) throw new HoistError('E_NOT_FOUND', `cannot load ${input}: no such file`, { hint: 'pass the path of a docker save or OCI archive with -i' });
      if (st.isDirectory()) throw new HoistError('E_NOT_FOUND', `cannot load ${input}: it is a directory, not an archive`, { hint: 'tar it first, or use skopeo copy oci:DIR oci-archive:FILE' });
      src = createReadStream(path);
    } else {
      if ((io.stdin as { isTTY?: boolean }).isTTY) {
        throw new HoistError('E_USAGE', 'hoist load needs an archive on stdin, but stdin is a terminal', { hint: 'use -i FILE or pipe an archive in', exitCode: 125 });
      }
      src = io.stdin;
    }
    const store = await openStore(args.root as string | undefined, io.env, io.cwd);
    const res = await loadArchive(store, src);
    if (args.quiet) return;
    for (const r of res.retagged) {
      io.stdout.write(`The image ${familiarString(parseReference(r.name))} already exists, renaming the old one with ID ${r.oldId} to empty string\n`);
    }
    for (const img of res.images) {
      if (img.names.length === 0) io.stdout.write(`Loaded image ID: ${img.id}\n`);
      for (const n of img.names) io.stdout.write(`Loaded image: ${familiarString(parseReference(n))}\n`);
    }
  },
};
