import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { chainIDs } from '../image/chainid.js';
import type { Digest } from '../image/digest.js';
import { HoistError } from '../util/errors.js';

/** One layer as the snapshotter needs it: keys, and a way to get its uncompressed tar. */
export interface SnapshotLayer {
  diffID: string;
  chainID: string;
  /** Opens the uncompressed layer tar; called only when the snapshot is missing. */
  open(): Promise<Readable>;
}

/**
 * How a snapshot records deletions: `overlay` (0/0 char devices and the opaque
 * xattr, needs root) or `oci` (the `.wh.` marker files kept as plain files, for
 * hosts where neither can be created; such snapshots only feed the copy fallback).
 */
export type WhiteoutForm = 'overlay' | 'oci';

/** Contents of `snapshots/<hex>/snapshot.json`, written last, so its presence means complete. */
export interface SnapshotMeta {
  chainID: string;
  diffID: string;
  parent: string | null;
  whiteouts: WhiteoutForm;
  /** Bytes of the uncompressed layer tar. */
  size: number;
  created: string;
  warnings: string[];
}

const DIGEST = /^sha256:([0-9a-f]{64})$/;

function hexOf(d: string, what: string): string {
  const m = DIGEST.exec(d);
  if (!m) throw new HoistError('E_BAD_DIGEST', `invalid ${what} ${JSON.stringify(d)}: expected sha256:<64 hex digits>`);
  return m[1]!;
}

/** ChainIDs per the OCI image spec (src/image/chainid.ts), after checking each diff ID's form. */
export function computeChainIDs(diffIDs: string[]): string[] {
  for (const d of diffIDs) hexOf(d, 'diff ID');
  return chainIDs(diffIDs as Digest[]);
}

/** `$ROOT/snapshots/<chainid-hex>`: the snapshot's own directory (meta + `fs/`). */
export function snapshotDir(root: string, chainID: string): string {
  return join(root, 'snapshots', hexOf(chainID, 'chain ID'));
}

/** The layer content directory of a snapshot (what overlayfs gets as a lowerdir). */
export function snapshotFsDir(root: string, chainID: string): string {
  return join(snapshotDir(root, chainID), 'fs');
}

