/**
 * `--cache-to` / `--cache-from`: a build on a fresh root reuses the layers of an earlier
 * build through an exported cache (an OCI layout directory, or a real distribution
 * registry on loopback): no RUN executes, every step says CACHED, the image ID is the
 * same. mode=min keeps only the final image's steps, mode=max intermediate stages too;
 * a corrupt cache blob is a miss with a warning and never enters the store.
 */
import test from 'ava';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startRegistry, registryUnavailable, type Registry } from '../registry/helpers.js';
import { canBuild, cleanup, hoist, rootWithBusybox, tempDir, type Run, writeProject } from './helpers.js';

const it = canBuild ? test.serial : test.serial.skip;
const skipRegistry = registryUnavailable();
const itReg = canBuild && !skipRegistry ? test.serial : test.serial.skip;

let work: string;
let dockerConfig: string;
const roots: string[] = [];

test.before(async () => {
  if (!canBuild) return;
  work = await tempDir('hoist-cache-export-');
  dockerConfig = join(work, 'docker-config');
  await mkdir(dockerConfig);
});

test.after.always(async () => {
  if (work) await cleanup(work, ...roots);
});

/** A fresh root with only the busybox base in it (what a new CI machine has). */
async function freshRoot(): Promise<string> {
  const r = await rootWithBusybox();
  roots.push(r);
  return r;
}

const project = (name: string, files: Record<string, string>): Promise<string> => writeProject(join(work, name), files);

/** `hoist build --progress plain` with an iidfile; returns the run and the image ID. */
async function build(root: string, dir: string, extra: string[]): Promise<Run & { id: string }> {
  const iid = join(work, `iid-${Math.random().toString(36).slice(2)}`);
  const r = await hoist(root, ['build', '--progress', 'plain', '--iidfile', iid, ...extra, dir], { env: { DOCKER_CONFIG: dockerConfig } });
  const id = existsSync(iid) ? (await readFile(iid, 'utf8')).trim() : '';
  return { ...r, id };
}

/** Step name → outcome (CACHED, DONE, ERROR) from plain progress. */
function outcomes(stderr: string): Map<string, string> {
  const names = new Map<string, string>();
  const out = new Map<string, string>();
  for (const l of stderr.split('\n')) {
    const m = /^#(\d+) (.*)$/.exec(l);
    if (!m) continue;
    const [, n, rest] = m as unknown as [string, string, string];
    if (rest === 'CACHED' || /^DONE /.test(rest) || /^ERROR/.test(rest)) {
      const name = names.get(n);
      if (name) out.set(name, rest.split(/[ :]/)[0]!);
    } else if (!names.has(n)) names.set(n, rest);
  }
  return out;
}

/** The steps (RUN, COPY) and their outcomes. */
function steps(stderr: string): [string, string][] {
  return [...outcomes(stderr)].filter(([name]) => /\] (RUN|COPY) /.test(name));
}

