/**
 * Build benchmarks: a two-stage project whose two independent stages each sleep 1 s
 * (they should overlap: about 1 s, not 2), a no-op rebuild, and a rebuild after
 * editing one of 2,000 source files. Beside `docker build` when a daemon answers and
 * Buildah when it is installed (each skipped when missing). Every scenario runs
 * several times per engine and reports the median (a loaded machine varies a lot).
 */
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildahAvailable, dockerAvailable, measure, type BenchResult, type BenchScenario } from './lib.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const hoistBin = join(repo, 'bin', 'hoist');
const FILES = 2000;
/** Runs per scenario and engine (the median is reported): cold builds cost more, so fewer. */
const COLD_RUNS = 3;
const WARM_RUNS = 5;

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
  /** A store with only the base image loaded: each cold build starts from a copy. */
  base: string;
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
  const baseRoot = join(dir, 'root-base');
  cpSync(root, baseRoot, { recursive: true, verbatimSymlinks: true });
  return { dir, ctx, root, base: baseRoot, env };
}

/**
 * Runs one scenario `runs` times (`before` runs untimed ahead of each) and keeps the
 * median wall time and the largest peak RSS.
 */
async function timed(
  engine: string, scenario: string, runs: number, cmd: string, args: string[], env?: NodeJS.ProcessEnv, note?: string, before?: () => void,
): Promise<BenchResult> {
  const walls: number[] = [];
  let rss = 0;
  for (let i = 0; i < runs; i++) {
    before?.();
    const r = await measure(cmd, args, env);
    if (r.code !== 0) throw new Error(`${engine} ${scenario} failed: ${r.stderr.slice(-500)}`);
    walls.push(r.wallMs);
    rss = Math.max(rss, r.peakRssKB);
  }
  walls.sort((a, b) => a - b);
  const spread = runs > 1 ? `median of ${runs} (${walls[0]!.toFixed(0)}-${walls[walls.length - 1]!.toFixed(0)} ms)` : '';
  return { scenario, engine, wallMs: walls[Math.floor(walls.length / 2)]!, peakRssKB: rss, note: [note, spread].filter(Boolean).join('; ') };
}

/** Runs the three build scenarios for hoist and (when available) docker on the same project. */
async function runAll(): Promise<BenchResult[]> {
  const s = setup();
  const rows: BenchResult[] = [];
  let edits = 0;
  const edit = (): void => writeFileSync(join(s.ctx, 'src', 'm7', 'f1007.ts'), `export const v1007 = ${Date.now()}${edits++};\n`);
  const C = 'build: cold, 2 parallel 1 s stages';
  const N = 'build: no-op rebuild';
  const E = 'build: edit 1 of 2,000 files';
  try {
    const hb = (extra: string[] = []): string[] => [hoistBin, 'build', '--progress', 'plain', ...extra, '-t', 'bench-app', s.ctx];
    const freshRoot = (): void => {
      rmSync(s.root, { recursive: true, force: true });
      cpSync(s.base, s.root, { recursive: true, verbatimSymlinks: true });
    };
    rows.push(await timed('hoist', C, COLD_RUNS, process.execPath, hb(), s.env, 'two sleep 1 stages (overlapping) + COPY of 2,000 files', freshRoot));
    rows.push(await timed('hoist', N, WARM_RUNS, process.execPath, hb(), s.env, `${FILES} context files, stat cache`));
    rows.push(await timed('hoist', E, COLD_RUNS, process.execPath, hb(), s.env, undefined, edit));
    if (await dockerAvailable()) {
      // the reference needs its own busybox; the recipe's image is loaded under the same name
      execFileSync('bash', ['-c', `docker load -i ${join(s.dir, 'busybox.tar')}`], { stdio: 'ignore' });
      const db = ['build', '--progress', 'plain', '--network', 'host', '-t', 'bench-app', s.ctx];
      const prune = (): void => void execFileSync('docker', ['builder', 'prune', '-af'], { stdio: 'ignore' });
      rows.push(await timed('docker', C, COLD_RUNS, 'docker', db, undefined, undefined, prune));
      rows.push(await timed('docker', N, WARM_RUNS, 'docker', db));
      rows.push(await timed('docker', E, COLD_RUNS, 'docker', db, undefined, undefined, edit));
    }
    if (await buildahAvailable()) {
      // Buildah (Debian's package) with its own storage, the same busybox base and context
      const storage = join(s.dir, 'buildah');
      const g = ['--root', join(storage, 'root'), '--runroot', join(storage, 'run'), '--storage-driver', 'overlay'];
      const bb = [...g, 'bud', '--isolation', 'chroot', '--network', 'host', '--layers', '-q', '-t', 'bench-app', s.ctx];
      const freshStorage = (): void => {
        execFileSync('buildah', [...g, 'rm', '--all'], { stdio: 'ignore' });
        execFileSync('buildah', [...g, 'rmi', '--all', '--force'], { stdio: 'ignore' });
        execFileSync('buildah', [...g, 'pull', '-q', `docker-archive:${join(s.dir, 'busybox.tar')}`], { stdio: 'ignore' });
      };
      rows.push(await timed('buildah', C, COLD_RUNS, 'buildah', [...bb.slice(0, g.length + 1), '--jobs', '2', ...bb.slice(g.length + 1)], undefined, undefined, freshStorage));
      rows.push(await timed('buildah', N, WARM_RUNS, 'buildah', bb));
      rows.push(await timed('buildah', E, COLD_RUNS, 'buildah', bb, undefined, undefined, edit));
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
