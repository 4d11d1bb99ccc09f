import test from 'ava';
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isHoistError } from '../../src/util/errors.js';
import {
  canMountOverlay, computeChainIDs, listSnapshots, materializeRootfs, prepareSnapshots, readSnapshotMeta,
  removeSnapshot, snapshotFsDir, type SnapshotLayer, type WhiteoutForm,
} from '../../src/snapshot/store.js';
import { unpackLayer } from '../../src/snapshot/unpack.js';
import { isRoot, makeTar, scratch, streamOf, treeListing, type TEntry } from './helpers.js';

const base: TEntry[] = [
  { name: 'etc/', type: 'directory' },
  { name: 'etc/os-release', content: 'ID=test\n' },
  { name: 'etc/motd', content: 'hi\n' },
  { name: 'tmp/', type: 'directory', mode: 0o1777 },
  { name: 'bin/', type: 'directory' },
  { name: 'bin/sh', content: '#!fake\n', mode: 0o755 },
  { name: 'bin/ash', type: 'link', linkname: 'bin/sh' },
];
const app: TEntry[] = [
  { name: 'etc/.wh.motd' },
  { name: 'app/', type: 'directory' },
  { name: 'app/main', content: 'main\n', mode: 0o700, uid: 1000, gid: 1000 },
  { name: 'tmp/cache', content: 'c' },
];
const other: TEntry[] = [{ name: 'bin/.wh..wh..opq' }, { name: 'bin/busybox', content: 'bb' }];

const sha = (b: Buffer): string => 'sha256:' + createHash('sha256').update(b).digest('hex');

async function layersOf(tars: TEntry[][], opened: string[] = []): Promise<SnapshotLayer[]> {
  const bufs = await Promise.all(tars.map((l) => makeTar(l)));
  const diffs = bufs.map(sha);
  const chains = computeChainIDs(diffs);
  return bufs.map((b, i) => ({
    diffID: diffs[i]!,
    chainID: chains[i]!,
    open: async () => {
      opened.push(diffs[i]!);
      return streamOf(b);
    },
  }));
}

test('chain IDs follow the OCI image spec', (t) => {
  const d1 = 'sha256:' + 'a'.repeat(64);
  const d2 = 'sha256:' + 'b'.repeat(64);
  const [c1, c2] = computeChainIDs([d1, d2]);
  t.is(c1, d1);
  t.is(c2, 'sha256:' + createHash('sha256').update(`${d1} ${d2}`).digest('hex'));
});

test('snapshots are keyed by chain ID and shared between images', async (t) => {
  const root = await scratch(t);
  const opened: string[] = [];
  const img1 = await layersOf([base, app], opened);
  const dirs1 = await prepareSnapshots(root, img1);
  t.deepEqual(dirs1, img1.map((l) => snapshotFsDir(root, l.chainID)));
  t.is(opened.length, 2);
  const meta = await readSnapshotMeta(root, img1[1]!.chainID);
  t.like(meta, { chainID: img1[1]!.chainID, diffID: img1[1]!.diffID, parent: img1[0]!.chainID });

  // A second image on the same base only unpacks its own layer.
  const img2 = await layersOf([base, other], opened);
  const dirs2 = await prepareSnapshots(root, img2);
  t.is(dirs2[0], dirs1[0]);
  t.is(opened.length, 3);
  // Preparing again opens nothing.
  await prepareSnapshots(root, img1);
  t.is(opened.length, 3);
  t.is((await listSnapshots(root)).length, 3);
  t.deepEqual(await readdir(join(root, 'tmp')), [], 'work dirs are cleaned up');
});

test('a layer whose content does not match its diff ID leaves no snapshot', async (t) => {
  const root = await scratch(t);
  const [good] = await layersOf([base]);
  const evil = await makeTar([{ name: 'etc/passwd', content: 'root::0:0::/:/bin/sh\n' }]);
  const lying: SnapshotLayer = { ...good!, open: async () => streamOf(evil) };
  const err = await t.throwsAsync(prepareSnapshots(root, [lying]));
  t.true(isHoistError(err));
  t.is((err as { code?: string }).code, 'E_LAYER_DIGEST');
  t.deepEqual(await listSnapshots(root), []);
  t.deepEqual(await readdir(join(root, 'tmp')), []);
});

test('an inconsistent chain ID is refused before anything is unpacked', async (t) => {
  const root = await scratch(t);
  const layers = await layersOf([base, app]);
  layers[1] = { ...layers[1]!, chainID: layers[1]!.diffID };
  const err = await t.throwsAsync(prepareSnapshots(root, layers));
  t.is((err as { code?: string }).code, 'E_CHAIN_ID');
});

test('a hostile layer fails preparation and leaves nothing under snapshots/', async (t) => {
  const root = await scratch(t);
  const layers = await layersOf([[{ name: '../../escape', content: 'x' }]]);
  const err = await t.throwsAsync(prepareSnapshots(root, layers));
  t.is((err as { code?: string }).code, 'E_LAYER_UNSAFE');
  t.deepEqual(await listSnapshots(root), []);
  t.deepEqual(await readdir(join(root, 'tmp')), []);
});

test('leftovers of a crashed unpack are not snapshots, and a bare dir is replaced', async (t) => {
  const root = await scratch(t);
  const layers = await layersOf([base]);
  await mkdir(join(root, 'tmp', '999999-snapshot-dead', 'fs'), { recursive: true });
  // A chain-ID dir without snapshot.json (not something hoist writes) counts as missing.
  const bare = join(snapshotFsDir(root, layers[0]!.chainID));
  await mkdir(bare, { recursive: true });
  await writeFile(join(bare, 'stray'), 'x');
  t.deepEqual(await listSnapshots(root), []);
  const [dir] = await prepareSnapshots(root, layers);
  t.deepEqual((await readdir(dir!)).sort(), ['bin', 'etc', 'tmp']);
  await removeSnapshot(root, layers[0]!.chainID);
  t.deepEqual(await listSnapshots(root), []);
});

for (const form of ['overlay', 'oci'] as WhiteoutForm[]) {
  test(`copy fallback (${form} snapshots) gives the same tree as applying the layers`, async (t) => {
    if (form === 'overlay' && !isRoot) return t.fail('overlay-form snapshots need root');
    const root = await scratch(t);
    const layers = await layersOf([base, app, other]);
    const dirs = await prepareSnapshots(root, layers, { whiteouts: form });
    const rootfs = join(root, 'rootfs');
    await materializeRootfs(dirs, rootfs);
    const direct = join(root, 'direct');
    await mkdir(direct);
    for (const l of [base, app, other]) await unpackLayer(streamOf(await makeTar(l)), direct, { mode: 'flatten' });
    const listing = await treeListing(rootfs);
    t.deepEqual(listing, await treeListing(direct));
    t.false(listing.some((l) => l.startsWith('etc/motd') || l.includes('.wh.') || l.startsWith('bin/sh')));
    t.true(listing.some((l) => l.startsWith('tmp dir 1777')));
    t.is(await readFile(join(rootfs, 'bin', 'busybox'), 'utf8'), 'bb');
    const err = await t.throwsAsync(materializeRootfs(dirs, rootfs));
    t.is((err as { code?: string }).code, 'E_ROOTFS_NOT_EMPTY');
  });
}

test('overlay probe reports whether overlayfs can be mounted', async (t) => {
  const root = await scratch(t);
  const res = await canMountOverlay(root);
  if (isRoot) t.true(res.ok, res.reason);
  else t.false(res.ok);
  t.deepEqual(await readdir(join(root, 'tmp')), []);
});
