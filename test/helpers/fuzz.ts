import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixture, sharedDir } from './paths.js';

/** Deterministic PRNG (mulberry32): a failure replays from its seed. */
export function rng(seed: number): () => number {
  return () => {
    seed |= 0;
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Every Dockerfile the project has as fixture text, plus BuildKit's parser testfiles: the fuzzers' seeds. */
export function dockerfileCorpus(): string[] {
  const corpus: string[] = [];
  for (const f of readdirSync(fixture('dockerfiles')).filter((f) => f.endsWith('.Dockerfile'))) {
    corpus.push(readFileSync(fixture('dockerfiles', f), 'utf8'));
  }
  const conf = join(sharedDir, 'conformance', 'buildkit', 'parser-testfiles');
  for (const d of readdirSync(conf)) corpus.push(readFileSync(join(conf, d, 'Dockerfile'), 'utf8'));
  return corpus;
}
