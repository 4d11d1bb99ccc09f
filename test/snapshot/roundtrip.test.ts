// A layer with every file type goes tar → directory → tar and must come back with
// the same entries: name, type, mode (setuid, sticky, mode 0), owner, size, link
// target, content digest, mtime, xattrs.

import test from 'ava';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { diffUpper, tarDirectory } from '../../src/snapshot/diff.js';
import { unpackLayer, type UnpackOptions } from '../../src/snapshot/unpack.js';
import { isRoot, listTar, makeTar, scratch, streamOf, treeListing, type ListedEntry, type TEntry } from './helpers.js';

const t0 = new Date('2020-02-02T02:02:02Z');
const t1 = new Date('2011-11-11T11:11:11Z');
const longDir = 'deep/' + 'd'.repeat(90) + '/' + 'e'.repeat(60);

const layer: TEntry[] = [
  { name: 'dir/', type: 'directory', mode: 0o755, uid: 1000, gid: 1001, mtime: t1 },
  { name: 'dir/file', content: 'hello\n', mode: 0o644, uid: 1000, gid: 1001 },
  { name: 'dir/hardlink', type: 'link', linkname: 'dir/file' },
  { name: 'dir/symlink', type: 'symlink', linkname: '../dir/file', mode: 0o777, uid: 7, gid: 8 },
  { name: 'dir/dangling', type: 'symlink', linkname: '/nowhere/at/all', mode: 0o777 },
  { name: 'dir/setuid', content: '#!/bin/sh\n', mode: 0o4755 },
  { name: 'dir/setgid', content: 'g', mode: 0o2711, gid: 50 },
  // tar-stream's packer turns mode 0 into 0644; the S_IFREG bit gets 0 through its mask.
  { name: 'dir/mode0', content: 'secret', mode: 0o100000 },
  { name: 'dir/xattr', content: 'x', pax: { 'SCHILY.xattr.user.test': 'hello-xattr' } },
  { name: 'sticky/', type: 'directory', mode: 0o1777, mtime: t0 },
  { name: 'fifo', type: 'fifo', mode: 0o600, uid: 33, gid: 33 },
  { name: 'null', type: 'character-device', mode: 0o666, devmajor: 1, devminor: 3 },
  { name: 'loop0', type: 'block-device', mode: 0o660, gid: 6, devmajor: 7, devminor: 0 },
  { name: 'bigid', content: 'b', pax: { uid: '3000000', gid: '3000001' } },
  { name: 'ünïcødé name', content: 'u' },
  { name: 'deep/', type: 'directory', mtime: t0 },
  { name: 'deep/' + 'd'.repeat(90) + '/', type: 'directory', mtime: t0 },
  { name: longDir + '/', type: 'directory', mtime: t0 },
  { name: longDir + '/file-with-a-long-name', content: 'long', mtime: t1 },
  { name: longDir + '/link-to-long', type: 'link', linkname: longDir + '/file-with-a-long-name' },
];

