import test from 'ava';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { parseDockerfile, dumpAST, dumpInstruction } from '../../src/dockerfile/parser.js';
import { DockerfileError } from '../../src/dockerfile/errors.js';
import { fixture } from '../helpers/paths.js';

// Goldens recorded with BuildKit's own parser (fixtures/dockerfiles/record-goldens.sh):
// NAME.dump is its dumper's output, NAME.golden.json has per instruction the dump, the
// line range and the heredocs, or the parse error and its line.
interface Golden {
  nodes?: { dump: string; startLine: number; endLine: number; heredocs?: { name: string; content: string; expand: boolean; chomp: boolean; fd?: number }[] }[];
  error?: string;
  line?: number;
}

const files = readdirSync(fixture('dockerfiles')).filter((f) => f.endsWith('.Dockerfile')).sort();

test('fixtures cover the seeds, every instruction family and the parse errors', (t) => {
  t.true(files.length >= 19);
  for (const seed of ['nbsp-pypy', 'scratch-labels', 'static-web']) t.true(files.includes(`${seed}.Dockerfile`));
});

for (const f of files) {
  const base = f.replace(/\.Dockerfile$/, '');
  test(`fixture ${f} parses as BuildKit parses it`, (t) => {
    const text = readFileSync(fixture('dockerfiles', f), 'utf8');
    const golden = JSON.parse(readFileSync(fixture('dockerfiles', `${base}.golden.json`), 'utf8')) as Golden;
    if (golden.error) {
      const e = t.throws(() => parseDockerfile(text, { file: f }), { instanceOf: DockerfileError }) as DockerfileError;
      // BuildKit locates parser-directive errors with its 0-based line counter (an
      // off-by-one: the second line is reported as line 1, the first as no line);
      // hoist reports the real 1-based line.
      const directiveError = /parser directive|escape token/.test(golden.error);
      const line = directiveError ? (golden.line ?? 0) + 1 : golden.line;
      t.is(e.location.line, line ?? -1);
      t.true(e.detail.startsWith(golden.error), `"${e.detail}" should start with "${golden.error}"`);
      t.true(e.format().includes(`${f}:${line}`));
      return;
    }
    const ast = parseDockerfile(text, { file: f });
    t.is(dumpAST(ast), readFileSync(fixture('dockerfiles', `${base}.dump`), 'utf8'));
    t.deepEqual(
      ast.instructions.map((n) => ({
        dump: dumpInstruction(n),
        startLine: n.range.startLine,
        endLine: n.range.endLine,
        heredocs: n.heredocs.length ? n.heredocs.map((h) => ({ name: h.name, content: h.content, expand: h.expand, chomp: h.chomp, ...(h.fd ? { fd: h.fd } : {}) })) : undefined,
      })),
      golden.nodes!.map((n) => ({ ...n, heredocs: n.heredocs ?? undefined })),
    );
    t.false(existsSync(fixture('dockerfiles', `${base}.parse-error`)));
  });
}
