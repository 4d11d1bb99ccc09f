// Tests for the image summariser the build conformance suite relies on, and for the shape of
// the goldens in fixtures/build (each case has exactly one result, trees sorted, base current).
import test from 'ava';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { makeTar, type TEntry } from '../image/helpers.js';
import { compareGoldens, goldenJson, goldenOf, readImageArchive, type Golden } from './imagetree.js';
import { fixture } from './paths.js';

const sha = (b: Buffer | string): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** Writes a `docker save` archive of the given layers (each a list of tar entries). */
async function dockerArchive(dir: string, layers: TEntry[][], opts: { gzip?: boolean } = {}): Promise<string> {
  const blobs: { name: string; data: Buffer }[] = [];
  const diffIds: string[] = [];
  const paths: string[] = [];
  for (const l of layers) {
    const raw = await makeTar(l);
    diffIds.push(sha(raw));
    const data = opts.gzip ? gzipSync(raw) : raw;
    const name = `blobs/sha256/${sha(data).slice(7)}`;
    blobs.push({ name, data });
    paths.push(name);
  }
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Env: ['A=1'] }, rootfs: { type: 'layers', diff_ids: diffIds }, history: [{ created_by: 'x' }] }));
  const cfgName = `blobs/sha256/${sha(config).slice(7)}`;
  const manifest = Buffer.from(JSON.stringify([{ Config: cfgName, RepoTags: ['t:latest'], Layers: paths }]));
  const archive = await makeTar([...blobs.map((b) => ({ name: b.name, content: b.data })), { name: cfgName, content: config }, { name: 'manifest.json', content: manifest }]);
  const file = join(dir, 'image.tar');
  await writeFile(file, archive);
  return file;
}

test('layers apply in order: whiteouts, opaque dirs, hardlinks, symlinks, dir replaced by file', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'imagetree-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = await dockerArchive(dir, [
    [
      { name: './', type: 'directory' },
      { name: 'a/', type: 'directory' },
      { name: 'a/x', content: 'x' },
      { name: 'a/y', content: 'y' },
      { name: 'd/', type: 'directory' },
      { name: 'd/old', content: 'old' },
      { name: 'd/sub/', type: 'directory' },
      { name: 'd/sub/deep', content: 'deep' },
      { name: 'f', content: 'file', mode: 0o4755, uid: 7, gid: 8 },
      { name: 'becomes-file/', type: 'directory' },
      { name: 'becomes-file/inner', content: 'i' },
    ],
    [
      { name: 'a/.wh.x', content: '' },
      { name: 'd/', type: 'directory', mode: 0o700 },
      { name: 'd/.wh..wh..opq', content: '' },
      { name: 'd/new', content: 'new' },
      { name: 'g', type: 'link', linkname: 'f' },
      { name: 's', type: 'symlink', linkname: '../f' },
      { name: 'becomes-file', content: 'now a file' },
    ],
  ]);
  const img = await readImageArchive(file);
  t.deepEqual([...img.tree.keys()].sort(), ['/a', '/a/y', '/becomes-file', '/d', '/d/new', '/f', '/g', '/s']);
  t.deepEqual(img.tree.get('/f'), { path: '/f', type: 'file', mode: '4755', uid: 7, gid: 8, size: 4, sha256: sha('file') });
  t.deepEqual(img.tree.get('/g'), { path: '/g', type: 'hardlink', mode: '0644', uid: 0, gid: 0, size: 4, sha256: sha('file'), link: '/f' });
  t.is(img.tree.get('/s')?.link, '../f');
  t.is(img.tree.get('/d')?.mode, '0700');
  t.is(img.layerCount, 2);
  t.deepEqual(img.names, ['t:latest']);
});

test('gzip layers are read like plain ones', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'imagetree-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = await dockerArchive(dir, [[{ name: 'z', content: 'zipped' }]], { gzip: true });
  const img = await readImageArchive(file);
  t.is(img.tree.get('/z')?.sha256, sha('zipped'));
});

test('a layer path with ".." is refused, naming the path', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'imagetree-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = await dockerArchive(dir, [[{ name: 'ok', content: '1' }, { name: 'a/../../etc/passwd', content: 'evil' }]]);
  await t.throwsAsync(readImageArchive(file), { message: /a\/\.\.\/\.\.\/etc\/passwd.*"\.\."/ });
});

test('a hardlink to a missing file is refused', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'imagetree-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = await dockerArchive(dir, [[{ name: 'g', type: 'link', linkname: 'nowhere' }]]);
  await t.throwsAsync(readImageArchive(file), { message: /hardlink \/g points at \/nowhere/ });
});

