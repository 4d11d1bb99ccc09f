import { fileURLToPath } from 'node:url';
import { dirname, join, resolve } from 'node:path';

/** The repository root (tests run from dist/test/<folder>/). */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
/** The shared folder CI places beside the clone. */
export const sharedDir = resolve(repoRoot, '..', 'shared');
/** Path inside fixtures/. */
export const fixture = (...p: string[]): string => join(repoRoot, 'fixtures', ...p);
/** The hoist executable. */
export const hoistBin = join(repoRoot, 'bin', 'hoist');
