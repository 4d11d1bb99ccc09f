// hoist build against a real distribution registry (Debian's docker-registry on loopback):
// FROM pulls what the store lacks, --pull re-checks tags, --push / type=registry push the result,
// and registry failures in FROM are clear errors with the Dockerfile line.
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { busyboxArchive, freePort, hoist, registryUnavailable, sandboxDirs, startProxy, startRegistry, tmpLeftovers, type Registry, type Run } from '../registry/helpers.js';

const test = anyTest as TestFn<{ reg: Registry }>;
const skip = registryUnavailable() ?? (process.getuid?.() === 0 ? undefined : 'builds need root');
const t0 = skip ? test.skip : test;

test.before(async (t) => {
  if (skip) return;
  t.context.reg = await startRegistry();
});
test.after.always(async (t) => {
  await t.context.reg?.stop();
});

type Env = { root: string; dockerConfig: string };

/** A fresh, empty root and a build context holding `dockerfile`. */
async function project(dockerfile: string) {
  const d = await sandboxDirs();
  const ctx = join(d.dir, 'ctx');
  await mkdir(ctx, { recursive: true });
  await writeFile(join(ctx, 'Dockerfile'), dockerfile);
  return { ...d, ctx, env: { root: d.root, dockerConfig: d.dockerConfig } as Env };
}

function ok(t: { is: (a: unknown, b: unknown, m?: string) => void }, r: Run, what: string): void {
  t.is(r.code, 0, `${what}: ${r.stderr}`);
}

async function manifestDigest(env: Env, name: string): Promise<string> {
  const r = await hoist(env, ['inspect', name]);
  if (r.code !== 0) throw new Error(`inspect ${name}: ${r.stderr}`);
  return (JSON.parse(r.stdout) as { Descriptor: { digest: string } }[])[0]!.Descriptor.digest;
}

/** Pushes the busybox fixture as `${host}/${repo}:latest` from a throwaway root; returns its manifest digest. */
async function seed(host: string, repo: string): Promise<string> {
  const d = await sandboxDirs();
  try {
    const env = { root: d.root, dockerConfig: d.dockerConfig };
    const name = `${host}/${repo}:latest`;
    for (const args of [['load', '-i', await busyboxArchive()], ['tag', 'busybox:latest', name], ['push', name]]) {
      const r = await hoist(env, args);
      if (r.code !== 0) throw new Error(`${args[0]}: ${r.stderr}`);
    }
    return await manifestDigest(env, name);
  } finally {
    await d.cleanup();
  }
}

const manifestGets = (seen: { method: string; url: string }[], repo: string) => seen.filter((s) => s.url.startsWith(`/v2/${repo}/manifests/`));
const blobGets = (seen: { method: string; url: string }[]) => seen.filter((s) => s.method === 'GET' && s.url.includes('/blobs/sha256:'));

