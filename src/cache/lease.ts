/**
 * Build leases: a running build registers itself under `cache/leases/` (under the store
 * lock, so it never begins in the middle of a prune), and a prune keeps everything with
 * a file time from the oldest live lease on. Kept apart from the pruning code so a build
 * loads only this.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pidAlive } from '../image/tmpdir.js';
import type { Store } from '../image/store.js';

/** Kernel file times lag the wall clock a little (coarse clock): a lease counts from a bit before it began. */
const LEASE_SLACK_MS = 1000;

/** A build in progress: what it uses is kept by any prune until `release`. */
export interface BuildLease {
  release(): Promise<void>;
}

interface LeaseFile {
  pid: number;
  started: number;
}

const leaseDir = (root: string): string => join(root, 'cache', 'leases');

/** Registers a running build (under the store lock, so it never begins in the middle of a prune). */
export async function openBuildLease(store: Store): Promise<BuildLease> {
  const dir = leaseDir(store.root);
  const file = join(dir, `${process.pid}-${randomBytes(6).toString('hex')}.json`);
  await store.withLock(async () => {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const body: LeaseFile = { pid: process.pid, started: Date.now() };
    await writeFile(file, JSON.stringify(body));
  });
  let done = false;
  return {
    release: async () => {
      if (done) return;
      done = true;
      await unlink(file).catch(() => undefined);
    },
  };
}

/** The live leases; those of dead processes are removed. */
async function liveLeases(root: string): Promise<LeaseFile[]> {
  const dir = leaseDir(root);
  const out: LeaseFile[] = [];
  for (const n of await readdir(dir).catch(() => [] as string[])) {
    const p = join(dir, n);
    const l = await readFile(p, 'utf8').then((t) => JSON.parse(t) as LeaseFile, () => undefined);
    if (l && typeof l.pid === 'number' && typeof l.started === 'number' && pidAlive(l.pid)) out.push(l);
    else if (!l || !pidAlive(l.pid)) await unlink(p).catch(() => undefined);
  }
  return out;
}

/** What running builds may be using: everything with a file time from `protectFrom` on. */
export interface Protection {
  protectFrom: number;
  builds: number;
}

/** Computes the protection line at this moment (call with the store lock held for it to stay valid). */
export async function protection(root: string, now = Date.now()): Promise<Protection> {
  const leases = await liveLeases(root);
  const oldest = Math.min(now, ...leases.map((l) => l.started - LEASE_SLACK_MS));
  return { protectFrom: oldest, builds: leases.length };
}
