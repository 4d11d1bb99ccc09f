import test from 'ava';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseDockerfile } from '../../src/dockerfile/parser.js';
import { DockerfileError } from '../../src/dockerfile/errors.js';
import { dockerfileCorpus, rng } from '../helpers/fuzz.js';

const corpus = dockerfileCorpus();

const TOKENS = ['\\', '`', '\n', '\r\n', '\t', ' ', '#', '# escape=`\n', '# escape=\\\n', '<<EOF', '<<-EOF', "<<'EOF'", 'EOF\n',
  '"', "'", '[', ']', '["a", ', '--', '--mount=', '=', '$', '${', '}', '${a:-', '\u00a0', '\ufeff', '\u0000', 'FROM ', 'RUN ',
  'ONBUILD ', 'HEALTHCHECK ', 'ENV ', 'ARG ', 'LABEL ', 'COPY ', 'ADD ', 'CMD ', '3<<X', 'X\n'];

function mutate(src: string, r: () => number): string {
  let s = src;
  const n = 1 + Math.floor(r() * 8);
  for (let i = 0; i < n; i++) {
    const pos = Math.floor(r() * (s.length + 1));
    const op = r();
    if (op < 0.4) s = s.slice(0, pos) + TOKENS[Math.floor(r() * TOKENS.length)] + s.slice(pos);
    else if (op < 0.7) s = s.slice(0, pos) + s.slice(pos + 1 + Math.floor(r() * 20));
    else if (op < 0.85) {
      const from = Math.floor(r() * s.length);
      s = s.slice(0, pos) + s.slice(from, from + Math.floor(r() * 40)) + s.slice(pos);
    } else s = s.slice(0, pos) + String.fromCharCode(Math.floor(r() * 0x3000)) + s.slice(pos + 1);
  }
  return s;
}

function randomText(r: () => number): string {
  let s = '';
  const n = Math.floor(r() * 30);
  for (let i = 0; i < n; i++) s += r() < 0.7 ? TOKENS[Math.floor(r() * TOKENS.length)] : String.fromCharCode(32 + Math.floor(r() * 95));
  return s;
}

function check(t: import('ava').ExecutionContext, text: string, seed: number): boolean {
  try {
    parseDockerfile(text);
    return true;
  } catch (e) {
    if (e instanceof DockerfileError) {
      // a typed error must carry a usable location
      if (!(e.location.line >= 1)) {
        t.fail(`seed ${seed}: error without a line: ${e.message}`);
        return false;
      }
      return true;
    }
    t.fail(`seed ${seed}: ${(e as Error)?.stack ?? String(e)}\ninput: ${JSON.stringify(text)}`);
    return false;
  }
}

test('5,000 mutated fixtures parse or fail with a DockerfileError', (t) => {
  let ok = 0;
  for (let seed = 1; seed <= 5000; seed++) {
    const r = rng(seed);
    const base = corpus[Math.floor(r() * corpus.length)];
    if (check(t, mutate(base, r), seed)) ok++;
  }
  t.is(ok, 5000);
});

test('2,000 random token soups parse or fail with a DockerfileError', (t) => {
  let ok = 0;
  for (let seed = 1; seed <= 2000; seed++) {
    if (check(t, randomText(rng(seed * 7919)), seed)) ok++;
  }
  t.is(ok, 2000);
});

test('pathological inputs do not hang: long lines, deep continuations, many heredocs', (t) => {
  const cases = [
    'FROM a\nRUN ' + 'x \\\n'.repeat(20000) + 'y\n',
    'FROM a\n' + 'RUN <<E\n'.repeat(2000),
    'FROM a\nRUN ' + '"'.repeat(50000) + '\n',
    'FROM a\nENV ' + 'a=b '.repeat(20000) + '\n',
    'FROM a\nRUN ' + 'x'.repeat(70000) + '\n',
    '#'.repeat(100000),
  ];
  for (const [i, c] of cases.entries()) t.true(check(t, c, -i));
});
