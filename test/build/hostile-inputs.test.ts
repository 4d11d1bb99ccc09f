/**
 * Hostile input to today's build features, through bin/hoist: it is refused or
 * contained, never a stack trace, never a half-written store.
 *
 * - ADD <url>: URL paths naming `..`, `.`, `%2e%2e`, `a%2fb`, very long names; bad
 *   redirects (unparsable Location, loops, file://); a body dropped half way; a
 *   gzip-encoded body is streamed to disk, not held in memory; archives with
 *   breakout entries under --unpack=true.
 * - --cache-from type=local: a layout whose index.json is a FIFO, whose blobs are
 *   symlinks to devices or to files outside, whose digests climb with `../`, whose
 *   sizes lie, or whose records pair a stored blob with another layer's diff ID or
 *   the wrong media type: each a warning and a miss, nothing unverified in the store.
 * - RUN --mount=type=cache: ids and source paths with `..`, `from=` sources that are
 *   symlinks out of the stage: nothing outside $ROOT/cache/mounts, nothing from the host.
 */
import test, { type ExecutionContext } from 'ava';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createGzip, constants as zc } from 'node:zlib';
import { rawTar } from '../helpers/rawtar.js';
import { canBuild, cleanup, hoist, rootWithBusybox, tempDir, tool, type Run, writeProject } from './helpers.js';

const it = canBuild ? test.serial : test.serial.skip;

let root: string;
let work: string;
let server: Server;
let base: string;
/** Set by the /stream route: how many bytes of the decompressed body were on disk before the response ended. */
let streamedBeforeEnd = -1;
const STREAM_BYTES = 32 * 1024 * 1024;
/** Tar archives served under /tar/<name>. */
const tars = new Map<string, Buffer>();

/** The downloads in progress under $ROOT/tmp: the size of `name` in any `*-http-*` directory. */
async function partialSize(name: string): Promise<number> {
  let best = -1;
  for (const d of await readdir(join(root, 'tmp')).catch(() => [] as string[])) {
    if (!d.includes('-http-')) continue;
    const st = await stat(join(root, 'tmp', d, name)).catch(() => null);
    if (st) best = Math.max(best, st.size);
  }
  return best;
}

