/**
 * Differential conformance: every case in fixtures/build is built with hoist and its
 * image (config, history, final filesystem relative to busybox) compared with the
 * golden the reference engine (Docker 26 / BuildKit) produced; error cases must fail
 * at the same Dockerfile line. No daemon is needed.
 */
import test from 'ava';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { compareGoldens, goldenOf, readImageArchive, type Golden } from '../helpers/imagetree.js';
import { fixture } from '../helpers/paths.js';
import { busyboxArchive, canBuild, cleanup, hoist, rootWithBusybox, tempDir, tool } from './helpers.js';

const casesDir = fixture('build');
const cases = existsSync(casesDir) ? (await readdir(casesDir)).filter((c) => /^(\d+|e\d+)-/.test(c) && existsSync(join(casesDir, c, 'Dockerfile'))).sort() : [];

/**
 * Cases where hoist follows issue 5 rather than the reference: the reference maps an
 * unknown --chown name to 0 silently; hoist refuses it, naming the user or group.
 */
const DIVERGES: Record<string, RegExp> = {
  '61-chown-unknown-name': /unable to find (user|group) nosuch/,
};

/**
 * Differences where the reference's frontend is older than the Dockerfile reference:
 * it accepts a symbolic --chmod but does not apply it; hoist applies it (u=rwx,go=r → 0744).
 */
const NEWER_THAN_REFERENCE: Record<string, RegExp[]> = {
  '17-copy-chmod': [/^tree \/m\/symbolic: expected .*"mode":"0644".*, got .*"mode":"0744"/],
};

let root: string;
let out: string;
const built = new Map<string, string>();

test.before(async () => {
  if (!canBuild || cases.length === 0) return;
  await tool('bash', [join(casesDir, 'prepare.sh')]);
  root = await rootWithBusybox();
  out = await tempDir('hoist-conformance-out-');
});

test.after.always(async () => {
  if (root) await cleanup(root, out);
});

async function lines(file: string): Promise<string[]> {
  if (!existsSync(file)) return [];
  return (await readFile(file, 'utf8')).split('\n').map((l) => l.trim()).filter(Boolean);
}

async function buildCase(c: string): Promise<{ code: number; stderr: string; tag: string }> {
  const dir = join(casesDir, c);
  for (const l of await lines(join(dir, 'images'))) {
    const [name, dep] = l.split('=', 2) as [string, string];
    const r = await hoist(root, ['tag', built.get(dep) ?? `conformance/${dep}:latest`, name]);
    if (r.code !== 0) throw new Error(`tagging ${dep} as ${name}: ${r.stderr}`);
  }
  const args = ['build', '--progress', 'plain', '-f', join(dir, 'Dockerfile'), '-t', `conformance/${c}:latest`];
  for (const a of await lines(join(dir, 'build-args'))) args.push('--build-arg', a);
  for (const t of await lines(join(dir, 'target'))) args.push('--target', t);
  args.push(join(dir, 'context'));
  const r = await hoist(root, args);
  if (r.code === 0) built.set(c, `conformance/${c}:latest`);
  return { code: r.code, stderr: r.stderr, tag: `conformance/${c}:latest` };
}

for (const c of cases) {
  test.serial(c, async (t) => {
    if (!canBuild) {
      t.pass('needs root');
      return;
    }
    const r = await buildCase(c);
    if (DIVERGES[c]) {
      t.not(r.code, 0, 'hoist refuses this build (see DIVERGES)');
      t.regex(r.stderr, DIVERGES[c]!);
      return;
    }
    if (c.startsWith('e')) {
      const [where] = await lines(join(casesDir, c, 'expected-error.txt'));
      t.not(r.code, 0, 'the build must fail');
      if (where && where !== 'Dockerfile:-') t.true(r.stderr.includes(where), `error should point at ${where}:\n${r.stderr.slice(-1500)}`);
      t.false(/internal error|\n\s+at /.test(r.stderr), `no stack traces:\n${r.stderr.slice(-1500)}`);
      return;
    }
    t.is(r.code, 0, r.stderr.slice(-3000));
    if (r.code !== 0) return;
    const tar = join(out, `${c}.tar`);
    const s = await hoist(root, ['save', '-o', tar, r.tag]);
    t.is(s.code, 0, s.stderr);
    const expected = JSON.parse(await readFile(join(casesDir, c, 'golden.json'), 'utf8')) as Golden;
    const img = await readImageArchive(tar);
    const base = await readImageArchive(await busyboxArchive());
    const actual = goldenOf(img, { name: 'busybox:latest', image: base });
    const allowed = NEWER_THAN_REFERENCE[c] ?? [];
    const diff = compareGoldens(expected, actual).filter((d) => !allowed.some((re) => re.test(d)));
    t.deepEqual(diff, [], diff.join('\n'));
  });
}
