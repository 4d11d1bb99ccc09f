import { createWriteStream } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { HoistCommand } from '../command.js';
import { HoistError } from '../../util/errors.js';
import { openStore } from '../../image/open.js';
import { writeLayer } from '../../image/layer.js';
import { formatReference, parseReference } from '../../image/reference.js';
import { MediaType, type ImageConfig, type ImageManifest } from '../../image/types.js';
import { diffUpper } from '../../snapshot/diff.js';
import { containerDir, findContainer } from '../../sandbox/container.js';

export const commitCommand: HoistCommand = {
  command: 'commit <container> [image]',
  describe: "Create an image from a container's changes (its writable layer as a new layer)",
  builder: (y) =>
    y
      .positional('container', { type: 'string' })
      .positional('image', { type: 'string', describe: 'NAME[:TAG] for the new image' })
      .option('message', { alias: 'm', type: 'string', describe: 'Commit message (in the history entry)' })
      .option('author', { alias: 'a', type: 'string', describe: 'Author' }),
  handler: async (args, io) => {
    const store = await openStore(args.root as string | undefined, io.env, io.cwd);
    const c = await findContainer(store.root, String(args.container));
    const ref = args.image ? parseReference(String(args.image)) : undefined;
    if (ref?.digest) throw new HoistError('E_REFERENCE', `cannot commit to a digest reference (${args.image})`, { hint: 'use NAME[:TAG]' });
    const upper = join(containerDir(store.root, c.id), 'upper');
    if (c.rootfs !== 'overlay' || !(await stat(upper).catch(() => null))) {
      throw new HoistError('E_COMMIT', `container ${c.name} has no overlay writable layer (it ran on a copied root filesystem)`, {
        hint: 'commit needs overlayfs, which hoist uses when run as root',
      });
    }
    const img = await store.findImage(c.image).catch(() => {
      throw new HoistError('E_NO_IMAGE', `the image of container ${c.name} (${c.image}) is no longer in the store`);
    });
    const dir = await store.tmpDir('commit');
    try {
      const tmpPath = join(dir, 'layer');
      const info = await writeLayer(diffUpper(upper, { onWarning: (m) => io.stderr.write(`warning: ${m}\n`) }), createWriteStream(tmpPath), 'gzip');
      await store.commit([{ tmpPath, digest: info.digest, size: info.size }]);
      const now = new Date().toISOString();
      const config: ImageConfig = {
        ...img.config,
        created: now,
        ...(args.author ? { author: String(args.author) } : {}),
        rootfs: { type: 'layers', diff_ids: [...(img.config.rootfs?.diff_ids ?? []), info.diffID] },
        history: [
          ...(img.config.history ?? []),
          { created: now, created_by: `hoist commit ${c.name}`, ...(args.author ? { author: String(args.author) } : {}), ...(args.message ? { comment: String(args.message) } : {}) },
        ],
      };
      // stay in the base manifest's family: Docker schema2 layers and config with a Docker manifest
      const docker = img.manifest.mediaType === MediaType.DockerManifest;
      const cfgDesc = await store.putBlob(Buffer.from(JSON.stringify(config)), docker ? MediaType.DockerConfig : MediaType.OciConfig);
      const manifest: ImageManifest = {
        ...img.manifest,
        schemaVersion: 2,
        mediaType: docker ? MediaType.DockerManifest : MediaType.OciManifest,
        config: cfgDesc,
        layers: [...img.manifest.layers, { mediaType: docker ? MediaType.DockerLayerGzip : info.mediaType, digest: info.digest, size: info.size }],
      };
      const man = await store.putBlob(Buffer.from(JSON.stringify(manifest)), manifest.mediaType!);
      await store.updateIndex(async (idx) => {
        if (ref) await store.setName(formatReference(ref), man, idx);
        else store.keepDangling(man, idx);
      });
      io.stdout.write(cfgDesc.digest + '\n');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  },
};
