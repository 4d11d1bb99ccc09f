// The unpacker's fast path: resolved parent directories are remembered between
// entries, names are created exclusively and only looked at when taken, and file
// bodies are written chunk by chunk with synchronous writes. These tests pin what
// that must not change: a remembered parent that a later entry replaces with a
// symlink (directly, through a whiteout or an opaque marker) is never written
// through, a hardlink naming itself is refused, a body cut off mid-file fails with
// no descriptor left open, and many entries in one chunk neither overflow the stack
// nor hold up the event loop. Overlay whiteouts after the first are hard links to
// one 0/0 device node, which overlayfs and the layer diff must still read as whiteouts.

import test from 'ava';
import { createHash } from 'node:crypto';
import { lstat, mkdir, readdir, readFile, readlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import tar from 'tar-stream';
import { execFile } from 'node:child_process';
import { isHoistError } from '../../src/util/errors.js';
import { diffUpper } from '../../src/snapshot/diff.js';
import { canMountOverlay } from '../../src/snapshot/store.js';
import { unpackLayer, type UnpackOptions } from '../../src/snapshot/unpack.js';
import { breakoutSetup, isRoot, listTar, makeTar, scratch, streamOf, treeListing, type TEntry } from './helpers.js';

interface Case {
  title: string;
  /** Lower content planted in dest before the layer (relative dirs). */
  lower?: string[];
  entries: (victim: string) => TEntry[];
  modes: NonNullable<UnpackOptions['mode']>[];
  /** Where the last write must have landed, relative to dest. */
  landed: (victim: string) => string;
}

const cases: Case[] = [
  {
    title: 'remembered parent d replaced by a symlink to the absolute victim path',
    entries: (victim) => [
      { name: 'd/x', content: 'first' },
      { name: 'd', type: 'symlink', linkname: victim },
      { name: 'd/y', content: 'contained' },
    ],
    modes: ['flatten', 'overlay', 'oci'],
    landed: (victim) => join(victim, 'y'),
  },
  {
    title: 'remembered parent d replaced by a symlink to ../victim',
    entries: () => [
      { name: 'd/x', content: 'first' },
      { name: 'd', type: 'symlink', linkname: '../victim' },
      { name: 'd/hello', content: 'contained' },
    ],
    modes: ['flatten', 'overlay', 'oci'],
    landed: () => 'victim/hello',
  },
  {
    title: 'remembered parent a/b whose ancestor a becomes a symlink',
    entries: (victim) => [
      { name: 'a/b/x', content: 'first' },
      { name: 'a', type: 'symlink', linkname: victim },
      { name: 'a/b/y', content: 'contained' },
    ],
    modes: ['flatten', 'overlay', 'oci'],
    landed: (victim) => join(victim, 'b', 'y'),
  },
  {
    title: 'remembered parent removed by a whiteout, then made a symlink',
    lower: ['d'],
    entries: (victim) => [
      { name: 'd/x', content: 'first' },
      { name: '.wh.d' },
      { name: 'd', type: 'symlink', linkname: victim },
      { name: 'd/y', content: 'contained' },
    ],
    modes: ['flatten'],
    landed: (victim) => join(victim, 'y'),
  },
  {
    title: 'remembered parent removed by an opaque marker, then made a symlink',
    lower: ['d/old'],
    entries: (victim) => [
      { name: 'd/old/.wh.gone' },
      { name: 'd/.wh..wh..opq' },
      { name: 'd/old', type: 'symlink', linkname: victim },
      { name: 'd/old/y', content: 'contained' },
    ],
    modes: ['flatten'],
    landed: (victim) => join(victim, 'y'),
  },
  {
    title: 'remembered parent replaced by a symlink through a hardlink entry',
    entries: (victim) => [
      { name: 'd/x', content: 'first' },
      { name: 'e', type: 'symlink', linkname: victim },
      { name: 'd', type: 'link', linkname: 'e' },
      { name: 'd/y', content: 'contained' },
    ],
    modes: ['flatten', 'overlay', 'oci'],
    landed: (victim) => join(victim, 'y'),
  },
];

for (const c of cases) {
  for (const mode of c.modes) {
    if (mode === 'overlay' && !isRoot) continue;
    test(`${mode}: ${c.title}`, async (t) => {
      const { base, dest, victim } = await breakoutSetup(t);
      for (const d of c.lower ?? []) await mkdir(join(dest, d), { recursive: true });
      const before = await treeListing(victim);
      await unpackLayer(streamOf(await makeTar(c.entries(victim))), dest, { mode });
      t.deepEqual(await treeListing(victim), before, 'victim changed');
      t.deepEqual((await readdir(base)).sort(), ['dest', 'victim'], 'something was created beside dest');
      t.is(await readFile(join(dest, c.landed(victim)), 'utf8'), 'contained');
    });
  }
}

test('a hardlink entry naming itself is refused, as when the name was free', async (t) => {
  const dest = await scratch(t);
  const layer = await makeTar([{ name: 'a', content: 'x' }, { name: 'a', type: 'link', linkname: 'a' }]);
  const err = await t.throwsAsync(unpackLayer(streamOf(layer), dest, { mode: 'flatten' }));
  t.true(isHoistError(err));
  t.regex(err!.message, /hardlink target "a" does not exist inside the layer/);
});

test('entries over existing names: a directory is kept, anything else is replaced', async (t) => {
  const dest = await scratch(t);
  await mkdir(join(dest, 'keep'));
  await writeFile(join(dest, 'keep', 'lower'), 'lower');
  await mkdir(join(dest, 'dir2file'));
  await writeFile(join(dest, 'dir2file', 'inner'), 'x');
  await writeFile(join(dest, 'file2link'), 'x');
  await writeFile(join(dest, 'file2dir'), 'x');
  const layer = await makeTar([
    { name: 'keep/', type: 'directory', mode: 0o750 },
    { name: 'dir2file', content: 'now a file' },
    { name: 'file2link', type: 'symlink', linkname: 'keep' },
    { name: 'file2dir/', type: 'directory' },
    { name: 'file2dir/x', content: 'inside' },
  ]);
  await unpackLayer(streamOf(layer), dest, { mode: 'flatten' });
  t.is(await readFile(join(dest, 'keep', 'lower'), 'utf8'), 'lower');
  t.is((await lstat(join(dest, 'keep'))).mode & 0o7777, 0o750);
  t.is(await readFile(join(dest, 'dir2file'), 'utf8'), 'now a file');
  t.is(await readlink(join(dest, 'file2link')), 'keep');
  t.is(await readFile(join(dest, 'file2dir', 'x'), 'utf8'), 'inside');
});

const openFds = async (): Promise<number> => (await readdir('/proc/self/fd')).length;

test.serial('a body cut off mid-file fails the unpack and leaves no descriptor open', async (t) => {
  const dest = await scratch(t);
  const layer = await makeTar([{ name: 'a', content: 'first' }, { name: 'big', content: 'y'.repeat(200_000) }]);
  const cut = layer.subarray(0, 512 * 3 + 100_000);
  const fds = await openFds();
  // Several small chunks, so the cut comes while the file is being written.
  const chunks = Array.from({ length: Math.ceil(cut.length / 4096) }, (_, i) => cut.subarray(i * 4096, (i + 1) * 4096));
  await t.throwsAsync(unpackLayer(Readable.from(chunks), dest, { mode: 'flatten' }));
  t.is(await openFds(), fds);
});

test('a file body arriving in many chunks is written whole, streamed', async (t) => {
  const dest = await scratch(t);
  const size = 8 * 1024 * 1024 + 123;
  const body = Buffer.alloc(size);
  for (let i = 0; i < size; i++) body[i] = (i * 31) & 0xff;
  const stored = await makeTarBytes('dir/big.bin', body);
  const chunks = Array.from({ length: Math.ceil(stored.length / 7777) }, (_, i) => stored.subarray(i * 7777, (i + 1) * 7777));
  await unpackLayer(Readable.from(chunks), dest, { mode: 'flatten' });
  const got = await readFile(join(dest, 'dir', 'big.bin'));
  t.is(got.length, size);
  t.is(createHash('sha256').update(got).digest('hex'), createHash('sha256').update(body).digest('hex'));
});

async function makeTarBytes(name: string, body: Buffer): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const c of pack) chunks.push(c as Buffer);
  })();
  pack.entry({ name, mode: 0o644, mtime: new Date(0) }, body);
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

