/**
 * Small files written so that readers never see half of one: the data goes to a
 * temporary name beside the target (same filesystem), is fsynced when asked, and is
 * renamed over it. A failed write leaves no temporary file behind.
 */
import { randomBytes } from 'node:crypto';
import { open, rename, unlink } from 'node:fs/promises';

/** A temporary name next to `path`, unique per process and call. */
export function tmpNameBeside(path: string): string {
  return `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
}

/** Writes `data` to `path` atomically (mode for a new file; `sync`: fsync before the rename, default true). */
export async function writeFileAtomic(path: string, data: string | Buffer, opts: { mode?: number; sync?: boolean } = {}): Promise<void> {
  const tmp = tmpNameBeside(path);
  const fh = await open(tmp, 'wx', opts.mode ?? 0o644);
  try {
    try {
      await fh.writeFile(data);
      if (opts.sync !== false) await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
}
