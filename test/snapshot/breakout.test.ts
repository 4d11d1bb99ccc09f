// The classic tar breakout table (containerd archive tests, docker's pkg/archive,
// umoci): each hostile layer is applied to `dest` with a `victim` directory planted
// beside it; the victim must come out byte-for-byte untouched and the layer must
// either be refused with E_LAYER_UNSAFE or land entirely inside `dest`.

import test from 'ava';
import { readdir, readFile, lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { isHoistError } from '../../src/util/errors.js';
import { unpackLayer, type UnpackOptions } from '../../src/snapshot/unpack.js';
import { breakoutSetup, isRoot, makeTar, streamOf, treeListing, type TEntry } from './helpers.js';

interface Case {
  title: string;
  /** Builds the layer; `victim` is the absolute path of the planted directory. */
  entries: (victim: string) => TEntry[];
  expect: 'refused' | 'contained';
  /** For contained cases: what must now exist inside dest (relative path → check). */
  inside?: (dest: string, victim: string) => Promise<void>;
}

const fileAt = async (p: string, content: string): Promise<void> => {
  const got = await readFile(p, 'utf8');
  if (got !== content) throw new Error(`${p}: expected ${JSON.stringify(content)}, got ${JSON.stringify(got)}`);
};

const cases: Case[] = [
  { title: 'relative ../victim/x', entries: () => [{ name: '../victim/x', content: 'pwned' }], expect: 'refused' },
  { title: 'rooted /../victim/x', entries: () => [{ name: '/../victim/x', content: 'pwned' }], expect: 'refused' },
  { title: 'double ../../victim/x', entries: () => [{ name: '../../victim/x', content: 'pwned' }], expect: 'refused' },
  { title: 'climb after a real dir a/../../victim/x', entries: () => [{ name: 'a/../../victim/x', content: 'pwned' }], expect: 'refused' },
  { title: 'hidden climb ./a/b/../../../victim/hello', entries: () => [{ name: './a/b/../../../victim/hello', content: 'pwned' }], expect: 'refused' },
  {
    title: 'symlink loophole -> ../victim, then loophole/x',
    entries: () => [
      { name: 'loophole', type: 'symlink', linkname: '../victim' },
      { name: 'loophole/x', content: 'contained' },
    ],
    expect: 'contained',
    inside: (dest) => fileAt(join(dest, 'victim', 'x'), 'contained'),
  },
  {
    title: 'symlink loophole -> ../victim, then overwrite loophole/hello',
    entries: () => [
      { name: 'loophole', type: 'symlink', linkname: '../victim' },
      { name: 'loophole/hello', content: 'pwned' },
    ],
    expect: 'contained',
    inside: (dest) => fileAt(join(dest, 'victim', 'hello'), 'pwned'),
  },
  {
    title: 'symlink to the absolute victim path, then write through it',
    entries: (victim) => [
      { name: 'loophole', type: 'symlink', linkname: victim },
      { name: 'loophole/x', content: 'contained' },
    ],
    expect: 'contained',
    inside: (dest, victim) => fileAt(join(dest, victim, 'x'), 'contained'),
  },
  {
    title: 'symlink to / then write through it to the victim',
    entries: (victim) => [
      { name: 'root', type: 'symlink', linkname: '/' },
      { name: `root${victim}/hello`, content: 'contained' },
    ],
    expect: 'contained',
    inside: (dest, victim) => fileAt(join(dest, victim, 'hello'), 'contained'),
  },
  {
    title: 'chained symlinks a -> b, b -> ../victim, then a/x',
    entries: () => [
      { name: 'a', type: 'symlink', linkname: 'b' },
      { name: 'b', type: 'symlink', linkname: '../victim' },
      { name: 'a/x', content: 'contained' },
    ],
    expect: 'contained',
    inside: (dest) => fileAt(join(dest, 'victim', 'x'), 'contained'),
  },
  {
    title: 'file entry over a symlink to the victim file replaces the link',
    entries: (victim) => [
      { name: 'loophole', type: 'symlink', linkname: join(victim, 'hello') },
      { name: 'loophole', content: 'replaced' },
    ],
    expect: 'contained',
    inside: async (dest) => {
      if (!(await lstat(join(dest, 'loophole'))).isFile()) throw new Error('loophole is not a regular file');
      await fileAt(join(dest, 'loophole'), 'replaced');
    },
  },
  {
    title: 'directory entry over a symlink to the victim dir',
    entries: () => [
      { name: 'loophole', type: 'symlink', linkname: '../victim' },
      { name: 'loophole/', type: 'directory', mode: 0o777 },
      { name: 'loophole/hello', content: 'contained' },
    ],
    expect: 'contained',
    inside: (dest) => fileAt(join(dest, 'loophole', 'hello'), 'contained'),
  },
  { title: 'hardlink to ../victim/hello', entries: () => [{ name: 'x', type: 'link', linkname: '../victim/hello' }], expect: 'refused' },
  { title: 'hardlink to the absolute victim file', entries: (victim) => [{ name: 'x', type: 'link', linkname: join(victim, 'hello') }], expect: 'refused' },
  {
    title: 'hardlink through a symlinked parent',
    entries: () => [
      { name: 'loophole', type: 'symlink', linkname: '../victim' },
      { name: 'x', type: 'link', linkname: 'loophole/hello' },
    ],
    expect: 'refused',
  },
  {
    title: 'hardlink through an absolute symlinked parent',
    entries: (victim) => [
      { name: 'loophole', type: 'symlink', linkname: victim },
      { name: 'x', type: 'link', linkname: 'loophole/hello' },
    ],
    expect: 'refused',
  },
  {
    title: 'hardlink to a symlink pointing out, then write to the hardlink',
    entries: (victim) => [
      { name: 'loophole', type: 'symlink', linkname: join(victim, 'hello') },
      { name: 'x', type: 'link', linkname: 'loophole' },
      { name: 'x', content: 'replaced' },
    ],
    expect: 'contained',
    inside: (dest) => fileAt(join(dest, 'x'), 'replaced'),
  },
  {
    title: 'whiteout .wh.hello inside a symlinked dir pointing out',
    entries: () => [
      { name: 'loophole', type: 'symlink', linkname: '../victim' },
      { name: 'loophole/.wh.hello' },
    ],
    expect: 'contained',
  },
  {
    title: 'whiteout through an absolute symlink',
    entries: (victim) => [
      { name: 'loophole', type: 'symlink', linkname: victim },
      { name: 'loophole/.wh.hello' },
    ],
    expect: 'contained',
  },
  {
    title: 'opaque marker loophole/.wh..wh..opq through a symlink',
    entries: () => [
      { name: 'loophole', type: 'symlink', linkname: '../victim' },
      { name: 'loophole/.wh..wh..opq' },
    ],
    expect: 'contained',
  },
  { title: 'whiteout named .wh... (parent dir)', entries: () => [{ name: 'a/.wh...' }], expect: 'refused' },
  { title: 'whiteout ../.wh.victim', entries: () => [{ name: '../.wh.victim' }], expect: 'refused' },
  { title: 'symlink loop a -> b, b -> a, then a/x', entries: () => [
    { name: 'a', type: 'symlink', linkname: 'b' },
    { name: 'b', type: 'symlink', linkname: 'a' },
    { name: 'a/x', content: 'x' },
  ], expect: 'refused' },
];

const modes: UnpackOptions['mode'][] = isRoot ? ['flatten', 'overlay'] : ['flatten'];

for (const mode of modes) {
  for (const c of cases) {
    test(`${mode}: ${c.title}`, async (t) => {
      const { base, dest, victim } = await breakoutSetup(t);
      const before = await treeListing(victim);
      const layer = await makeTar(c.entries(victim));
      let err: unknown;
      try {
        await unpackLayer(streamOf(layer), dest, { mode });
      } catch (e) {
        err = e;
      }
      t.deepEqual(await treeListing(victim), before, 'victim changed');
      t.deepEqual((await readdir(base)).sort(), ['dest', 'victim'], 'something was created beside dest');
      if (c.expect === 'refused') {
        t.truthy(err, 'expected the layer to be refused');
        t.true(isHoistError(err), `expected a HoistError, got ${String(err)}`);
        if (isHoistError(err)) {
          t.is(err.code, 'E_LAYER_UNSAFE');
          t.regex(err.message, /refusing layer entry "/);
        }
      } else {
        t.is(err, undefined, `expected a contained write, got ${String(err)}`);
        if (c.inside) await c.inside(dest, victim);
      }
    });
  }
}