/** Reads a snapshot's metadata, or null when it is absent or incomplete. */
export async function readSnapshotMeta(root: string, chainID: string): Promise<SnapshotMeta | null> {
  try {
    return JSON.parse(await readFile(join(snapshotDir(root, chainID), 'snapshot.json'), 'utf8')) as SnapshotMeta;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

/** Every complete snapshot under the root (for df and prune). */
export async function listSnapshots(root: string): Promise<SnapshotMeta[]> {
  let names: string[];
  try {
    names = await readdir(join(root, 'snapshots'));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const out: SnapshotMeta[] = [];
  for (const n of names.sort()) {
    if (!/^[0-9a-f]{64}$/.test(n)) continue;
    const meta = await readSnapshotMeta(root, `sha256:${n}`);
    if (meta) out.push(meta);
  }
  return out;
}

/** A private work dir in `$ROOT/tmp`, named `<pid>-<purpose>-<rand>` so cleanup can tell live from dead. */
async function workDir(root: string, purpose: string): Promise<string> {
  await mkdir(join(root, 'tmp'), { recursive: true, mode: 0o700 });
  const dir = join(root, 'tmp', `${process.pid}-${purpose}-${randomBytes(6).toString('hex')}`);
  await mkdir(dir, { mode: 0o700 });
  return dir;
}

function syncFs(path: string): Promise<void> {
  // `sync -f` is syncfs(2): one call flushes the whole unpacked tree before the rename publishes it.
  return new Promise((resolve) => execFile('sync', ['-f', path], () => resolve()));
}

/** Removes a snapshot; it first leaves `snapshots/`, so nothing ever sees half of one. */
export async function removeSnapshot(root: string, chainID: string): Promise<void> {
  const dir = snapshotDir(root, chainID);
  const trash = join(await workDir(root, 'snapshot-rm'), 'old');
  try {
    await rename(dir, trash);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  await rm(join(trash, '..'), { recursive: true, force: true });
}

export interface PrepareOptions {
  /** Whiteout form for new snapshots (default: `overlay` as root, `oci` otherwise). */
  whiteouts?: WhiteoutForm;
  onWarning?: (msg: string) => void;
}

/**
 * Makes sure one snapshot directory exists per layer, keyed by chain ID and shared
 * by every image with the same layer prefix; returns their `fs/` dirs, lowest first.
 * Each layer is unpacked in `$ROOT/tmp`, checked against its diff ID, synced and
 * renamed into place, so a crash never leaves a partial snapshot under a chain ID.
 */
export async function prepareSnapshots(root: string, layers: SnapshotLayer[], opts: PrepareOptions = {}): Promise<string[]> {
  const expected = computeChainIDs(layers.map((l) => l.diffID));
  const form: WhiteoutForm = opts.whiteouts ?? (process.getuid?.() === 0 ? 'overlay' : 'oci');
  const dirs: string[] = [];
  for (const [i, layer] of layers.entries()) {
    if (layer.chainID !== expected[i]) {
      throw new HoistError('E_CHAIN_ID', `layer ${i} has chain ID ${layer.chainID}, but its diff IDs give ${expected[i]}`, {
        hint: 'the image metadata is inconsistent; re-pull or re-load the image',
      });
    }
    const fsDir = snapshotFsDir(root, layer.chainID);
    const meta = await readSnapshotMeta(root, layer.chainID);
    if (!meta) await createSnapshot(root, layer, i === 0 ? null : layers[i - 1]!.chainID, dirs, form, opts);
    dirs.push(fsDir);
  }
  return dirs;
}

async function createSnapshot(
  root: string, layer: SnapshotLayer, parent: string | null, lowers: string[], form: WhiteoutForm, opts: PrepareOptions,
): Promise<void> {
  const work = await workDir(root, 'snapshot');
  try {
    const fsDir = join(work, 'fs');
    await mkdir(fsDir, { mode: 0o755 });
    const { unpackLayer } = await import('./unpack.js');
    const result = await unpackLayer(await layer.open(), fsDir, {
      mode: form === 'overlay' ? 'overlay' : 'oci',
      lowers,
      expectDiffID: layer.diffID,
      onWarning: opts.onWarning,
    });
    const meta: SnapshotMeta = {
      chainID: layer.chainID, diffID: layer.diffID, parent, whiteouts: form,
      size: result.size, created: new Date().toISOString(), warnings: result.warnings,
    };
    const fh = await open(join(work, 'snapshot.json'), 'wx', 0o644);
    try {
      await fh.writeFile(JSON.stringify(meta, null, 2) + '\n');
      await fh.sync();
    } finally {
      await fh.close();
    }
    await syncFs(work);
    await mkdir(join(root, 'snapshots'), { recursive: true, mode: 0o700 });
    for (let attempt = 0; ; attempt++) {
      try {
        await rename(work, snapshotDir(root, layer.chainID));
        return;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw e;
        // Another hoist process finished the same layer first: theirs is as good as ours.
        if (await readSnapshotMeta(root, layer.chainID)) return;
        // A directory without snapshot.json was not made by this code; replace it once.
        if (attempt > 0) throw e;
        await removeSnapshot(root, layer.chainID);
      }
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function formOf(fsDir: string): Promise<WhiteoutForm> {
  try {
    const meta = JSON.parse(await readFile(join(fsDir, '..', 'snapshot.json'), 'utf8')) as SnapshotMeta;
    return meta.whiteouts === 'oci' ? 'oci' : 'overlay';
  } catch {
    return 'overlay'; // a bare upper dir (e.g. a container layer) uses overlayfs whiteouts
  }
}

/**
 * The copy fallback for hosts where overlayfs cannot be mounted: applies snapshot
 * dirs (lowest first) onto `target` one after the other, whiteouts deleting what
 * lower layers put there, through the same symlink-safe unpacker as layer tars.
 */
export async function materializeRootfs(dirs: string[], target: string, opts: { onWarning?: (msg: string) => void } = {}): Promise<void> {
  await mkdir(target, { recursive: true, mode: 0o755 });
  const existing = await readdir(target);
  if (existing.length > 0) {
    throw new HoistError('E_ROOTFS_NOT_EMPTY', `cannot build a root filesystem in ${target}: the directory is not empty`, {
      hint: 'pass a new or empty directory',
    });
  }
  for (const dir of dirs) {
    const st = await stat(dir).catch(() => null);
    if (!st?.isDirectory()) throw new HoistError('E_SNAPSHOT_MISSING', `snapshot directory ${dir} does not exist`, { hint: 'run hoist system check' });
    const form = await formOf(dir);
    const [{ diffUpper, tarDirectory }, { unpackLayer }] = await Promise.all([import('./diff.js'), import('./unpack.js')]);
    const tarStream = form === 'overlay' ? diffUpper(dir, opts) : tarDirectory(dir, opts);
    // PassThrough keeps an error in the producer from being lost if the consumer fails first.
    const pt = new PassThrough();
    tarStream.on('error', (e) => pt.destroy(e));
    tarStream.pipe(pt);
    await unpackLayer(pt, target, { mode: 'flatten', onWarning: opts.onWarning });
  }
}

export interface OverlaySupport {
  ok: boolean;
  /** Why not, in words a user can act on. */
  reason?: string;
}

const overlayCache = new Map<string, Promise<OverlaySupport>>();

/**
 * Tests whether overlayfs can be mounted with lower/upper/work dirs on this root's
 * filesystem, by mounting one in a throwaway mount namespace (`unshare -m`).
 */
export function canMountOverlay(root: string): Promise<OverlaySupport> {
  let p = overlayCache.get(root);
  if (!p) {
    p = probeOverlay(root);
    overlayCache.set(root, p);
  }
  return p;
}

async function probeOverlay(root: string): Promise<OverlaySupport> {
  if (process.getuid?.() !== 0) {
    return { ok: false, reason: 'overlay snapshots need root (whiteouts are device nodes and trusted.* xattrs); using the copy fallback' };
  }
  const work = await workDir(root, 'overlay-probe');
  try {
    for (const d of ['lower', 'upper', 'work', 'merged']) await mkdir(join(work, d));
    await writeFile(join(work, 'lower', 'probe'), 'x');
    const opts = `lowerdir=${join(work, 'lower')},upperdir=${join(work, 'upper')},workdir=${join(work, 'work')}`;
    // Delete through the mount so the probe also proves whiteouts can be created.
    const script = 'mount -t overlay overlay -o "$1" "$2" && rm "$2/probe" && umount "$2"';
    const err = await new Promise<string | null>((resolve) => {
      execFile('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script, 'probe', opts, join(work, 'merged')], (e, _o, stderr) =>
        resolve(e ? String(stderr).trim() || e.message : null));
    });
    if (err) return { ok: false, reason: `mounting overlayfs failed: ${err}` };
    return { ok: true };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
