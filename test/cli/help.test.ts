// The command line itself: help for every command (each loaded on demand), version, typos.
import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { commandLoaders, invokedCommand } from '../../src/cli/commands/index.js';

const bin = fileURLToPath(new URL('../../../bin/hoist', import.meta.url));
const root = mkdtempSync(join(tmpdir(), 'hoist-cli-'));

function hoist(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, '--root', root, ...args], { env: { ...process.env, COLUMNS: '100' } }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

test('hoist --help lists every command', async (t) => {
  const r = await hoist(['--help']);
  t.is(r.code, 0, r.stderr);
  for (const [name] of commandLoaders) t.regex(r.stdout, new RegExp(`^  hoist ${name}\\b`, 'm'), name);
});

test('every command has --help that exits 0 and names its options', async (t) => {
  const results = await Promise.all(commandLoaders.map(async ([name]) => [name, await hoist([name, '--help'])] as const));
  for (const [name, r] of results) {
    t.is(r.code, 0, `${name}: ${r.stderr}`);
    t.regex(r.stdout, new RegExp(`hoist ${name}\\b`), name);
    t.regex(r.stdout, /--help/, name);
  }
});

test('run and exec: -h before the image is hoist\'s help, after it belongs to the command', async (t) => {
  const run = await hoist(['run', '-h']);
  t.is(run.code, 0, run.stderr);
  t.regex(run.stdout, /--pids-limit/);
  t.regex(run.stdout, /--entrypoint/);
  const exec = await hoist(['exec', '--help']);
  t.is(exec.code, 0, exec.stderr);
  t.regex(exec.stdout, /--workdir/);
  const after = await hoist(['run', '--rm', 'no-such-image', '--help']);
  t.is(after.code, 125);
  t.regex(after.stderr, /no such image: no-such-image/);
});

test('--version prints the package version; a typo is a usage error with a suggestion', async (t) => {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  const v = await hoist(['--version']);
  t.is(v.code, 0);
  t.is(v.stdout.trim(), pkg.version);
  const typo = await hoist(['biuld', '.']);
  t.is(typo.code, 125);
  t.regex(typo.stderr, /Did you mean build\?/);
});

test('the invoked command is found past global options, and only known names count', (t) => {
  t.is(invokedCommand(['--root', '/x', 'build', '.']), 'build');
  t.is(invokedCommand(['--debug', 'images']), 'images');
  t.is(invokedCommand(['--root', 'build']), undefined, '"build" is the value of --root here');
  t.is(invokedCommand(['biuld']), undefined);
  t.is(invokedCommand(['--help']), undefined);
});
