/**
 * Layer unpack benchmarks (src/snapshot/unpack.ts): the busybox base layer (~400
 * entries, mostly symlinks), 2,000 small files in 20 directories (as a snapshot, and
 * applied again over the same tree as the copy fallback and ADD --unpack do), one
 * 64 MiB file (streaming throughput and memory) and, as root, 200 whiteouts as an
 * overlay snapshot (device nodes). Each run is a fresh node process that
 * unpacks into a fresh directory, as a cold build does; the row is the time of the
 * unpackLayer call alone (module loading excluded), median of RUNS. GNU tar -xpf of the
 * same layer is the floor. Each runs on the disk and on a tmpfs: on a disk, creating
 * inodes can dominate and varies with the filesystem's state (an ext4 without a journal
 * skips recently deleted inodes, so a disk full of churn makes every create slower);
 * the tmpfs rows show the unpacker's own cost. The last scenario is a cold `hoist build` of fixtures/hello
 * on a store that holds only the loaded busybox image (snapshot unpack included).
 */
import { execFileSync, spawn } from 'node:child_process';
import { cpSync, createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import tar from 'tar-stream';
import { measure, type BenchResult, type BenchScenario } from './lib.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const hoistBin = join(repo, 'bin', 'hoist');
const unpackModule = join(repo, 'dist', 'src', 'snapshot', 'unpack.js');
const RUNS = 7;
const BUILD_RUNS = 5;

const CHILD = `
import { createReadStream, mkdirSync } from 'node:fs';
const [mod, layer, dest, mode, again] = process.argv.slice(1);
const { unpackLayer } = await import(mod);
mkdirSync(dest, { recursive: true });
if (again === '1') await unpackLayer(createReadStream(layer), dest, { mode });
const t0 = performance.now();
const r = await unpackLayer(createReadStream(layer), dest, { mode });
const ms = performance.now() - t0;
process.stdout.write(JSON.stringify({ ms, entries: r.entries, rssKB: process.resourceUsage().maxRSS }) + '\\n');
`;

function child(layer: string, dest: string, mode: string, again: boolean): Promise<{ ms: number; entries: number; rssKB: number }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--input-type=module', '-e', CHILD, unpackModule, layer, dest, mode, again ? '1' : '0'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('error', reject);
    p.on('close', (code) => {
      if (code !== 0) reject(new Error(`unpack child exited ${code}: ${err.trim().split('\n').slice(-3).join(' ')}`));
      else resolve(JSON.parse(out) as { ms: number; entries: number; rssKB: number });
    });
  });
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Median unpack time over RUNS fresh processes, each into a fresh directory under `dir`. */
async function timeUnpack(dir: string, layer: string, mode: string, again: boolean): Promise<{ wallMs: number; peakRssKB: number; entries: number }> {
  const ms: number[] = [];
  let rss = 0;
  let entries = 0;
  for (let i = 0; i < RUNS; i++) {
    const dest = join(dir, `dest-${i}`);
    try {
      const r = await child(layer, dest, mode, again);
      ms.push(r.ms);
      rss = Math.max(rss, r.rssKB);
      entries = r.entries;
    } finally {
      rmSync(dest, { recursive: true, force: true });
    }
  }
  return { wallMs: median(ms), peakRssKB: rss, entries };
}

/** GNU tar -xpf of the same layer into a fresh directory (process start included). */
async function timeTar(dir: string, layer: string): Promise<{ wallMs: number; peakRssKB: number }> {
  const ms: number[] = [];
  let rss = 0;
  for (let i = 0; i < RUNS; i++) {
    const dest = join(dir, `tar-${i}`);
    mkdirSync(dest);
    try {
      const r = await measure('tar', ['-xpf', layer, '-C', dest]);
      if (r.code !== 0) throw new Error(`tar -xpf exited ${r.code}: ${r.stderr}`);
      ms.push(r.wallMs);
      rss = Math.max(rss, r.peakRssKB);
    } finally {
      rmSync(dest, { recursive: true, force: true });
    }
  }
  return { wallMs: median(ms), peakRssKB: rss };
}

/** The busybox image made as fixtures/quickstart.sh does; returns the archive and its one layer tar. */
function busyboxLayer(dir: string): { archive: string; layer: string } {
  const archive = join(dir, 'busybox.tar');
  execFileSync('bash', [join(repo, 'fixtures', 'busybox', 'make-image.sh'), archive], { stdio: 'ignore' });
  const x = join(dir, 'busybox-archive');
  mkdirSync(x);
  execFileSync('tar', ['-xf', archive, '-C', x]);
  const manifest = JSON.parse(readFileSync(join(x, 'manifest.json'), 'utf8')) as { Layers: string[] }[];
  return { archive, layer: join(x, manifest[0]!.Layers[0]!) };
}

/** 2,000 files of 20–4,000 bytes in 20 directories, plus 100 symlinks and 100 hardlinks. */
async function smallFilesLayer(dir: string): Promise<string> {
  const out = join(dir, 'small.tar');
  const p = tar.pack();
  const w = pipeline(p, createWriteStream(out));
  const mtime = new Date(1_700_000_000_000);
  for (let d = 0; d < 20; d++) p.entry({ name: `src/m${d}/`, type: 'directory', mode: 0o755, mtime });
  for (let i = 0; i < 2000; i++) {
    const body = Buffer.alloc(20 + ((i * 7919) % 4000), `export const v${i} = ${i};\n`);
    p.entry({ name: `src/m${i % 20}/f${i}.ts`, mode: i % 10 === 0 ? 0o755 : 0o644, uid: 1000, gid: 1000, mtime }, body);
  }
  for (let i = 0; i < 100; i++) p.entry({ name: `links/s${i}`, type: 'symlink', linkname: `../src/m${i % 20}/f${i}.ts`, mtime });
  for (let i = 0; i < 100; i++) p.entry({ name: `links/h${i}`, type: 'link', linkname: `src/m${(i + 1) % 20}/f${i + 1}.ts`, mtime });
  p.finalize();
  await w;
  return out;
}

