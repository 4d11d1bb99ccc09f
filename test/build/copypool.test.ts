/**
 * Long-lived copy workers (src/solver/copypool.ts): one worker serves spec after spec,
 * a failed spec leaves it usable, each spec's overlay mounts are gone once it answers,
 * and specs that arrive together get a worker each.
 */
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CopyWorkers } from '../../src/solver/copypool.js';
import type { CopySpec } from '../../src/solver/copyworker.js';

const it = process.getuid?.() === 0 ? test.serial : test.serial.skip;

let n = 0;
async function spec(work: string, ctx: string, base: string, path: string, dest: string): Promise<{ file: string; spec: CopySpec }> {
  const dir = join(work, `step${++n}`);
  const s: CopySpec = {
    lowers: [base], upper: join(dir, 'upper'), work: join(dir, 'work'), merged: join(dir, 'merged'), action: 'copy',
    roots: [{ kind: 'context', root: ctx, ignore: [] }], copies: [{ root: 0, path }], dest,
    unpack: false, keepOwner: false, exclude: [], parents: false, scratch: join(dir, 'scratch'),
  };
  for (const d of [s.upper, s.work, s.scratch]) await mkdir(d, { recursive: true });
  const file = join(dir, 'spec.json');
  await writeFile(file, JSON.stringify(s));
  return { file, spec: s };
}

/** The pids of this process's copy workers (unshare execs node, so they are direct children). */
function workerPids(): number[] {
  const out = execFileSync('ps', ['-o', 'pid=,args=', '--ppid', String(process.pid)], { encoding: 'utf8' });
  return out.split('\n').filter((l) => l.includes('copyworker.js --serve')).map((l) => Number(l.trim().split(/\s+/)[0]));
}

it('one worker serves spec after spec, survives a failed one, and undoes its mounts', async (t) => {
  const work = await mkdtemp(join(tmpdir(), 'hoist-copypool-'));
  const pool = new CopyWorkers();
  t.teardown(async () => {
    pool.close();
    await rm(work, { recursive: true, force: true });
  });
  const ctx = join(work, 'ctx');
  const base = join(work, 'base');
  await mkdir(join(ctx, 'src', 'lib'), { recursive: true });
  await mkdir(join(base, 'etc'), { recursive: true });
  await writeFile(join(base, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  await writeFile(join(ctx, 'src', 'a.txt'), 'a\n');
  await writeFile(join(ctx, 'src', 'lib', 'b.txt'), 'b\n');

  const missing = await spec(work, ctx, base, 'nope.txt', '/nope.txt');
  const bad = await pool.run(missing.file);
  t.false(bad.ok);
  t.is(!bad.ok && bad.code, 'E_COPY_SOURCE');

  const good = await spec(work, ctx, base, 'src', '/app/');
  t.deepEqual(await pool.run(good.file), { ok: true });
  t.is(await readFile(join(good.spec.upper, 'app', 'lib', 'b.txt'), 'utf8'), 'b\n');
  t.false(existsSync(join(good.spec.upper, 'etc')), 'the lower layer stays out of the upper dir');

  const pids = workerPids();
  t.is(pids.length, 1, 'the failed spec and the next one ran on the same worker');
  const mounts = readFileSync(`/proc/${pids[0]}/mountinfo`, 'utf8');
  t.false(mounts.includes(good.spec.merged), 'the overlay is unmounted once the worker answers');
  t.false(mounts.includes(missing.spec.merged));

  // two at once: a second worker
  const [x, y] = await Promise.all([spec(work, ctx, base, 'src/a.txt', '/x.txt'), spec(work, ctx, base, 'src/lib', '/y/')]);
  const replies = await Promise.all([pool.run(x.file), pool.run(y.file)]);
  t.deepEqual(replies, [{ ok: true }, { ok: true }]);
  t.is(await readFile(join(x.spec.upper, 'x.txt'), 'utf8'), 'a\n');
  t.is(await readFile(join(y.spec.upper, 'y', 'b.txt'), 'utf8'), 'b\n');
  t.is(workerPids().length, 2);

  pool.close();
  for (let i = 0; i < 50 && workerPids().length > 0; i++) await new Promise((r) => setTimeout(r, 100));
  t.deepEqual(workerPids(), [], 'closed workers exit');
});

it('a spec that cannot be read fails without ending the worker; a killed worker is replaced', async (t) => {
  const work = await mkdtemp(join(tmpdir(), 'hoist-copypool-'));
  const pool = new CopyWorkers();
  t.teardown(async () => {
    pool.close();
    await rm(work, { recursive: true, force: true });
  });
  const ctx = join(work, 'ctx');
  const base = join(work, 'base');
  await mkdir(ctx, { recursive: true });
  await mkdir(base, { recursive: true });
  await writeFile(join(ctx, 'f'), 'f');
  const first = await spec(work, ctx, base, 'f', '/f');
  t.deepEqual(await pool.run(first.file), { ok: true });
  const [pid] = workerPids();
  // a spec file that is not JSON makes the worker answer with an error, not die
  const junk = join(work, 'junk.json');
  await writeFile(junk, '{');
  const r = await pool.run(junk);
  t.false(r.ok);
  t.deepEqual(workerPids(), [pid!]);
  process.kill(pid!, 'SIGKILL');
  for (let i = 0; i < 50 && workerPids().includes(pid!); i++) await new Promise((res) => setTimeout(res, 50));
  await new Promise((res) => setTimeout(res, 200)); // the pool hears of the exit
  const second = await spec(work, ctx, base, 'f', '/g');
  t.deepEqual(await pool.run(second.file), { ok: true });
  t.is(await readFile(join(second.spec.upper, 'g'), 'utf8'), 'f');
  t.notDeepEqual(workerPids(), [pid!]);
});
