/**
 * `hoist build` end to end on the busybox base: the quick-start example, the image
 * config and history, the cache (no-op rebuilds, edits, touches, ignored files,
 * --no-cache), outputs, and the errors a user meets.
 */
import test from 'ava';
import { existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { cp, mkdir, readFile, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readImageArchive } from '../helpers/imagetree.js';
import { fixture } from '../helpers/paths.js';
import { canBuild, cleanup, hoist, rootWithBusybox, tempDir, tool, writeProject } from './helpers.js';

const sha = (s: string): string => `sha256:${createHash('sha256').update(s).digest('hex')}`;

/** The image ID hoist inspect reports. */
async function imageId(root: string, name: string): Promise<string> {
  const r = await hoist(root, ['inspect', name]);
  return (JSON.parse(r.stdout) as { Id: string }[])[0]!.Id;
}

const it = canBuild ? test.serial : test.serial.skip;

let root: string;
let work: string;

test.before(async () => {
  if (!canBuild) return;
  root = await rootWithBusybox();
  work = await tempDir();
});

test.after.always(async () => {
  if (root) await cleanup(root, work);
});

/** Lines `#N name` followed by `#N CACHED` / `#N DONE`, as a map name → outcome. */
function outcomes(stderr: string): Map<string, string> {
  const names = new Map<string, string>();
  const out = new Map<string, string>();
  for (const l of stderr.split('\n')) {
    const m = /^#(\d+) (.*)$/.exec(l);
    if (!m) continue;
    const [, n, rest] = m as unknown as [string, string, string];
    if (rest === 'CACHED' || /^DONE /.test(rest) || /^ERROR/.test(rest)) {
      const name = names.get(n);
      if (name) out.set(name, rest.split(' ')[0]!);
    } else if (!names.has(n)) names.set(n, rest);
  }
  return out;
}

const project = (name: string, files: Record<string, string>): Promise<string> => writeProject(join(work, name), files);

it('builds the quick-start example, tags it, and writes the image ID (the config digest)', async (t) => {
  const iid = join(work, 'hello.iid');
  const r = await hoist(root, ['build', '--progress', 'plain', '-t', 'hello', '-t', 'hello:v1', '--iidfile', iid, fixture('hello')]);
  t.is(r.code, 0, r.stderr);
  const id = (await readFile(iid, 'utf8')).trim();
  t.regex(id, /^sha256:[0-9a-f]{64}$/);
  t.is(r.stdout.trim(), id);
  t.regex(r.stderr, /#\d+ \[build 4\/4\] RUN printf/);
  t.regex(r.stderr, /naming to docker\.io\/library\/hello:latest done/);
  const tar = join(work, 'hello.tar');
  t.is((await hoist(root, ['save', '-o', tar, 'hello'])).code, 0);
  const img = await readImageArchive(tar);
  t.is(await imageId(root, 'hello'), id);
  const cfg = img.config;
  t.deepEqual(cfg.config?.Cmd, ['hello']);
  t.deepEqual(cfg.config?.Env, ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin']);
  const hist = (cfg.history ?? []).map((h) => h.created_by);
  t.deepEqual(hist.slice(-3), [
    'COPY /out/bin/hello /usr/local/bin/hello # buildkit',
    'COPY /out/share/hello /usr/share/hello # buildkit',
    'CMD ["hello"]',
  ]);
  const hello = img.tree.get('/usr/local/bin/hello');
  t.truthy(hello);
  t.is(hello!.mode, '0755');
  t.is(img.tree.get('/usr/share/hello/greeting.txt')?.sha256, sha('Hello from hoist!\n'));
  // the build stage's files stay out of the final image
  t.false(img.tree.has('/src/greeting.txt'));
  const again = await hoist(root, ['images']);
  t.regex(again.stdout, /hello\s+v1/);
});

it('a no-op rebuild runs nothing and gives the same image ID; an edit re-runs only what depends on it', async (t) => {
  const dir = await project('cache', {
    Dockerfile: 'FROM busybox\nCOPY a.txt /a.txt\nRUN cat /a.txt > /copy-a.txt\nCOPY b.txt /b.txt\nRUN cat /b.txt > /copy-b.txt\n',
    'a.txt': 'alpha\n',
    'b.txt': 'beta\n',
    'ignored.log': 'x\n',
    '.dockerignore': '*.log\n',
  });
  const b1 = await hoist(root, ['build', '--progress', 'plain', '-t', 'cache-test', dir]);
  t.is(b1.code, 0, b1.stderr);
  const b2 = await hoist(root, ['build', '--progress', 'plain', '-t', 'cache-test', dir]);
  t.is(b2.code, 0, b2.stderr);
  t.is(b2.stdout, b1.stdout, 'same image ID');
  for (const [name, o] of outcomes(b2.stderr)) if (/COPY|RUN/.test(name)) t.is(o, 'CACHED', name);

  // touching a file (new mtime, same content) and editing an ignored file change nothing
  const later = new Date(Date.now() + 5000);
  await utimes(join(dir, 'a.txt'), later, later);
  await writeFile(join(dir, 'ignored.log'), 'changed\n');
  const b3 = await hoist(root, ['build', '--progress', 'plain', '-t', 'cache-test', dir]);
  t.is(b3.stdout, b1.stdout);
  for (const [name, o] of outcomes(b3.stderr)) if (/COPY|RUN/.test(name)) t.is(o, 'CACHED', name);

  // editing b.txt re-runs the steps from COPY b.txt on, not the ones before
  await writeFile(join(dir, 'b.txt'), 'beta 2\n');
  const b4 = await hoist(root, ['build', '--progress', 'plain', '-t', 'cache-test', dir]);
  t.is(b4.code, 0, b4.stderr);
  const o4 = outcomes(b4.stderr);
  t.is(o4.get('[2/5] COPY a.txt /a.txt'), 'CACHED');
  t.is(o4.get('[3/5] RUN cat /a.txt > /copy-a.txt'), 'CACHED');
  t.is(o4.get('[4/5] COPY b.txt /b.txt'), 'DONE');
  t.is(o4.get('[5/5] RUN cat /b.txt > /copy-b.txt'), 'DONE');
  t.not(b4.stdout, b1.stdout);

  // --no-cache runs everything
  const b5 = await hoist(root, ['build', '--progress', 'plain', '--no-cache', '-t', 'cache-test', dir]);
  t.is(b5.code, 0, b5.stderr);
  for (const [name, o] of outcomes(b5.stderr)) if (/COPY|RUN/.test(name)) t.is(o, 'DONE', name);
});

it('only stages reachable from --target are built; build args and ARG/ENV reach RUN but ARGs stay out of the config', async (t) => {
  const dir = await project('target', {
    Dockerfile: [
      'ARG GREETING=hi',
      'FROM busybox AS broken',
      'RUN exit 1',
      'FROM busybox AS good',
      'ARG GREETING',
      'ARG WHO=nobody',
      'ENV PLACE=here',
      'RUN echo "$GREETING $WHO $PLACE" > /msg.txt',
      'FROM good AS final',
      'RUN cat /msg.txt',
    ].join('\n') + '\n',
  });
  const r = await hoist(root, ['build', '--progress', 'plain', '--target', 'good', '--build-arg', 'WHO=world', '-t', 'target-test', dir]);
  t.is(r.code, 0, r.stderr);
  t.notRegex(r.stderr, /RUN exit 1/);
  t.notRegex(r.stderr, /RUN cat \/msg\.txt/);
  const tar = join(work, 'target.tar');
  t.is((await hoist(root, ['save', '-o', tar, 'target-test'])).code, 0);
  const img = await readImageArchive(tar);
  t.is(img.tree.get('/msg.txt')?.sha256, sha('hi world here\n'));
  t.deepEqual(img.config.config?.Env, ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'PLACE=here']);
  const runHist = (img.config.history ?? []).map((h) => h.created_by).find((c) => c?.startsWith('RUN'));
  t.is(runHist, 'RUN |2 GREETING=hi WHO=world /bin/sh -c echo "$GREETING $WHO $PLACE" > /msg.txt # buildkit');
});

it('a failing RUN names the command, exit code, stage and line, with its last output', async (t) => {
  const dir = await project('fail', { Dockerfile: 'FROM busybox AS app\nRUN true\nRUN echo first-line && echo last-words && exit 3\n' });
  const r = await hoist(root, ['build', '--progress', 'plain', dir]);
  t.is(r.code, 1);
  t.regex(r.stderr, /did not complete successfully: exit code: 3/);
  t.regex(r.stderr, /Dockerfile:3/);
  t.regex(r.stderr, />>> RUN echo first-line/);
  t.regex(r.stderr, /last-words/);
  t.regex(r.stderr, /stage app/);
  t.notRegex(r.stderr, /\n\s+at /, 'no stack trace');
});

it('a missing COPY source names the file and says when .dockerignore excluded it', async (t) => {
  const dir = await project('missing', { Dockerfile: 'FROM busybox\nCOPY secret.txt /\n', 'secret.txt': 'x', '.dockerignore': 'secret.txt\n' });
  const r = await hoist(root, ['build', dir]);
  t.is(r.code, 1);
  t.regex(r.stderr, /secret\.txt.*not found/);
  t.regex(r.stderr, /excluded by .*\.dockerignore line 1: secret\.txt/);
  t.regex(r.stderr, /Dockerfile:2/);
  const dir2 = await project('missing2', { Dockerfile: 'FROM busybox\nCOPY nothere.txt /\n' });
  const r2 = await hoist(root, ['build', dir2]);
  t.is(r2.code, 1);
  t.regex(r2.stderr, /nothere\.txt.*not found/);
  t.notRegex(r2.stderr, /excluded by/);
});

it('a COPY from the context cannot escape it through a symlink', async (t) => {
  const dir = await project('escape', { Dockerfile: 'FROM busybox\nCOPY link/passwd /stolen\n' });
  const { symlink } = await import('node:fs/promises');
  await symlink('/etc', join(dir, 'link'));
  const r = await hoist(root, ['build', dir]);
  // the link is resolved inside the context, where /etc/passwd does not exist
  t.is(r.code, 1);
  t.regex(r.stderr, /not found/);
});

it('writes the filesystem with --output type=local and type=tar, and an OCI archive with type=oci', async (t) => {
  const dir = await project('outputs', { Dockerfile: 'FROM busybox\nRUN echo made > /made.txt\n' });
  const local = join(work, 'out-local');
  const r1 = await hoist(root, ['build', '--output', `type=local,dest=${local}`, dir]);
  t.is(r1.code, 0, r1.stderr);
  t.is(await readFile(join(local, 'made.txt'), 'utf8'), 'made\n');
  t.true(existsSync(join(local, 'bin', 'busybox')));
  const tarOut = join(work, 'out.tar');
  const r2 = await hoist(root, ['build', '--output', `type=tar,dest=${tarOut}`, dir]);
  t.is(r2.code, 0, r2.stderr);
  t.regex(await tool('tar', ['-tf', tarOut]), /made\.txt/);
  const oci = join(work, 'out-oci.tar');
  const r3 = await hoist(root, ['build', '-t', 'outputs:oci', '--output', `type=oci,dest=${oci}`, dir]);
  t.is(r3.code, 0, r3.stderr);
  t.regex(await tool('tar', ['-tf', oci]), /index\.json/);
});

it('copies a project with heredocs, WORKDIR ownership and metadata instructions into the config', async (t) => {
  const dir = await project('meta', {
    Dockerfile: [
      'FROM busybox',
      'USER nobody',
      'WORKDIR /app',
      'USER root',
      'COPY <<EOF /app/conf.txt',
      'hello $HOSTNAME',
      'EOF',
      'LABEL a=1 b="two words"',
      'EXPOSE 8080 53/udp',
      'VOLUME /data',
      'STOPSIGNAL SIGINT',
      'ENTRYPOINT ["/bin/sh"]',
      'ONBUILD RUN echo child',
    ].join('\n') + '\n',
  });
  const r = await hoist(root, ['build', '-t', 'meta-test', dir]);
  t.is(r.code, 0, r.stderr);
  const tar = join(work, 'meta.tar');
  await hoist(root, ['save', '-o', tar, 'meta-test']);
  const img = await readImageArchive(tar);
  const c = (img.config.config ?? {}) as Record<string, unknown>;
  t.is(c.WorkingDir, '/app');
  t.deepEqual(c.Labels, { a: '1', b: 'two words' });
  t.deepEqual(Object.keys((c.ExposedPorts ?? {}) as object), ['53/udp', '8080/tcp']);
  t.deepEqual(c.Volumes, { '/data': {} });
  t.is(c.StopSignal, 'SIGINT');
  t.deepEqual(c.Entrypoint, ['/bin/sh']);
  t.deepEqual(c.OnBuild, ['RUN echo child']);
  const app = img.tree.get('/app');
  t.is(app?.uid, 65534, 'WORKDIR is created owned by the USER of the time');
  t.is(img.tree.get('/app/conf.txt')?.sha256, sha('hello \n'));
});

it('refuses an unknown --target and a bad tag before building', async (t) => {
  const dir = await project('errs', { Dockerfile: 'FROM busybox AS one\nRUN true\n' });
  const r = await hoist(root, ['build', '--target', 'two', dir]);
  t.is(r.code, 1);
  t.regex(r.stderr, /target stage "two" could not be found/);
  t.regex(r.stderr, /one/);
  const r2 = await hoist(root, ['build', '-t', 'Bad Name', dir]);
  t.not(r2.code, 0);
  t.notRegex(r2.stderr, /#\d+ \[1\/2\]/);
});

void cp;
