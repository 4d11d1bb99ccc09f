/**
 * RUN steps through the native sandbox (the code path `hoist run` uses) and stage
 * resolution: duplicate stage names resolved as BuildKit's dispatch states do, with
 * their lint warnings in the progress output; RUN mounts that leave no trace in the
 * layer; --network; the supplementary groups BuildKit gives a USER.
 */
import test from 'ava';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { extraGids } from '../../src/solver/runner.js';
import { canBuild, cleanup, hoist, rootWithBusybox, tempDir, writeProject } from './helpers.js';

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

const project = (name: string, files: Record<string, string>): Promise<string> => writeProject(join(work, name), files);

/** Builds `dir` into a fresh local directory and returns it with the build's stderr. */
async function buildLocal(dir: string, extra: string[] = []): Promise<{ out: string; stderr: string }> {
  const out = join(work, `${dir.split('/').pop()}-out`);
  const r = await hoist(root, ['build', '--progress', 'plain', ...extra, '--output', `type=local,dest=${out}`, dir]);
  if (r.code !== 0) throw new Error(`build failed (${r.code}): ${r.stderr}`);
  return { out, stderr: r.stderr };
}

it('a FROM takes the latest stage of that name defined before it; --from and the warning lines follow BuildKit', async (t) => {
  const dir = await project('dup', {
    Dockerfile: [
      'FROM busybox AS a',
      'RUN echo one > /v',
      'FROM a AS b',
      'RUN cat /v > /b',
      'FROM busybox AS a',
      'RUN echo two > /v',
      'FROM a AS c',
      'RUN cat /v > /c',
      'FROM busybox',
      'COPY --from=a /v /from-a',
      'COPY --from=b /b /from-b',
      'COPY --from=c /c /from-c',
      '',
    ].join('\n'),
  });
  const { out, stderr } = await buildLocal(dir);
  t.is(await readFile(join(out, 'from-b'), 'utf8'), 'one\n', 'b is built on the first a');
  t.is(await readFile(join(out, 'from-c'), 'utf8'), 'two\n', 'c is built on the second a');
  // --from resolves after every stage is known: the last stage of the name
  t.is(await readFile(join(out, 'from-a'), 'utf8'), 'two\n');
  const target = join(work, 'dup-target-out');
  const r = await hoist(root, ['build', '--target', 'a', '--output', `type=local,dest=${target}`, dir]);
  t.is(r.code, 0, r.stderr);
  t.is(await readFile(join(target, 'v'), 'utf8'), 'two\n', '--target takes the last stage of the name');
  const warns = stderr.split('\n').filter((l) => /^#\d+ WARN: /.test(l));
  t.deepEqual(warns.map((l) => l.replace(/^#\d+ /, '')), [
    'WARN: DuplicateStageName: Duplicate stage name "a", stage names should be unique (first defined on line 1) (line 5)',
  ]);
});

it('warns about a reserved stage name, once, with its line', async (t) => {
  const dir = await project('reserved', { Dockerfile: 'FROM busybox AS scratch\nRUN true\n' });
  const { stderr } = await buildLocal(dir);
  const warns = stderr.split('\n').filter((l) => / WARN: /.test(l));
  t.is(warns.length, 1, stderr);
  t.regex(warns[0]!, /WARN: ReservedStageName: Stage name should not use the same name as reserved stage "scratch" \(line 1\)$/);
});

it('secret and tmpfs mounts are there during RUN and leave nothing in the layer', async (t) => {
  const secret = join(work, 'token.txt');
  await writeFile(secret, 's3cr3t');
  const dir = await project('mounts', {
    Dockerfile: [
      'FROM busybox',
      'RUN --mount=type=secret,id=tok cat /run/secrets/tok > /seen-secret',
      'RUN --mount=type=secret,id=tok,target=/deep/dir/tok,env=TOK echo "$TOK" > /seen-env',
      // BuildKit's RUN tmpfs allows exec, unlike docker run --tmpfs
      'RUN --mount=type=tmpfs,target=/scratchpad printf "#!/bin/sh\\necho ran\\n" > /scratchpad/x && chmod +x /scratchpad/x && /scratchpad/x > /seen-tmpfs',
      '',
    ].join('\n'),
  });
  const { out } = await buildLocal(dir, ['--secret', `id=tok,src=${secret}`]);
  t.is(await readFile(join(out, 'seen-secret'), 'utf8'), 's3cr3t');
  t.is(await readFile(join(out, 'seen-env'), 'utf8'), 's3cr3t\n');
  t.is(await readFile(join(out, 'seen-tmpfs'), 'utf8'), 'ran\n');
  t.false(existsSync(join(out, 'run', 'secrets')), 'no secret mount point in the image');
  t.false(existsSync(join(out, 'deep')), 'no parent dirs of a mount point in the image');
  t.false(existsSync(join(out, 'scratchpad')), 'no tmpfs mount point in the image');
});

it('--network=none gives RUN only a loopback; the default is the host network', async (t) => {
  const dir = await project('net', {
    Dockerfile: 'FROM busybox\nRUN --network=none ls /sys/class/net > /none.txt\nRUN ls /sys/class/net > /default.txt\n',
  });
  const { out } = await buildLocal(dir);
  t.is(await readFile(join(out, 'none.txt'), 'utf8'), 'lo\n');
  const host = (await readdir('/sys/class/net')).sort();
  t.deepEqual((await readFile(join(out, 'default.txt'), 'utf8')).trim().split('\n').sort(), host);
});

it('USER gets BuildKit supplementary groups: primary gid and memberships, none but the gid for an explicit group', async (t) => {
  const dir = await project('groups', {
    Dockerfile: [
      'FROM busybox',
      "RUN echo 'app:x:1500:1600::/home/app:/bin/sh' >> /etc/passwd && echo 'appgrp:x:1600:' >> /etc/group && echo 'extra:x:1700:app' >> /etc/group",
      'USER app',
      'RUN id -G > /tmp/implicit.txt',
      'USER 1500:1700',
      'RUN id -G > /tmp/numeric.txt',
      '',
    ].join('\n'),
  });
  const { out } = await buildLocal(dir);
  t.is(await readFile(join(out, 'tmp', 'implicit.txt'), 'utf8'), '1600 1700\n');
  t.is(await readFile(join(out, 'tmp', 'numeric.txt'), 'utf8'), '1700\n');
});

test('extraGids passes only what the sandbox does not add itself', async (t) => {
  const etc = { passwd: 'root:x:0:0:root:/root:/bin/sh\napp:x:1500:1600::/home/app:/bin/sh\n', group: 'root:x:0:\nappgrp:x:1600:\nextra:x:1700:app\nown:x:1600:app\n' };
  const read = async (n: 'passwd' | 'group') => etc[n];
  // implicit: the sandbox adds memberships (1700, 1600); the primary gid is among them
  t.deepEqual(await extraGids('app', 1600, read), []);
  // explicit group: BuildKit wants only the gid; the sandbox's own additions cannot be taken back
  t.deepEqual(await extraGids('app:root', 0, read), [0]);
  // unknown numeric user: no passwd entry, so only the primary gid
  t.deepEqual(await extraGids('4242', 0, read), [0]);
  t.deepEqual(await extraGids('', 0, read), [0]);
});