t0('FROM an image the store lacks pulls it (load metadata, then the FROM vertex resolving it); a second build asks the registry nothing', async (t) => {
  const digest = await seed(t.context.reg.host, 'base/busybox');
  const proxy = await startProxy(t.context.reg.host);
  const p = await project(`FROM ${proxy.host}/base/busybox\nRUN echo built > /built\n`);
  t.teardown(async () => {
    await proxy.close();
    await p.cleanup();
  });
  const name = `${proxy.host}/base/busybox:latest`;
  const b = await hoist(p.env, ['build', '--progress', 'plain', '-t', 'app', p.ctx]);
  ok(t, b, 'first build');
  t.regex(b.stderr, new RegExp(`^#\\d+ \\[internal\\] load metadata for ${name.replace(/\./g, '\\.')}$`, 'm'));
  const from = new RegExp(`^#(\\d+) \\[1/2\\] FROM ${name.replace(/\./g, '\\.')}@${digest}$`, 'm').exec(b.stderr);
  t.truthy(from, b.stderr);
  t.regex(b.stderr, new RegExp(`^#${from![1]} resolve ${name.replace(/\./g, '\\.')}@${digest} [0-9.]+s done$`, 'm'));
  t.regex(b.stderr, new RegExp(`^#${from![1]} sha256:[a-f0-9]{64} [0-9.]+[kM]?B / [0-9.]+[kM]?B [0-9.]+s done$`, 'm'));
  // the metadata vertex comes before the FROM vertex
  t.true(b.stderr.indexOf('load metadata for') < b.stderr.indexOf('[1/2] FROM'));
  t.true(manifestGets(proxy.seen, 'base/busybox').length > 0);
  t.true(blobGets(proxy.seen).length >= 2, 'config and layer downloaded');
  t.is(await manifestDigest(p.env, name), digest, 'the pulled image is named in the store');
  const run = await hoist(p.env, ['run', '--rm', 'app', 'cat', '/built']);
  t.is(run.stdout, 'built\n', run.stderr);
  ok(t, await hoist(p.env, ['system', 'check']), 'system check');

  proxy.seen.length = 0;
  const again = await hoist(p.env, ['build', '--progress', 'plain', '--no-cache', '-t', 'app2', p.ctx]);
  ok(t, again, 'second build');
  t.deepEqual(proxy.seen, [], 'the local image is used with no registry request');
  t.regex(again.stderr, new RegExp(`\\[1/2\\] FROM ${name.replace(/\./g, '\\.')}$`, 'm'));
  t.notRegex(again.stderr, / resolve /);

  // pinned by digest and in the store: even --pull needs no network
  await writeFile(join(p.ctx, 'Dockerfile'), `FROM ${proxy.host}/base/busybox@${digest}\nRUN echo pinned\n`);
  const pinned = await hoist(p.env, ['build', '--pull', '--progress', 'plain', p.ctx]);
  ok(t, pinned, 'build --pull FROM name@digest');
  t.deepEqual(proxy.seen, []);
  t.regex(pinned.stderr, new RegExp(`\\[1/2\\] FROM ${proxy.host.replace(/\./g, '\\.')}/base/busybox@${digest}$`, 'm'));
});

