import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { repeat, type BenchScenario } from './lib.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** A 10,000-line Dockerfile made of the project's own fixtures, repeated. */
function bigDockerfile(): string {
  const parts = ['run', 'copy-add', 'env-label-arg', 'heredocs'].map((n) =>
    readFileSync(join(repo, 'fixtures', 'dockerfiles', `${n}.Dockerfile`), 'utf8').replace(/^FROM .*\n/m, ''));
  const lines: string[] = ['FROM busybox'];
  while (lines.length < 10000) for (const p of parts) lines.push(...p.trimEnd().split('\n'));
  return lines.slice(0, 10000).join('\n') + '\n';
}

export const scenarios: BenchScenario[] = [
  {
    name: 'parse: 10,000-line Dockerfile',
    async run() {
      const dir = mkdtempSync(join(tmpdir(), 'hoist-bench-'));
      const file = join(dir, 'Dockerfile');
      writeFileSync(file, bigDockerfile());
      const r = await repeat(5, process.execPath, [join(repo, 'bin', 'hoist'), 'parse', '-f', file]);
      const floor = await repeat(5, process.execPath, ['-e', '0']);
      return [
        { scenario: 'parse: 10,000-line Dockerfile', engine: 'hoist', ...r, note: 'whole CLI process' },
        { scenario: 'parse: 10,000-line Dockerfile', engine: 'node -e 0', ...floor, note: 'process start-up floor' },
      ];
    },
  },
];
