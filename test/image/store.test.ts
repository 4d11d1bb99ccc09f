import test from 'ava';
import { Readable } from 'node:stream';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { Store } from '../../src/image/store.js';
import { cleanTmp } from '../../src/image/tmpdir.js';
import { isHoistError } from '../../src/util/errors.js';
import { MediaType } from '../../src/image/types.js';
import { cleanup, filesUnder, sha256, tempDir } from './helpers.js';

test('the root is an OCI image layout from the start', async (t) => {
  const root = await tempDir();
  await Store.open(root);
  t.deepEqual(JSON.parse(await readFile(join(root, 'oci-layout'), 'utf8')), { imageLayoutVersion: '1.0.0' });
  const idx = JSON.parse(await readFile(join(root, 'index.json'), 'utf8'));
  t.is(idx.schemaVersion, 2);
  t.deepEqual(idx.manifests, []);
  t.deepEqual(await readdir(join(root, 'blobs', 'sha256')), []);
  await cleanup(root);
});

test('ingest verifies the digest; a mismatch is refused and leaves nothing', async (t) => {
  const root = await tempDir();
  const s = await Store.open(root);
  const dir = await s.tmpDir('t');
  const data = Buffer.from('some content');
  const wrong = sha256('other content') as `sha256:${string}`;
  const e = await t.throwsAsync(s.ingest(Readable.from([data]), dir, { digest: wrong }));
  t.true(isHoistError(e));
  t.is((e as { code?: string }).code, 'E_DIGEST_MISMATCH');
  t.true(e!.message.includes(wrong) && e!.message.includes(sha256(data)));
  t.deepEqual(await readdir(dir), [], 'no temp file left');
  t.deepEqual(await readdir(join(root, 'blobs', 'sha256')), []);
  const ok = await s.ingest(Readable.from([data]), dir, { digest: sha256(data) as `sha256:${string}`, size: data.length });
  await s.commit([ok]);
  t.true(await s.hasBlob(ok.digest));
  t.deepEqual(await readFile(s.blobPath(ok.digest)), data);
  await t.throwsAsync(s.ingest(Readable.from([data]), dir, { size: data.length + 1 }), { code: 'E_DIGEST_MISMATCH' } as never);
  await cleanup(root);
});

test('a corrupt blob is detected when read', async (t) => {
  const root = await tempDir();
  const s = await Store.open(root);
  const d = await s.putBlob(Buffer.from('{"a":1}'), 'application/json');
  await writeFile(s.blobPath(d.digest), '{"a":2}');
  await t.throwsAsync(s.readJSON(d.digest), { code: 'E_CORRUPT' } as never);
  await cleanup(root);
});

test('tmp/ leftovers of dead processes are cleaned at start, live ones kept', async (t) => {
  const root = await tempDir();
  await Store.open(root);
  // A pid that surely is not running: a child that has exited.
  const child = spawn(process.execPath, ['-e', '0']);
  const deadPid = child.pid!;
  await new Promise((r) => child.on('exit', r));
  await mkdir(join(root, 'tmp', `${deadPid}-load-aaaa`));
  await writeFile(join(root, 'tmp', `${deadPid}-load-aaaa`, 'blob-x'), 'partial');
  await mkdir(join(root, 'tmp', `${process.pid}-load-bbbb`));
  await Store.open(root);
  t.deepEqual(await readdir(join(root, 'tmp')), [`${process.pid}-load-bbbb`]);
  t.is(await cleanTmp(root), 0);
  await cleanup(root);
});

test('concurrent index updates from many writers all land', async (t) => {
  const root = await tempDir();
  const s = await Store.open(root);
  const descs = await Promise.all(
    Array.from({ length: 12 }, (_, i) => s.putBlob(Buffer.from(JSON.stringify({ schemaVersion: 2, n: i })), MediaType.OciManifest)),
  );
  // Separate Store objects behave like separate processes sharing the root.
  await Promise.all(
    descs.map(async (d, i) => {
      const other = await Store.open(root);
      await other.updateIndex((idx) => other.setName(`app:v${i}`, d, idx));
    }),
  );
  const idx = await s.readIndex();
  t.is(idx.manifests.length, 12);
  t.deepEqual(await filesUnder(join(root, 'tmp')), []);
  t.false((await readdir(root)).includes('index.lock'));
  await cleanup(root);
});

test('a stale lock left by a killed process is broken', async (t) => {
  const root = await tempDir();
  const s = await Store.open(root);
  const child = spawn(process.execPath, ['-e', '0']);
  await new Promise((r) => child.on('exit', r));
  await writeFile(join(root, 'index.lock'), `${child.pid}\n`);
  const d = await s.putBlob(Buffer.from('{}'), MediaType.OciManifest);
  await s.updateIndex((idx) => s.setName('x', d, idx));
  t.is((await s.readIndex()).manifests.length, 1);
  await cleanup(root);
});

test('a store root that is not an OCI layout is refused', async (t) => {
  const root = await tempDir();
  await writeFile(join(root, 'oci-layout'), '{"imageLayoutVersion":"9"}');
  await t.throwsAsync(Store.open(root), { code: 'E_ROOT' } as never);
  await cleanup(root);
});
