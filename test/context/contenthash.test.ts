// Context content digests (the part of a COPY cache key that says "these exact files")
// and the stat cache that lets a rebuild skip reading unchanged files.

import test from 'ava';
import { createHash } from 'node:crypto';
import { mkdtemp, mkdir, readdir, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hashTree, sortNames } from '../../src/cache/contenthash.js';
import { BuildContext } from '../../src/context/context.js';
import { IgnoreMatcher } from '../../src/context/dockerignore.js';

async function tree(t: { teardown(f: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'hoist-ctxhash-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await mkdir(join(dir, 'src', 'lib'), { recursive: true });
  await writeFile(join(dir, 'src', 'a.ts'), 'export const a = 1;\n');
  await writeFile(join(dir, 'src', 'lib', 'b.ts'), 'export const b = 2;\n');
  await symlink('a.ts', join(dir, 'src', 'link'));
  return dir;
}

test('names sort by UTF-8 bytes, also where UTF-16 order differs (astral characters)', (t) => {
  // U+FF5A is EF BD 9A in UTF-8, U+1F600 is F0 9F 98 80: bytes put the fullwidth z first,
  // UTF-16 code units (FF5A vs D83D) would put the emoji first
  t.deepEqual(sortNames(['😀', 'ｚ', 'a', 'B']), ['B', 'a', 'ｚ', '😀']);
  t.deepEqual(sortNames(['b', 'a', 'é', 'A']), ['A', 'a', 'b', 'é']);
});

test('a directory digest covers its children in byte order', async (t) => {
  const dir = await tree(t);
  const d = join(dir, 'odd');
  await mkdir(d);
  await writeFile(join(d, '😀'), '1');
  await writeFile(join(d, 'ｚ'), '2');
  const st = await stat(d);
  const header = JSON.stringify(['dir', st.mode & 0o7777, st.uid, st.gid, '0', '', '', '0']);
  const kid = (n: string): Promise<string> => hashTree(join(d, n), `odd/${n}`);
  const expect = async (order: string[]): Promise<string> => {
    const h = createHash('sha256').update(header);
    for (const n of order) h.update(`\0${n}\0${await kid(n)}`);
    return `sha256:${h.digest('hex')}`;
  };
  const top = await hashTree(d, 'odd');
  t.is(top, await expect(['ｚ', '😀']));
  t.not(top, await expect(['😀', 'ｚ']), 'UTF-16 order would give another digest');
  await writeFile(join(d, 'ｚ'), '3');
  t.not(await hashTree(d, 'odd'), top);
});

test('the stat cache gives the same digests as hashing from scratch, and sees edits', async (t) => {
  const dir = await tree(t);
  const cacheDir = join(dir, '..', `${join(dir).split('/').pop()}-statcache`);
  t.teardown(() => rm(cacheDir, { recursive: true, force: true }));
  const fresh = async (): Promise<string> => (await BuildContext.open(dir, undefined, null)).digest('src');
  const cached = async (): Promise<string> => {
    const c = await BuildContext.open(dir, undefined, cacheDir);
    const d = await c.digest('src');
    await c.save();
    return d;
  };
  const first = await fresh();
  t.is(await cached(), first);
  t.true((await readdir(cacheDir)).length === 1, 'the cache is written');
  t.is(await cached(), first, 'a second build reads the cache');

  // same size, mtime put back: the inode change time still differs, so the file is read again
  const f = join(dir, 'src', 'a.ts');
  const before = await stat(f);
  await writeFile(f, 'export const a = 2;\n');
  await utimes(f, before.atime, before.mtime);
  const edited = await cached();
  t.not(edited, first);
  t.is(edited, await fresh());

  // a new file and a removed one
  await writeFile(join(dir, 'src', 'lib', 'c.ts'), 'c');
  const added = await cached();
  t.not(added, edited);
  await rm(join(dir, 'src', 'lib', 'c.ts'));
  t.is(await cached(), edited);
});

test('.dockerignore and --exclude leave paths out of the digest; an empty ignore file filters nothing', async (t) => {
  const dir = await tree(t);
  const all = await (await BuildContext.open(dir, undefined, null)).digest('src');
  await writeFile(join(dir, '.dockerignore'), '');
  t.is(await (await BuildContext.open(dir, undefined, null)).digest('src'), all);
  await writeFile(join(dir, '.dockerignore'), 'src/lib\n');
  const ignored = await (await BuildContext.open(dir, undefined, null)).digest('src');
  t.not(ignored, all);
  await rm(join(dir, '.dockerignore'));
  const c = await BuildContext.open(dir, undefined, null);
  t.is(await c.digest('src', new IgnoreMatcher(['lib'])), ignored);
  t.is(await c.digest('src', new IgnoreMatcher([])), all);
});
