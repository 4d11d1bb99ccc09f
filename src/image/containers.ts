import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Image ID → IDs of containers whose `$ROOT/containers/<id>/config.json` names it in `image`. */
export async function containersByImage(root: string): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  let ids: string[];
  try {
    ids = await readdir(join(root, 'containers'));
  } catch {
    return out;
  }
  for (const id of ids) {
    let image: unknown;
    try {
      image = (JSON.parse(await readFile(join(root, 'containers', id, 'config.json'), 'utf8')) as { image?: unknown }).image;
    } catch {
      continue; // being created or removed: a half-written record names nothing yet
    }
    if (typeof image !== 'string') continue;
    const key = image.startsWith('sha256:') ? image : `sha256:${image}`;
    const list = out.get(key) ?? [];
    list.push(id);
    out.set(key, list);
  }
  return out;
}

/** Number of container records under the root. */
export async function countContainers(root: string): Promise<number> {
  return (await readdir(join(root, 'containers')).catch(() => [] as string[])).length;
}
