// `hoist build -`: a Dockerfile or a (compressed) context archive on stdin, as `docker build -`.
import anyTest, { type TestFn } from 'ava';
import { readFile, writeFile, mkdir, readdir, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { canBuild, cleanup, hoist, rootWithBusybox, tempDir, tool } from './helpers.js';

const test = anyTest as TestFn<{ root: string; work: string }>;
const it = canBuild ? test.serial : test.skip;

test.before(async (t) => {
  if (!canBuild) return;
  t.context.root = await rootWithBusybox();
  t.context.work = await tempDir();
});
test.after.always(async (t) => cleanup(t.context.root, t.context.work));

/** A context directory and its tar archive in each compression docker accepts. */
async function contextArchives(work: string): Promise<Record<string, Buffer>> {
  const dir = join(work, 'ctx');
  await mkdir(join(dir, 'sub'), { recursive: true });
  await writeFile(join(dir, 'Dockerfile'), 'FROM busybox\nCOPY . /ctx/\nRUN cat /ctx/sub/f > /seen\n');
  await writeFile(join(dir, 'Dockerfile.alt'), 'FROM busybox\nCOPY sub/f /alt\n');
  await writeFile(join(dir, 'sub', 'f'), 'from the archive\n');
  await writeFile(join(dir, '.dockerignore'), 'ignored\n');
  await writeFile(join(dir, 'ignored'), 'x');
  const tar = join(work, 'ctx.tar');
  await tool('tar', ['-C', dir, '--owner=1234', '--group=5678', '-cf', tar, '.']);
  const out: Record<string, Buffer> = { tar: await readFile(tar) };
  for (const [tool_, ext] of [['gzip', 'gz'], ['bzip2', 'bz2'], ['xz', 'xz'], ['zstd', 'zst']] as const) {
    await tool(tool_, ['-k', '-f', '-q', tar]);
    out[tool_] = await readFile(`${tar}.${ext}`);
  }
  return out;
}

it('a context archive on stdin, plain or compressed, builds like the directory (Dockerfile inside, .dockerignore honoured, owners reset)', async (t) => {
  const { root, work } = t.context;
  const archives = await contextArchives(work);
  const ids = new Set<string>();
  for (const [kind, data] of Object.entries(archives)) {
    const out = join(work, `out-${kind}`);
    const r = await hoist(root, ['build', '-q', '--output', `type=local,dest=${out}`, '-'], { stdin: data });
    t.is(r.code, 0, `${kind}: ${r.stderr}`);
    t.is(await readFile(join(out, 'seen'), 'utf8'), 'from the archive\n', kind);
    t.deepEqual((await readdir(join(out, 'ctx'))).sort(), ['.dockerignore', 'Dockerfile', 'Dockerfile.alt', 'sub'], kind);
    const img = await hoist(root, ['build', '-q', '-'], { stdin: data });
    t.is(img.code, 0, img.stderr);
    ids.add(img.stdout.trim());
  }
  t.is(ids.size, 1, 'every compression gives the same image');
  // COPY from the context gives root ownership, whatever the archive said
  const ls = await hoist(root, ['run', '--rm', [...ids][0]!, 'stat', '-c', '%u:%g', '/ctx/sub/f']);
  t.is(ls.stdout.trim(), '0:0', ls.stderr);
  // -f names a Dockerfile inside the archive
  const alt = join(work, 'out-alt');
  const r = await hoist(root, ['build', '-q', '-f', 'Dockerfile.alt', '--output', `type=local,dest=${alt}`, '-'], { stdin: archives.gzip });
  t.is(r.code, 0, r.stderr);
  t.is(await readFile(join(alt, 'alt'), 'utf8'), 'from the archive\n');
  // nothing of the spooled input stays behind
  t.deepEqual((await readdir(join(root, 'tmp')).catch(() => [])), []);
});

it('a Dockerfile on stdin builds with an empty context; mistakes are clear', async (t) => {
  const { root, work } = t.context;
  const ok = await hoist(root, ['build', '--progress', 'plain', '-'], { stdin: 'FROM busybox\nRUN echo from-stdin > /x\n' });
  t.is(ok.code, 0, ok.stderr);
  const noCtx = await hoist(root, ['build', '-'], { stdin: 'FROM busybox\nCOPY missing /x\n' });
  t.is(noCtx.code, 1);
  t.regex(noCtx.stderr, /"\/missing": not found/);
  const f = await hoist(root, ['build', '-f', 'Dockerfile.alt', '-'], { stdin: 'FROM busybox\n' });
  t.is(f.code, 125);
  t.regex(f.stderr, /stdin holds a Dockerfile/);
  const both = await hoist(root, ['build', '-f', '-', '-'], { stdin: 'FROM busybox\n' });
  t.is(both.code, 125);
  // an archive without the Dockerfile
  const dir = join(work, 'nodf');
  await mkdir(dir);
  await writeFile(join(dir, 'a'), 'a');
  await tool('tar', ['-C', dir, '-cf', join(work, 'nodf.tar'), '.']);
  const none = await hoist(root, ['build', '-'], { stdin: await readFile(join(work, 'nodf.tar')) });
  t.is(none.code, 1);
  t.regex(none.stderr, /the context archive from stdin has no Dockerfile/);
});

it('a hostile context archive: a Dockerfile symlinked out of the context and ../ names stay contained', async (t) => {
  const { root, work } = t.context;
  const dir = join(work, 'evil');
  await mkdir(dir);
  await symlink('/etc/hostname', join(dir, 'Dockerfile'));
  await tool('tar', ['-C', dir, '-cf', join(work, 'evil.tar'), '.']);
  const r = await hoist(root, ['build', '-'], { stdin: await readFile(join(work, 'evil.tar')) });
  t.is(r.code, 1);
  t.regex(r.stderr, /has no Dockerfile/, 'the link resolves inside the context, where there is no such file');
  // a ../ entry is refused by the unpacker
  await writeFile(join(work, 'victim-src'), 'FROM busybox\n');
  await tool('tar', ['-C', work, '-cf', join(work, 'dotdot.tar'), '--transform', 's,^victim-src,../escaped,', 'victim-src']);
  const d = await hoist(root, ['build', '-'], { stdin: await readFile(join(work, 'dotdot.tar')) });
  t.is(d.code, 1);
  t.regex(d.stderr, /cannot read the build context from stdin/);
  t.false(await readFile(join(root, '..', 'escaped')).then(() => true, () => false));
});
