// Reads ava's TAP output and prints "N passed, N failed"; exits non-zero on any failure
// or when no test ran at all.
import { readFileSync } from 'node:fs';

const [file, status] = process.argv.slice(2);
let passed = 0;
let failed = 0;
for (const line of readFileSync(file, 'utf8').split('\n')) {
  if (/^not ok \d+/.test(line)) {
    if (!/# TODO/.test(line)) failed++;
  } else if (/^ok \d+/.test(line)) {
    if (!/# SKIP/.test(line)) passed++;
  }
}
if (passed + failed === 0 || (Number(status) !== 0 && failed === 0)) failed++;
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
