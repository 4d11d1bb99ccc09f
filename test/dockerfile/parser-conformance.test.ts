import test from 'ava';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseDockerfile, dumpAST } from '../../src/dockerfile/parser.js';
import { sharedDir } from '../helpers/paths.js';

const dir = join(sharedDir, 'conformance', 'buildkit', 'parser-testfiles');
const cases = readdirSync(dir).sort();

test('all 33 BuildKit parser testfiles are present', (t) => {
  t.is(cases.length, 33);
});

for (const name of cases) {
  test(`buildkit testfile ${name} dumps byte-for-byte`, (t) => {
    const text = readFileSync(join(dir, name, 'Dockerfile'), 'utf8');
    const expected = readFileSync(join(dir, name, 'result'), 'utf8');
    const ast = parseDockerfile(text, { file: `${name}/Dockerfile` });
    t.is(dumpAST(ast), expected);
  });
}
