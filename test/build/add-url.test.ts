/**
 * ADD of http(s) URLs against a real HTTP server in the test process: the file name
 * from the URL path, mode 0600, owner 0:0 (or --chown), mtime from Last-Modified,
 * no unpacking of remote archives, --checksum, failures naming the URL, and the
 * cache: an unchanged URL is CACHED (ETag revalidation), changed content runs again.
 */
import test from 'ava';
import { createHash } from 'node:crypto';
import { lstat, mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { canBuild, cleanup, hoist, rootWithBusybox, tempDir, writeProject } from './helpers.js';

const it = canBuild ? test.serial : test.serial.skip;

let root: string;
let work: string;
let server: Server;
let base: string;
/** What the server serves: path → body, Last-Modified, and whether to send an ETag. */
const files = new Map<string, { body: Buffer; lastModified?: string; etag?: boolean; gzipEncoding?: boolean }>();
const requests: { path: string; ifNoneMatch?: string; status: number }[] = [];

const LM = 'Wed, 21 Oct 2015 07:28:00 GMT';

/** A tiny tar.gz holding one file `inside.txt`. */
function tarGz(): Buffer {
  const header = Buffer.alloc(512);
  header.write('inside.txt', 0);
  header.write('0000644\0', 100);
  header.write('0000000\0', 108);
  header.write('0000000\0', 116);
  const data = Buffer.from('inside\n');
  header.write(data.length.toString(8).padStart(11, '0') + '\0', 124);
  header.write('00000000000\0', 136);
  header.write('        ', 148);
  header.write('0', 156);
  header.write('ustar\0', 257);
  header.write('00', 263);
  let sum = 0;
  for (const b of header) sum += b;
  header.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
  const body = Buffer.alloc(512);
  data.copy(body);
  return gzipSync(Buffer.concat([header, body, Buffer.alloc(1024)]));
}

test.before(async () => {
  if (!canBuild) return;
  root = await rootWithBusybox();
  work = await tempDir();
  server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    if (path === '/redirect') {
      res.writeHead(302, { Location: '/files/hello.txt' });
      res.end();
      requests.push({ path, status: 302 });
      return;
    }
    const f = files.get(path);
    if (!f) {
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      res.end('not found\n');
      requests.push({ path, status: 404 });
      return;
    }
    const etag = `"${createHash('sha256').update(f.body).digest('hex').slice(0, 16)}"`;
    const inm = req.headers['if-none-match'];
    if (f.etag !== false && inm && inm.split(',').map((s) => s.trim()).includes(etag)) {
      res.writeHead(304, { ETag: etag });
      res.end();
      requests.push({ path, ifNoneMatch: inm, status: 304 });
      return;
    }
    const payload = f.gzipEncoding ? gzipSync(f.body) : f.body;
    const headers: Record<string, string> = { 'Content-Length': String(payload.length), 'Content-Type': 'application/octet-stream' };
    if (f.gzipEncoding) headers['Content-Encoding'] = 'gzip';
    if (f.lastModified) headers['Last-Modified'] = f.lastModified;
    if (f.etag !== false) headers.ETag = etag;
    // BuildKit names the file after the URL; a Content-Disposition name is not used
    headers['Content-Disposition'] = 'attachment; filename="from-disposition.bin"';
    res.writeHead(200, headers);
    res.end(payload);
    requests.push({ path, ...(inm ? { ifNoneMatch: inm } : {}), status: 200 });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

test.after.always(async () => {
  server?.close();
  if (root) await cleanup(root, work);
});

let n = 0;
const project = (dockerfile: string): Promise<string> => writeProject(join(work, `p${++n}`), dockerfile);

async function build(dir: string, extra: string[] = []): Promise<{ code: number; out: string; stderr: string }> {
  const out = join(work, `out${++n}`);
  const r = await hoist(root, ['build', '--progress', 'plain', ...extra, '--output', `type=local,dest=${out}`, dir]);
  return { code: r.code, out, stderr: r.stderr };
}

it('ADD <url> to a directory names the file after the URL path: mode 0600, owner 0:0, mtime from Last-Modified', async (t) => {
  files.set('/files/hello.txt', { body: Buffer.from('hello from http\n'), lastModified: LM });
  files.set('/files/noLM.txt', { body: Buffer.from('no date\n') });
  files.set('/files/encoded.txt', { body: Buffer.from('sent gzip-encoded\n'), gzipEncoding: true });
  const dir = await project(`FROM busybox\nADD ${base}/files/hello.txt /dl/\nADD ${base}/files/noLM.txt /dl/\nADD ${base}/redirect /dl/\nADD ${base}/files/encoded.txt /dl/\n`);
  const r = await build(dir);
  t.is(r.code, 0, r.stderr);
  t.is(await readFile(join(r.out, 'dl/hello.txt'), 'utf8'), 'hello from http\n');
  const st = await lstat(join(r.out, 'dl/hello.txt'));
  t.is(st.mode & 0o7777, 0o600);
  t.is(st.uid, 0);
  t.is(st.gid, 0);
  t.is(st.mtime.getTime(), Date.parse(LM));
  // no Last-Modified: the epoch, as BuildKit
  t.is((await lstat(join(r.out, 'dl/noLM.txt'))).mtime.getTime(), 0);
  // redirects are followed; the name is still the requested URL's
  t.is(await readFile(join(r.out, 'dl/redirect'), 'utf8'), 'hello from http\n');
  t.false(await lstat(join(r.out, 'dl/from-disposition.bin')).then(() => true, () => false));
  // a gzip Content-Encoding is undone, as Go's client does
  t.is(await readFile(join(r.out, 'dl/encoded.txt'), 'utf8'), 'sent gzip-encoded\n');
});

it('ADD <url> to a file name, with --chown and --chmod', async (t) => {
  files.set('/files/app.conf', { body: Buffer.from('key=value\n'), lastModified: LM });
  const dir = await project(`FROM busybox\nADD --chown=1000:1000 ${base}/files/app.conf /etc/renamed.conf\nADD --chmod=644 ${base}/files/app.conf /opt/\n`);
  const r = await build(dir);
  t.is(r.code, 0, r.stderr);
  const st = await lstat(join(r.out, 'etc/renamed.conf'));
  t.is(await readFile(join(r.out, 'etc/renamed.conf'), 'utf8'), 'key=value\n');
  t.is(st.uid, 1000);
  t.is(st.gid, 1000);
  t.is(st.mode & 0o7777, 0o600);
  t.is((await lstat(join(r.out, 'opt/app.conf'))).mode & 0o7777, 0o644);
});

it('ADD --checksum: a matching digest builds, a wrong one fails naming the URL', async (t) => {
  const body = Buffer.from('pinned content\n');
  files.set('/files/pinned.txt', { body, lastModified: LM });
  const good = `sha256:${createHash('sha256').update(body).digest('hex')}`;
  const ok = await build(await project(`FROM busybox\nADD --checksum=${good} ${base}/files/pinned.txt /pinned.txt\n`));
  t.is(ok.code, 0, ok.stderr);
  t.is(await readFile(join(ok.out, 'pinned.txt'), 'utf8'), 'pinned content\n');
  const bad = `sha256:${'0'.repeat(64)}`;
  const r = await build(await project(`FROM busybox\nADD --checksum=${bad} ${base}/files/pinned.txt /pinned.txt\n`));
  t.is(r.code, 1);
  t.true(r.stderr.includes(`digest mismatch for ${base}/files/pinned.txt: ${good} (expected: ${bad})`), r.stderr);
  const malformed = await build(await project(`FROM busybox\nADD --checksum=sha256:abc ${base}/files/pinned.txt /pinned.txt\n`));
  t.is(malformed.code, 1);
  t.regex(malformed.stderr, /invalid checksum digest format/);
});

it('ADD of a URL that answers 404 fails with the status and the URL', async (t) => {
  const r = await build(await project(`FROM busybox\nADD ${base}/missing.txt /x\n`));
  t.is(r.code, 1);
  t.true(r.stderr.includes(`invalid response status 404 for ${base}/missing.txt`), r.stderr);
  t.regex(r.stderr, /Dockerfile:2/);
  // nothing listening: the connection error, with the URL
  const refused = await build(await project('FROM busybox\nADD http://127.0.0.1:1/x.txt /x\n'));
  t.is(refused.code, 1);
  t.regex(refused.stderr, /failed to load cache key: Get "http:\/\/127\.0\.0\.1:1\/x\.txt": .*ECONNREFUSED/);
  t.false(/\n\s+at /.test(refused.stderr), 'no stack trace');
});

it('an unchanged URL is CACHED on rebuild (revalidated with If-None-Match); changed content runs the step again', async (t) => {
  files.set('/files/v.txt', { body: Buffer.from('version 1\n'), lastModified: LM });
  const dir = await project(`FROM busybox\nADD ${base}/files/v.txt /v.txt\nRUN cat /v.txt > /copy.txt\n`);
  const first = await build(dir);
  t.is(first.code, 0, first.stderr);
  t.is(await readFile(join(first.out, 'copy.txt'), 'utf8'), 'version 1\n');
  const before = requests.length;
  const second = await build(dir);
  t.is(second.code, 0, second.stderr);
  t.regex(second.stderr, /#\d+ \[2\/3\] ADD .*\/files\/v\.txt \/v\.txt\n#\d+ CACHED/);
  t.regex(second.stderr, /#\d+ \[3\/3\] RUN cat \/v\.txt > \/copy\.txt\n#\d+ CACHED/);
  const reval = requests.slice(before).filter((x) => x.path === '/files/v.txt');
  t.deepEqual(reval.map((x) => x.status), [304], 'the rebuild asked with the stored ETag and got 304');
  t.truthy(reval[0]!.ifNoneMatch);
  files.set('/files/v.txt', { body: Buffer.from('version 2\n'), lastModified: 'Thu, 22 Oct 2015 07:28:00 GMT' });
  const third = await build(dir);
  t.is(third.code, 0, third.stderr);
  t.is(await readFile(join(third.out, 'copy.txt'), 'utf8'), 'version 2\n');
  t.notRegex(third.stderr, /\[3\/3\] RUN cat \/v\.txt > \/copy\.txt\n#\d+ CACHED/);
  // a server without ETags: downloaded again, same bytes and date give the same key
  files.set('/files/noetag.txt', { body: Buffer.from('stable\n'), lastModified: LM, etag: false });
  const dir2 = await project(`FROM busybox\nADD ${base}/files/noetag.txt /n.txt\nRUN cat /n.txt > /c.txt\n`);
  t.is((await build(dir2)).code, 0);
  const again = await build(dir2);
  t.regex(again.stderr, /\[3\/3\] RUN cat \/n\.txt > \/c\.txt\n#\d+ CACHED/);
});

it('ADD --checksum rebuild is CACHED without asking the server', async (t) => {
  const body = Buffer.from('offline ok\n');
  files.set('/files/offline.txt', { body, lastModified: LM });
  const sum = `sha256:${createHash('sha256').update(body).digest('hex')}`;
  const dir = await project(`FROM busybox\nADD --checksum=${sum} ${base}/files/offline.txt /o.txt\n`);
  t.is((await build(dir)).code, 0);
  const before = requests.length;
  const r = await build(dir);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stderr, /\[2\/2\] ADD .*offline\.txt \/o\.txt\n#\d+ CACHED/);
  t.is(requests.slice(before).length, 0);
});

it('a remote .tar.gz is not unpacked (only with --unpack=true)', async (t) => {
  const tgz = tarGz();
  files.set('/files/archive.tar.gz', { body: tgz, lastModified: LM });
  const r = await build(await project(`FROM busybox\nADD ${base}/files/archive.tar.gz /a/\nADD --unpack=true ${base}/files/archive.tar.gz /u/\n`));
  t.is(r.code, 0, r.stderr);
  t.deepEqual(await readFile(join(r.out, 'a/archive.tar.gz')), tgz);
  t.is(await readFile(join(r.out, 'u/inside.txt'), 'utf8'), 'inside\n');
});

it('a .git URL is a git repository, not a download (test/build/add-git.test.ts); COPY of a URL is refused', async (t) => {
  const git = await build(await project(`FROM busybox\nADD ${base}/repo.git /src\n`));
  t.is(git.code, 1);
  t.regex(git.stderr, /error fetching default branch for repository http:\/\/127\.0\.0\.1:\d+\/repo\.git: git stderr:/);
  const copy = await build(await project(`FROM busybox\nCOPY ${base}/files/hello.txt /x\n`));
  t.is(copy.code, 1);
  t.regex(copy.stderr, /source can't be a URL for COPY/);
});
