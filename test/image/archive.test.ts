import test from 'ava';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import tar from 'tar-stream';
import {
  busyboxArchive,
  cleanup,
  everyTypeLayer,
  filesUnder,
  hoist,
  listTar,
  makeDockerArchive,
  makeTar,
  secondLayer,
  sha256,
  tarMember,
  tempDir,
  tool,
} from './helpers.js';

/** Every member of a tar file, name → bytes (archives here are small). */
async function members(file: string): Promise<Map<string, Buffer>> {
  const { createReadStream } = await import('node:fs');
  const { pipeline } = await import('node:stream/promises');
  const ex = tar.extract();
  const out = new Map<string, Buffer>();
  const feeding = pipeline(createReadStream(file), ex);
  for await (const e of ex) {
    const chunks: Buffer[] = [];
    for await (const c of e) chunks.push(c as Buffer);
    if (e.header.type === 'file') out.set(e.header.name, Buffer.concat(chunks));
  }
  await feeding;
  return out;
}

async function extractTo(file: string, dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await tool('tar', ['-xf', file, '-C', dir]);
}

test('busybox fixture: load, skopeo reads the store, save oci+docker, skopeo and umoci accept them, layers unchanged', async (t) => {
  const root = await tempDir();
  const work = await tempDir();
  const archive = await busyboxArchive();
  const load = await hoist(root, ['load', '-i', archive]);
  t.is(load.code, 0, load.stderr);
  t.is(load.stdout, 'Loaded image: busybox:latest\n');

  // The store root is itself an OCI layout that skopeo can read by name.
  const originalLayer = [...(await members(archive)).entries()].find(([n]) => n.endsWith('/layer.tar'))![1];
  const ins = JSON.parse((await tool('skopeo', ['inspect', `oci:${root}:busybox:latest`])).stdout);
  t.is(ins.Os, 'linux');
  t.deepEqual(ins.Layers, [sha256(originalLayer)]);

  const oci = join(work, 'bb-oci.tar');
  const r1 = await hoist(root, ['save', '-o', oci, 'busybox']);
  t.is(r1.code, 0, r1.stderr);
  const ociInspect = JSON.parse((await tool('skopeo', ['inspect', `oci-archive:${oci}`])).stdout);
  t.deepEqual(ociInspect.Layers, [sha256(originalLayer)]);
  await tool('skopeo', ['copy', '-q', `oci-archive:${oci}`, `oci:${join(work, 'copied')}:bb`]);
  const idx = JSON.parse(await readFile(join(work, 'copied', 'index.json'), 'utf8'));
  t.is(idx.manifests.length, 1);

  // umoci reads an OCI layout directory selected by tag.
  const layout = join(work, 'layout');
  await extractTo(oci, layout);
  await tool('umoci', ['unpack', '--image', `${layout}:latest`, join(work, 'bundle')]);
  const sh = await readFile(join(work, 'bundle', 'rootfs', 'bin', 'busybox'));
  t.deepEqual(sh, await readFile('/bin/busybox'));

  const docker = join(work, 'bb-docker.tar');
  const r2 = await hoist(root, ['save', '--format', 'docker', '-o', docker, 'busybox:latest']);
  t.is(r2.code, 0, r2.stderr);
  const dm = await members(docker);
  const manifest = JSON.parse(dm.get('manifest.json')!.toString());
  t.deepEqual(manifest[0].RepoTags, ['busybox:latest']);
  t.deepEqual(dm.get(manifest[0].Layers[0])!, originalLayer, 'layer bytes unchanged by load → store → save');
  const dockerInspect = JSON.parse((await tool('skopeo', ['inspect', `docker-archive:${docker}`])).stdout);
  t.deepEqual(dockerInspect.Layers, [sha256(originalLayer)]);
  // The docker archive of a fixture made the docker way is reproduced byte for byte in content.
  t.deepEqual(JSON.parse((await members(archive)).get('manifest.json')!.toString())[0].Config, manifest[0].Config);

  // Round trip: load the OCI archive into a fresh store; same image ID.
  const root2 = await tempDir();
  const back = await hoist(root2, ['load', '-i', oci]);
  t.is(back.code, 0, back.stderr);
  t.is(back.stdout, 'Loaded image: busybox:latest\n');
  const id1 = (await hoist(root, ['inspect', '--format', '{{.Id}}', 'busybox'])).stdout;
  const id2 = (await hoist(root2, ['inspect', '--format', '{{.Id}}', 'busybox'])).stdout;
  t.is(id1, id2);
  t.regex(id1, /^sha256:[a-f0-9]{64}\n$/);
  await cleanup(root, root2, work);
});

