import test from 'ava';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { chainIDs } from '../../src/image/chainid.js';
import { cleanup, hoist, makeDockerArchive, secondLayer, everyTypeLayer, sha256, tempDir } from './helpers.js';

async function loadTwo(root: string) {
  const a = await makeDockerArchive({ layers: [{ tar: await everyTypeLayer() }, { tar: await secondLayer(), gzip: true }], tags: ['app:1'] });
  const b = await makeDockerArchive({ layers: [{ tar: await secondLayer() }], tags: ['other:1'] });
  for (const x of [a, b]) {
    const r = await hoist(root, ['load'], x.archive);
    if (r.code !== 0) throw new Error(r.stderr);
  }
  return { a, b };
}

test('tag adds names; rmi by name untags, by last name deletes and frees blobs', async (t) => {
  const root = await tempDir();
  const { a } = await loadTwo(root);
  t.is((await hoist(root, ['tag', 'app:1', 'localhost:5000/team/app:prod'])).code, 0);
  t.is((await hoist(root, ['inspect', '--format', '{{.Id}}', 'localhost:5000/team/app:prod'])).stdout, `${a.configDigest}\n`);
  const badTag = await hoist(root, ['tag', 'app:1', 'Bad:Name']);
  t.is(badTag.code, 1);
  t.regex(badTag.stderr, /lowercase/);
  const missing = await hoist(root, ['tag', 'nope', 'x']);
  t.regex(missing.stderr, /no such image: nope/);

  // By ID with two names: must be forced.
  const byId = await hoist(root, ['rmi', a.configDigest.slice(7, 19)]);
  t.is(byId.code, 1);
  t.regex(byId.stderr, /referenced in multiple repositories/);

  const blobsBefore = (await readdir(join(root, 'blobs', 'sha256'))).length;
  const un = await hoist(root, ['rmi', 'localhost:5000/team/app:prod']);
  t.is(un.stdout, 'Untagged: localhost:5000/team/app:prod\n');
  t.is((await readdir(join(root, 'blobs', 'sha256'))).length, blobsBefore);
  const del = await hoist(root, ['rmi', 'app:1']);
  t.is(del.stdout, `Untagged: app:1\nDeleted: ${a.configDigest}\n`);
  // app's own blobs are gone; the layer it shares with other:1 is not (other's layer is plain, app's gzip: distinct blobs).
  const left = await readdir(join(root, 'blobs', 'sha256'));
  t.false(left.includes(a.configDigest.slice(7)));
  t.false(left.includes(sha256(await everyTypeLayer()).slice(7)));
  t.is((await hoist(root, ['system', 'check'])).code, 0);
  t.is((await hoist(root, ['images', '-q'])).stdout.trim().split('\n').length, 1);
  await cleanup(root);
});

test('rmi refuses an image a container uses unless -f, which keeps it untagged for the container', async (t) => {
  const root = await tempDir();
  const { a } = await loadTwo(root);
  await mkdir(join(root, 'containers', 'c0ffee1234567890'), { recursive: true });
  await writeFile(join(root, 'containers', 'c0ffee1234567890', 'config.json'), JSON.stringify({ id: 'c0ffee1234567890', image: a.configDigest }));
  const r = await hoist(root, ['rmi', 'app:1']);
  t.is(r.code, 1);
  t.regex(r.stderr, /container c0ffee123456 is using its referenced image/);
  t.regex(r.stderr, /hint: /);
  const f = await hoist(root, ['rmi', '-f', 'app:1']);
  t.is(f.code, 0, f.stderr);
  t.is(f.stdout, 'Untagged: app:1\n');
  const images = await hoist(root, ['images']);
  t.regex(images.stdout, new RegExp(`<none>\\s+<none>\\s+${a.configDigest.slice(7, 19)}`));
  // prune keeps it (a container needs it) and check still passes.
  t.is((await hoist(root, ['system', 'prune', '-f'])).code, 0);
  t.is((await hoist(root, ['inspect', '--format', '{{.Id}}', a.configDigest])).stdout, `${a.configDigest}\n`);
  t.is((await hoist(root, ['system', 'check'])).code, 0);
  await cleanup(root);
});

test('system prune removes unreferenced blobs and snapshots, never what a tagged image needs', async (t) => {
  const root = await tempDir();
  const { a, b } = await loadTwo(root);
  const chainsA = chainIDs(a.diffIDs as `sha256:${string}`[]);
  const chainsB = chainIDs(b.diffIDs as `sha256:${string}`[]);
  const stale = sha256('stale chain');
  for (const c of [...chainsA, ...chainsB, stale]) {
    await mkdir(join(root, 'snapshots', c.slice(7), 'fs'), { recursive: true });
    await writeFile(join(root, 'snapshots', c.slice(7), 'fs', 'f'), 'x'.repeat(1000));
  }
  await mkdir(join(root, 'snapshots', 'not-a-chain-id'));
  const orphan = Buffer.from('orphan blob');
  await writeFile(join(root, 'blobs', 'sha256', sha256(orphan).slice(7)), orphan);
  t.is((await hoist(root, ['rmi', 'other:1'])).code, 0);

  const df = await hoist(root, ['system', 'df']);
  t.regex(df.stdout, /^TYPE\s+TOTAL\s+ACTIVE\s+SIZE\s+RECLAIMABLE\n/);
  t.regex(df.stdout, /Images\s+1\s+0\s/);
  t.regex(df.stdout, /Snapshots\s+4\s+2\s/);

  const p = await hoist(root, ['system', 'prune', '-f']);
  t.is(p.code, 0, p.stderr);
  t.regex(p.stdout, /Removed 1 blob\(s\) and 2 snapshot\(s\)/);
  const snaps = (await readdir(join(root, 'snapshots'))).sort();
  t.deepEqual(snaps, [...chainsA.map((c) => c.slice(7)), 'not-a-chain-id'].sort());
  t.false((await readdir(join(root, 'blobs', 'sha256'))).includes(sha256(orphan).slice(7)));
  t.is((await hoist(root, ['inspect', '--format', '{{.Id}}', 'app:1'])).stdout, `${a.configDigest}\n`);
  t.is((await hoist(root, ['system', 'check'])).code, 0);
  await cleanup(root);
});

test('system check reports a corrupt blob and a dangling reference', async (t) => {
  const root = await tempDir();
  const { a } = await loadTwo(root);
  await writeFile(join(root, 'blobs', 'sha256', a.configDigest.slice(7)), '{"tampered":true}');
  const layer = sha256(await secondLayer()).slice(7);
  const { rm } = await import('node:fs/promises');
  await rm(join(root, 'blobs', 'sha256', layer));
  const r = await hoist(root, ['system', 'check']);
  t.is(r.code, 1);
  t.regex(r.stdout, new RegExp(`blob ${a.configDigest} is corrupt`));
  t.regex(r.stdout, new RegExp(`layer sha256:${layer} is missing`));
  t.regex(r.stdout, /problem\(s\)\n$/);
  await cleanup(root);
});
