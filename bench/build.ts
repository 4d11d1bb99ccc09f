/**
 * Build benchmarks: a two-stage project whose two independent stages each sleep 1 s
 * (they should overlap: about 1 s, not 2), a no-op rebuild, and a rebuild after
 * editing one of 2,000 source files. Beside `docker build` when a daemon answers.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildahAvailable, dockerAvailable, measure, type BenchResult, type BenchScenario } from './lib.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const hoistBin = join(repo, 'bin', 'hoist');
const FILES = 2000;

const DOCKERFILE = `FROM busybox AS a
RUN sleep 1 && echo a > /a.txt

FROM busybox AS b
RUN sleep 1 && echo b > /b.txt

FROM busybox
COPY src /src
RUN find /src -type f | wc -l > /count.txt
COPY --from=a /a.txt /a.txt
COPY --from=b /b.txt /b.txt
`;

interface Setup {
  dir: string;
  ctx: string;
  root: string;
  env: NodeJS.ProcessEnv;
}

function setup(): Setup {
  const dir = mkdtempSync(join(tmpdir(), 'hoist-bench-build-'));
  const ctx = join(dir, 'ctx');
  for (let i = 0; i < FILES; i++) {
    const sub = join(ctx, 'src', `m${i % 20}`);
    mkdirSync(sub, { recursive: true });
    writeFileSync(join(sub, `f${i}.ts`), `export const v${i} = ${i};\n`);
  }
  writeFileSync(join(ctx, 'Dockerfile'), DOCKERFILE);
  const root = join(dir, 'root');
  const env = { ...process.env, HOIST_ROOT: root };
  const base = join(dir, 'busybox.tar');
  execFileSync('bash', [join(repo, 'fixtures', 'busybox', 'make-image.sh'), base], { stdio: 'ignore' });
  execFileSync(process.execPath, [hoistBin, 'load', '-i', base], { env, stdio: 'ignore' });
  return { dir, ctx, root, env };
}

async function timed(engine: string, scenario: string, cmd: string, args: string[], env?: NodeJS.ProcessEnv, note?: string): Promise<BenchResult> {
  const r = await measure(cmd, args, env);
  if (r.code !== 0) throw new Error(`${engine} ${scenario} failed: ${r.stderr.slice(-500)}`);
  return { scenario, engine, wallMs: r.wallMs, peakRssKB: r.peakRssKB, ...(note ? { note } : {}) };
}

/** Runs the three build scenarios for hoist and (when available) docker on the same project. */
async function runAll(): Promise<BenchResult[]> {
  const s = setup();
  const rows: BenchResult[] = [];
  const edit = (): void => writeFileSync(join(s.ctx, 'src', 'm7', 'f1007.ts'), `export const v1007 = ${Date.now()};\n`);
  try {
    const hb = (extra: string[] = []): string[] => [hoistBin, 'build', '--progress', 'plain', ...extra, '-t', 'bench-app', s.ctx];
    rows.push(await timed('hoist', 'build: cold, 2 parallel 1 s stages', process.execPath, hb(), s.env, 'two sleep 1 stages (overlapping) + COPY of 2,000 files'));
    rows.push(await timed('hoist', 'build: no-op rebuild', process.execPath, hb(), s.env, `${FILES} context files, stat cache`));
    edit();
    rows.push(await timed('hoist', 'build: edit 1 of 2,000 files', process.execPath, hb(), s.env));
    if (await dockerAvailable()) {
      // the reference needs its own busybox; the recipe's image is loaded under the same name
      execFileSync('bash', ['-c', `docker load -i ${join(s.dir, 'busybox.tar')}`], { stdio: 'ignore' });
      const db = ['build', '--progress', 'plain', '--network', 'host', '-t', 'bench-app', s.ctx];
      execFileSync('docker', ['builder', 'prune', '-af'], { stdio: 'ignore' });
      rows.push(await timed('docker', 'build: cold, 2 parallel 1 s stages', 'docker', db));
      rows.push(await timed('docker', 'build: no-op rebuild', 'docker', db));
      edit();
      rows.push(await timed('docker', 'build: edit 1 of 2,000 files', 'docker', db));
    }
    if (await buildahAvailable()) {
      // Buildah (Debian's package) with its own storage, the same busybox base and context
      const storage = join(s.dir, 'buildah');
      const g = ['--root', join(storage, 'root'), '--runroot', join(storage, 'run'), '--storage-driver', 'overlay'];
      execFileSync('buildah', [...g, 'pull', '-q', `docker-archive:${join(s.dir, 'busybox.tar')}`], { stdio: 'ignore' });
      const bb = [...g, 'bud', '--isolation', 'chroot', '--network', 'host', '--layers', '-q', '-t', 'bench-app', s.ctx];
      rows.push(await timed('buildah', 'build: cold, 2 parallel 1 s stages', 'buildah', [...bb.slice(0, g.length + 1), '--jobs', '2', ...bb.slice(g.length + 1)]));
      rows.push(await timed('buildah', 'build: no-op rebuild', 'buildah', bb));
      edit();
      rows.push(await timed('buildah', 'build: edit 1 of 2,000 files', 'buildah', bb));
    }
  } finally {
    rmSync(s.dir, { recursive: true, force: true });
  }
  return rows;
}

let all: Promise<BenchResult[]> | undefined;
const pick = (name: string) => async (): Promise<BenchResult[]> => {
  all ??= runAll();
  return (await all).filter((r) => r.scenario === name);
};

export const scenarios: BenchScenario[] = [
  { name: 'build: cold, 2 parallel 1 s stages', run: pick('build: cold, 2 parallel 1 s stages') },
  { name: 'build: no-op rebuild', run: pick('build: no-op rebuild') },
  { name: 'build: edit 1 of 2,000 files', run: pick('build: edit 1 of 2,000 files') },
];
