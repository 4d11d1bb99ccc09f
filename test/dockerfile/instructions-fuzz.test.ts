import test from 'ava';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseDockerfile } from '../../src/dockerfile/parser.js';
import { DockerfileError } from '../../src/dockerfile/errors.js';
import { parseStages } from '../../src/dockerfile/instructions.js';
import { ChmodSyntaxError, parseChmod, applyChmod } from '../../src/dockerfile/chmod.js';
import { parseMount } from '../../src/dockerfile/instructions/mounts.js';
import { InstructionProblem } from '../../src/dockerfile/instructions/problem.js';
import { DurationError, parseGoDuration } from '../../src/dockerfile/instructions/duration.js';
import { dockerfileCorpus, rng } from '../helpers/fuzz.js';

const corpus = dockerfileCorpus();

// pieces that reach the typed layer's branches: flags, mount options, modes, durations, stage syntax
const TOKENS = ['FROM a AS b\n', 'FROM ', ' AS ', 'RUN ', 'COPY ', 'ADD ', 'ONBUILD ', 'HEALTHCHECK ', 'SHELL ', 'ARG ', 'ENV ', 'LABEL ',
  'EXPOSE ', 'VOLUME ', 'USER ', 'WORKDIR ', 'STOPSIGNAL ', 'MAINTAINER ', 'CMD ', 'ENTRYPOINT ', 'NONE', 'CMD',
  '--mount=', 'type=cache,', 'type=secret,', 'type=ssh,', 'type=tmpfs,', 'target=/x,', 'id=', 'required', 'size=1g', 'mode=0', 'uid=', ',',
  '--network=', '--security=', '--chmod=', 'u+x', 'g=u-w', '--from=', '--chown=', '--link', '--exclude=', '--parents', '--checksum=',
  '--keep-git-dir', '--unpack=', '--interval=', '--retries=', '1m', '5', '"', "'", '[', ']', '["a"]', '<<EOF', 'EOF\n', '\n', ' ', '\\\n',
  '\u00a0', '\u200b', '=', '$', '${x}', '-', '--', '0'];

function mutate(src: string, r: () => number): string {
  let s = src;
  const n = 1 + Math.floor(r() * 6);
  for (let i = 0; i < n; i++) {
    const pos = Math.floor(r() * (s.length + 1));
    const op = r();
    if (op < 0.6) s = s.slice(0, pos) + TOKENS[Math.floor(r() * TOKENS.length)] + s.slice(pos);
    else if (op < 0.85) s = s.slice(0, pos) + s.slice(pos + 1 + Math.floor(r() * 12));
    else {
      const from = Math.floor(r() * s.length);
      s = s.slice(0, pos) + s.slice(from, from + Math.floor(r() * 30)) + s.slice(pos);
    }
  }
  return s;
}

test('typed layer: mutated Dockerfiles give stages or a DockerfileError, nothing else', (t) => {
  const seed = 20261122;
  const r = rng(seed);
  let typed = 0;
  let refused = 0;
  for (let i = 0; i < 4000; i++) {
    const src = mutate(corpus[Math.floor(r() * corpus.length)], r);
    let ast;
    try {
      ast = parseDockerfile(src);
    } catch (e) {
      if (!(e instanceof DockerfileError)) t.fail(`parser threw ${String(e)} (seed ${seed}, case ${i})`);
      continue;
    }
    try {
      parseStages(ast);
      typed++;
    } catch (e) {
      if (!(e instanceof DockerfileError)) {
        t.fail(`typed layer threw ${e instanceof Error ? e.stack : String(e)} on case ${i} (seed ${seed}):\n${src}`);
        return;
      }
      t.not(e.code, 'E_INTERNAL', `internal error on case ${i}: ${e.message}\n${src}`);
      t.true(e.location.line >= 1 && e.location.line <= ast.lines.length, `line ${e.location.line} out of range`);
      refused++;
    }
  }
  // both outcomes must occur, or the mutations are not exercising anything
  t.true(typed > 100, `typed ${typed}`);
  t.true(refused > 100, `refused ${refused}`);
});