test('hand-made docker archive with a plain and a gzip layer: every file type, owner, mode and xattr survives', async (t) => {
  const root = await tempDir();
  const work = await tempDir();
  const l1 = await everyTypeLayer();
  const l2 = await secondLayer();
  const { archive, configDigest } = await makeDockerArchive({ layers: [{ tar: l1 }, { tar: l2, gzip: true }], tags: ['example.com:5000/team/app:v1', 'app:latest'] });
  const file = join(work, 'in.tar');
  await writeFile(file, archive);
  const load = await hoist(root, ['load'], archive); // from stdin
  t.is(load.code, 0, load.stderr);
  t.is(load.stdout, 'Loaded image: example.com:5000/team/app:v1\nLoaded image: app:latest\n');

  const images = await hoist(root, ['images']);
  t.regex(images.stdout, /^REPOSITORY\s+TAG\s+IMAGE ID\s+CREATED\s+SIZE\n/);
  t.regex(images.stdout, new RegExp(`example.com:5000/team/app\\s+v1\\s+${configDigest.slice(7, 19)}\\s`));
  t.regex(images.stdout, new RegExp(`app\\s+latest\\s+${configDigest.slice(7, 19)}\\s`));
  t.is((await hoist(root, ['images', '-q'])).stdout, `${configDigest.slice(7, 19)}\n`);
  t.true((await hoist(root, ['images', '--no-trunc'])).stdout.includes(configDigest));
  t.regex((await hoist(root, ['images', '--digests'])).stdout, /DIGEST\s+IMAGE ID[\s\S]*sha256:[a-f0-9]{64}/);

  const env = await hoist(root, ['inspect', '--format', '{{.Config.Env}}|{{json .Config.Cmd}}|{{.Config.WorkingDir}}|{{index .Config.Labels "team"}}', 'app']);
  t.is(env.stdout, '[PATH=/usr/bin:/bin HELLO=world]|["/bin/tool"]|/app|build\n');
  const full = JSON.parse((await hoist(root, ['inspect', 'app:latest'])).stdout);
  t.is(full[0].Id, configDigest);
  t.deepEqual(full[0].RepoTags.sort(), ['app:latest', 'example.com:5000/team/app:v1']);
  t.deepEqual(full[0].RootFS.Layers, [sha256(l1), sha256(l2)]);

  const hist = await hoist(root, ['history', 'app']);
  const lines = hist.stdout.trimEnd().split('\n');
  t.regex(lines[0]!, /^IMAGE\s+CREATED\s+CREATED BY\s+SIZE\s+COMMENT$/);
  t.is(lines.length, 4);
  t.regex(lines[1]!, new RegExp(`^${configDigest.slice(7, 19)}\\s.*COPY hello.txt /app/`));
  t.regex(lines[2]!, /^<missing>\s.*ENV HELLO=world\s+0B\s*$/);
  t.regex(lines[3]!, /^<missing>\s.*ADD every-type.*\sbase$/);

  const want1 = await listTar(l1);
  const want2 = await listTar(l2);
  t.true(want1.some((e) => Object.keys(e.xattrs).length > 0), 'the fixture layer really has xattrs');
  t.true(want1.some((e) => e.mode === '4755'), 'and a setuid file');

  // OCI: layer blobs are the exact bytes loaded (plain stays plain, gzip stays gzip).
  const oci = join(work, 'out-oci.tar');
  t.is((await hoist(root, ['save', '-o', oci, 'app'])).code, 0);
  const om = await members(oci);
  const oindex = JSON.parse(om.get('index.json')!.toString());
  t.is(oindex.manifests[0].annotations['io.containerd.image.name'], 'docker.io/library/app:latest');
  t.is(oindex.manifests[0].annotations['org.opencontainers.image.ref.name'], 'latest');
  const man = JSON.parse(om.get(`blobs/sha256/${oindex.manifests[0].digest.slice(7)}`)!.toString());
  t.deepEqual(man.layers.map((l: { mediaType: string }) => l.mediaType), ['application/vnd.oci.image.layer.v1.tar', 'application/vnd.oci.image.layer.v1.tar+gzip']);
  const ob1 = om.get(`blobs/sha256/${man.layers[0].digest.slice(7)}`)!;
  const ob2 = om.get(`blobs/sha256/${man.layers[1].digest.slice(7)}`)!;
  t.deepEqual(ob1, l1);
  t.deepEqual(await listTar(ob1), want1);
  t.deepEqual(await listTar(gunzipSync(ob2)), want2);
  JSON.parse((await tool('skopeo', ['inspect', `oci-archive:${oci}`])).stdout);
  const layout = join(work, 'layout');
  await extractTo(oci, layout);
  await tool('umoci', ['unpack', '--image', `${layout}:latest`, join(work, 'bundle')]);
  t.is(await readFile(join(work, 'bundle', 'rootfs', 'app', 'hello.txt'), 'utf8'), 'hello from layer 2\n');

  // Docker format: uncompressed layer.tar files, entry lists identical to what went in.
  const docker = join(work, 'out-docker.tar');
  t.is((await hoist(root, ['save', '--format', 'docker', '-o', docker, 'example.com:5000/team/app:v1'])).code, 0);
  const dm = await members(docker);
  const dman = JSON.parse(dm.get('manifest.json')!.toString());
  t.deepEqual(dman[0].RepoTags, ['example.com:5000/team/app:v1']);
  t.deepEqual(await listTar(dm.get(dman[0].Layers[0])!), want1);
  t.deepEqual(await listTar(dm.get(dman[0].Layers[1])!), want2);
  t.deepEqual(dm.get(dman[0].Layers[1])!, l2, 'gzip layer decompressed to the original tar');
  const repos = JSON.parse(dm.get('repositories')!.toString());
  t.deepEqual(Object.keys(repos), ['example.com:5000/team/app']);
  await tool('skopeo', ['copy', '-q', `docker-archive:${docker}`, `oci:${join(work, 'fromdocker')}:x`]);

  // And the docker-format archive loads back to the same image.
  const root2 = await tempDir();
  const back = await hoist(root2, ['load', '-i', docker]);
  t.is(back.code, 0, back.stderr);
  t.is((await hoist(root2, ['inspect', '--format', '{{.Id}}', 'example.com:5000/team/app:v1'])).stdout, `${configDigest}\n`);
  await cleanup(root, root2, work);
});

