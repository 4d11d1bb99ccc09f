import { spawn } from 'node:child_process';

/** One measured row of `npm run bench`. */
export interface BenchResult {
  scenario: string;
  /** `hoist`, or the engine it is compared with (`docker`, `buildah`, `floor`, ...). */
  engine: string;
  wallMs: number;
  peakRssKB?: number;
  note?: string;
}

/** A benchmark module exports `scenarios`, each producing rows for one or more engines. */
export interface BenchScenario {
  name: string;
  run(): Promise<BenchResult[]>;
}

const MEASURE = `
import resource, subprocess, sys, time
t = time.monotonic()
r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
wall = (time.monotonic() - t) * 1000
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
sys.stdout.write(f"{wall:.3f} {rss} {r.returncode}\\n")
sys.stderr.write(r.stderr.decode(errors="replace")[-2000:])
`;

/** Runs a command to completion, returning wall time and the peak RSS of its process tree's largest member. */
export function measure(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ wallMs: number; peakRssKB: number; code: number; stderr: string }> {
  return new Promise((resolveP, reject) => {
    const p = spawn('python3', ['-c', MEASURE, cmd, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('error', reject);
    p.on('close', () => {
      const [wall, rss, code] = out.trim().split(' ').map(Number);
      if (Number.isNaN(wall)) reject(new Error(`measure failed: ${err}`));
      else resolveP({ wallMs: wall, peakRssKB: rss, code, stderr: err });
    });
  });
}

/** Median of repeated measurements (wall time), with the largest peak RSS seen. */
export async function repeat(n: number, cmd: string, args: string[], env?: NodeJS.ProcessEnv): Promise<{ wallMs: number; peakRssKB: number }> {
  const walls: number[] = [];
  let rss = 0;
  for (let i = 0; i < n; i++) {
    const r = await measure(cmd, args, env);
    if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
    walls.push(r.wallMs);
    rss = Math.max(rss, r.peakRssKB);
  }
  walls.sort((a, b) => a - b);
  return { wallMs: walls[Math.floor(walls.length / 2)], peakRssKB: rss };
}

/** True when a Docker daemon answers (the reference engine, started by ../shared/tools/reference-docker.sh). */
export async function dockerAvailable(): Promise<boolean> {
  try {
    const r = await measure('docker', ['info']);
    return r.code === 0;
  } catch {
    return false;
  }
}

/** True when Buildah is installed (Debian's `buildah`), the second engine build scenarios compare with. */
export async function buildahAvailable(): Promise<boolean> {
  try {
    return (await measure('buildah', ['--version'])).code === 0;
  } catch {
    return false;
  }
}
