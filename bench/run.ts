/**
 * `npm run bench`: runs every scenario module in bench/ (each exports `scenarios`) and prints
 * one row per engine with the ratio against the reference engine of that scenario.
 * Usage: npm run bench [-- NAME-FILTER]
 */
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchResult, BenchScenario } from './lib.js';

const here = dirname(fileURLToPath(import.meta.url));
const filter = process.argv[2];
const modules = readdirSync(here).filter((f) => f.endsWith('.js') && f !== 'run.js' && f !== 'lib.js').sort();
const rows: BenchResult[] = [];
for (const m of modules) {
  const mod = (await import(join(here, m))) as { scenarios?: BenchScenario[] };
  for (const s of mod.scenarios ?? []) {
    if (filter && !s.name.includes(filter)) continue;
    process.stderr.write(`bench: ${s.name} ...\n`);
    try {
      rows.push(...(await s.run()));
    } catch (e) {
      rows.push({ scenario: s.name, engine: 'hoist', wallMs: NaN, note: `failed: ${(e as Error).message.split('\n')[0]}` });
    }
  }
}
const pad = (s: string, n: number) => s.padEnd(n);
console.log(pad('scenario', 44) + pad('engine', 10) + pad('wall ms', 11) + pad('peak RSS MB', 13) + pad('ratio', 9) + 'note');
for (const r of rows) {
  const hoist = rows.find((x) => x.scenario === r.scenario && x.engine === 'hoist');
  const ratio = hoist && r.engine !== 'hoist' && Number.isFinite(hoist.wallMs) ? (hoist.wallMs / r.wallMs).toFixed(2) + 'x' : '';
  console.log(
    pad(r.scenario, 44) + pad(r.engine, 10) + pad(Number.isFinite(r.wallMs) ? r.wallMs.toFixed(1) : '-', 11) +
      pad(r.peakRssKB ? (r.peakRssKB / 1024).toFixed(1) : '-', 13) + pad(ratio, 9) + (r.note ?? ''),
  );
}
console.log('ratio = hoist wall time / that engine\'s wall time (below 1.00x: hoist is faster)');