test('goldenOf is relative to the base; compareGoldens names each difference', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'imagetree-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const baseLayer: TEntry[] = [{ name: 'bin/', type: 'directory' }, { name: 'bin/sh', content: 'sh' }, { name: 'etc/', type: 'directory' }, { name: 'etc/passwd', content: 'root' }];
  const baseFile = await dockerArchive(dir, [baseLayer]);
  const baseCopy = join(dir, 'base.tar');
  await writeFile(baseCopy, await readFile(baseFile));
  const base = await readImageArchive(baseCopy);
  const imgFile = await dockerArchive(dir, [baseLayer, [{ name: 'etc/.wh.passwd', content: '' }, { name: 'app', content: 'app' }]]);
  const img = await readImageArchive(imgFile);
  const g = goldenOf(img, { name: 'base:1', image: base });
  t.deepEqual(g.base, { image: 'base:1', diffIds: base.diffIds });
  t.deepEqual(g.tree.map((e) => e.path), ['/app']);
  t.deepEqual(g.removed, ['/etc/passwd']);
  t.deepEqual(JSON.parse(goldenJson(g)), g);
  const other: Golden = { ...g, tree: [{ ...g.tree[0]!, mode: '0600' }], removed: [], layers: 3 };
  const diffs = compareGoldens(g, other);
  t.true(diffs.some((d) => d.startsWith('tree /app: expected')));
  t.true(diffs.includes('removed /etc/passwd: expected removed, still present'));
  t.true(diffs.includes('layers: expected 2, got 3'));
  t.deepEqual(compareGoldens(g, g), []);
  // not built on the base: the full tree, no base
  t.is(goldenOf(base, { name: 'x', image: img }).base, null);
});

const caseDirs = async (): Promise<string[]> => (await readdir(fixture('build'), { withFileTypes: true })).filter((d) => d.isDirectory() && /^(\d\d|e\d\d)-/.test(d.name)).map((d) => d.name).sort();

test('every build case has a Dockerfile and exactly one result, well formed', async (t) => {
  const cases = await caseDirs();
  t.true(cases.length >= 40, `only ${cases.length} cases`);
  for (const c of cases) {
    const d = fixture('build', c);
    t.true(existsSync(join(d, 'Dockerfile')), `${c}: no Dockerfile`);
    t.true(existsSync(join(d, 'context')), `${c}: no context/`);
    const golden = existsSync(join(d, 'golden.json'));
    const error = existsSync(join(d, 'expected-error.txt'));
    t.true(golden !== error, `${c}: needs exactly one of golden.json and expected-error.txt`);
    t.is(c.startsWith('e'), error, `${c}: e-cases are the expected errors`);
    if (error) {
      const lines = (await readFile(join(d, 'expected-error.txt'), 'utf8')).trimEnd().split('\n');
      t.is(lines.length, 2, `${c}: expected-error.txt has two lines`);
      t.regex(lines[0]!, /^Dockerfile:(\d+|-)$/, c);
      t.regex(lines[1]!, /^ERROR: /, c);
      continue;
    }
    const g = JSON.parse(await readFile(join(d, 'golden.json'), 'utf8')) as Golden;
    const paths = g.tree.map((e) => e.path);
    t.deepEqual(paths, [...paths].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)), `${c}: tree sorted`);
    t.is(new Set(paths).size, paths.length, `${c}: tree paths unique`);
    for (const e of g.tree) t.regex(e.mode, /^[0-7]{4}$/, `${c}: ${e.path} mode`);
    t.is(g.history.filter((h) => !h.empty_layer).length, g.layers, `${c}: one non-empty history entry per layer`);
    if (existsSync(join(d, 'images'))) {
      for (const line of (await readFile(join(d, 'images'), 'utf8')).split('\n').filter(Boolean)) {
        const from = line.slice(line.indexOf('=') + 1);
        t.true(from < c && existsSync(fixture('build', from, 'golden.json')), `${c}: images names ${from}, which must be an earlier recorded case`);
      }
    }
  }
});

test('the goldens were recorded on the busybox base that fixtures/busybox makes today', async (t) => {
  if (!existsSync('/bin/busybox')) {
    t.log('no /bin/busybox (Debian busybox-static): cannot make the base image here');
    t.pass();
    return;
  }
  const dir = await mkdtemp(join(tmpdir(), 'imagetree-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const out = join(dir, 'base.tar');
  await new Promise<void>((res, rej) => execFile('bash', [fixture('busybox', 'make-image.sh'), out], (err, _o, stderr) => (err ? rej(new Error(stderr || err.message)) : res())));
  const base = await readImageArchive(out);
  t.deepEqual(goldenOf(base, { name: 'busybox:latest', image: base }).tree, [], 'an image is empty relative to itself');
  for (const c of await caseDirs()) {
    const f = fixture('build', c, 'golden.json');
    if (!existsSync(f)) continue;
    const g = JSON.parse(await readFile(f, 'utf8')) as Golden;
    if (g.base) t.deepEqual(g.base.diffIds, base.diffIds, `${c}: recorded on another base; re-record with fixtures/build/record.sh`);
  }
});
