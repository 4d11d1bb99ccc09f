// Push/pull round trips against a real distribution registry on loopback, with a recording
// proxy in front to count what hoist asks for.
import anyTest, { type TestFn } from 'ava';
import { createHash } from 'node:crypto';
import { busyboxArchive, freePort, hoist, registryUnavailable, sandboxDirs, startProxy, startRegistry, type Registry } from './helpers.js';

const test = anyTest as TestFn<{ reg: Registry }>;
const skip = registryUnavailable();

test.before(async (t) => {
  if (skip) return;
  t.context.reg = await startRegistry();
});
test.after.always(async (t) => {
  await t.context.reg?.stop();
});

/** A root with busybox loaded and named `name`. */
async function loaded(name: string) {
  const d = await sandboxDirs();
  const env = { root: d.root, dockerConfig: d.dockerConfig };
  const l = await hoist(env, ['load', '-i', await busyboxArchive()]);
  if (l.code !== 0) throw new Error(`load failed: ${l.stderr}`);
  const tg = await hoist(env, ['tag', 'busybox:latest', name]);
  if (tg.code !== 0) throw new Error(`tag failed: ${tg.stderr}`);
  return { ...d, env };
}

async function inspect(env: { root: string; dockerConfig: string }, name: string): Promise<{ Id: string; Descriptor: { digest: string } }> {
  const r = await hoist(env, ['inspect', name]);
  if (r.code !== 0) throw new Error(`inspect ${name}: ${r.stderr}`);
  return (JSON.parse(r.stdout) as { Id: string; Descriptor: { digest: string } }[])[0]!;
}