test('an OCI archive with a tampered blob is refused and leaves nothing in the store', async (t) => {
  const root = await tempDir();
  const work = await tempDir();
  const layer = await secondLayer();
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256(layer)] } }));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(layer), size: layer.length }],
    }),
  );
  const index = JSON.stringify({
    schemaVersion: 2,
    manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256(manifest), size: manifest.length, annotations: { 'org.opencontainers.image.ref.name': 'x/y:1' } }],
  });
  const tampered = Buffer.from(layer);
  tampered[600] = tampered[600]! ^ 0xff;
  const entries = (layerBytes: Buffer) => [
    { name: 'oci-layout', content: '{"imageLayoutVersion":"1.0.0"}' },
    { name: `blobs/sha256/${sha256(config).slice(7)}`, content: config },
    { name: `blobs/sha256/${sha256(layer).slice(7)}`, content: layerBytes },
    { name: `blobs/sha256/${sha256(manifest).slice(7)}`, content: manifest },
    { name: 'index.json', content: index },
  ];
  const before = await hoist(root, ['images', '-q']);
  t.is(before.code, 0);
  const indexBefore = await readFile(join(root, 'index.json'), 'utf8');
  const bad = await hoist(root, ['load'], await makeTar(entries(tampered)));
  t.not(bad.code, 0);
  t.regex(bad.stderr, /does not match/);
  t.regex(bad.stderr, new RegExp(sha256(layer)));
  t.notRegex(bad.stderr, /\n\s+at /, 'no stack trace');
  t.deepEqual(await filesUnder(join(root, 'blobs')), [], 'no blob committed');
  t.deepEqual(await filesUnder(join(root, 'tmp')), [], 'no temp file left');
  t.is(await readFile(join(root, 'index.json'), 'utf8'), indexBefore);

  const good = await hoist(root, ['load'], await makeTar(entries(layer)));
  t.is(good.code, 0, good.stderr);
  t.is(good.stdout, 'Loaded image: x/y:1\n');
  t.is((await filesUnder(join(root, 'blobs'))).length, 3);
  await cleanup(root, work);
});