test('thousands of entries in one chunk: no deep recursion, all applied, the event loop gets turns', async (t) => {
  const dest = await scratch(t);
  const entries: TEntry[] = [{ name: 'bin/busybox', content: '#!/bin/sh\n', mode: 0o755 }];
  for (let i = 0; i < 6000; i++) entries.push({ name: `bin/l${i}`, type: 'symlink', linkname: 'busybox' });
  for (let i = 0; i < 300; i++) entries.push({ name: `etc/d${i % 30}/f${i}`, content: `f${i}` });
  const layer = await makeTar(entries);
  let ticks = 0;
  const timer = setInterval(() => ticks++, 1);
  const t0 = performance.now();
  const r = await unpackLayer(Readable.from([layer]), dest, { mode: 'flatten' });
  const ms = performance.now() - t0;
  clearInterval(timer);
  t.is(r.entries, entries.length);
  t.is((await readdir(join(dest, 'bin'))).length, 6001);
  t.is(await readlink(join(dest, 'bin', 'l5999')), 'busybox');
  t.is(await readFile(join(dest, 'etc', 'd29', 'f299'), 'utf8'), 'f299');
  // One chunk holds every entry; without turns the timer could not fire until the end.
  if (ms > 100) t.true(ticks >= 2, `timer fired ${ticks} times during a ${ms.toFixed(0)} ms unpack`);
});

