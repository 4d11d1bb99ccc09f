/**
 * RUN --mount=type=cache sharing modes and from= seeding, against real parallel
 * builds: `locked` serialises two stages that run at the same time (the control with
 * `shared` shows they do overlap), `private` gives a RUN that finds the cache in use
 * an instance of its own, and `from=STAGE,source=PATH` starts a cache as a copy of
 * that path.
 */
import test from 'ava';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cacheMountName } from '../../src/solver/cachemount.js';
import { canBuild, cleanup, hoist, rootWithBusybox, tempDir } from './helpers.js';

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

let n = 0;
async function build(dockerfile: string): Promise<string> {
  const dir = join(work, `p${++n}`);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'Dockerfile'), dockerfile);
  const out = join(work, `out${n}`);
  const r = await hoist(root, ['build', '--progress', 'plain', '--output', `type=local,dest=${out}`, dir]);
  if (r.code !== 0) throw new Error(`build failed (${r.code}): ${r.stderr}`);
  return out;
}

/** Two stages whose RUNs use cache `id` at the same time (each holds it 2 s), and a last stage that reads the log they wrote. */
function twoWriters(id: string, sharing: string): string {
  const step = (who: string): string =>
    `RUN --mount=type=cache,target=/c,id=${id},sharing=${sharing} sh -c 'if [ -e /c/busy ]; then echo overlap-${who} >> /c/log; fi; ` +
    `touch /c/busy; echo start-${who} >> /c/log; sleep 2; echo end-${who} >> /c/log; rm -f /c/busy' && touch /done-${who}`;
  return [
    'FROM busybox AS a', step('a'),
    'FROM busybox AS b', step('b'),
    'FROM busybox',
    'COPY --from=a /done-a /a',
    'COPY --from=b /done-b /b',
    `RUN --mount=type=cache,target=/c,id=${id} cp /c/log /log`,
    '',
  ].join('\n');
}

it('sharing=locked: two stages that run in parallel take the cache one after the other', async (t) => {
  const log = (await readFile(join(await build(twoWriters('lk', 'locked')), 'log'), 'utf8')).trim().split('\n');
  t.false(log.some((l) => l.startsWith('overlap')), log.join(' '));
  t.is(log.length, 4);
  // each writer's start is followed by its own end: no interleaving
  t.is(log[1], log[0]!.replace('start', 'end'));
  t.is(log[3], log[2]!.replace('start', 'end'));
});

it('sharing=shared (the default) lets the same two stages use the cache at the same time', async (t) => {
  const log = (await readFile(join(await build(twoWriters('sh', 'shared')), 'log'), 'utf8')).trim().split('\n');
  // both started before either ended (the busy-file check alone races when they start together)
  const order = log.filter((l) => !l.startsWith('overlap'));
  t.true(order[0]!.startsWith('start-') && order[1]!.startsWith('start-'), `the control must overlap: ${log.join(' ')}`);
});

it('sharing=private: a RUN that finds the cache in use gets an instance of its own', async (t) => {
  const step = (who: string): string =>
    `RUN --mount=type=cache,target=/c,id=pv,sharing=private sh -c 'ls /c > /seen-${who}; echo ${who} > /c/mark; sleep 2'`;
  const out = await build([
    'FROM busybox AS a', step('a'),
    'FROM busybox AS b', step('b'),
    'FROM busybox',
    'COPY --from=a /seen-a /seen-a',
    'COPY --from=b /seen-b /seen-b',
    '',
  ].join('\n'));
  // running at the same time, each started from an empty instance
  t.is(await readFile(join(out, 'seen-a'), 'utf8'), '');
  t.is(await readFile(join(out, 'seen-b'), 'utf8'), '');
  const name = cacheMountName({ id: 'pv' });
  const marks = await Promise.all([name, `${name}-1`].map((d) => readFile(join(root, 'cache', 'mounts', d, 'mark'), 'utf8')));
  t.deepEqual(marks.map((m) => m.trim()).sort(), ['a', 'b']);
  t.false(existsSync(join(root, 'cache', 'mounts', `${name}-2`)));
  // a later RUN alone reuses a free instance instead of making a third
  const later = await build("FROM busybox\nRUN --mount=type=cache,target=/c,id=pv,sharing=private cat /c/mark > /mark\n");
  t.regex(await readFile(join(later, 'mark'), 'utf8'), /^[ab]\n$/);
  t.false(existsSync(join(root, 'cache', 'mounts', `${name}-2`)));
});

it('from=STAGE,source=PATH: a new cache starts as a copy of that path and then keeps its own content', async (t) => {
  const out = await build([
    'FROM busybox AS seed',
    'RUN mkdir -p /data/sub && echo seeded > /data/sub/f && echo top > /data/t',
    'FROM busybox',
    'RUN --mount=type=cache,target=/c,id=sd,from=seed,source=/data cat /c/sub/f /c/t > /out && echo added > /c/added',
    'RUN --mount=type=cache,target=/c,id=sd,from=seed,source=/data ls /c > /list',
    // the same id without from= is another cache: empty
    'RUN --mount=type=cache,target=/c,id=sd ls /c > /plain',
    '',
  ].join('\n'));
  t.is(await readFile(join(out, 'out'), 'utf8'), 'seeded\ntop\n');
  t.deepEqual((await readFile(join(out, 'list'), 'utf8')).trim().split('\n'), ['added', 'sub', 't']);
  t.is(await readFile(join(out, 'plain'), 'utf8'), '');
  // the seed stage's files are not changed by writes to the cache
  t.false(existsSync(join(out, 'data')));
});

it('uid/gid/mode make a cache of their own, created with that owner and mode', async (t) => {
  const out = await build([
    'FROM busybox',
    'RUN --mount=type=cache,target=/c,id=pm echo x > /c/f',
    'RUN --mount=type=cache,target=/c,id=pm,uid=1234,gid=99,mode=0700 sh -c \'stat -c "%u %g %a" /c > /st; ls /c > /ls\'',
    '',
  ].join('\n'));
  t.is(await readFile(join(out, 'st'), 'utf8'), '1234 99 700\n');
  t.is(await readFile(join(out, 'ls'), 'utf8'), '');
});

it('one RUN that mounts the same locked cache twice gets one instance (no wait on itself)', async (t) => {
  const out = await build([
    'FROM busybox',
    'RUN --mount=type=cache,target=/c1,id=tw,sharing=locked --mount=type=cache,target=/c2,id=tw,sharing=locked sh -c \'echo x > /c1/f && cat /c2/f > /seen\'',
    '',
  ].join('\n'));
  t.is(await readFile(join(out, 'seen'), 'utf8'), 'x\n');
});
