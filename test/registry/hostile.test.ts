/**
 * A hostile registry behind FROM auto-pull and `--cache-from type=registry`: a
 * hand-written registry in the test process serves manifests whose digests climb
 * with `../`, an index entry that does, a manifest larger than any honest one, and
 * well-formed images whose layer tars try to leave the snapshot (`../` names,
 * hardlinks to host files, writes through symlinks). Each is refused with a clear
 * error or contained; the store stays consistent (`hoist system check`).
 */
import test from 'ava';
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { rawTar } from '../helpers/rawtar.js';
import { canBuild } from '../build/helpers.js';
import { hoist, sandboxDirs, tmpLeftovers, type Run } from './helpers.js';

const it = canBuild ? test.serial : test.serial.skip;

const sha = (b: Buffer | string): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const ARCH = ({ x64: 'amd64', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x' } as Record<string, string>)[process.arch] ?? process.arch;

/** What the registry serves: manifests by repo and tag or digest, blobs by digest. */
const manifests = new Map<string, { body: Buffer; type: string }>();
const blobs = new Map<string, Buffer>();
const requests: string[] = [];
let server: http.Server;
let host: string;

test.before(async () => {
  server = http.createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0]!;
    requests.push(`${req.method} ${url}`);
    if (url === '/v2/' || url === '/v2') {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end('{}');
      return;
    }
    const m = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/.exec(url);
    if (m && m[1] === 'huge' && m[2] === 'manifests') {
      // an endless manifest: no Content-Length, 1 MiB chunks for as long as the client reads
      res.writeHead(200, { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' });
      const chunk = Buffer.alloc(1024 * 1024, 0x20);
      let sent = 0;
      const pump = (): void => {
        while (sent < 64 && res.write(chunk)) sent++;
        if (sent < 64) res.once('drain', pump);
        else res.end();
      };
      res.on('close', () => (sent = 64));
      pump();
      return;
    }
    const body = m && (m[2] === 'manifests' ? manifests.get(`${m[1]}:${m[3]}`)?.body : blobs.get(m[3]!));
    if (!m || !body) {
      res.writeHead(404, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ errors: [{ code: m?.[2] === 'blobs' ? 'BLOB_UNKNOWN' : 'MANIFEST_UNKNOWN', message: 'unknown' }] }));
      return;
    }
    const headers: Record<string, string> = { 'Content-Length': String(body.length) };
    if (m[2] === 'manifests') {
      headers['Content-Type'] = manifests.get(`${m[1]}:${m[3]}`)!.type;
      headers['Docker-Content-Digest'] = sha(body);
    }
    res.writeHead(200, headers);
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
});

test.after.always(() => {
  server?.close();
});

/** Serves an image of the given layer tars (uncompressed) as `repo:latest`; `tweak` may alter the manifest first. */
function serveImage(repo: string, layers: Buffer[], tweak?: (m: { config: { digest: string }; layers: { digest: string; size: number }[] }) => void): void {
  for (const l of layers) blobs.set(sha(l), l);
  const config = Buffer.from(JSON.stringify({ architecture: ARCH, os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: layers.map(sha) } }));
  blobs.set(sha(config), config);
  const manifest = {
    schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length },
    layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha(l), size: l.length })),
  };
  tweak?.(manifest);
  const body = Buffer.from(JSON.stringify(manifest));
  manifests.set(`${repo}:latest`, { body, type: manifest.mediaType });
  manifests.set(`${repo}:${sha(body)}`, { body, type: manifest.mediaType });
}

const HELLO = rawTar([{ type: 'dir', name: 'etc/' }, { type: 'file', name: 'etc/hello', data: 'hello\n' }]);

