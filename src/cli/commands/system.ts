import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import type { HoistCommand } from '../command.js';
import { openStore } from '../../image/open.js';
import { HashingStream, type Store } from '../../image/store.js';
import { pipeline } from 'node:stream/promises';
import { countContainers, containersByImage } from '../../image/containers.js';
import { diskUsage, prune, reachable } from '../../image/gc.js';
import { humanDuration, humanSize, table } from '../../image/format.js';
import { listBuildCache, protection } from '../../cache/prune.js';
import { imageSize } from '../../image/ops.js';
import { digestHex } from '../../image/digest.js';
import { readdir } from 'node:fs/promises';
import type { CliIO } from '../io.js';
import { confirm } from '../prompt.js';
import { imagesDeletedText } from './image.js';

/** docker system prune's question, listing what hoist removes. */
function pruneWarning(all: boolean): string {
  const items = [
    all ? 'all images without at least one container associated to them' : 'all dangling images',
    all ? 'all build cache' : 'unused build cache',
    'all blobs and snapshots no image or build cache uses',
  ];
  return `WARNING! This will remove:\n${items.map((i) => `  - ${i}\n`).join('')}\nAre you sure you want to continue?`;
}

async function df(store: Store, io: CliIO, verbose: boolean): Promise<void> {
  const images = await store.listImages();
  const used = await containersByImage(store.root);
  const reach = await reachable(store);
  let blobBytes = 0;
  for (const b of await store.listBlobs()) blobBytes += (await store.blobSize(b)) ?? 0;
  const activeBlobs = new Set<string>();
  for (const img of images) {
    if (!used.has(img.id)) continue;
    for (const l of img.manifest.layers) activeBlobs.add(l.digest);
    activeBlobs.add(img.id);
  }
  let activeBytes = 0;
  for (const b of activeBlobs) activeBytes += (await store.blobSize(b as `sha256:${string}`)) ?? 0;
  const snapNames = (await readdir(join(store.root, 'snapshots')).catch(() => [] as string[])).filter((n) => /^[a-f0-9]{64}$/.test(n));
  const keepChains = new Set([...reach.chains].map((c) => digestHex(c)));
  let snapBytes = 0;
  let snapReclaim = 0;
  for (const n of snapNames) {
    const b = await diskUsage(join(store.root, 'snapshots', n));
    snapBytes += b;
    if (!keepChains.has(n)) snapReclaim += b;
  }
  const containerBytes = await diskUsage(join(store.root, 'containers'));
  const cache = await listBuildCache(store, await protection(store.root), reach);
  // layers only cache records keep are build cache, not image data
  for (const b of new Set(cache.filter((e) => e.layer && !e.shared).map((e) => e.layer!.blob))) {
    if (reach.blobs.has(b)) continue;
    const n = (await store.blobSize(b)) ?? 0;
    blobBytes -= n;
  }
  const cacheBytes = cache.reduce((n, e) => n + (e.shared ? 0 : e.size), 0);
  const cacheReclaim = cache.reduce((n, e) => n + (e.shared || e.inUse ? 0 : e.size), 0);
  const pct = (part: number, whole: number) => (whole > 0 ? ` (${Math.round((part / whole) * 100)}%)` : '');
  const reclaimImages = Math.max(0, blobBytes - activeBytes);
  const activeImages = images.filter((i) => used.has(i.id)).length;
  void imageSize;
  io.stdout.write(
    table(
      ['TYPE', 'TOTAL', 'ACTIVE', 'SIZE', 'RECLAIMABLE'],
      [
        ['Images', String(images.length), String(activeImages), humanSize(blobBytes), `${humanSize(reclaimImages)}${pct(reclaimImages, blobBytes)}`],
        ['Snapshots', String(snapNames.length), String(snapNames.length - snapNames.filter((n) => !keepChains.has(n)).length), humanSize(snapBytes), `${humanSize(snapReclaim)}${pct(snapReclaim, snapBytes)}`],
        ['Containers', String(await countContainers(store.root)), '-', humanSize(containerBytes), '-'],
        ['Build Cache', String(cache.length), String(cache.filter((e) => e.inUse).length), humanSize(cacheBytes), humanSize(cacheReclaim)],
      ],
    ),
  );
  if (verbose) {
    const now = Date.now();
    const when = (t: number) => `${humanDuration(Math.max(0, now - t))} ago`;
    io.stdout.write(`\nBuild cache usage: ${humanSize(cacheBytes)}\n\n`);
    io.stdout.write(
      table(
        ['CACHE ID', 'CACHE TYPE', 'SIZE', 'CREATED', 'LAST USED', 'USAGE', 'SHARED'],
        [...cache]
          .sort((a, b) => b.lastUsed - a.lastUsed)
          .map((e) => [e.id.slice(0, 12), e.type, humanSize(e.size), when(e.created), when(e.lastUsed), e.inUse ? '1' : '0', String(e.shared)]),
      ),
    );
  }
}

