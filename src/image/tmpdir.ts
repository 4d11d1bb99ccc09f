import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';

/**
 * Work directories under `$ROOT/tmp` are named `<pid>-<purpose>-<random>` so that
 * a later process can tell leftovers of a dead process (safe to delete) from the
 * live work of a concurrent one (must be kept).
 */
const NAMED = /^(\d+)-/;
/** Entries not following the convention are removed only when this old. */
const FOREIGN_MAX_AGE_MS = 24 * 3600 * 1000;

/** True if a process with this pid exists (EPERM means it exists but is not ours). */
export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Creates a fresh private work directory under `$ROOT/tmp` for this process. */
export async function makeTmpDir(root: string, purpose: string): Promise<string> {
  const base = join(root, 'tmp');
  await mkdir(base, { recursive: true, mode: 0o700 });
  const dir = join(base, `${process.pid}-${purpose.replace(/[^a-zA-Z0-9_.]/g, '_')}-${randomBytes(6).toString('hex')}`);
  await mkdir(dir, { mode: 0o700 });
  return dir;
}

/** Removes what crashed processes left in `$ROOT/tmp`; returns the number of entries removed. */
export async function cleanTmp(root: string): Promise<number> {
  const base = join(root, 'tmp');
  let names: string[];
  try {
    names = await readdir(base);
  } catch {
    return 0;
  }
  let removed = 0;
  const now = Date.now();
  for (const n of names) {
    const m = NAMED.exec(n);
    let dead: boolean;
    if (m) {
      dead = Number(m[1]) !== process.pid && !pidAlive(Number(m[1]));
    } else {
      const st = await stat(join(base, n)).catch(() => undefined);
      dead = st !== undefined && now - st.mtimeMs > FOREIGN_MAX_AGE_MS;
    }
    if (dead) {
      await rm(join(base, n), { recursive: true, force: true }).catch(() => undefined);
      removed++;
    }
  }
  return removed;
}