/** Output lines a RUN printed (`#N 0.123 ran-…`): proof that it executed. */
function ran(stderr: string): string[] {
  return stderr.split('\n').filter((l) => /^#\d+ \d+\.\d+ ran-/.test(l)).map((l) => l.replace(/^#\d+ \d+\.\d+ /, ''));
}

const SIMPLE = {
  Dockerfile: 'FROM busybox\nRUN echo ran-one && echo one > /one\nCOPY a.txt /a.txt\nRUN echo ran-two && cat /a.txt /one > /two\n',
  'a.txt': 'hello\n',
};

it('type=local: a fresh root builds from the exported cache: no RUN runs, every step CACHED, same image ID', async (t) => {
  const dir = await project('simple', SIMPLE);
  const cache = join(work, 'cache-local');
  const a = await build(await freshRoot(), dir, ['--cache-to', `type=local,dest=${cache}`]);
  t.is(a.code, 0, a.stderr);
  t.deepEqual(ran(a.stderr).sort(), ['ran-one', 'ran-two'], 'the first build runs both RUN steps');
  t.regex(a.stderr, /#\d+ exporting cache to client directory\n(#\d+ .*\n)*#\d+ writing cache manifest sha256:[a-f0-9]{64} done\n#\d+ DONE/);
  // an OCI image layout holding one hoist cache manifest
  t.deepEqual(JSON.parse(await readFile(join(cache, 'oci-layout'), 'utf8')), { imageLayoutVersion: '1.0.0' });
  const idx = JSON.parse(await readFile(join(cache, 'index.json'), 'utf8')) as { manifests: { digest: string; artifactType?: string; annotations?: Record<string, string> }[] };
  t.is(idx.manifests.length, 1);
  t.is(idx.manifests[0]!.artifactType, 'application/vnd.hoist.cache.v1');
  t.is(idx.manifests[0]!.annotations?.['org.opencontainers.image.ref.name'], 'latest');
  const manifest = JSON.parse(await readFile(join(cache, 'blobs', 'sha256', idx.manifests[0]!.digest.slice(7)), 'utf8')) as { config: { digest: string; mediaType: string }; layers: { digest: string }[] };
  t.is(manifest.config.mediaType, 'application/vnd.hoist.cache.config.v1+json');
  t.is(manifest.layers.length, 3, 'the layers of RUN, COPY, RUN');
  for (const l of manifest.layers) {
    const bytes = await readFile(join(cache, 'blobs', 'sha256', l.digest.slice(7)));
    t.is(`sha256:${createHash('sha256').update(bytes).digest('hex')}`, l.digest);
  }

  const root2 = await freshRoot();
  const b = await build(root2, dir, ['-t', 'fromcache', '--cache-from', `type=local,src=${cache}`]);
  t.is(b.code, 0, b.stderr);
  t.regex(b.stderr, new RegExp(`#\\d+ importing cache manifest from ${cache}\\n#\\d+ DONE`));
  t.deepEqual(ran(b.stderr), [], 'no RUN executed');
  const s = steps(b.stderr);
  t.is(s.length, 3);
  for (const [name, o] of s) t.is(o, 'CACHED', name);
  t.is(b.id, a.id, 'the same image ID (history times kept)');
  // the imported layers are complete: the image runs
  const run = await hoist(root2, ['run', '--rm', 'fromcache', 'cat', '/two']);
  t.is(run.code, 0, run.stderr);
  t.is(run.stdout, 'hello\none\n');
  const check = await hoist(root2, ['system', 'check']);
  t.is(check.code, 0, check.stdout + check.stderr);

  // exporting again into the same directory replaces the entry (same cache, same manifest), atomically
  const c = await build(root2, dir, ['--cache-from', `type=local,src=${cache}`, '--cache-to', `type=local,dest=${cache}`]);
  t.is(c.code, 0, c.stderr);
  const idx2 = JSON.parse(await readFile(join(cache, 'index.json'), 'utf8')) as typeof idx;
  t.deepEqual(idx2.manifests.map((m) => m.digest), [idx.manifests[0]!.digest]);
  t.false((await readdir(cache)).some((n) => n.includes('.tmp-')), 'no temporary files left');
});

it('mode=min exports only the final image\'s steps; mode=max intermediate stages too', async (t) => {
  const dir = await project('stages', {
    Dockerfile: 'FROM busybox AS build\nRUN echo ran-build-stage && echo built > /artifact\n\nFROM busybox\nRUN echo ran-final-stage && echo final > /final\nCOPY --from=build /artifact /artifact\n',
  });
  const min = join(work, 'cache-min');
  const max = join(work, 'cache-max');
  const a = await build(await freshRoot(), dir, ['--cache-to', `type=local,dest=${min}`, '--cache-to', `type=local,dest=${max},mode=max`]);
  t.is(a.code, 0, a.stderr);
  t.deepEqual(ran(a.stderr).sort(), ['ran-build-stage', 'ran-final-stage']);

  const fromMin = await build(await freshRoot(), dir, ['--cache-from', `type=local,src=${min}`]);
  t.is(fromMin.code, 0, fromMin.stderr);
  t.deepEqual(ran(fromMin.stderr), ['ran-build-stage'], 'mode=min: the intermediate stage runs again');
  const om = outcomes(fromMin.stderr);
  t.is(om.get('[stage-1 2/3] RUN echo ran-final-stage && echo final > /final'), 'CACHED');
  t.is(om.get('[stage-1 3/3] COPY --from=build /artifact /artifact'), 'CACHED');
  t.is(om.get('[build 2/2] RUN echo ran-build-stage && echo built > /artifact'), 'DONE');
  t.is(fromMin.id, a.id);

  const fromMax = await build(await freshRoot(), dir, ['--cache-from', `type=local,src=${max}`]);
  t.is(fromMax.code, 0, fromMax.stderr);
  t.deepEqual(ran(fromMax.stderr), [], 'mode=max: nothing runs');
  for (const [name, o] of steps(fromMax.stderr)) t.is(o, 'CACHED', name);
  t.is(fromMax.id, a.id);
});

it('a corrupt blob in a local cache is a miss with a warning: the step runs, nothing corrupt enters the store', async (t) => {
  const dir = await project('corrupt', SIMPLE);
  const cache = join(work, 'cache-corrupt');
  const a = await build(await freshRoot(), dir, ['--cache-to', `type=local,dest=${cache}`]);
  t.is(a.code, 0, a.stderr);
  const idx = JSON.parse(await readFile(join(cache, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
  const manifest = JSON.parse(await readFile(join(cache, 'blobs', 'sha256', idx.manifests[0]!.digest.slice(7)), 'utf8')) as { layers: { digest: string }[] };
  const victim = manifest.layers[0]!.digest;
  const p = join(cache, 'blobs', 'sha256', victim.slice(7));
  const bytes = await readFile(p);
  bytes[bytes.length >> 1] ^= 0xff;
  await writeFile(p, bytes);
  const badDigest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

  const root2 = await freshRoot();
  const b = await build(root2, dir, ['--cache-from', `type=local,src=${cache}`]);
  t.is(b.code, 0, b.stderr);
  t.regex(b.stderr, new RegExp(`WARN: cache blob ${victim} from ${cache} does not match its digest \\(corrupt or altered\\); running the step`));
  const notCached = steps(b.stderr).filter(([, o]) => o !== 'CACHED');
  t.is(notCached.length, 1, 'only the step whose blob is corrupt runs');
  t.is(notCached[0]![1], 'DONE');
  t.true(ran(b.stderr).length <= 1);
  const blobs = await readdir(join(root2, 'blobs', 'sha256'));
  t.false(blobs.includes(badDigest.slice(7)), 'the corrupt content is not in the store');
  const check = await hoist(root2, ['system', 'check']);
  t.is(check.code, 0, check.stdout + check.stderr);
  const tmp = await readdir(join(root2, 'tmp')).catch(() => [] as string[]);
  t.deepEqual(tmp.filter((n) => n.includes('cache-import')), []);
});

it('secrets never enter the exported cache', async (t) => {
  const dir = await project('secret', {
    Dockerfile: 'FROM busybox\nRUN --mount=type=secret,id=tok,env=TOK echo ran-secret && test "$TOK" = s3cr3t-value-4711 && echo ok > /ok\n',
  });
  const cache = join(work, 'cache-secret');
  const a = await hoist(await freshRoot(), ['build', '--progress', 'plain', '--secret', 'id=tok,env=TOK', '--cache-to', `type=local,dest=${cache},mode=max`, dir], { env: { TOK: 's3cr3t-value-4711' } });
  t.is(a.code, 0, a.stderr);
  t.deepEqual(ran(a.stderr), ['ran-secret']);
  const files = await readdir(join(cache, 'blobs', 'sha256'));
  t.true(files.length >= 3);
  for (const f of [...files.map((n) => join(cache, 'blobs', 'sha256', n)), join(cache, 'index.json')]) {
    t.false((await readFile(f)).includes('s3cr3t-value-4711'), f);
  }
});

it('flag errors are usage errors (exit 125) naming the field', async (t) => {
  const root = await freshRoot();
  const dir = await project('flags', SIMPLE);
  for (const [flag, spec, re] of [
    ['--cache-to', 'type=gha', /--cache-to type=gha is not supported by hoist/],
    ['--cache-to', 'type=local', /--cache-to type=local needs dest=DIRECTORY/],
    ['--cache-to', 'type=local,dest=x,mode=all', /--cache-to: invalid mode "all"/],
    ['--cache-to', 'type=registry', /--cache-to type=registry needs ref=/],
    ['--cache-from', 'type=local,src=x,colour=red', /--cache-from: unknown field "colour"/],
  ] as const) {
    const r = await hoist(root, ['build', flag, spec, dir]);
    t.is(r.code, 125, `${flag} ${spec}: ${r.stderr}`);
    t.regex(r.stderr, re);
  }
  // a cache that is not there is reported on its import step; the build goes on
  const r = await build(root, dir, ['--cache-from', `type=local,src=${join(work, 'no-such-cache')}`]);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stderr, /#\d+ importing cache manifest from .*no-such-cache\n#\d+ ERROR: .*index\.json: not found/);
  // a failed export fails the build, unless ignore-error=true
  const bad = `type=registry,ref=127.0.0.1:1/nothing/here:cache`;
  const f = await build(root, dir, ['--cache-to', bad]);
  t.is(f.code, 1, f.stderr);
  t.regex(f.stderr, /#\d+ exporting cache to registry\n(#\d+ .*\n)*#\d+ ERROR: /);
  t.regex(f.stderr, /failed to export the build cache to 127\.0\.0\.1:1\/nothing\/here:cache: /);
  const g = await build(root, dir, ['--cache-to', `${bad},ignore-error=true`]);
  t.is(g.code, 0, g.stderr);
  t.regex(g.id, /^sha256:/);
});

let reg: Registry | undefined;
test.after.always(async () => {
  await reg?.stop();
});

itReg('type=registry: the cache round trip through a real registry; a second export uploads no layer', async (t) => {
  reg = await startRegistry();
  const dir = await project('registry', SIMPLE);
  const ref = `${reg.host}/hoist/cache:buildcache`;
  const a = await build(await freshRoot(), dir, ['--cache-to', `type=registry,ref=${ref},mode=max`]);
  t.is(a.code, 0, a.stderr);
  t.regex(a.stderr, /#\d+ exporting cache to registry\n/);
  t.regex(a.stderr, /writing cache manifest sha256:[a-f0-9]{64} done/);
  t.is(a.stderr.match(/writing layer sha256:[a-f0-9]{64} done/g)?.length, 3, 'three layers uploaded');

  const root2 = await freshRoot();
  const b = await build(root2, dir, ['--cache-from', `type=registry,ref=${ref}`, '--cache-to', `type=registry,ref=${ref}`]);
  t.is(b.code, 0, b.stderr);
  t.regex(b.stderr, new RegExp(`#\\d+ importing cache manifest from ${ref.replace(/[.:/]/g, '\\$&')}\\n#\\d+ DONE`));
  t.deepEqual(ran(b.stderr), [], 'no RUN executed');
  const s = steps(b.stderr);
  t.is(s.length, 3);
  for (const [name, o] of s) t.is(o, 'CACHED', name);
  t.is(b.id, a.id);
  t.is(b.stderr.match(/writing layer sha256:[a-f0-9]{64} \(already there\) done/g)?.length, 3, 'the re-export finds every layer in the registry');

  // a missing cache tag (the first CI run) is an error on the import step, not a failed build
  const c = await build(await freshRoot(), dir, ['--cache-from', `${reg.host}/hoist/cache:nothing-here`]);
  t.is(c.code, 0, c.stderr);
  t.regex(c.stderr, /importing cache manifest from .*nothing-here\n#\d+ ERROR: /);
  t.deepEqual(ran(c.stderr).sort(), ['ran-one', 'ran-two']);
});
