import { open, readFile, unlink } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { HoistError } from '../util/errors.js';
import { pidAlive } from './tmpdir.js';

const WAIT_MS = 60_000;

async function tryCreate(path: string): Promise<boolean> {
  try {
    const fh = await open(path, 'wx', 0o600);
    try {
      await fh.writeFile(`${process.pid}\n`);
      await fh.sync();
    } finally {
      await fh.close();
    }
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  }
}

async function holderIsDead(path: string): Promise<boolean> {
  const text = await readFile(path, 'utf8').catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? null : ''));
  if (text === null) return false; // released meanwhile: just retry
  const pid = Number.parseInt(text, 10);
  // An empty file is a holder killed between create and write; treat as dead.
  return Number.isNaN(pid) || !pidAlive(pid);
}

/**
 * Runs `fn` holding an exclusive lock file (`O_EXCL` create, pid inside).
 * A lock left by a killed process is broken, but only by whoever first takes a
 * second "break" lock, so two waiters cannot both break and then steal each
 * other's fresh lock.
 */
export async function withFileLock<T>(path: string, fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + WAIT_MS;
  let delay = 2;
  for (;;) {
    if (await tryCreate(path)) break;
    if (await holderIsDead(path)) {
      const breaker = `${path}.break`;
      if (await tryCreate(breaker)) {
        try {
          if (await holderIsDead(path)) await unlink(path).catch(() => undefined);
        } finally {
          await unlink(breaker).catch(() => undefined);
        }
        continue;
      } else if (await holderIsDead(breaker)) {
        await unlink(breaker).catch(() => undefined);
        continue;
      }
    }
    if (Date.now() > deadline) {
      throw new HoistError('E_LOCKED', `timed out waiting for the store lock ${path}`, {
        hint: 'another hoist process holds it; if none is running, delete the file',
      });
    }
    await sleep(delay);
    delay = Math.min(delay * 2, 100);
  }
  try {
    return await fn();
  } finally {
    await unlink(path).catch(() => undefined);
  }
}