function norm(entries: ListedEntry[]): ListedEntry[] {
  return entries
    .map((e) => ({ ...e, name: e.name.replace(/^\.\//, '').replace(/\/$/, '') }))
    // A hardlink header's own metadata is not applied (the inode is the target's), so
    // writers differ there; the link itself (name, type, target) must match.
    .map((e) => (e.type === 'link' ? { ...e, mode: '-', uid: -1, gid: -1, mtime: -1 } : e))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

for (const mode of ['flatten', 'overlay', 'oci'] as UnpackOptions['mode'][]) {
  test(`every file type survives tar -> ${mode} unpack -> tar`, async (t) => {
    if (!isRoot) return t.fail('this test needs root (device nodes, ownership)');
    const dir = join(await scratch(t), 'snap');
    await mkdir(dir);
    const input = await makeTar(layer);
    const res = await unpackLayer(streamOf(input), dir, { mode });
    const xattrRefused = res.warnings.some((w) => w.includes('user.test'));
    if (xattrRefused) t.log('this filesystem refused user.* xattrs: ', res.warnings);

    const want = norm(await listTar(streamOf(input)));
    const got = norm(await listTar(mode === 'overlay' ? diffUpper(dir) : tarDirectory(dir)));
    if (xattrRefused) for (const e of want) e.xattrs = {};
    t.deepEqual(got, want);
    t.deepEqual(got.find((e) => e.name === 'dir/xattr')?.xattrs, xattrRefused ? {} : { 'user.test': Buffer.from('hello-xattr').toString('hex') });
    t.is(got.find((e) => e.name === 'dir/mode0')?.mode, '0');
    t.is(got.find((e) => e.name === 'dir/hardlink')?.type, 'link');
    t.is(got.find((e) => e.name === 'bigid')?.uid, 3000000);
    t.is(got.find((e) => e.name === 'dir/setuid')?.mode, '4755');
    t.is(got.find((e) => e.name === 'sticky')?.mode, '1777');

    // And a second trip through unpack gives the same tree on disk.
    const again = join(dir, '..', 'again');
    await mkdir(again);
    await unpackLayer(mode === 'overlay' ? diffUpper(dir) : tarDirectory(dir), again, { mode });
    t.deepEqual(await treeListing(again), await treeListing(dir));
  });
}

test('binary xattr values survive byte for byte', async (t) => {
  const dir = await scratch(t);
  const src = join(dir, 'src');
  const dst = join(dir, 'dst');
  await mkdir(src);
  await mkdir(dst);
  // security.capability-like binary payload, built as raw PAX bytes by our own writer.
  const first = await makeTar([{ name: 'bin', content: 'b' }]);
  await unpackLayer(streamOf(first), src);
  const { setXattr } = await import('../../src/snapshot/xattr.js');
  const value = Buffer.from([0x00, 0xff, 0x0a, 0x3d, 0x80, 0x01]);
  await setXattr(join(src, 'bin'), 'user.bin', value);
  const entries = await listTar(tarDirectory(src));
  t.is(entries[0]?.xattrs['user.bin'], value.toString('hex'));
  const res = await unpackLayer(tarDirectory(src), dst);
  t.deepEqual(res.warnings, []);
  const back = await listTar(tarDirectory(dst));
  t.is(back[0]?.xattrs['user.bin'], value.toString('hex'));
});

test('diff ID is the sha256 of the tar and a wrong expectation is refused', async (t) => {
  const dir = await scratch(t);
  const input = await makeTar([{ name: 'a', content: 'a' }]);
  const { createHash } = await import('node:crypto');
  const want = 'sha256:' + createHash('sha256').update(input).digest('hex');
  const res = await unpackLayer(streamOf(input), dir);
  t.is(res.diffID, want);
  t.is(res.size, input.length);
  const other = join(dir, 'o');
  await mkdir(other);
  const err = await t.throwsAsync(unpackLayer(streamOf(input), other, { expectDiffID: 'sha256:' + '0'.repeat(64) }));
  t.is((err as { code?: string }).code, 'E_LAYER_DIGEST');
});

test('devices: "skip" leaves device nodes out with a warning naming the entry', async (t) => {
  const dir = await scratch(t);
  const input = await makeTar([
    { name: 'dev/', type: 'directory' },
    { name: 'dev/null', type: 'character-device', mode: 0o666, devmajor: 1, devminor: 3 },
    { name: 'dev/sda', type: 'block-device', mode: 0o660, devmajor: 8, devminor: 0 },
    { name: 'pipe', type: 'fifo', mode: 0o600 },
  ]);
  const res = await unpackLayer(streamOf(input), dir, { devices: 'skip', sameOwner: false });
  t.is(res.warnings.length, 2);
  t.regex(res.warnings[0]!, /dev\/null/);
  t.regex(res.warnings[1]!, /dev\/sda/);
  t.deepEqual((await treeListing(dir)).map((l) => l.split(' ').slice(0, 2).join(' ')), ['dev dir', 'pipe fifo']);
});

test('a layer cannot smuggle overlayfs control xattrs', async (t) => {
  if (!isRoot) return t.fail('trusted.* xattrs need root');
  const dir = await scratch(t);
  const input = await makeTar([
    { name: 'd/', type: 'directory', pax: { 'SCHILY.xattr.trusted.overlay.redirect': '/etc', 'SCHILY.xattr.user.ok': '1' } },
    { name: 'f', content: 'x', pax: { 'SCHILY.xattr.trusted.overlay.metacopy': '' } },
  ]);
  const res = await unpackLayer(streamOf(input), dir, { mode: 'overlay' });
  t.is(res.warnings.filter((w) => /ignored overlayfs attribute/.test(w)).length, 2);
  const { readTreeXattrs } = await import('../../src/snapshot/xattr.js');
  const attrs = await readTreeXattrs(dir);
  t.deepEqual([...(attrs.get(join(dir, 'd'))?.keys() ?? [])], ['user.ok']);
  t.is(attrs.get(join(dir, 'f')), undefined);
});

test('a whiteout never deletes what the same layer wrote', async (t) => {
  const dir = await scratch(t);
  await writeFile(join(dir, 'old'), 'lower');
  const input = await makeTar([{ name: 'new', content: 'mine' }, { name: '.wh.new' }, { name: '.wh.old' }]);
  await unpackLayer(streamOf(input), dir, { mode: 'flatten' });
  t.deepEqual((await treeListing(dir)).map((l) => l.split(' ')[0]), ['new']);
});