async function check(store: Store, io: CliIO): Promise<number> {
  const problems: string[] = [];
  const blobs = await store.listBlobs();
  for (const b of blobs) {
    const h = new HashingStream();
    try {
      await pipeline(createReadStream(store.blobPath(b)), h, async (s: AsyncIterable<Buffer>) => {
        for await (const _ of s) {
          /* hashing happens in h */
        }
      });
      if (h.digest() !== b) problems.push(`blob ${b} is corrupt: its content hashes to ${h.digest()}`);
    } catch (e) {
      problems.push(`blob ${b} cannot be read: ${(e as Error).message}`);
    }
  }
  const names = await readdir(join(store.root, 'blobs', 'sha256')).catch(() => [] as string[]);
  for (const n of names) if (!/^[a-f0-9]{64}$/.test(n)) problems.push(`stray file blobs/sha256/${n} (not a digest name)`);
  const reach = await reachable(store);
  problems.push(...reach.problems);
  const idx = await store.readIndex();
  for (const p of problems) io.stdout.write(`problem: ${p}\n`);
  io.stdout.write(`checked ${blobs.length} blobs and ${idx.manifests.length} references: ${problems.length ? `${problems.length} problem(s)` : 'ok'}\n`);
  return problems.length ? 1 : 0;
}

export const systemCommand: HoistCommand = {
  command: 'system <action>',
  describe: 'Store maintenance: df (disk usage), prune (remove unused data), check (verify blobs and references)',
  builder: (y) =>
    y
      .positional('action', { choices: ['df', 'prune', 'check'] as const })
      .option('force', { alias: 'f', type: 'boolean', default: false, describe: 'prune: do not prompt for confirmation' })
      .option('all', { alias: 'a', type: 'boolean', default: false, describe: 'prune: remove all unused images (not just dangling ones) and all build cache' })
      // -v is --verbose here, as in docker system df, not the global --version
      .version(false)
      .option('verbose', { alias: 'v', type: 'boolean', default: false, describe: 'df: list every build cache entry' }),
  handler: async (args, io) => {
    const store = await openStore(args.root as string | undefined, io.env, io.cwd);
    switch (args.action) {
      case 'df':
        return df(store, io, args.verbose as boolean);
      case 'check':
        return check(store, io);
      case 'prune': {
        const all = !!args.all;
        // as docker: without -f, ask; anything but "y" (including no terminal: EOF) cancels with status 0
        if (!args.force && !(await confirm(io, pruneWarning(all)))) return 0;
        // as docker system prune: dangling (-a: unused) images and the build cache no image shares (-a: all of it)
        const r = await prune(store, { dangling: true, allImages: all, snapshots: true, buildCache: true, buildCacheAll: all });
        io.stdout.write(imagesDeletedText(r));
        if (r.deletedCache.length) io.stdout.write(`Deleted build cache objects:\n${r.deletedCache.map((id) => `${id}\n`).join('')}\n`);
        io.stdout.write(`Removed ${r.removedBlobs} blob(s) and ${r.removedSnapshots} snapshot(s)\nTotal reclaimed space: ${humanSize(r.reclaimedBytes)}\n`);
        return 0;
      }
    }
  },
};
