/**
 * `hoist run --rm busybox true` against the floor a container start cannot beat here
 * (`unshare -mpf --mount-proc chroot ROOTFS true`), the helper alone (no Node), and
 * `docker run --rm` when a daemon answers. Ratios are hoist / that engine.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { dockerAvailable, repeat, type BenchResult, type BenchScenario } from './lib.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const hoistBin = join(repo, 'bin', 'hoist');
const helper = join(repo, 'native', 'hoist-sandbox');
const RUNS = 15;
const NAME = 'run --rm busybox true';

function busyboxRootfs(dir: string): string {
  const r = join(dir, 'rootfs');
  for (const d of ['bin', 'etc', 'proc', 'dev', 'sys', 'tmp']) mkdirSync(join(r, d), { recursive: true });
  copyFileSync('/bin/busybox', join(r, 'bin', 'busybox'));
  chmodSync(join(r, 'bin', 'busybox'), 0o755);
  for (const a of ['sh', 'true']) symlinkSync('busybox', join(r, 'bin', a));
  writeFileSync(join(r, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  return r;
}

export const scenarios: BenchScenario[] = [
  {
    name: NAME,
    async run(): Promise<BenchResult[]> {
      if (process.getuid?.() !== 0) throw new Error('run the container benchmark as root');
      const dir = mkdtempSync(join(tmpdir(), 'hoist-bench-run-'));
      try {
        const root = join(dir, 'store');
        const tar = join(dir, 'busybox.tar');
        execFileSync('bash', [join(repo, 'fixtures', 'busybox', 'make-image.sh'), tar]);
        const env = { ...process.env, HOIST_ROOT: root };
        execFileSync(process.execPath, [hoistBin, 'load', '-i', tar], { env, stdio: 'ignore' });
        // the first run unpacks the layer snapshot; measure the steady state
        execFileSync(process.execPath, [hoistBin, 'run', '--rm', 'busybox', 'true'], { env, stdio: 'ignore' });
        const rows: BenchResult[] = [];
        const hoist = await repeat(RUNS, process.execPath, [hoistBin, 'run', '--rm', 'busybox', 'true'], env);
        rows.push({ scenario: NAME, engine: 'hoist', ...hoist, note: 'overlay rootfs, full isolation, container record and log' });
        const rootfs = busyboxRootfs(dir);
        const specFile = join(dir, 'spec.json');
        writeFileSync(specFile, JSON.stringify({ rootfs: { path: rootfs }, args: ['true'] }));
        const bare = await repeat(RUNS, 'sh', ['-c', `exec ${helper} 3 3<${specFile}`]);
        rows.push({ scenario: NAME, engine: 'helper', ...bare, note: 'hoist-sandbox alone: the same isolation without Node and the store' });
        const floor = await repeat(RUNS, 'unshare', ['-mpf', '--mount-proc', 'chroot', rootfs, 'true']);
        rows.push({ scenario: NAME, engine: 'floor', ...floor, note: 'unshare -mpf --mount-proc chroot ROOTFS true' });
        if (await dockerAvailable()) {
          const has = spawnSync('docker', ['image', 'inspect', 'busybox'], { stdio: 'ignore' }).status === 0;
          if (has) rows.push({ scenario: NAME, engine: 'docker', ...(await repeat(RUNS, 'docker', ['run', '--rm', 'busybox', 'true'])) });
          else rows.push({ scenario: NAME, engine: 'docker', wallMs: NaN, note: 'no busybox image in the docker daemon' });
        } else {
          rows.push({ scenario: NAME, engine: 'docker', wallMs: NaN, note: 'no docker daemon answered' });
        }
        return rows;
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  },
];
