import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isDigest, type Digest } from '../image/digest.js';
import { withFileLock } from '../image/lock.js';
import type { Store } from '../image/store.js';
import { writeFileAtomic } from '../util/atomic.js';

/**
 * Which repositories each blob was pulled from or pushed to (`$ROOT/registry/blob-sources.json`),
 * so a push can ask the registry to mount a blob from a sibling repository instead of uploading it.
 */
interface SourcesFile {
  version: 1;
  blobs: Record<string, string[]>;
}

/** Repositories remembered per blob; the oldest are forgotten first. */
const MAX_REPOS_PER_BLOB = 8;

function paths(store: Store): { dir: string; file: string; lock: string } {
  const dir = join(store.root, 'registry');
  return { dir, file: join(dir, 'blob-sources.json'), lock: join(dir, 'blob-sources.lock') };
}

async function readSources(file: string): Promise<SourcesFile> {
  try {
    const v = JSON.parse(await readFile(file, 'utf8')) as SourcesFile;
    if (v && v.version === 1 && v.blobs && typeof v.blobs === 'object') return v;
  } catch {
    /* missing or damaged: it is only a hint for mounts, start afresh */
  }
  return { version: 1, blobs: {} };
}

/** Remembers that `digests` are now in `repository` (`host/path`). */
export async function recordSources(store: Store, repository: string, digests: Digest[]): Promise<void> {
  const { dir, file, lock } = paths(store);
  await mkdir(dir, { recursive: true });
  await withFileLock(lock, async () => {
    const s = await readSources(file);
    for (const d of digests) {
      const list = (s.blobs[d] ?? []).filter((r) => r !== repository);
      list.push(repository);
      s.blobs[d] = list.slice(-MAX_REPOS_PER_BLOB);
    }
    // Forget blobs the store no longer has, so the file does not grow forever.
    for (const d of Object.keys(s.blobs)) if (!isDigest(d) || !(await store.hasBlob(d))) delete s.blobs[d];
    await writeFileAtomic(file, JSON.stringify(s) + '\n');
  });
}

/** The repositories (`host/path`, most recent last) a blob is known to be in. */
export async function sourcesOf(store: Store, digest: Digest): Promise<string[]> {
  const s = await readSources(paths(store).file);
  return s.blobs[digest] ?? [];
}