async function setup(): Promise<{ env: { root: string; dockerConfig: string }; dir: string; cleanup: () => Promise<void>; project: (df: string) => Promise<string> }> {
  const s = await sandboxDirs();
  await mkdir(s.dockerConfig, { recursive: true });
  let n = 0;
  return {
    env: { root: s.root, dockerConfig: s.dockerConfig }, dir: s.dir, cleanup: s.cleanup,
    project: async (df) => {
      const d = join(s.dir, `p${++n}`);
      await mkdir(d, { recursive: true });
      await writeFile(join(d, 'Dockerfile'), df);
      await writeFile(join(d, 'f'), 'from the context\n');
      return d;
    },
  };
}

function noCrash(t: { false(v: boolean, m?: string): void }, r: Run): void {
  t.false(/\n\s+at .+:\d+:\d+\)?\n|Node\.js v\d+|TypeError|ReferenceError/.test(r.stderr), r.stderr);
}

/** No temporary files left, every stored blob matches its digest, every image is whole. */
async function storeClean(t: { deepEqual(a: unknown, b: unknown, m?: string): void; is(a: unknown, b: unknown, m?: string): void }, env: { root: string; dockerConfig: string }): Promise<void> {
  t.deepEqual(await tmpLeftovers(env.root), []);
  const check = await hoist(env, ['system', 'check']);
  t.is(check.code, 0, check.stdout + check.stderr);
}

it('FROM auto-pull: config and layer digests with ../, an index entry with ../, and an endless manifest are refused before anything is stored', async (t) => {
  const s = await setup();
  try {
    serveImage('badconfig', [HELLO], (m) => (m.config.digest = 'sha256:../../../../etc/passwd'));
    serveImage('badlayer', [HELLO], (m) => (m.layers[0]!.digest = 'sha256:../../../../../tmp/x'));
    const idx = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: 'sha256:../../../x', size: 10, platform: { os: 'linux', architecture: ARCH } }] }));
    manifests.set('badindex:latest', { body: idx, type: 'application/vnd.oci.image.index.v1+json' });
    const cases: [string, RegExp][] = [
      ['badconfig', /invalid config digest "sha256:\.\.\/\.\.\/\.\.\/\.\.\/etc\/passwd": expected sha256:<64 lowercase hex digits>/],
      ['badlayer', /invalid layer digest "sha256:\.\.\/\.\.\/\.\.\/\.\.\/\.\.\/tmp\/x"/],
      ['badindex', /invalid manifest digest "sha256:\.\.\/\.\.\/\.\.\/x"/],
      ['huge', /the registry sent more than the 8388608 bytes expected/],
    ];
    for (const [repo, re] of cases) {
      const r = await hoist(s.env, ['build', '--progress', 'plain', await s.project(`FROM ${host}/${repo}\nCOPY f /f\n`)]);
      t.is(r.code, 1, `${repo}: ${r.stderr}`);
      noCrash(t, r);
      t.regex(r.stderr, re, repo);
      t.regex(r.stderr, new RegExp(`failed to resolve source metadata for ${host}/${repo}:latest`), repo);
    }
    // nothing was downloaded for the refused manifests
    t.false(requests.some((q) => q.includes('/blobs/')), requests.join('\n'));
    t.deepEqual((await readdir(join(s.env.root, 'blobs', 'sha256')).catch(() => [] as string[])).filter((b) => !/^[a-f0-9]{64}$/.test(b)), []);
    await storeClean(t, s.env);
  } finally {
    await s.cleanup();
  }
});