test('overlay whiteouts shared as hard links: every one a 0/0 device, the kernel hides the victims, the diff gives them back as .wh. entries', async (t) => {
  if (!isRoot) return t.fail('needs root: overlay whiteouts are device nodes');
  const base = await scratch(t);
  const support = await canMountOverlay(base);
  if (!support.ok) return t.fail(`overlayfs is not mountable here: ${support.reason}`);
  const s1 = join(base, 's1');
  const s2 = join(base, 's2');
  await mkdir(s1);
  await mkdir(s2);
  const lower: TEntry[] = [{ name: 'keep', content: 'keep' }];
  for (let i = 0; i < 40; i++) lower.push({ name: `d${i % 4}/f${i}`, content: `f${i}` });
  await unpackLayer(streamOf(await makeTar(lower)), s1, { mode: 'overlay' });
  const upper: TEntry[] = [];
  for (let i = 0; i < 40; i++) if (i % 5 !== 0) upper.push({ name: `d${i % 4}/.wh.f${i}` });
  // A whiteout replaced by a file later in the layer, then more whiteouts after it.
  upper.push({ name: 'd1/f1', content: 'back' });
  upper.push({ name: 'd0/.wh.f0' }, { name: 'd1/.wh.f5' });
  await unpackLayer(streamOf(await makeTar(upper)), s2, { mode: 'overlay', lowers: [s1] });

  const gone = [...Array(40).keys()].filter((i) => i % 5 !== 0 && i !== 1).concat([0, 5]);
  for (const i of gone) {
    const st = await lstat(join(s2, `d${i % 4}`, `f${i}`));
    t.true(st.isCharacterDevice() && st.rdev === 0 && (st.mode & 0o7777) === 0, `d${i % 4}/f${i} should be a 0/0 whiteout`);
  }
  t.is(await readFile(join(s2, 'd1', 'f1'), 'utf8'), 'back');
  // One node for the first run of whiteouts; the removal of d1/f1 starts a new one.
  t.is((await lstat(join(s2, 'd2', 'f2'))).nlink, gone.length - 2);
  t.is((await lstat(join(s2, 'd0', 'f0'))).nlink, 2);

  const merged = join(base, 'merged');
  const copy = join(base, 'copy');
  await mkdir(merged);
  await mkdir(copy);
  await new Promise<void>((resolve, reject) => {
    execFile('unshare', ['-m', '--propagation', 'private', 'sh', '-ec', 'mount -t overlay overlay -o "lowerdir=$1:$2" "$3"; cp -a "$3/." "$4/"', 'sh', s2, s1, merged, copy],
      (err, _o, stderr) => (err ? reject(new Error(String(stderr).trim() || err.message)) : resolve()));
  });
  const visible = (await treeListing(copy)).map((l) => l.split(' ')[0]!).filter((n) => /\/f\d+$/.test(n)).sort();
  const want = [...Array(40).keys()].filter((i) => !gone.includes(i)).map((i) => `d${i % 4}/f${i}`).sort();
  t.deepEqual(visible, want);

  const entries = await listTar(diffUpper(s2));
  const whiteouts = entries.filter((e) => e.name.split('/').pop()!.startsWith('.wh.'));
  t.is(whiteouts.length, gone.length);
  t.true(whiteouts.every((e) => e.type === 'file' && e.linkname === ''), 'whiteouts must not come out as hard links');
  t.false(entries.some((e) => e.type === 'link'));
});
