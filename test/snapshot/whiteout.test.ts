// OCI whiteouts three ways: applied flattened onto one directory, converted to
// overlayfs form and read back through a real overlay mount, and produced from the
// upper directory of a real overlay mount by diffUpper.

import test, { type ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import { lstat, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { diffUpper } from '../../src/snapshot/diff.js';
import { canMountOverlay } from '../../src/snapshot/store.js';
import { unpackLayer } from '../../src/snapshot/unpack.js';
import { readTreeXattrs } from '../../src/snapshot/xattr.js';
import { isRoot, listTar, makeTar, scratch, streamOf, treeListing, type TEntry } from './helpers.js';

const lower: TEntry[] = [
  { name: 'a/', type: 'directory' },
  { name: 'a/a1', content: 'a1' },
  { name: 'a/a2', content: 'a2' },
  { name: 'a/sub/', type: 'directory' },
  { name: 'a/sub/old', content: 'old' },
  { name: 'b/', type: 'directory', mode: 0o750 },
  { name: 'b/b1', content: 'b1' },
  { name: 'b/b2', content: 'b2' },
  { name: 'c', content: 'c' },
  { name: 'd', type: 'symlink', linkname: 'a/a1', mode: 0o777 },
  { name: 'tmp/', type: 'directory', mode: 0o1777 },
  { name: 'tmp/junk', content: 'junk' },
];

// Deletes c, b/b1 and tmp/junk (tmp has no entry of its own, as some writers do),
// makes `a` opaque and puts new content in it.
const upperOpaqueFirst: TEntry[] = [
  { name: '.wh.c' },
  { name: 'a/', type: 'directory' },
  { name: 'a/.wh..wh..opq' },
  { name: 'a/new', content: 'new' },
  { name: 'a/sub/', type: 'directory' },
  { name: 'a/sub/keep', content: 'keep' },
  { name: 'b/.wh.b1' },
  { name: 'tmp/.wh.junk' },
];

// Same layer with the opaque marker last: a layer's own entries must survive it.
const upperOpaqueLast: TEntry[] = [
  { name: '.wh.c' },
  { name: 'a/', type: 'directory' },
  { name: 'a/new', content: 'new' },
  { name: 'a/sub/', type: 'directory' },
  { name: 'a/sub/keep', content: 'keep' },
  { name: 'b/.wh.b1' },
  { name: 'tmp/.wh.junk' },
  { name: 'a/.wh..wh..opq' },
];

const expected = [
  'a dir 755 0:0',
  'a/new file',
  'a/sub dir 755 0:0',
  'a/sub/keep file',
  'b dir 750 0:0',
  'b/b2 file',
  'd link->a/a1',
  'tmp dir 1777 0:0',
];

const brief = (listing: string[]): string[] =>
  listing.map((l) => l.replace(/^(\S+) file:\S+ .*$/, '$1 file').replace(/^(\S+) (link->\S+) .*$/, '$1 $2'));

async function flattened(t: ExecutionContext, layers: TEntry[][]): Promise<string> {
  const dir = join(await scratch(t), 'rootfs');
  await mkdir(dir);
  for (const l of layers) await unpackLayer(streamOf(await makeTar(l)), dir, { mode: 'flatten' });
  return dir;
}

for (const [title, upper] of [['opaque marker first', upperOpaqueFirst], ['opaque marker last', upperOpaqueLast]] as const) {
  test(`flattened apply: whiteouts and opaque dir (${title})`, async (t) => {
    const dir = await flattened(t, [lower, upper]);
    t.deepEqual(brief(await treeListing(dir)), expected);
  });
}

function sh(script: string, ...args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('unshare', ['-m', '--propagation', 'private', 'sh', '-ec', script, 'sh', ...args], (err, _o, stderr) =>
      err ? reject(new Error(`${String(stderr).trim() || err.message}`)) : resolve());
  });
}