it('FROM auto-pull: a layer tar climbing out with ../ or hard-linking a host file is refused when the base is unpacked; writes through symlinks stay in the snapshot', async (t) => {
  const s = await setup();
  try {
    const outside = join(s.dir, 'outside');
    await mkdir(outside, { recursive: true });
    const refused = [rawTar([{ type: 'file', name: `../../../../../../../..${outside}/climbed`, data: 'x' }]), rawTar([{ type: 'link', name: 'passwd', target: '/etc/passwd' }])];
    serveImage('climb', [refused[0]!]);
    serveImage('hardlink', [refused[1]!]);
    const through = rawTar([
      { type: 'symlink', name: 'esc', target: outside },
      { type: 'file', name: 'esc/through', data: 'through\n' },
      { type: 'symlink', name: 'up', target: '../../../../../../../..' },
      { type: 'file', name: `up${outside}/up-through`, data: 'up\n' },
    ]);
    serveImage('through', [through]);
    for (const [repo, re] of [['climb', /refusing layer entry .*climbs above the layer root/], ['hardlink', /refusing layer entry "passwd": hardlink target "\/etc\/passwd" does not exist inside the layer/]] as const) {
      const r = await hoist(s.env, ['build', '--progress', 'plain', await s.project(`FROM ${host}/${repo}\nCOPY f /f\n`)]);
      t.is(r.code, 1, `${repo}: ${r.stderr}`);
      noCrash(t, r);
      t.regex(r.stderr, re, repo);
    }
    const out = join(s.dir, 'out');
    const r = await hoist(s.env, ['build', '--progress', 'plain', '--output', `type=local,dest=${out}`, await s.project(`FROM ${host}/through\nCOPY f /f\n`)]);
    t.is(r.code, 0, r.stderr);
    t.deepEqual(await readdir(outside), [], 'nothing written on the host through the symlinks');
    t.is(await readFile(join(out, outside, 'through'), 'utf8'), 'through\n');
    t.is(await readFile(join(out, outside, 'up-through'), 'utf8'), 'up\n');
    // no snapshot was kept for the refused layers (a one-layer image's chain ID is its diff ID)
    const snaps = await readdir(join(s.env.root, 'snapshots')).catch(() => [] as string[]);
    t.true(snaps.includes(sha(through).slice(7)), snaps.join(', '));
    for (const l of refused) t.false(snaps.includes(sha(l).slice(7)), snaps.join(', '));
    await storeClean(t, s.env);
  } finally {
    await s.cleanup();
  }
});

it('--cache-from type=registry: a cache manifest with a ../ layer digest, or a record list that is not its digest, is a warning and the build runs', async (t) => {
  const s = await setup();
  try {
    serveImage('base', [HELLO]);
    const cfg = Buffer.from(JSON.stringify({ schemaVersion: 1, mediaType: 'application/vnd.hoist.cache.config.v1+json', records: [] }));
    blobs.set(sha(cfg), cfg);
    const cacheManifest = (layers: unknown[], config = { mediaType: 'application/vnd.hoist.cache.config.v1+json', digest: sha(cfg), size: cfg.length }): Buffer =>
      Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', artifactType: 'application/vnd.hoist.cache.v1', config, layers }));
    manifests.set('cache:climb', { body: cacheManifest([{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: 'sha256:../../../../etc/shadow', size: 1 }]), type: 'application/vnd.oci.image.manifest.v1+json' });
    const lying = Buffer.from('{"schemaVersion":1,"records":"not what the digest says"}');
    blobs.set(sha(cfg).replace(/.$/, (c) => (c === '0' ? '1' : '0')), lying);
    manifests.set('cache:lying', { body: cacheManifest([], { mediaType: 'application/vnd.hoist.cache.config.v1+json', digest: sha(cfg).replace(/.$/, (c) => (c === '0' ? '1' : '0')), size: lying.length }), type: 'application/vnd.oci.image.manifest.v1+json' });
    for (const [tag, re] of [['climb', /the cache manifest has an invalid layer descriptor/], ['lying', /the cache record list does not match its digest/]] as const) {
      const r = await hoist(s.env, ['build', '--progress', 'plain', '--cache-from', `type=registry,ref=${host}/cache:${tag}`, await s.project(`FROM ${host}/base\nCOPY f /f\n`)]);
      t.is(r.code, 0, `${tag}: ${r.stderr}`);
      noCrash(t, r);
      t.regex(r.stderr, new RegExp(`importing cache manifest from ${host}/cache:${tag}\\n#\\d+ ERROR: .*`), tag);
      t.regex(r.stderr, re, tag);
    }
    await storeClean(t, s.env);
  } finally {
    await s.cleanup();
  }
});