test('a docker archive whose layer does not match its diff ID is refused', async (t) => {
  const root = await tempDir();
  const { archive } = await makeDockerArchive({ layers: [{ tar: await secondLayer(), gzip: true }], tags: ['bad:1'], tamperDiffID: true });
  const r = await hoist(root, ['load'], archive);
  t.is(r.code, 1);
  t.regex(r.stderr, /does not match its diff ID/);
  t.deepEqual(await filesUnder(join(root, 'blobs')), []);
  await cleanup(root);
});

test('load errors name the problem: missing file, not an archive, incomplete archive', async (t) => {
  const root = await tempDir();
  const nofile = await hoist(root, ['load', '-i', '/nonexistent/x.tar']);
  t.is(nofile.code, 1);
  t.regex(nofile.stderr, /no such file/);
  const junk = await hoist(root, ['load'], Buffer.from('this is not a tar archive at all'.repeat(40)));
  t.is(junk.code, 1);
  t.regex(junk.stderr, /error: /);
  const empty = await hoist(root, ['load'], await makeTar([{ name: 'hello.txt', content: 'hi' }]));
  t.regex(empty.stderr, /neither manifest\.json/);
  const partial = await hoist(root, ['load'], await makeTar([{ name: 'manifest.json', content: JSON.stringify([{ Config: 'c.json', RepoTags: ['a:b'], Layers: ['../../etc/passwd'] }]) }, { name: 'c.json', content: '{"rootfs":{"diff_ids":[]}}' }]));
  t.regex(partial.stderr, /incomplete/);
  for (const r of [nofile, junk, empty, partial]) t.notRegex(r.stderr, /\n\s+at /);
  t.deepEqual(await readdir(join(root, 'blobs', 'sha256')), []);
  await cleanup(root);
});

test('an OCI archive with a nested index loads the host platform', async (t) => {
  const root = await tempDir();
  const layer = await secondLayer();
  const { hostPlatform } = await import('../../src/image/store.js');
  const hp = hostPlatform();
  const config = Buffer.from(JSON.stringify({ architecture: hp.architecture, os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256(layer)] } }));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(layer), size: layer.length }],
    }),
  );
  const other = 'sha256:' + '0'.repeat(64); // a platform whose blobs are absent from the archive
  const inner = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [
        { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: other, size: 10, platform: { os: 'linux', architecture: 'mips64' } },
        { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256(manifest), size: manifest.length, platform: { os: 'linux', architecture: hp.architecture } },
      ],
    }),
  );
  const index = JSON.stringify({
    schemaVersion: 2,
    manifests: [{ mediaType: 'application/vnd.oci.image.index.v1+json', digest: sha256(inner), size: inner.length, annotations: { 'io.containerd.image.name': 'docker.io/library/multi:1', 'org.opencontainers.image.ref.name': '1' } }],
  });
  const r = await hoist(
    root,
    ['load'],
    await makeTar([
      { name: 'oci-layout', content: '{"imageLayoutVersion":"1.0.0"}' },
      { name: `blobs/sha256/${sha256(config).slice(7)}`, content: config },
      { name: `blobs/sha256/${sha256(layer).slice(7)}`, content: layer },
      { name: `blobs/sha256/${sha256(manifest).slice(7)}`, content: manifest },
      { name: `blobs/sha256/${sha256(inner).slice(7)}`, content: inner },
      { name: 'index.json', content: index },
    ]),
  );
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, 'Loaded image: multi:1\n');
  t.is((await hoist(root, ['inspect', '--format', '{{.Id}}', 'multi:1'])).stdout, `${sha256(config)}\n`);
  JSON.parse((await tool('skopeo', ['inspect', `oci:${root}:multi:1`])).stdout);
  await cleanup(root);
});