const blobUploads = (seen: { method: string; url: string }[]) => seen.filter((s) => /\/blobs\/uploads\//.test(s.url) && s.method !== 'HEAD');

(skip ? test.skip : test)('push, rmi, pull: same image ID and manifest digest; a second push uploads no blob', async (t) => {
  const proxy = await startProxy(t.context.reg.host);
  const name = `${proxy.host}/hoist/busybox:v1`;
  const a = await loaded(name);
  t.teardown(async () => {
    await proxy.close();
    await a.cleanup();
  });
  const before = await inspect(a.env, name);
  const push = await hoist(a.env, ['push', name]);
  t.is(push.code, 0, push.stderr);
  t.regex(push.stdout, new RegExp(`The push refers to repository \\[${proxy.host}/hoist/busybox\\]`));
  t.regex(push.stdout, /: Pushed$/m);
  const m = /^v1: digest: (sha256:[a-f0-9]{64}) size: \d+$/m.exec(push.stdout);
  t.truthy(m, push.stdout);
  t.is(m![1], before.Descriptor.digest);
  t.true(blobUploads(proxy.seen).length >= 2, 'the layer and the config were uploaded');
  // The manifest went last: after every blob upload finished.
  const lastBlobPut = proxy.seen.map((s) => s.method === 'PUT' && /\/blobs\/uploads\//.test(s.url)).lastIndexOf(true);
  const manifestPut = proxy.seen.findIndex((s) => s.method === 'PUT' && s.url.includes('/manifests/v1'));
  t.true(manifestPut > lastBlobPut);

  proxy.seen.length = 0;
  const again = await hoist(a.env, ['push', name]);
  t.is(again.code, 0, again.stderr);
  t.regex(again.stdout, /: Layer already exists$/m);
  t.deepEqual(blobUploads(proxy.seen), [], 'no blob was uploaded the second time');
  t.true(proxy.seen.some((s) => s.method === 'HEAD' && s.url.includes('/blobs/sha256:')));

  const rmi = await hoist(a.env, ['rmi', name, 'busybox:latest']);
  t.is(rmi.code, 0, rmi.stderr);
  t.not((await hoist(a.env, ['inspect', name])).code, 0);
  const pull = await hoist(a.env, ['pull', name]);
  t.is(pull.code, 0, pull.stderr);
  t.regex(pull.stdout, /^v1: Pulling from hoist\/busybox$/m);
  t.regex(pull.stdout, new RegExp(`^Digest: ${before.Descriptor.digest}$`, 'm'));
  t.regex(pull.stdout, new RegExp(`^Status: Downloaded newer image for ${proxy.host}/hoist/busybox:v1$`, 'm'));
  const after = await inspect(a.env, name);
  t.is(after.Id, before.Id);
  t.is(after.Descriptor.digest, before.Descriptor.digest);
  const check = await hoist(a.env, ['system', 'check']);
  t.is(check.code, 0, check.stdout);

  // Pulling again downloads nothing.
  proxy.seen.length = 0;
  const pull2 = await hoist(a.env, ['pull', name]);
  t.is(pull2.code, 0, pull2.stderr);
  t.regex(pull2.stdout, /Status: Image is up to date/);
  t.deepEqual(proxy.seen.filter((s) => s.method === 'GET' && s.url.includes('/blobs/')), []);

  // By digest into a fresh root: no name, but findable by digest, same ID.
  const b = await sandboxDirs();
  t.teardown(b.cleanup);
  const benv = { root: b.root, dockerConfig: b.dockerConfig };
  const byDigest = `${proxy.host}/hoist/busybox@${before.Descriptor.digest}`;
  const pd = await hoist(benv, ['pull', byDigest]);
  t.is(pd.code, 0, pd.stderr);
  t.is((await inspect(benv, byDigest)).Id, before.Id);
});

(skip ? test.skip : test)('cross-repository mount: a blob pulled from one repository is mounted, not uploaded, into another', async (t) => {
  const proxy = await startProxy(t.context.reg.host);
  const src = `${proxy.host}/mount/src:v1`;
  const a = await loaded(src);
  t.teardown(async () => {
    await proxy.close();
    await a.cleanup();
  });
  t.is((await hoist(a.env, ['push', src])).code, 0);
  const dst = `${proxy.host}/mount/dst:v1`;
  t.is((await hoist(a.env, ['tag', src, dst])).code, 0);
  proxy.seen.length = 0;
  const r = await hoist(a.env, ['push', dst]);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /: Mounted from mount\/src$/m);
  const mounts = proxy.seen.filter((s) => s.method === 'POST' && s.url.includes('mount=sha256:') && s.url.includes('from=mount%2Fsrc'));
  t.true(mounts.length >= 2, JSON.stringify(proxy.seen));
  t.deepEqual(proxy.seen.filter((s) => s.method === 'PUT' && s.url.includes('/blobs/uploads/')), []);
});

(skip ? test.skip : test)('chunked upload: large blobs go up in PATCH chunks and pull back intact', async (t) => {
  const proxy = await startProxy(t.context.reg.host);
  const name = `${proxy.host}/chunked/busybox:v1`;
  const a = await loaded(name);
  t.teardown(async () => {
    await proxy.close();
    await a.cleanup();
  });
  const id = (await inspect(a.env, name)).Id;
  const r = await hoist(a.env, ['push', '--chunk-size', '300000', name]);
  t.is(r.code, 0, r.stderr);
  const patches = proxy.seen.filter((s) => s.method === 'PATCH');
  // The busybox layer is about 1 MB: several chunks.
  t.true(patches.length >= 3, `PATCH requests: ${patches.length}\n${r.stdout}\n${JSON.stringify(proxy.seen)}`);
  const b = await sandboxDirs();
  t.teardown(b.cleanup);
  const benv = { root: b.root, dockerConfig: b.dockerConfig };
  const p = await hoist(benv, ['pull', name]);
  t.is(p.code, 0, p.stderr);
  t.is((await inspect(benv, name)).Id, id);
  t.is((await hoist(benv, ['system', 'check'])).code, 0);
  // Only the chosen platform's blobs were fetched.
  t.notRegex((await hoist(benv, ['images', '-a'])).stdout, /s390x/);
});

(skip ? test.skip : test)('clear errors: unknown manifest names the reference; refused connection; unknown host; no local image', async (t) => {
  const d = await sandboxDirs();
  t.teardown(d.cleanup);
  const env = { root: d.root, dockerConfig: d.dockerConfig };
  const missing = await hoist(env, ['pull', `${t.context.reg.host}/no/such:tag`]);
  t.is(missing.code, 1);
  t.regex(missing.stderr, new RegExp(`${t.context.reg.host}/no/such:tag not found`));
  t.notRegex(missing.stderr, /internal error|at .*\.js/);

  const closed = await freePort();
  const refused = await hoist(env, ['pull', `127.0.0.1:${closed}/x:y`]);
  t.is(refused.code, 1);
  t.regex(refused.stderr, new RegExp(`cannot reach registry 127\\.0\\.0\\.1:${closed}: connection refused`));

  const unknown = await hoist(env, ['pull', 'no-such-host.invalid/x:y']);
  t.is(unknown.code, 1);
  t.regex(unknown.stderr, /cannot reach registry no-such-host\.invalid/);

  const nolocal = await hoist(env, ['push', `${t.context.reg.host}/not/here:v1`]);
  t.is(nolocal.code, 1);
  t.regex(nolocal.stderr, /no such image.*\n.*hoist tag/);
});

(skip ? test.skip : test)('plain HTTP is refused for a non-loopback registry unless it is named insecure', async (t) => {
  const d = await sandboxDirs();
  t.teardown(d.cleanup);
  const env = { root: d.root, dockerConfig: d.dockerConfig };
  // 127.0.0.1 under another name: "localhost.localdomain"-style aliases are not loopback by name, so
  // use an address hoist does not treat as loopback by name but that still routes locally.
  const port = t.context.reg.port;
  const alias = `0.0.0.0:${port}`;
  const r = await hoist(env, ['pull', `${alias}/x:y`]);
  t.is(r.code, 1);
  t.regex(r.stderr, /TLS|https/i);
  t.regex(r.stderr, new RegExp(`--insecure-registry ${alias.replace(/\./g, '\\.')}`));
  // Named insecure: it gets as far as the registry, which says the manifest is unknown.
  const ok = await hoist(env, ['pull', '--insecure-registry', alias, `${alias}/x:y`]);
  t.is(ok.code, 1);
  t.regex(ok.stderr, /x:y not found/);
  const viaEnv = await hoist({ ...env, extra: { HOIST_INSECURE_REGISTRIES: alias } }, ['pull', `${alias}/x:y`]);
  t.regex(viaEnv.stderr, /x:y not found/);
});

(skip ? test.skip : test)('a manifest list / OCI index: pull picks linux/amd64, prints the index digest, names the platform manifest', async (t) => {
  const host = t.context.reg.host;
  const name = `${host}/multi/busybox:single`;
  const a = await loaded(name);
  t.teardown(a.cleanup);
  t.is((await hoist(a.env, ['push', name])).code, 0);
  const single = await inspect(a.env, name);
  const manifestRes = await fetch(`http://${host}/v2/multi/busybox/manifests/single`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
  const size = (await manifestRes.arrayBuffer()).byteLength;
  // A second real platform: the same layer under a config that says s390x, pushed by digest.
  const manifest = JSON.parse(await (await fetch(`http://${host}/v2/multi/busybox/manifests/single`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } })).text());
  const config = JSON.parse(await (await fetch(`http://${host}/v2/multi/busybox/blobs/${manifest.config.digest}`)).text());
  const otherCfg = Buffer.from(JSON.stringify({ ...config, architecture: 's390x' }));
  const cfgDigest = `sha256:${createHash('sha256').update(otherCfg).digest('hex')}`;
  const start = await fetch(`http://${host}/v2/multi/busybox/blobs/uploads/`, { method: 'POST' });
  const loc = new URL(start.headers.get('location')!, `http://${host}/`);
  loc.searchParams.set('digest', cfgDigest);
  t.is((await fetch(loc, { method: 'PUT', headers: { 'content-type': 'application/octet-stream' }, body: otherCfg })).status, 201);
  const other = Buffer.from(JSON.stringify({ ...manifest, config: { ...manifest.config, digest: cfgDigest, size: otherCfg.length } }));
  const otherDigest = `sha256:${createHash('sha256').update(other).digest('hex')}`;
  t.is((await fetch(`http://${host}/v2/multi/busybox/manifests/${otherDigest}`, { method: 'PUT', headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, body: other })).status, 201);
  const index = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [
      // The platform hoist must not pick comes first.
      { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: otherDigest, size: other.length, platform: { os: 'linux', architecture: 's390x' } },
      { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: single.Descriptor.digest, size, platform: { os: 'linux', architecture: 'amd64' } },
    ],
  });
  const put = await fetch(`http://${host}/v2/multi/busybox/manifests/multi`, { method: 'PUT', headers: { 'content-type': 'application/vnd.oci.image.index.v1+json' }, body: index });
  t.is(put.status, 201, await put.text());
  const digest = (await fetch(`http://${host}/v2/multi/busybox/manifests/multi`, { method: 'HEAD', headers: { accept: 'application/vnd.oci.image.index.v1+json' } })).headers.get('docker-content-digest');
  const b = await sandboxDirs();
  t.teardown(b.cleanup);
  const benv = { root: b.root, dockerConfig: b.dockerConfig };
  const r = await hoist(benv, ['pull', `${host}/multi/busybox:multi`]);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, new RegExp(`Digest: ${digest}`));
  const img = await inspect(benv, `${host}/multi/busybox:multi`);
  t.is(img.Id, single.Id);
  t.is(img.Descriptor.digest, single.Descriptor.digest);
  const check = await hoist(benv, ['system', 'check']);
  t.is(check.code, 0, check.stdout);
  // Only the chosen platform's blobs were fetched.
  t.notRegex((await hoist(benv, ['images', '-a'])).stdout, /s390x/);
  // The index digest still finds the image locally (a FROM pinned by it needs no registry).
  t.is((await inspect(benv, `${host}/multi/busybox@${digest}`)).Id, single.Id);
});
