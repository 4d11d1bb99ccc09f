/**
 * `hoist builder prune` and the build cache in `system df` / `system prune`, against
 * real builds: what goes with and without -a, the y/N prompt, a cache mount a running
 * RUN holds, and a prune while a build that reuses cached steps is running.
 */
import test, { type ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { cacheMountName } from '../../src/solver/cachemount.js';
import { canBuild, cleanup, hoist, rootWithBusybox, tempDir, type Run } from './helpers.js';

const it = canBuild ? test.serial : test.serial.skip;

let work: string;
test.before(async () => {
  work = await tempDir();
});
test.after.always(async () => {
  if (work) await cleanup(work);
});

let n = 0;
async function context(dockerfile: string): Promise<string> {
  const dir = join(work, `ctx${++n}`);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'Dockerfile'), dockerfile);
  return dir;
}

async function build(root: string, dir: string, ...args: string[]): Promise<Run> {
  const r = await hoist(root, ['build', '--progress', 'plain', ...args, dir]);
  if (r.code !== 0) throw new Error(`build failed (${r.code}): ${r.stderr}`);
  return r;
}

/** Cache record files under the root. */
async function records(root: string): Promise<string[]> {
  const base = join(root, 'cache', 'index');
  const out: string[] = [];
  for (const d of await readdir(base).catch(() => [] as string[])) for (const f of await readdir(join(base, d))) if (f.endsWith('.json')) out.push(f);
  return out.sort();
}

/** The step lines of a plain-progress build log that ran (not CACHED), by step name. */
function ran(log: string, step: RegExp): boolean {
  const lines = log.split('\n');
  const i = lines.findIndex((l) => step.test(l));
  if (i < 0) throw new Error(`no step ${step} in:\n${log}`);
  const id = /^#(\d+) /.exec(lines[i]!)![1];
  return !lines.some((l) => l === `#${id} CACHED`);
}

async function checkOk(t: ExecutionContext, root: string): Promise<void> {
  const c = await hoist(root, ['system', 'check']);
  t.regex(c.stdout, /: ok\n$/, `${c.stdout}${c.stderr}`);
}

const DOCKERFILE = [
  'FROM busybox AS mid',
  'RUN echo mid > /mid && date +%s%N > /stamp',
  'FROM busybox',
  "RUN --mount=type=cache,target=/c,id=pc sh -c 'echo x >> /c/log; wc -l < /c/log > /count'",
  'COPY --from=mid /mid /mid',
  'RUN echo final > /final',
  '',
].join('\n');