test('a zstd layer loads, saves and is read back', async (t) => {
  const root = await tempDir();
  const work = await tempDir();
  const l = await secondLayer();
  const zfile = join(work, 'l.zst');
  await writeFile(join(work, 'l.tar'), l);
  await tool('zstd', ['-q', '-o', zfile, join(work, 'l.tar')]);
  const z = await readFile(zfile);
  const { archive } = await makeDockerArchive({ layers: [{ tar: l }], tags: ['z:1'] });
  // Swap the plain layer for its zstd form (the config's diff ID stays that of the tar).
  const map = new Map<string, Buffer>();
  const f = join(work, 'a.tar');
  await writeFile(f, archive);
  for (const name of ['manifest.json']) map.set(name, (await tarMember(f, name))!);
  const cfgName = JSON.parse(map.get('manifest.json')!.toString())[0].Config as string;
  const rebuilt = await makeTar([
    { name: cfgName, content: (await tarMember(f, cfgName))! },
    { name: 'layer0/layer.tar', content: z },
    { name: 'manifest.json', content: map.get('manifest.json')! },
  ]);
  const r = await hoist(root, ['load'], rebuilt);
  t.is(r.code, 0, r.stderr);
  const oci = join(work, 'o.tar');
  t.is((await hoist(root, ['save', '-o', oci, 'z:1'])).code, 0);
  const inspect = JSON.parse((await tool('skopeo', ['inspect', '--raw', `oci-archive:${oci}`])).stdout);
  t.is(inspect.layers[0].mediaType, 'application/vnd.oci.image.layer.v1.tar+zstd');
  const docker = join(work, 'd.tar');
  t.is((await hoist(root, ['save', '--format', 'docker', '-o', docker, 'z:1'])).code, 0);
  const dl = (await tarMember(docker, JSON.parse((await tarMember(docker, 'manifest.json'))!.toString())[0].Layers[0]))!;
  t.deepEqual(dl, l);
  await cleanup(root, work);
});

test('an archive recorded from Docker 26 `docker save` (gzip-compressed as a whole) loads to the same IDs, and saves back equivalently', async (t) => {
  const root = await tempDir();
  const work = await tempDir();
  const { fixture } = await import('../helpers/paths.js');
  const recorded = await readFile(fixture('busybox', 'reference-docker-save.tar.gz'));
  const r = await hoist(root, ['load'], recorded);
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, 'Loaded image: busybox:latest\n');
  const plain = join(work, 'ref.tar');
  await writeFile(plain, gunzipSync(recorded));
  const refIndex = JSON.parse((await tarMember(plain, 'index.json'))!.toString());
  const refManifest = JSON.parse((await tarMember(plain, 'manifest.json'))!.toString());
  const digests = await hoist(root, ['images', '--digests', '--no-trunc']);
  // Docker's manifest digest and image ID are kept (the archive's OCI index is preferred over manifest.json).
  t.true(digests.stdout.includes(refIndex.manifests[0].digest), digests.stdout);
  t.true(digests.stdout.includes(`sha256:${refManifest[0].Config.split('/').pop()}`));
  const out = join(work, 'again.tar');
  t.is((await hoist(root, ['save', '-o', out, 'busybox'])).code, 0);
  const index = JSON.parse((await tarMember(out, 'index.json'))!.toString());
  t.deepEqual(index.manifests, refIndex.manifests, 'same index entry as docker save writes');
  const manifest = JSON.parse((await tarMember(out, 'manifest.json'))!.toString());
  t.deepEqual(manifest[0].Layers, refManifest[0].Layers);
  t.deepEqual(manifest[0].Config, refManifest[0].Config);
  await cleanup(root, work);
});