test('chmod, mount and duration parsers refuse random input only with their own errors', (t) => {
  const r = rng(7);
  const alpha = ['u', 'g', 'o', 'a', '+', '-', '=', 'r', 'w', 'x', 'X', 's', 't', ',', '0', '7', '8', ' ', 'z'];
  const mountAlpha = ['type=', 'bind', 'cache', 'secret', 'ssh', 'tmpfs', ',', '=', '"', 'target', 'id', 'ro', 'rw', 'required', 'size', 'mode',
    'uid', 'gid', 'from', 'source', 'sharing', 'locked', '$', '1', 'x', 'env', '/'];
  const durAlpha = ['1', '0', '.', 'h', 'm', 's', 'ms', 'us', 'µs', 'ns', '-', '+', 'd', ' ', '9'];
  const pick = (a: string[], n: number) => Array.from({ length: n }, () => a[Math.floor(r() * a.length)]).join('');
  for (let i = 0; i < 5000; i++) {
    const mode = pick(alpha, Math.floor(r() * 10));
    try {
      const spec = parseChmod(mode);
      const out = applyChmod(spec, Math.floor(r() * 0o7777), r() < 0.5);
      t.true(out >= 0 && out <= 0o7777);
    } catch (e) {
      if (!(e instanceof ChmodSyntaxError)) t.fail(`chmod ${JSON.stringify(mode)} threw ${String(e)}`);
    }
    const mount = pick(mountAlpha, Math.floor(r() * 14));
    try {
      parseMount(mount);
    } catch (e) {
      if (!(e instanceof InstructionProblem)) t.fail(`mount ${JSON.stringify(mount)} threw ${String(e)}`);
    }
    const dur = pick(durAlpha, Math.floor(r() * 8));
    try {
      parseGoDuration(dur);
    } catch (e) {
      if (!(e instanceof DurationError)) t.fail(`duration ${JSON.stringify(dur)} threw ${String(e)}`);
    }
  }
  t.pass();
});

test('hostile sizes: huge words are refused with short messages', (t) => {
  const big = 'X'.repeat(60_000);
  const cases = [`FROM a\n${big} y`, `FROM a\nRUN --${big} true`, `FROM a\nCOPY --link=${big} a /b`,
    `FROM a\nRUN --mount=type=cache,${'k'.repeat(60_000)}=1 true`, `FROM a\nCOPY --chmod=u+${'r'.repeat(60_000)}z a /b`,
    `FROM a\nHEALTHCHECK --interval=1.${'0'.repeat(60_000)}x CMD true`, `FROM a\nRUN --mount=type=cache,uid=${'9'.repeat(60_000)} true`,
    `FROM a\nRUN --network=${big} true`, `FROM a AS ${big}!`, `FROM a\nHEALTHCHECK --timeout=1${big} CMD x`, `FROM a\nHEALTHCHECK ${big}`];
  for (const text of cases) {
    const err = t.throws(() => parseStages(parseDockerfile(text)), { instanceOf: DockerfileError })! as DockerfileError;
    t.is(err.location.line, text.split('\n').length);
    t.true(err.message.length < 400, `message of ${err.message.length} chars: ${err.message.slice(0, 100)}`);
  }
  // a duplicate huge stage name is a warning (as in BuildKit), kept short too
  const dup = parseStages(parseDockerfile(`FROM a AS x${big}\nFROM b AS x${big}`));
  t.is(dup.warnings.length, 1);
  t.true(dup.warnings[0].message.length < 400);
  // a long but valid value is fine: 1.000…0s is one second
  const ok = parseStages(parseDockerfile(`FROM a\nHEALTHCHECK --interval=1.${'0'.repeat(60_000)}s CMD true`));
  t.like(ok.stages[0].commands[0], { kind: 'healthcheck', health: { interval: 1e9 } });
});