it('builder prune: dangling cache (intermediate stage, cache mount) goes, a tagged image keeps its layers; -a takes all; the next build re-runs what went', async (t) => {
  const root = await rootWithBusybox();
  const dir = await context(DOCKERFILE);
  await build(root, dir, '-t', 'app');
  const recs = await records(root);
  t.is(recs.length, 4, recs.join(' ')); // mid RUN, cache-mount RUN, COPY, RUN
  const mount = join(root, 'cache', 'mounts', cacheMountName({ id: 'pc' }));
  t.true(existsSync(mount));
  t.is((await readFile(join(mount, 'log'), 'utf8')), 'x\n');

  const df = await hoist(root, ['system', 'df']);
  t.is(df.code, 0, df.stderr);
  // 4 records + 1 cache mount; none in use
  t.regex(df.stdout, /^Build Cache\s+5\s+0\s+\S+\s+\S+$/m, df.stdout);
  const dfv = await hoist(root, ['system', 'df', '-v']);
  t.regex(dfv.stdout, /^Build cache usage: /m);
  t.regex(dfv.stdout, /^CACHE ID\s+CACHE TYPE\s+SIZE\s+CREATED\s+LAST USED\s+USAGE\s+SHARED$/m);
  t.regex(dfv.stdout, /\sexec\.cachemount\s/);
  t.is((dfv.stdout.match(/\sregular\s.*\strue$/gm) ?? []).length, 3, dfv.stdout); // the image's three layers

  // no -f and no "y" on stdin: docker's prompt, nothing removed, status 0
  const no = await hoist(root, ['builder', 'prune']);
  t.is(no.code, 0, no.stderr);
  t.is(no.stdout, 'WARNING! This will remove all dangling build cache. Are you sure you want to continue? [y/N] ');
  t.deepEqual(await records(root), recs);
  const no2 = await hoist(root, ['builder', 'prune', '-a'], { stdin: 'n\n' });
  t.regex(no2.stdout, /^WARNING! This will remove all build cache\. Are you sure/);
  t.deepEqual(await records(root), recs);

  // nothing is older than an hour; a large --keep-storage keeps everything
  t.regex((await hoist(root, ['builder', 'prune', '-f', '--filter', 'until=1h'])).stdout, /^Total reclaimed space: 0B\n$/);
  t.regex((await hoist(root, ['builder', 'prune', '-f', '--keep-storage', '10GB'])).stdout, /^Total reclaimed space: 0B\n$/);
  const bad = await hoist(root, ['builder', 'prune', '-f', '--filter', 'color=red']);
  t.is(bad.code, 125);
  t.regex(bad.stderr, /invalid filter 'color'/);

  const blobsBefore = await readdir(join(root, 'blobs', 'sha256'));
  const snapsBefore = await readdir(join(root, 'snapshots'));
  // "y" answers the prompt: the mid stage's record (its layer is in no image) and the cache mount go
  const yes = await hoist(root, ['builder', 'prune'], { stdin: 'y\n' });
  t.is(yes.code, 0, yes.stderr);
  t.regex(yes.stdout, /\[y\/N\] Deleted build cache objects:\n[0-9a-f]{25}\n[0-9a-f]{25}\n\nTotal reclaimed space: \d/, yes.stdout);
  t.is((await records(root)).length, 3);
  t.false(existsSync(mount));
  const blobsAfter = await readdir(join(root, 'blobs', 'sha256'));
  t.is(blobsAfter.length, blobsBefore.length - 1, 'the mid layer blob');
  t.is((await readdir(join(root, 'snapshots'))).length, snapsBefore.length - 1, 'the mid layer snapshot');
  await checkOk(t, root);
  t.is((await hoist(root, ['run', '--rm', 'app', 'cat', '/final', '/mid', '/count'])).stdout, 'final\nmid\n1\n');

  // the next build runs the mid stage again; the image's steps are still cached
  const again = await build(root, dir, '-t', 'app');
  t.true(ran(again.stderr, /\[mid 2\/2\] RUN/), again.stderr);
  t.false(ran(again.stderr, /\[stage-1 4\/4\] RUN echo final/), again.stderr);

  // -a: every record goes (the image's blobs and snapshots stay: the image needs them)
  const all = await hoist(root, ['builder', 'prune', '-af']);
  t.is(all.code, 0, all.stderr);
  t.regex(all.stdout, /^Deleted build cache objects:\n/);
  t.deepEqual(await records(root), []);
  await checkOk(t, root);
  t.is((await hoist(root, ['run', '--rm', 'app', 'cat', '/final'])).stdout, 'final\n');
  const third = await build(root, dir, '-t', 'app');
  t.true(ran(third.stderr, /\[stage-1 2\/4\] RUN --mount/), third.stderr);
  t.true(ran(third.stderr, /\[stage-1 4\/4\] RUN echo final/), third.stderr);
  // the cache mount starts empty again
  t.is((await hoist(root, ['run', '--rm', 'app', 'cat', '/count'])).stdout, '1\n');
  await checkOk(t, root);

  // system prune removes dangling build cache too (the untagged build's records), never the tagged image's
  await build(root, await context('FROM busybox\nRUN echo other > /other\n'), '--output', `type=local,dest=${join(work, 'other-out')}`);
  t.is((await records(root)).length, 5);
  const sp = await hoist(root, ['system', 'prune', '-f']);
  t.is(sp.code, 0, sp.stderr);
  t.regex(sp.stdout, /Deleted build cache objects:\n([0-9a-f]{25}\n){3}\n/);
  t.is((await records(root)).length, 3, 'the three records of the image\'s layers');
  t.is((await hoist(root, ['run', '--rm', 'app', 'cat', '/final'])).stdout, 'final\n');
  await checkOk(t, root);
  await cleanup(root);
});

