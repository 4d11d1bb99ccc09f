import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import tar from 'tar-stream';
import { dockerAvailable, measure, type BenchResult, type BenchScenario } from './lib.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const hoistBin = join(repo, 'bin', 'hoist');
const LAYER_MB = 200;
const RUNS = 3;

/** 1 MiB blocks, half random and half text, so the layer compresses like real file systems do. */
function* blocks(n: number): Generator<Buffer> {
  const text = Buffer.from('usr/lib/x86_64-linux-gnu/libexample.so.1.2.3 '.repeat(11916)).subarray(0, 512 * 1024);
  for (let i = 0; i < n; i++) yield Buffer.concat([randomBytes(512 * 1024), text]);
}

/** Writes a `docker save` archive with one uncompressed layer holding a LAYER_MB file; streamed, never in memory. */
async function makeArchive(dir: string): Promise<string> {
  const layerPath = join(dir, 'layer.tar');
  const lp = tar.pack();
  const lw = pipeline(lp, createWriteStream(layerPath));
  const size = LAYER_MB * 1024 * 1024;
  await new Promise<void>((res, rej) => {
    const e = lp.entry({ name: 'big/data.bin', size, mode: 0o644, mtime: new Date(0) }, (err) => (err ? rej(err) : res()));
    Readable.from(blocks(LAYER_MB)).pipe(e);
  });
  lp.finalize();
  await lw;
  const h = createHash('sha256');
  const { createReadStream, statSync } = await import('node:fs');
  for await (const c of createReadStream(layerPath)) h.update(c as Buffer);
  const diff = `sha256:${h.digest('hex')}`;
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [diff] } }));
  const cfgHex = createHash('sha256').update(config).digest('hex');
  const out = join(dir, 'archive.tar');
  const p = tar.pack();
  const w = pipeline(p, createWriteStream(out));
  p.entry({ name: `${cfgHex}.json`, size: config.length }, config);
  await new Promise<void>((res, rej) => {
    const e = p.entry({ name: 'l/layer.tar', size: statSync(layerPath).size }, (err) => (err ? rej(err) : res()));
    createReadStream(layerPath).pipe(e);
  });
  const manifest = Buffer.from(JSON.stringify([{ Config: `${cfgHex}.json`, RepoTags: ['bench/big:latest'], Layers: ['l/layer.tar'] }]));
  p.entry({ name: 'manifest.json', size: manifest.length }, manifest);
  p.finalize();
  await w;
  rmSync(layerPath);
  return out;
}

/** Median wall time and largest peak RSS over RUNS runs; `prepare` makes a fresh environment for each. */
async function timed(prepare: () => { cmd: string; args: string[]; env?: NodeJS.ProcessEnv; after?: () => void }): Promise<{ wallMs: number; peakRssKB: number }> {
  const walls: number[] = [];
  let rss = 0;
  for (let i = 0; i < RUNS; i++) {
    const { cmd, args, env, after } = prepare();
    const r = await measure(cmd, args, env);
    after?.();
    if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
    walls.push(r.wallMs);
    rss = Math.max(rss, r.peakRssKB);
  }
  walls.sort((a, b) => a - b);
  return { wallMs: walls[Math.floor(walls.length / 2)]!, peakRssKB: rss };
}

export const scenarios: BenchScenario[] = [
  {
    name: `image: load/save, ${LAYER_MB} MB layer`,
    async run() {
      const dir = mkdtempSync(join(tmpdir(), 'hoist-bench-image-'));
      try {
        const archive = await makeArchive(dir);
        const rows: BenchResult[] = [];
        const root = join(dir, 'root');
        let n = 0;
        const load = await timed(() => {
          const r = `${root}-${n++}`;
          return { cmd: process.execPath, args: [hoistBin, 'load', '-q', '-i', archive], env: { ...process.env, HOIST_ROOT: r }, after: () => rmSync(r, { recursive: true, force: true }) };
        });
        rows.push({ scenario: 'image: load docker archive (200 MB layer)', engine: 'hoist', ...load, note: 'fresh store each run; hash + fsync' });
        const env = { ...process.env, HOIST_ROOT: root };
        const pre = await measure(process.execPath, [hoistBin, 'load', '-q', '-i', archive], env);
        if (pre.code !== 0) throw new Error(pre.stderr);
        for (const format of ['oci', 'docker'] as const) {
          const out = join(dir, `out-${format}.tar`);
          const r = await timed(() => ({ cmd: process.execPath, args: [hoistBin, 'save', '--format', format, '-o', out, 'bench/big'], env, after: () => rmSync(out, { force: true }) }));
          rows.push({ scenario: `image: save --format ${format} (200 MB layer)`, engine: 'hoist', ...r });
        }
        const copy = await timed(() => ({ cmd: 'cp', args: [archive, join(dir, 'copy.tar')], after: () => rmSync(join(dir, 'copy.tar'), { force: true }) }));
        rows.push({ scenario: 'image: load docker archive (200 MB layer)', engine: 'cp', ...copy, note: 'floor: copying the archive once' });
        if (await dockerAvailable()) {
          const dl = await timed(() => ({ cmd: 'docker', args: ['load', '-q', '-i', archive], after: () => void measure('docker', ['rmi', 'bench/big:latest']) }));
          rows.push({ scenario: 'image: load docker archive (200 MB layer)', engine: 'docker', ...dl, note: 'client RSS only; the daemon does the work' });
          await measure('docker', ['load', '-q', '-i', archive]);
          const out = join(dir, 'docker-save.tar');
          const ds = await timed(() => ({ cmd: 'docker', args: ['save', '-o', out, 'bench/big:latest'], after: () => rmSync(out, { force: true }) }));
          rows.push({ scenario: 'image: save --format docker (200 MB layer)', engine: 'docker', ...ds, note: 'client RSS only' });
          await measure('docker', ['rmi', 'bench/big:latest']);
        } else {
          rows.push({ scenario: 'image: load docker archive (200 MB layer)', engine: 'docker', wallMs: NaN, note: 'no docker daemon answers: no reference measurement (start ../shared/tools/reference-docker.sh)' });
        }
        return rows;
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  },
];
