import test from 'ava';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cliScript, cleanup, hoist, makeDockerArchive, secondLayer, filesUnder, makeTar, tempDir } from './helpers.js';

/** Starts `hoist load -i FILE` and SIGKILLs it after `ms` (or lets it finish if it is faster). */
function loadAndKill(root: string, file: string, ms: number): Promise<{ killed: boolean; code: number | null }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [cliScript, 'load', '-i', file], { env: { ...process.env, HOIST_ROOT: root }, stdio: 'ignore' });
    let killed = false;
    const timer = setTimeout(() => {
      killed = p.kill('SIGKILL');
    }, ms);
    p.on('error', reject);
    p.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ killed: killed && code === null, code });
    });
  });
}

test('hoist load killed with SIGKILL at random moments leaves a usable, consistent store', async (t) => {
  const root = await tempDir();
  const work = await tempDir();
  // A big plain layer (slow enough to be killed mid-copy) and a small gzip one.
  const big = await makeTar([
    { name: 'data/', type: 'directory' },
    { name: 'data/random.bin', content: randomBytes(24 * 1024 * 1024) },
  ]);
  const { archive } = await makeDockerArchive({ layers: [{ tar: big }, { tar: await secondLayer(), gzip: true }], tags: ['crash/test:1'] });
  const file = join(work, 'big.tar');
  await writeFile(file, archive);

  // How long an undisturbed load takes here, so the kills spread over the whole of it.
  const scratch = await tempDir();
  const t0 = Date.now();
  t.is((await hoist(scratch, ['load', '-i', file])).code, 0);
  const full = Math.max(Date.now() - t0, 200);
  await cleanup(scratch);

  let killedCount = 0;
  for (let i = 0; i < 8; i++) {
    // Mostly mid-load; the last run may finish, so a completed load after crashed ones is covered too.
    const delay = Math.floor(Math.random() * full * (i === 7 ? 1.5 : 0.8));
    const r = await loadAndKill(root, file, delay);
    if (r.killed) killedCount++;
    const check = await hoist(root, ['system', 'check']);
    t.is(check.code, 0, `after kill at ${delay}ms: ${check.stdout}${check.stderr}`);
    const images = await hoist(root, ['images']);
    t.is(images.code, 0, images.stderr);
    // Either the load completed before the kill, or the image is not there at all: never half an image.
    if (images.stdout.includes('crash/test')) t.is((await hoist(root, ['inspect', '--format', '{{len .RootFS.Layers}}', 'crash/test:1'])).stdout, '2\n');
  }
  t.log(`${killedCount} of 8 loads were killed mid-way (undisturbed load: ${full}ms)`);

  // Leftovers of the killed processes are gone once any command has run, and a re-load works.
  const again = await hoist(root, ['load', '-i', file]);
  t.is(again.code, 0, again.stderr);
  t.is(again.stdout, 'Loaded image: crash/test:1\n');
  t.deepEqual(await filesUnder(join(root, 'tmp')), []);
  t.false((await readdir(root)).some((n) => n.includes('.tmp-') || n === 'index.lock'));
  const final = await hoist(root, ['system', 'check']);
  t.is(final.code, 0, final.stdout);
  t.regex(final.stdout, /ok\n$/);
  // Unreferenced blobs committed by a killed load are garbage, which prune removes.
  t.is((await hoist(root, ['system', 'prune', '-f'])).code, 0);
  t.is((await hoist(root, ['system', 'check'])).code, 0);
  await cleanup(root, work);
});