/** Starts `hoist build` in the background. */
function startBuild(root: string, args: string[]): { done: Promise<Run> } {
  const p = spawn(process.execPath, [join(process.cwd(), 'bin', 'hoist'), 'build', '--progress', 'plain', ...args], {
    env: { ...process.env, HOIST_ROOT: root }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  p.stdout.on('data', (d) => (stdout += d));
  p.stderr.on('data', (d) => (stderr += d));
  return { done: new Promise((resolve) => p.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }))) };
}

async function waitFor(file: string, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!existsSync(file)) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${file}`);
    await sleep(50);
  }
}

it('a prune while a build runs: the build keeps the cached steps it looked up (records, blobs, snapshots) and its cache mount; other cache goes', async (t) => {
  const root = await rootWithBusybox();
  // unrelated cache, not in use by the build below: must go
  await build(root, await context('FROM busybox\nRUN echo unrelated > /u\n'), '--output', `type=local,dest=${join(work, 'u-out')}`);
  const unrelated = await records(root);
  t.is(unrelated.length, 1);
  await sleep(1500); // older than the running build's lease (and its slack)
  // the first two steps get cached without an image (so only the cache keeps their layers)
  const head = ['FROM busybox', 'RUN echo one > /one && date +%s%N > /t1', 'RUN echo two > /two', ''].join('\n');
  const d1 = await context(head);
  await build(root, d1, '--output', `type=local,dest=${join(work, 'head-out')}`);
  const cached = (await records(root)).filter((r) => !unrelated.includes(r));
  t.is(cached.length, 2);

  // the same steps, then a long RUN holding a cache mount: the prune runs during that RUN
  const d2 = await context(head + "RUN --mount=type=cache,target=/c,id=busy sh -c 'touch /c/started; sleep 4; cat /one /two > /three'\n");
  const started = join(root, 'cache', 'mounts', cacheMountName({ id: 'busy' }), 'started');
  const b = startBuild(root, ['-t', 'late', d2]);
  await waitFor(started);
  const p = await hoist(root, ['builder', 'prune', '-af']);
  t.is(p.code, 0, p.stderr);
  const sp = await hoist(root, ['system', 'prune', '-f']);
  t.is(sp.code, 0, sp.stderr);
  const r = await b.done;
  t.is(r.code, 0, r.stderr);
  // the looked-up steps were CACHED and survived the prune; the unrelated record did not; the mount in use is there
  t.false(ran(r.stderr, /\[2\/4\] RUN echo one/), r.stderr);
  t.false(ran(r.stderr, /\[3\/4\] RUN echo two/), r.stderr);
  const left = await records(root);
  for (const c of cached) t.true(left.includes(c), `record ${c} of a running build was pruned`);
  for (const u of unrelated) t.false(left.includes(u), 'the unrelated record was not pruned');
  t.false(p.stdout.includes(cacheMountName({ id: 'busy' }).slice(0, 25)), 'the cache mount in use was not pruned');
  t.true(existsSync(started));
  t.is((await hoist(root, ['run', '--rm', 'late', 'cat', '/three'])).stdout, 'one\ntwo\n');
  await checkOk(t, root);
  // once idle, the mount goes too
  const after = await hoist(root, ['builder', 'prune', '-af']);
  t.true(after.stdout.includes(cacheMountName({ id: 'busy' }).slice(0, 25)), after.stdout);
  t.false(existsSync(started));
  await cleanup(root);
});