test('overlay form: whiteouts become 0/0 devices and an opaque xattr, and the kernel agrees', async (t) => {
  if (!isRoot) return t.fail('needs root: overlay whiteouts are device nodes');
  const base = await scratch(t);
  const support = await canMountOverlay(base);
  if (!support.ok) return t.fail(`overlayfs is not mountable here: ${support.reason}`);
  const s1 = join(base, 's1');
  const s2 = join(base, 's2');
  await mkdir(s1);
  await mkdir(s2);
  await unpackLayer(streamOf(await makeTar(lower)), s1, { mode: 'overlay' });
  await unpackLayer(streamOf(await makeTar(upperOpaqueFirst)), s2, { mode: 'overlay', lowers: [s1] });

  for (const p of ['c', 'b/b1', 'tmp/junk']) {
    const st = await lstat(join(s2, p));
    t.true(st.isCharacterDevice() && st.rdev === 0, `${p} should be a 0/0 whiteout`);
  }
  const attrs = await readTreeXattrs(s2);
  t.is(attrs.get(join(s2, 'a'))?.get('trusted.overlay.opaque')?.toString(), 'y');
  t.is(attrs.get(join(s2, 'b'))?.get('trusted.overlay.opaque'), undefined);
  // The implicit parent tmp/ took its mode from the lower layer, not 0755.
  t.is((await lstat(join(s2, 'tmp'))).mode & 0o7777, 0o1777);

  const merged = join(base, 'merged');
  const copy = join(base, 'copy');
  await mkdir(merged);
  await mkdir(copy);
  await sh('mount -t overlay overlay -o "lowerdir=$1:$2" "$3"; cp -a "$3/." "$4/"', s2, s1, merged, copy);
  t.deepEqual(brief(await treeListing(copy)), expected);
});

test('diffUpper turns a real overlay upper dir into OCI whiteouts', async (t) => {
  if (!isRoot) return t.fail('needs root to mount overlayfs');
  const base = await scratch(t);
  const support = await canMountOverlay(base);
  if (!support.ok) return t.fail(`overlayfs is not mountable here: ${support.reason}`);
  const low = join(base, 'lower');
  const up = join(base, 'upper');
  const work = join(base, 'work');
  const merged = join(base, 'merged');
  const copy = join(base, 'copy');
  for (const d of [low, up, work, merged, copy]) await mkdir(d);
  await unpackLayer(streamOf(await makeTar(lower)), low, { mode: 'overlay' });
  await sh(
    [
      'mount -t overlay overlay -o "lowerdir=$1,upperdir=$2,workdir=$3" "$4"',
      'cd "$4"',
      'rm c b/b1 tmp/junk',
      'rm -rf a && mkdir a && echo new > a/new && mkdir a/sub && echo keep > a/sub/keep',
      'mkdir -p x/y && echo z > x/y/z && ln -s a lnk',
      'cp -a "$4/." "$5/"',
    ].join('\n'),
    low, up, work, merged, copy,
  );

  const entries = await listTar(diffUpper(up));
  const names = entries.map((e) => e.name);
  t.deepEqual(names, [
    // sorted by the names on disk (as containerd walks), so `c`'s whiteout follows b/
    'a/', 'a/.wh..wh..opq', 'a/new', 'a/sub/', 'a/sub/keep', 'b/', 'b/.wh.b1', '.wh.c', 'lnk', 'tmp/', 'tmp/.wh.junk', 'x/', 'x/y/', 'x/y/z',
  ]);
  for (const e of entries.filter((x) => x.name.split('/').pop()!.startsWith('.wh.'))) {
    t.like(e, { type: 'file', size: 0, mode: '0', uid: 0, gid: 0, mtime: 0 }, e.name);
  }
  t.is(entries.find((e) => e.name === 'tmp/')?.mode, '1777');
  t.deepEqual(entries.find((e) => e.name === 'a/')?.xattrs, {}, 'overlay xattrs must not leak into the layer');

  // Applying lower + the diff, flattened, reproduces what the mount showed.
  const replay = join(base, 'replay');
  await mkdir(replay);
  await unpackLayer(streamOf(await makeTar(lower)), replay, { mode: 'flatten' });
  await unpackLayer(diffUpper(up), replay, { mode: 'flatten' });
  t.deepEqual(await treeListing(replay), await treeListing(copy));
});

test('diffUpper output is deterministic', async (t) => {
  const base = await scratch(t);
  const s = join(base, 's');
  await mkdir(s);
  await unpackLayer(streamOf(await makeTar(upperOpaqueFirst)), s, { mode: isRoot ? 'overlay' : 'oci' });
  const collect = async (): Promise<Buffer> => {
    const chunks: Buffer[] = [];
    for await (const c of diffUpper(s)) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  };
  t.true((await collect()).equals(await collect()));
});