test.before(async () => {
  if (!canBuild) return;
  root = await rootWithBusybox();
  work = await tempDir('hoist-hostile-');
  server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    if (path === '/badloc') {
      res.writeHead(302, { Location: 'http://[::1' });
      res.end();
    } else if (path.startsWith('/loop/')) {
      res.writeHead(302, { Location: `/loop/${Number(path.slice(6)) + 1}` });
      res.end();
    } else if (path === '/tofile') {
      res.writeHead(302, { Location: 'file:///etc/passwd' });
      res.end();
    } else if (path === '/drop') {
      // no Content-Length: 4 MiB, then the connection dies
      res.writeHead(200, { 'Content-Type': 'application/octet-stream' });
      res.write(Buffer.alloc(4 * 1024 * 1024, 1), () => setTimeout(() => res.socket?.destroy(), 50));
    } else if (path === '/stream') {
      // a gzip-encoded body with no Content-Length: half of it goes out, then the server waits
      // until that half is on disk in the download's temporary file before sending the rest
      res.writeHead(200, { 'Content-Encoding': 'gzip', 'Content-Type': 'application/octet-stream' });
      const gz = createGzip();
      gz.pipe(res);
      const chunk = Buffer.alloc(1024 * 1024, 0x61);
      for (let i = 0; i < STREAM_BYTES / 2 / chunk.length; i++) gz.write(chunk);
      gz.flush(zc.Z_SYNC_FLUSH, async () => {
        const deadline = Date.now() + 30_000;
        let seen = -1;
        while (Date.now() < deadline && (seen = await partialSize('stream')) < STREAM_BYTES / 2) await new Promise((r) => setTimeout(r, 50));
        streamedBeforeEnd = seen;
        for (let i = 0; i < STREAM_BYTES / 2 / chunk.length; i++) gz.write(chunk);
        gz.end();
      });
    } else if (path.startsWith('/tar/')) {
      const body = tars.get(path.slice(5));
      res.writeHead(body ? 200 : 404, { 'Content-Length': String(body?.length ?? 0) });
      res.end(body);
    } else {
      const body = Buffer.from(`served ${path}\n`);
      res.writeHead(200, { 'Content-Length': String(body.length) });
      res.end(body);
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

test.after.always(async () => {
  server?.close();
  if (root) await cleanup(root, work);
});

let n = 0;
const project = (files: Record<string, string>): Promise<string> => writeProject(join(work, `p${++n}`), files);

async function build(r: string, dir: string, extra: string[] = []): Promise<Run & { out: string }> {
  const out = join(work, `out${++n}`);
  const res = await hoist(r, ['build', '--progress', 'plain', ...extra, '--output', `type=local,dest=${out}`, dir]);
  return { ...res, out };
}

/** No stack trace, no Node crash banner. */
function noCrash(t: { false(v: boolean, m?: string): void }, r: Run): void {
  t.false(/\n\s+at .+:\d+:\d+\)?\n|Node\.js v\d+|TypeError|ReferenceError/.test(r.stderr), r.stderr);
}

/** The store's temporary directory is empty again and `hoist system check` is happy. */
async function storeClean(t: { deepEqual(a: unknown, b: unknown, m?: string): void; is(a: unknown, b: unknown, m?: string): void }, r: string): Promise<void> {
  t.deepEqual(await readdir(join(r, 'tmp')).catch(() => []), [], 'nothing left in $ROOT/tmp');
  const check = await hoist(r, ['system', 'check']);
  t.is(check.code, 0, check.stdout + check.stderr);
}

/** Every entry of $ROOT/cache/http is a key directory or a URL record: nothing a URL named. */
async function httpCacheShape(): Promise<string[]> {
  return (await readdir(join(root, 'cache', 'http')).catch(() => [] as string[])).filter((e) => !/^([a-f0-9]{64}|url-[a-f0-9]{64}\.json)$/.test(e));
}

// ---------------------------------------------------------------- ADD <url>

it('ADD <url>: `..`, `.`, %2e%2e, a%2fb and encoded traversal in the URL path give a plain file name inside the destination', async (t) => {
  const urls: [string, string][] = [
    ['/x/..', '__unnamed__'],
    ['/x/%2e%2e', '__unnamed__'],
    ['/x/.', 'x'],
    ['/x/a%2fb', 'b'],
    ['/x/%2e%2e%2f%2e%2e%2fescaped', 'escaped'],
    ['/x/a%00b', 'download'],
    ['/', '__unnamed__'],
  ];
  for (const [i, [u]] of urls.entries()) {
    const dir = await project({ Dockerfile: `FROM busybox\nADD ${base}${u} /dl${i}/\n` });
    const r = await build(root, dir);
    t.is(r.code, 0, `${u}: ${r.stderr}`);
    const names = await readdir(join(r.out, `dl${i}`));
    t.deepEqual(names, [urls[i]![1]], u);
  }
  t.false(existsSync(join(root, 'cache', 'escaped')));
  t.false(existsSync(join(root, 'escaped')));
  t.deepEqual(await httpCacheShape(), []);
  await storeClean(t, root);
});

it('ADD <url>: a last path component longer than a file name can be is a clear error', async (t) => {
  const dir = await project({ Dockerfile: `FROM busybox\nADD ${base}/${'a'.repeat(300)} /dl/\n` });
  const r = await build(root, dir);
  t.is(r.code, 1, r.stderr);
  noCrash(t, r);
  t.regex(r.stderr, /is longer than a file name can be/);
  t.regex(r.stderr, /hint: use a URL whose last path component is shorter than 256 bytes/);
  await storeClean(t, root);
});

it('ADD <url>: an unparsable redirect Location, a redirect loop and a redirect to file:// fail the step cleanly', async (t) => {
  const cases: [string, RegExp][] = [
    ['/badloc', /invalid redirect location "http:\/\/\[::1"/],
    ['/loop/0', /stopped after 10 redirects/],
    ['/tofile', /redirect to unsupported protocol: file:\/\/\/etc\/passwd/],
  ];
  for (const [u, re] of cases) {
    const dir = await project({ Dockerfile: `FROM busybox\nADD ${base}${u} /dl/\n` });
    const r = await build(root, dir);
    t.is(r.code, 1, `${u}: ${r.stderr}`);
    noCrash(t, r);
    t.regex(r.stderr, re, u);
    t.regex(r.stderr, /failed to solve: \[2\/2\] ADD /, u);
  }
  t.deepEqual(await httpCacheShape(), []);
  await storeClean(t, root);
});

it('ADD <url>: a body cut off half way fails the step and stores nothing of it', async (t) => {
  const before = (await readdir(join(root, 'cache', 'http')).catch(() => [] as string[])).sort();
  const dir = await project({ Dockerfile: `FROM busybox\nADD ${base}/drop /dl/\n` });
  const r = await build(root, dir);
  t.is(r.code, 1, r.stderr);
  noCrash(t, r);
  t.regex(r.stderr, /failed to load cache key: reading http:\/\/127\.0\.0\.1:\d+\/drop: /);
  t.deepEqual((await readdir(join(root, 'cache', 'http')).catch(() => [] as string[])).sort(), before, 'no new download stored');
  await storeClean(t, root);
});

it('ADD <url>: a gzip-encoded body of unknown length is decompressed to disk as it arrives (never held whole in memory)', async (t) => {
  streamedBeforeEnd = -1;
  const dir = await project({ Dockerfile: `FROM busybox\nADD ${base}/stream /dl/\nRUN wc -c < /dl/stream > /size\n` });
  const r = await build(root, dir);
  t.is(r.code, 0, r.stderr);
  t.true(streamedBeforeEnd >= STREAM_BYTES / 2, `half the body was on disk before the server sent the rest (saw ${streamedBeforeEnd} bytes)`);
  t.is((await readFile(join(r.out, 'size'), 'utf8')).trim(), String(STREAM_BYTES));
  await storeClean(t, root);
});

it('ADD --unpack=true <url>: an archive with entries climbing out with ../, through symlinks, or hard-linking host files is refused or kept inside', async (t) => {
  const outside = join(work, 'outside-target');
  await mkdir(outside, { recursive: true });
  tars.set('climb.tar', rawTar([{ type: 'file', name: `../../../../../../..${outside}/climbed`, data: 'x' }]));
  tars.set('hardlink.tar', rawTar([{ type: 'link', name: 'passwd', target: '/etc/passwd' }]));
  tars.set('through-symlink.tar', rawTar([
    { type: 'symlink', name: 'esc', target: outside },
    { type: 'file', name: 'esc/through', data: 'through\n' },
    { type: 'symlink', name: 'up', target: '../../../../../../..' },
    { type: 'file', name: `up${outside}/up-through`, data: 'up\n' },
  ]));
  for (const [name, re] of [['climb.tar', /refusing layer entry .*climbs above the layer root/], ['hardlink.tar', /refusing layer entry "passwd": hardlink target "\/etc\/passwd" does not exist inside the layer/]] as const) {
    const r = await build(root, await project({ Dockerfile: `FROM busybox\nADD --unpack=true ${base}/tar/${name} /u/\n` }));
    t.is(r.code, 1, r.stderr);
    noCrash(t, r);
    t.regex(r.stderr, re, name);
  }
  const r = await build(root, await project({ Dockerfile: `FROM busybox\nADD --unpack=true ${base}/tar/through-symlink.tar /u/\n` }));
  t.is(r.code, 0, r.stderr);
  // the symlinks' targets were resolved inside the unpack destination, never on the host
  t.deepEqual(await readdir(outside), [], 'nothing written through the symlinks on the host');
  t.is(await readFile(join(r.out, 'u', outside, 'through'), 'utf8'), 'through\n');
  t.is(await readFile(join(r.out, 'u', outside, 'up-through'), 'utf8'), 'up\n');
  await storeClean(t, root);
});

// ---------------------------------------------------------------- RUN --mount=type=cache

it('RUN --mount=type=cache: ids and source paths with .. stay inside $ROOT/cache/mounts', async (t) => {
  const before = await readdir(join(root, 'cache', 'mounts')).catch(() => [] as string[]);
  const df = [
    'FROM busybox',
    'RUN --mount=type=cache,id=../../../../escape-id,target=/c echo one > /c/f',
    'RUN --mount=type=cache,id=/etc,target=/c echo two > /c/f',
    'RUN --mount=type=cache,id=c1,source=../../../../../escape-src,target=/c echo three > /c/f',
    'RUN --mount=type=cache,id=../../../../escape-id,target=/c cat /c/f > /seen',
  ].join('\n');
  const r = await build(root, await project({ Dockerfile: df + '\n' }));
  t.is(r.code, 0, r.stderr);
  t.is(await readFile(join(r.out, 'seen'), 'utf8'), 'one\n', 'the same id is the same cache');
  for (const p of [join(root, '..', 'escape-id'), join(root, 'escape-id'), join(root, 'cache', 'escape-id'), join(root, 'escape-src'), join(root, 'cache', 'escape-src'), '/escape-id', '/escape-src']) {
    t.false(existsSync(p), p);
  }
  const now = await readdir(join(root, 'cache', 'mounts'));
  const added = now.filter((e) => !before.includes(e));
  t.true(added.length >= 3);
  for (const e of now) t.regex(e, /^[a-f0-9]{64}(-\d+)?(\.lock|\.create\.lock)?$/);
  // the source path is a directory inside the cache
  const c1 = createHash('sha256').update('c1').digest('hex');
  t.is(await readFile(join(root, 'cache', 'mounts', c1, 'escape-src', 'f'), 'utf8'), 'three\n');
});

it('RUN --mount=type=cache,from=,source=: a source that is a symlink out of the stage, or climbs with .., is the stage\'s, never the host\'s', async (t) => {
  const hostDir = join(work, 'host-secret');
  await mkdir(hostDir, { recursive: true });
  await writeFile(join(hostDir, 'marker'), 'host\n');
  const df = [
    'FROM busybox AS stage',
    `RUN mkdir -p ${hostDir} && echo stage > ${hostDir}/marker && ln -s ${hostDir} /link && ln -s ../../../../../../.. /up`,
    'FROM busybox',
    'RUN --mount=type=cache,id=seed-link,from=stage,source=/link,target=/c cat /c/marker > /via-link',
    `RUN --mount=type=cache,id=seed-up,from=stage,source=/up${hostDir},target=/c cat /c/marker > /via-up`,
    `RUN --mount=type=cache,id=seed-dots,from=stage,source=../../../../..${hostDir},target=/c cat /c/marker > /via-dots`,
  ].join('\n');
  const r = await build(root, await project({ Dockerfile: df + '\n' }));
  t.is(r.code, 0, r.stderr);
  for (const f of ['via-link', 'via-up', 'via-dots']) t.is(await readFile(join(r.out, f), 'utf8'), 'stage\n', f);
  t.is(await readFile(join(hostDir, 'marker'), 'utf8'), 'host\n');

  // a source the stage does not have (the host does) is a clear error, not the host's files
  await rm(join(hostDir, 'marker'));
  await writeFile(join(hostDir, 'only-on-host'), 'host\n');
  const r2 = await build(root, await project({ Dockerfile: `FROM busybox AS stage\nRUN ln -s ${hostDir}/only-on-host /hostlink\nFROM busybox\nRUN --mount=type=cache,id=seed-missing,from=stage,source=/hostlink,target=/c ls /c\n` }));
  t.is(r2.code, 1, r2.stderr);
  noCrash(t, r2);
  t.regex(r2.stderr, /cache mount source \/hostlink not found in the from= stage or image/);
});

// ---------------------------------------------------------------- --cache-from type=local

interface Layout {
  dir: string;
  index: { manifests: { digest: string; size: number; annotations?: Record<string, string> }[] };
  manifest: { config: { digest: string; size: number; mediaType: string }; layers: { digest: string; size: number; mediaType: string }[] };
  config: { records: { key: string; created: string; layer?: { diffID: string; blob: { digest: string; size: number; mediaType: string } } }[] };
}

const sha = (b: Buffer | string): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const blobPath = (dir: string, d: string): string => join(dir, 'blobs', 'sha256', d.slice(7));

async function readLayout(dir: string): Promise<Layout> {
  const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as Layout['index'];
  const manifest = JSON.parse(await readFile(blobPath(dir, index.manifests[0]!.digest), 'utf8')) as Layout['manifest'];
  const config = JSON.parse(await readFile(blobPath(dir, manifest.config.digest), 'utf8')) as Layout['config'];
  return { dir, index, manifest, config };
}

/** Writes config, manifest and index.json back (new digests), as a hostile cache would. */
async function writeLayout(l: Layout): Promise<void> {
  const cfg = Buffer.from(JSON.stringify(l.config));
  await writeFile(blobPath(l.dir, sha(cfg)), cfg);
  l.manifest.config = { ...l.manifest.config, digest: sha(cfg), size: cfg.length };
  const m = Buffer.from(JSON.stringify(l.manifest));
  await writeFile(blobPath(l.dir, sha(m)), m);
  l.index.manifests[0] = { ...l.index.manifests[0]!, digest: sha(m), size: m.length };
  await writeFile(join(l.dir, 'index.json'), JSON.stringify(l.index));
}

const CACHE_DF = 'FROM busybox\nRUN echo ran-one && echo one > /one\n';
let cacheSeq = 0;

/** A fresh exported cache of CACHE_DF (one RUN layer) and a fresh root that has only busybox. */
async function exportedCache(): Promise<{ layout: Layout; dir: string; fresh: string }> {
  const cache = join(work, `cache${++cacheSeq}`);
  const dir = await project({ Dockerfile: CACHE_DF });
  const src = await rootWithBusybox();
  const a = await hoist(src, ['build', '--progress', 'plain', '--cache-to', `type=local,dest=${cache}`, dir]);
  await cleanup(src);
  if (a.code !== 0) throw new Error(a.stderr);
  return { layout: await readLayout(cache), dir, fresh: await rootWithBusybox() };
}

/** Builds CACHE_DF on `fresh` with --cache-from: the RUN must run (a miss) and the store stay consistent. */
async function buildMisses(t: ExecutionContext, fresh: string, dir: string, cache: string, warn: RegExp): Promise<void> {
  const r = await hoist(fresh, ['build', '--progress', 'plain', '--cache-from', `type=local,src=${cache}`, dir]);
  t.is(r.code, 0, r.stderr);
  noCrash(t, r);
  t.regex(r.stderr, warn);
  t.regex(r.stderr, /#\d+ \d+\.\d+ ran-one/, 'the step ran (a miss)');
  // every blob in the store matches its digest, every image its layers (system check)
  await storeClean(t, fresh);
  await cleanup(fresh);
}

it('--cache-from type=local: an index.json that is a FIFO, or a layer blob that is a symlink to /dev/zero or to a file outside, is a warning and a miss', async (t) => {
  {
    const { layout, dir, fresh } = await exportedCache();
    await rm(join(layout.dir, 'index.json'));
    await tool('mkfifo', [join(layout.dir, 'index.json')]);
    await buildMisses(t, fresh, dir, layout.dir, /index\.json: not a regular file/);
  }
  for (const target of ['/dev/zero', '/etc/passwd']) {
    const { layout, dir, fresh } = await exportedCache();
    const layer = layout.manifest.layers[0]!;
    await rm(blobPath(layout.dir, layer.digest));
    await symlink(target, blobPath(layout.dir, layer.digest));
    await buildMisses(t, fresh, dir, layout.dir, target === '/dev/zero' ? /cache blob sha256:[a-f0-9]{64} from .* cannot be read: not a regular file/ : /cache blob sha256:[a-f0-9]{64} from .* cannot be read: \d+ bytes where the cache says \d+/);
  }
});

it('--cache-from type=local: digests with ../ or another algorithm, and sizes that lie, are refused with a warning', async (t) => {
  {
    const { layout, dir, fresh } = await exportedCache();
    layout.manifest.layers[0]!.digest = 'sha256:../../../../etc/passwd';
    await writeLayout(layout);
    await buildMisses(t, fresh, dir, layout.dir, /the cache manifest has an invalid layer descriptor/);
  }
  {
    const { layout, dir, fresh } = await exportedCache();
    layout.manifest.config.digest = 'sha512:' + 'a'.repeat(128);
    const m = Buffer.from(JSON.stringify(layout.manifest));
    await writeFile(blobPath(layout.dir, sha(m)), m);
    layout.index.manifests[0] = { ...layout.index.manifests[0]!, digest: sha(m), size: m.length };
    await writeFile(join(layout.dir, 'index.json'), JSON.stringify(layout.index));
    await buildMisses(t, fresh, dir, layout.dir, /is not a hoist build cache/);
  }
  {
    const { layout, dir, fresh } = await exportedCache();
    layout.index.manifests[0]!.digest = 'sha256:../../../../../etc/passwd';
    await writeFile(join(layout.dir, 'index.json'), JSON.stringify(layout.index));
    await buildMisses(t, fresh, dir, layout.dir, /no cache tagged latest/);
  }
  {
    // the layer's size one byte larger in both the manifest and the record: the blob is read no further than that
    const { layout, dir, fresh } = await exportedCache();
    const layer = layout.manifest.layers[0]!;
    layer.size += 1;
    for (const rec of layout.config.records) if (rec.layer?.blob.digest === layer.digest) rec.layer.blob.size = layer.size;
    await writeLayout(layout);
    await buildMisses(t, fresh, dir, layout.dir, /cannot be read: \d+ bytes where the cache says \d+/);
  }
});

it('--cache-from type=local: a record pairing a blob the store already has with another diff ID, or with the wrong media type, is a miss', async (t) => {
  {
    // the busybox layer (in every fresh root) claimed as the RUN step's layer
    const { layout, dir, fresh } = await exportedCache();
    const idx = JSON.parse(await readFile(join(fresh, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    const bbManifest = JSON.parse(await readFile(join(fresh, 'blobs', 'sha256', idx.manifests[0]!.digest.slice(7)), 'utf8')) as Layout['manifest'];
    const bbLayer = bbManifest.layers[0]!;
    layout.manifest.layers.push({ mediaType: bbLayer.mediaType, digest: bbLayer.digest, size: bbLayer.size });
    for (const rec of layout.config.records) if (rec.layer) rec.layer.blob = { mediaType: bbLayer.mediaType, digest: bbLayer.digest, size: bbLayer.size };
    await writeLayout(layout);
    await buildMisses(t, fresh, dir, layout.dir, /does not hold the layer its record names \(diff ID sha256:[a-f0-9]{64}, expected sha256:[a-f0-9]{64}\)/);
  }
  {
    const { layout, dir, fresh } = await exportedCache();
    const layer = layout.manifest.layers[0]!;
    layer.mediaType = 'application/vnd.oci.image.layer.v1.tar';
    for (const rec of layout.config.records) if (rec.layer) rec.layer.blob.mediaType = layer.mediaType;
    await writeLayout(layout);
    await buildMisses(t, fresh, dir, layout.dir, /is gzip but its record says media type "application\/vnd\.oci\.image\.layer\.v1\.tar"/);
  }
});

it('--cache-from type=local: an index.json larger than 4 MiB is not read', async (t) => {
  const { layout, dir, fresh } = await exportedCache();
  const big = { ...layout.index, padding: 'x'.repeat(5 * 1024 * 1024) };
  await writeFile(join(layout.dir, 'index.json'), JSON.stringify(big));
  await buildMisses(t, fresh, dir, layout.dir, /index\.json: larger than 4194304 bytes/);
});

it('--cache-from type=local: records whose times are not RFC 3339 are not imported (they would go into the image config as they are)', async (t) => {
  const { layout, dir, fresh } = await exportedCache();
  for (const rec of layout.config.records) {
    rec.created = '<not a date>';
    if (rec.layer) (rec.layer as { created?: string }).created = 'yesterday';
  }
  await writeLayout(layout);
  await buildMisses(t, fresh, dir, layout.dir, /importing cache manifest from .*\n#\d+ DONE/);
});