/** One 64 MiB file (1 MiB blocks written through the pack stream, never whole in memory). */
async function bigFileLayer(dir: string): Promise<string> {
  const out = join(dir, 'big.tar');
  const p = tar.pack();
  const w = pipeline(p, createWriteStream(out));
  const MB = 64;
  await new Promise<void>((res, rej) => {
    const e = p.entry({ name: 'big/data.bin', size: MB * 1024 * 1024, mode: 0o644, mtime: new Date(0) }, (err) => (err ? rej(err) : res()));
    Readable.from((function* () { for (let i = 0; i < MB; i++) yield Buffer.alloc(1024 * 1024, i); })()).pipe(e);
  });
  p.finalize();
  await w;
  return out;
}

/** Where the trees are written: the disk (tmpdir) and, when there is one, a tmpfs (only the code's own cost). */
const places: { label: string; dir: () => string | null }[] = [
  { label: 'disk', dir: () => tmpdir() },
  { label: 'tmpfs', dir: () => (existsSync('/dev/shm') ? '/dev/shm' : null) },
];

/** 200 whiteouts in 10 directories (overlay mode makes each a 0/0 device node), no GNU tar floor. */
async function whiteoutLayer(dir: string): Promise<string> {
  const out = join(dir, 'whiteouts.tar');
  const p = tar.pack();
  const w = pipeline(p, createWriteStream(out));
  for (let i = 0; i < 200; i++) p.entry({ name: `var/lib/d${i % 10}/.wh.f${i}`, mode: 0, mtime: new Date(0) }, '');
  p.finalize();
  await w;
  return out;
}

function layerScenarios(name: string, make: (dir: string) => Promise<string>, mode: string, again = false): BenchScenario[] {
  return places.map(({ label, dir: where }) => ({
    name: `${name}, ${label}`,
    async run() {
      const scenario = `${name}, ${label}`;
      const dir = mkdtempSync(join(tmpdir(), 'hoist-bench-unpack-'));
      const base = where();
      if (!base) return [{ scenario, engine: 'hoist', wallMs: NaN, note: 'no tmpfs at /dev/shm' }];
      const out = base === tmpdir() ? dir : mkdtempSync(join(base, 'hoist-bench-unpack-'));
      try {
        const layer = await make(dir);
        const r = await timeUnpack(out, layer, mode, again);
        const rows: BenchResult[] = [{
          scenario, engine: 'hoist', wallMs: r.wallMs, peakRssKB: r.peakRssKB,
          note: `${r.entries} entries, mode ${mode}${again ? ' over the same tree' : ''}; unpackLayer call only, median of ${RUNS} fresh processes`,
        }];
        if (!again && make !== whiteoutLayer) rows.push({ scenario, engine: 'tar', ...(await timeTar(out, layer)), note: 'floor: GNU tar -xpf, process start included' });
        return rows;
      } finally {
        rmSync(dir, { recursive: true, force: true });
        rmSync(out, { recursive: true, force: true });
      }
    },
  }));
}

export const scenarios: BenchScenario[] = [
  ...layerScenarios('unpack: busybox layer', async (dir) => busyboxLayer(dir).layer, 'overlay'),
  ...layerScenarios('unpack: 2,000 small files', smallFilesLayer, 'overlay'),
  ...layerScenarios('unpack: 2,000 small files again', smallFilesLayer, 'flatten', true),
  ...layerScenarios('unpack: one 64 MiB file', bigFileLayer, 'overlay'),
  ...(process.getuid?.() === 0 ? layerScenarios('unpack: 200 whiteouts', whiteoutLayer, 'overlay') : []),
  {
    name: 'unpack: cold build of fixtures/hello',
    async run() {
      const dir = mkdtempSync(join(tmpdir(), 'hoist-bench-unpack-'));
      try {
        const { archive } = busyboxLayer(dir);
        const base = join(dir, 'root-base');
        execFileSync(process.execPath, [hoistBin, 'load', '-q', '-i', archive], { env: { ...process.env, HOIST_ROOT: base }, stdio: 'ignore' });
        const ms: number[] = [];
        let rss = 0;
        for (let i = 0; i < BUILD_RUNS; i++) {
          const root = join(dir, `root-${i}`);
          cpSync(base, root, { recursive: true, verbatimSymlinks: true });
          try {
            const r = await measure(process.execPath, [hoistBin, 'build', '-q', '-t', 'hello', join(repo, 'fixtures', 'hello')], { ...process.env, HOIST_ROOT: root });
            if (r.code !== 0) throw new Error(`hoist build exited ${r.code}: ${r.stderr}`);
            ms.push(r.wallMs);
            rss = Math.max(rss, r.peakRssKB);
          } finally {
            rmSync(root, { recursive: true, force: true });
          }
        }
        return [{ scenario: 'unpack: cold build of fixtures/hello', engine: 'hoist', wallMs: median(ms), peakRssKB: rss, note: `fresh store with busybox loaded each run; median of ${BUILD_RUNS}` }];
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  },
];