t0('--pull asks the registry for the tag (no download while it is unchanged) and picks up a newer pushed image', async (t) => {
  const host = t.context.reg.host;
  const first = await seed(host, 'pull/busybox');
  const proxy = await startProxy(host);
  const p = await project(`FROM ${proxy.host}/pull/busybox:latest\nRUN cat /etc/version 2>/dev/null || echo none; echo ok > /ok\n`);
  t.teardown(async () => {
    await proxy.close();
    await p.cleanup();
  });
  const name = `${proxy.host}/pull/busybox:latest`;
  ok(t, await hoist(p.env, ['build', '-t', 'app', p.ctx]), 'first build');
  t.is(await manifestDigest(p.env, name), first);

  proxy.seen.length = 0;
  const same = await hoist(p.env, ['build', '--pull', '--progress', 'plain', '-t', 'app', p.ctx]);
  ok(t, same, '--pull, unchanged');
  t.true(manifestGets(proxy.seen, 'pull/busybox').some((s) => s.method === 'HEAD' || s.method === 'GET'), JSON.stringify(proxy.seen));
  t.deepEqual(blobGets(proxy.seen), [], 'nothing downloaded while the tag is unchanged');
  t.regex(same.stderr, new RegExp(`resolve ${name.replace(/\./g, '\\.')}@${first} [0-9.]+s done`));

  // a newer image under the same tag: busybox plus /etc/version, built and pushed from another root
  const other = await project(`FROM ${host}/pull/busybox:latest\nRUN echo v2 > /etc/version\n`);
  t.teardown(other.cleanup);
  ok(t, await hoist(other.env, ['build', '-t', `${host}/pull/busybox:latest`, other.ctx]), 'building v2');
  ok(t, await hoist(other.env, ['push', `${host}/pull/busybox:latest`]), 'pushing v2');
  const second = await manifestDigest(other.env, `${host}/pull/busybox:latest`);
  t.not(second, first);

  // without --pull the local copy still wins, with no request
  proxy.seen.length = 0;
  const stale = await hoist(p.env, ['build', '--progress', 'plain', '--no-cache', '-t', 'stale', p.ctx]);
  ok(t, stale, 'build without --pull');
  t.deepEqual(proxy.seen, []);
  t.regex(stale.stderr, /^#\d+ [0-9.]+ none$/m);

  proxy.seen.length = 0;
  const fresh = await hoist(p.env, ['build', '--pull', '--progress', 'plain', '-t', 'fresh', p.ctx]);
  ok(t, fresh, '--pull after the tag moved');
  t.true(blobGets(proxy.seen).length >= 1, 'the new layer was downloaded');
  t.regex(fresh.stderr, /^#\d+ [0-9.]+ v2$/m);
  t.regex(fresh.stderr, new RegExp(`FROM ${name.replace(/\./g, '\\.')}@${second}$`, 'm'));
  t.is(await manifestDigest(p.env, name), second, 'the local tag now points at the newer image');
  ok(t, await hoist(p.env, ['system', 'check']), 'system check');
});

t0('--push, rmi, pull: the registry has the built image under the same digest; type=registry with several names; push=true', async (t) => {
  const proxy = await startProxy(t.context.reg.host);
  const p = await project('FROM busybox\nRUN echo pushed > /pushed\n');
  t.teardown(async () => {
    await proxy.close();
    await p.cleanup();
  });
  ok(t, await hoist(p.env, ['load', '-i', await busyboxArchive()]), 'load');
  const name = `${proxy.host}/built/app:v1`;
  const b = await hoist(p.env, ['build', '--push', '--progress', 'plain', '-t', name, p.ctx]);
  ok(t, b, 'build --push');
  const digest = await manifestDigest(p.env, name);
  t.regex(b.stderr, new RegExp(`^#\\d+ pushing manifest for ${name.replace(/\./g, '\\.')}@${digest} [0-9.]+s done$`, 'm'));
  t.true(proxy.seen.some((s) => s.method === 'PUT' && s.url === '/v2/built/app/manifests/v1'));

  ok(t, await hoist(p.env, ['rmi', name]), 'rmi');
  t.not((await hoist(p.env, ['inspect', name])).code, 0);
  const pull = await hoist(p.env, ['pull', name]);
  ok(t, pull, 'pull');
  t.regex(pull.stdout, new RegExp(`^Digest: ${digest}$`, 'm'));
  t.is(await manifestDigest(p.env, name), digest);
  const run = await hoist(p.env, ['run', '--rm', name, 'cat', '/pushed']);
  t.is(run.stdout, 'pushed\n', run.stderr);

  // buildx forms: type=registry with a quoted list of names, type=image,name=…,push=true
  const a = `${proxy.host}/built/app:a`;
  const bb = `${proxy.host}/built/other:b`;
  ok(t, await hoist(p.env, ['build', '--output', `type=registry,"name=${a},${bb}"`, p.ctx]), 'type=registry');
  ok(t, await hoist(p.env, ['build', '--output', `type=image,name=${proxy.host}/built/app:c,push=true`, p.ctx]), 'type=image,push=true');
  const fresh = await project('');
  t.teardown(fresh.cleanup);
  for (const n of [a, bb, `${proxy.host}/built/app:c`]) {
    const r = await hoist(fresh.env, ['pull', n]);
    ok(t, r, `pull ${n}`);
    t.regex(r.stdout, new RegExp(`^Digest: ${digest}$`, 'm'), 'same build, same manifest');
  }
  // type=image without push names the image locally and pushes nothing
  proxy.seen.length = 0;
  ok(t, await hoist(p.env, ['build', '--output', `type=image,name=${proxy.host}/built/app:local`, p.ctx]), 'type=image,name=');
  t.is(await manifestDigest(p.env, `${proxy.host}/built/app:local`), digest);
  t.deepEqual(proxy.seen, []);

  const untagged = await hoist(p.env, ['build', '--push', p.ctx]);
  t.is(untagged.code, 1);
  t.regex(untagged.stderr, /tag is needed when pushing to registry/);
  const both = await hoist(p.env, ['build', '--push', '-t', name, '--output', 'type=oci,dest=x.tar', p.ctx]);
  t.not(both.code, 0);
  t.regex(both.stderr, /push and "oci" output can't be used together/);
});

/** Checks a failed build: exit 1, the message, the Dockerfile line shown, no stack, nothing stored. */
async function failsClearly(t: ExecutionContext<unknown>, env: Env, r: Run, line: number, text: string, msg: RegExp): Promise<void> {
  t.is(r.code, 1, r.stderr);
  t.regex(r.stderr, new RegExp(`Dockerfile:${line}: failed to resolve source metadata for `));
  t.regex(r.stderr, msg);
  t.true(r.stderr.includes(`${String(line).padStart(4)} | ${text}`), r.stderr);
  t.notRegex(r.stderr, /\n\s+at /, 'no stack trace');
  const images = await hoist(env, ['images', '-q']);
  t.is(images.stdout, '', 'nothing named in the store');
  t.deepEqual(await tmpLeftovers(env.root), []);
  t.deepEqual(await readdir(join(env.root, 'blobs', 'sha256')).catch(() => []), [], 'no blob written');
}

t0('FROM errors name the image and the line: unknown tag, refused connection, 401, unknown host, plain HTTP without --insecure-registry', async (t) => {
  const host = t.context.reg.host;
  await seed(host, 'err/busybox');
  const missing = `${host}/err/busybox:nope`;
  const p = await project(`# syntax check\nFROM ${missing}\nRUN true\n`);
  t.teardown(p.cleanup);
  const r = await hoist(p.env, ['build', '--progress', 'plain', p.ctx]);
  await failsClearly(t, p.env, r, 2, `FROM ${missing}`, /err\/busybox:nope not found in the registry \(manifest unknown\)/);
  t.regex(r.stderr, new RegExp(`^#\\d+ \\[internal\\] load metadata for ${missing.replace(/\./g, '\\.')}$`, 'm'));
  t.regex(r.stderr, /^#\d+ ERROR: /m);

  const port = await freePort();
  const refused = await project(`FROM 127.0.0.1:${port}/x/y\n`);
  t.teardown(refused.cleanup);
  await failsClearly(t, refused.env, await hoist(refused.env, ['build', refused.ctx]), 1, `FROM 127.0.0.1:${port}/x/y`, /connection refused/);

  const auth = await startRegistry({ htpasswd: { user: 'u', password: 'p' } });
  t.teardown(auth.stop);
  const locked = await project(`FROM busybox AS ok\nFROM ${auth.host}/x/y:v1\n`);
  t.teardown(locked.cleanup);
  // busybox is not in this root either, but stages resolve in order: load it so line 2 is the one failing
  ok(t, await hoist(locked.env, ['load', '-i', await busyboxArchive()]), 'load');
  const u = await hoist(locked.env, ['build', locked.ctx]);
  t.is(u.code, 1, u.stderr);
  t.regex(u.stderr, /Dockerfile:2: failed to resolve source metadata for .*401 unauthorized/);
  t.regex(u.stderr, /hint: log in with `hoist login/);

  const nohost = await project('FROM registry.invalid/x/y:v1\n');
  t.teardown(nohost.cleanup);
  const n = await hoist(nohost.env, ['build', nohost.ctx]);
  await failsClearly(t, nohost.env, n, 1, 'FROM registry.invalid/x/y:v1', /cannot reach registry registry\.invalid|registry\.invalid/);

  // 0.0.0.0 routes locally but is not loopback by name: plain HTTP only when named insecure
  const alias = `0.0.0.0:${t.context.reg.port}`;
  const ins = await project(`FROM ${alias}/err/busybox\nRUN true\n`);
  t.teardown(ins.cleanup);
  const refusedTLS = await hoist(ins.env, ['build', ins.ctx]);
  t.is(refusedTLS.code, 1);
  t.regex(refusedTLS.stderr, new RegExp(`--insecure-registry ${alias.replace(/\./g, '\\.')}`));
  ok(t, await hoist(ins.env, ['build', '--insecure-registry', alias, ins.ctx]), 'build --insecure-registry');
  t.truthy(await manifestDigest(ins.env, `${alias}/err/busybox`));
});

t0('--pull on a tag that names an index: the index is read, the local platform manifest found in it, nothing downloaded', async (t) => {
  const host = t.context.reg.host;
  const single = await seed(host, 'multi/busybox');
  const m = await fetch(`http://${host}/v2/multi/busybox/manifests/latest`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
  const size = (await m.arrayBuffer()).byteLength;
  const arch = ({ x64: 'amd64', arm64: 'arm64', s390x: 's390x', ppc64: 'ppc64le', riscv64: 'riscv64' } as Record<string, string>)[process.arch] ?? process.arch;
  const index = JSON.stringify({
    schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: single, size, platform: { os: 'linux', architecture: arch } }],
  });
  const put = await fetch(`http://${host}/v2/multi/busybox/manifests/multi`, { method: 'PUT', headers: { 'content-type': 'application/vnd.oci.image.index.v1+json' }, body: index });
  t.is(put.status, 201, await put.text());
  const proxy = await startProxy(host);
  const p = await project(`FROM ${proxy.host}/multi/busybox:multi\nRUN true\n`);
  t.teardown(async () => {
    await proxy.close();
    await p.cleanup();
  });
  ok(t, await hoist(p.env, ['build', p.ctx]), 'first build (pull)');
  t.is(await manifestDigest(p.env, `${proxy.host}/multi/busybox:multi`), single, 'the platform manifest is stored under the tag');
  proxy.seen.length = 0;
  const again = await hoist(p.env, ['build', '--pull', '--progress', 'plain', p.ctx]);
  ok(t, again, '--pull');
  t.deepEqual(blobGets(proxy.seen), []);
  t.false(proxy.seen.some((s) => s.url.endsWith(`/manifests/${single}`)), 'the platform manifest was not fetched again');
  t.true(proxy.seen.some((s) => s.method === 'GET' && /\/manifests\/(multi|sha256:)/.test(s.url)), `the index was read: ${JSON.stringify(proxy.seen)}`);
});

test('--output parsing: type=registry and name= lists (quoted as buildx writes them), push=BOOL, --push', async (t) => {
  const { parseOutput, withPush } = await import('../../src/cli/commands/build.js');
  t.deepEqual(parseOutput('type=registry,"name=h:5000/a:1,h:5000/b:2"'), { type: 'image', push: true, names: ['h:5000/a:1', 'h:5000/b:2'] });
  t.deepEqual(parseOutput('type=image,name="a,b",push=1'), { type: 'image', push: true, names: ['a', 'b'] });
  t.deepEqual(parseOutput('type=image,name=a,push=false'), { type: 'image', names: ['a'] });
  t.deepEqual(parseOutput('type=image'), { type: 'image' });
  t.throws(() => parseOutput('type=image,push=yes'), { message: /invalid --output value push=yes/ });
  t.throws(() => parseOutput('type=image,name=Bad:Name'), { message: /invalid reference/ });
  t.throws(() => parseOutput('type=image,"name=a'), { message: /unterminated quote/ });
  t.deepEqual(withPush(parseOutput(undefined), false), { type: 'image', push: true });
  t.deepEqual(withPush(parseOutput('type=image,name=a'), true), { type: 'image', push: true, names: ['a'] });
  t.throws(() => withPush(parseOutput('type=local,dest=out'), true), { message: /push and "local" output can't be used together/ });
});
