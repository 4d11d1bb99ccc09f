import test from 'ava';
import { Readable, PassThrough } from 'node:stream';
import { gunzipSync, gzipSync } from 'node:zlib';
import { spawnSync } from 'node:child_process';
import { compressionOfMediaType, decompressAuto, detectCompression, diffIDOf, writeLayer, type WriteCompression } from '../../src/image/layer.js';
import { chainIDs } from '../../src/image/chainid.js';
import { everyTypeLayer, sha256 } from './helpers.js';

async function collect(s: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

for (const c of ['gzip', 'zstd', 'uncompressed'] as WriteCompression[]) {
  test(`writeLayer ${c}: diff ID of the tar and digest of the blob in one pass`, async (t) => {
    const tarBytes = await everyTypeLayer();
    const out = new PassThrough();
    const blobP = collect(out);
    const info = await writeLayer(Readable.from([tarBytes]), out, c);
    const blob = await blobP;
    t.is(info.diffID, sha256(tarBytes));
    t.is(info.digest, sha256(blob));
    t.is(info.size, blob.length);
    t.is(info.uncompressedSize, tarBytes.length);
    t.is(detectCompression(blob.subarray(0, 8)), c);
    t.is(compressionOfMediaType(info.mediaType), c);
    // The blob decompresses back to exactly the tar, whatever tool made it.
    t.deepEqual(await collect(decompressAuto(Readable.from([blob]))), tarBytes);
    if (c === 'zstd') {
      const r = spawnSync('zstd', ['-d', '-c', '-q'], { input: blob });
      t.is(r.status, 0, 'the system zstd reads the blob');
      t.deepEqual(r.stdout, tarBytes);
    }
    if (c === 'gzip') t.deepEqual(gunzipSync(blob), tarBytes);
  });
}

test('decompressAuto reads gzip, zstd and plain by magic bytes, and tiny inputs', async (t) => {
  const data = Buffer.from('x'.repeat(100000));
  t.deepEqual(await collect(decompressAuto(Readable.from([gzipSync(data)]))), data);
  const z = spawnSync('zstd', ['-c', '-q'], { input: data }).stdout;
  t.deepEqual(await collect(decompressAuto(Readable.from([z]))), data);
  t.deepEqual(await collect(decompressAuto(Readable.from([data]))), data);
  t.deepEqual(await collect(decompressAuto(Readable.from([Buffer.from('ab')]))), Buffer.from('ab'));
  t.deepEqual(await collect(decompressAuto(Readable.from([]))), Buffer.alloc(0));
  // Magic split across chunks still detected.
  const g = gzipSync(data);
  t.deepEqual(await collect(decompressAuto(Readable.from([g.subarray(0, 1), g.subarray(1, 3), g.subarray(3)]))), data);
});

test('corrupt compressed data is an error, not silent truncation', async (t) => {
  const g = gzipSync(Buffer.from('y'.repeat(50000)));
  const bad = Buffer.concat([g.subarray(0, 20), Buffer.alloc(40, 7)]);
  await t.throwsAsync(collect(decompressAuto(Readable.from([bad]))));
  const z = spawnSync('zstd', ['-c', '-q'], { input: Buffer.from('z'.repeat(50000)) }).stdout;
  await t.throwsAsync(collect(decompressAuto(Readable.from([Buffer.concat([z.subarray(0, 10), Buffer.alloc(30, 1)])]))));
});

test('diffIDOf hashes the uncompressed content', async (t) => {
  const tarBytes = await everyTypeLayer();
  const r = await diffIDOf(Readable.from([gzipSync(tarBytes)]));
  t.is(r.diffID, sha256(tarBytes));
  t.is(r.size, tarBytes.length);
  t.is(r.compression, 'gzip');
});

test('chain IDs follow the OCI spec', (t) => {
  const a = sha256('a') as `sha256:${string}`;
  const b = sha256('b') as `sha256:${string}`;
  const c = sha256('c') as `sha256:${string}`;
  const ids = chainIDs([a, b, c]);
  t.is(ids[0], a);
  t.is(ids[1], sha256(`${a} ${b}`));
  t.is(ids[2], sha256(`${ids[1]} ${c}`));
  t.deepEqual(chainIDs([]), []);
});
