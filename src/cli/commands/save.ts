import { createWriteStream } from 'node:fs';
import { rename, rm, stat } from 'node:fs/promises';
import { dirname, resolve, basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { HoistCommand } from '../command.js';
import { HoistError } from '../../util/errors.js';
import { openStore } from '../../image/open.js';
import { saveArchive, type ArchiveFormat } from '../../image/archive-save.js';

export const saveCommand: HoistCommand = {
  command: 'save <images..>',
  describe: 'Save images to a tar archive (OCI layout, loadable by docker load, skopeo and umoci; or classic docker save format)',
  builder: (y) =>
    y
      .positional('images', { type: 'string', array: true, describe: 'Images to save (names or IDs)' })
      .option('output', { alias: 'o', type: 'string', describe: 'Write to this file instead of stdout' })
      .option('format', { choices: ['oci', 'docker'] as const, default: 'oci', describe: 'Archive layout' })
      .example('hoist save -o busybox.tar busybox', 'write an OCI archive')
      .example('hoist save --format docker app:1 | docker load', 'hand an image to docker'),
  handler: async (args, io) => {
    const specs = (args.images as string[]).map(String);
    const format = args.format as ArchiveFormat;
    const store = await openStore(args.root as string | undefined, io.env, io.cwd);
    const output = args.output as string | undefined;
    if (output === undefined || output === '-') {
      if ((io.stdout as { isTTY?: boolean }).isTTY) {
        throw new HoistError('E_USAGE', 'refusing to write an image archive to a terminal', { hint: 'use -o FILE or redirect stdout', exitCode: 125 });
      }
      await saveArchive(store, specs, format, io.stdout);
      return;
    }
    const path = resolve(io.cwd, output);
    if ((await stat(path).catch(() => null))?.isDirectory()) {
      throw new HoistError('E_USAGE', `cannot save to ${output}: it is a directory`, { hint: 'give a file name, e.g. -o image.tar', exitCode: 125 });
    }
    // Written beside the target and renamed at the end, so a failed save never leaves half an archive.
    const tmp = join(dirname(path), `.${basename(path)}.hoist-${randomBytes(4).toString('hex')}`);
    try {
      await saveArchive(store, specs, format, createWriteStream(tmp, { mode: 0o644 }));
      await rename(tmp, path);
    } catch (e) {
      await rm(tmp, { force: true });
      if ((e as NodeJS.ErrnoException).code === 'ENOENT' && !(e instanceof HoistError)) {
        throw new HoistError('E_NOT_FOUND', `cannot write ${output}: its directory does not exist`);
      }
      throw e;
    }
  },
};
