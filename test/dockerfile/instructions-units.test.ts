import test from 'ava';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { INSTRUCTIONS, INSTRUCTION_NAMES, MOUNT_OPTIONS } from '../../grammar/instructions.js';
import { applyChmod, ChmodSyntaxError, parseChmod, type ChmodOp } from '../../src/dockerfile/chmod.js';
import { DurationError, formatGoDuration, parseGoDuration } from '../../src/dockerfile/instructions/duration.js';
import { csvFields, goBool, parseMount, ramInBytes } from '../../src/dockerfile/instructions/mounts.js';
import { InstructionProblem, suggest } from '../../src/dockerfile/instructions/problem.js';
import { parseDockerfile } from '../../src/dockerfile/parser.js';
import { parseInstruction } from '../../src/dockerfile/instructions.js';

// ---------------------------------------------------------------- chmod

test('chmod: octal values up to 07777', (t) => {
  t.deepEqual(parseChmod('755'), { kind: 'octal', text: '755', mode: 0o755 });
  t.deepEqual(parseChmod('0000644'), { kind: 'octal', text: '0000644', mode: 0o644 });
  t.deepEqual(parseChmod('7777'), { kind: 'octal', text: '7777', mode: 0o7777 });
  for (const bad of ['10000', '9', '08', '0o755', '7a', '1_0']) {
    const e = t.throws(() => parseChmod(bad), { instanceOf: ChmodSyntaxError })!;
    t.is(e.message, `invalid chmod parameter: '${bad}'. it should be octal string and between 0 and 07777`);
  }
});

test('chmod: symbolic syntax errors', (t) => {
  for (const bad of ['', 'u', 'ug', 'x', 'u+r,', 'u+z', 'a=rwx,,g+w', 'u+r g+w', 'U+x', '+7', 'r+w', 'u*x']) {
    const e = t.throws(() => parseChmod(bad), { instanceOf: ChmodSyntaxError }, bad)!;
    t.true(e.message.startsWith(`invalid chmod parameter: '${bad}'`), e.message);
  }
});

function ops(mode: string): ChmodOp[] {
  const spec = parseChmod(mode);
  return spec.kind === 'symbolic' ? spec.ops : [];
}

test('chmod: symbolic modes parse to setmode(3) steps', (t) => {
  t.deepEqual(parseChmod('u+x,g-w'), { kind: 'symbolic', text: 'u+x,g-w', ops: [{ op: '-', bits: 0o020 }, { op: '+', bits: 0o100 }] });
  t.deepEqual(ops('a=rX'), [
    // `=` clears the class then sets; runs of +/- merge, so the clear leaves out the bits set again
    { op: '-', bits: 0o6333 }, { op: '+', bits: 0o444 }, { op: 'X', bits: 0o111 },
  ]);
  // a copy with `=` does its own clearing (of the rwx bits only: set-id bits stay, as in BSD)
  t.deepEqual(ops('g=u'), [
    { op: 'u', bits: 0o7777, copy: { clear: true, set: true, user: false, group: true, other: false } },
  ]);
});

test('chmod: applying symbolic modes (table from chmod(1) semantics, umask 0)', (t) => {
  const cases: [string, number, boolean, number][] = [
    ['u+x', 0o644, false, 0o744],
    ['u+x,g-w', 0o664, false, 0o744],
    ['go-w', 0o777, false, 0o755],
    ['u=rwx,go=rx', 0o000, false, 0o755],
    ['go=', 0o777, false, 0o700],
    ['go=u-w', 0o700, false, 0o755],
    ['a+X', 0o644, false, 0o644],
    ['a+X', 0o644, true, 0o755],
    ['a+X', 0o744, false, 0o755],
    ['=rw,+X', 0o111, false, 0o777],
    ['+x', 0o600, false, 0o711],
    ['u+s,g+s', 0o755, false, 0o6755],
    ['o+s', 0o755, false, 0o755],
    ['+t', 0o755, false, 0o1755],
    ['o=u', 0o640, false, 0o646],
    ['a-rwx', 0o7777, false, 0o7000],
    ['u+r-w+x', 0o222, false, 0o522],
  ];
  for (const [mode, from, dir, want] of cases) {
    t.is(applyChmod(parseChmod(mode), from, dir).toString(8), want.toString(8), `${mode} on ${from.toString(8)}${dir ? ' (dir)' : ''}`);
  }
  t.is(applyChmod(parseChmod('0640'), 0o777, false), 0o640);
});

// BuildKit applies modes with BSD's setmode(3); GNU chmod differs in two corners, where BSD's answer is expected:
// a copy (`g=u`) leaves the set-id bits alone, and `X` looks at the mode before the whole change.
const BSD_NOT_GNU: Record<string, number> = {
  'g=u 2750': 0o2770,
  'u=o 4755': 0o4555,
  'u-x,a+X 700': 0o711,
  'u=rwx,g=u-w,o=g-x 2750': 0o2754,
};

test('chmod: agrees with the system chmod on regular files (except the BSD/GNU corners)', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'hoist-chmod-'));
  try {
    const file = join(dir, 'f');
    writeFileSync(file, '');
    const modes = ['u+x', 'g-w', 'o=r', 'a=rw', 'ug+rwx', 'go-rwx', 'u=rw,g=r,o=', 'g=u', 'o=g', 'u=o', 'g+u', 'o-u', 'a+X', 'u-x,a+X',
      'ug=rX', 'u+s', 'g+s', 'a-s', 'u=rwx,g=u-w,o=g-x', 'go+r-w', 'a=', 'u+rw,o-rwx'];
    const starts = [0o000, 0o644, 0o755, 0o700, 0o111, 0o4755, 0o2750, 0o666];
    for (const mode of modes) {
      for (const start of starts) {
        chmodSync(file, start);
        execFileSync('chmod', [mode, file]);
        const want = BSD_NOT_GNU[`${mode} ${start.toString(8)}`] ?? statSync(file).mode & 0o7777;
        t.is(applyChmod(parseChmod(mode), start, false).toString(8), want.toString(8), `${mode} on ${start.toString(8)}`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------- durations

test('Go durations', (t) => {
  const ok: [string, bigint][] = [
    ['0', 0n], ['-0', 0n], ['1ns', 1n], ['1us', 1000n], ['1µs', 1000n], ['1μs', 1000n], ['1.5ms', 1_500_000n], ['30s', 30_000_000_000n],
    ['1m30s', 90_000_000_000n], ['1h', 3_600_000_000_000n], ['.5s', 500_000_000n], ['1.s', 1_000_000_000n], ['+2m', 120_000_000_000n],
    ['-1.5h', -5_400_000_000_000n], ['1h1m1s1ms1us1ns', 3_661_001_001_001n], ['0.000000001s', 1n], ['0.0000000019s', 1n],
    ['2562047h47m16.854775807s', 9_223_372_036_854_775_807n],
  ];
  for (const [s, ns] of ok) t.is(parseGoDuration(s), ns, s);
  const bad: [string, string][] = [
    ['', 'time: invalid duration ""'], ['xyz', 'time: invalid duration "xyz"'], ['5', 'time: missing unit in duration "5"'],
    ['5d', 'time: unknown unit "d" in duration "5d"'], ['.', 'time: invalid duration "."'], ['1h.', 'time: invalid duration "1h."'],
    ['2562048h', 'time: invalid duration "2562048h"'], ['1 s', 'time: unknown unit " s" in duration "1 s"'], ['s', 'time: invalid duration "s"'],
  ];
  for (const [s, msg] of bad) t.is(t.throws(() => parseGoDuration(s), { instanceOf: DurationError })!.message, msg, s);
  t.is(formatGoDuration(90_000_000_000n), '1m30s');
  t.is(formatGoDuration(1_500_000n), '1.5ms');
  t.is(formatGoDuration(3_600_000_000_000n), '1h0m0s');
});

// ---------------------------------------------------------------- mount helpers

test('RAM sizes (docker/go-units RAMInBytes)', (t) => {
  const ok: [string, number][] = [['0', 0], ['1024', 1024], ['64m', 64 * 2 ** 20], ['64M', 64 * 2 ** 20], ['1g', 2 ** 30], ['1GiB', 2 ** 30],
    ['1gb', 2 ** 30], ['1.5k', 1536], ['100 kb', 102400], ['10b', 10], ['2t', 2 * 2 ** 40], ['5 ', 5]];
  for (const [s, n] of ok) t.is(ramInBytes(s), n, s);
  for (const s of ['', 'abc', 'm', '-1m', '1x', '1kbb', '1mib2', '1.2.3k', '1kx']) t.is(ramInBytes(s), undefined, s);
});

test('CSV fields (encoding/csv rules)', (t) => {
  t.deepEqual(csvFields('a,b,,c'), ['a', 'b', '', 'c']);
  t.deepEqual(csvFields('"a,b",c'), ['a,b', 'c']);
  t.deepEqual(csvFields('"say ""hi""",x'), ['say "hi"', 'x']);
  t.deepEqual(csvFields('a,'), ['a', '']);
  t.deepEqual(csvFields('""'), ['']);
  for (const bad of ['', 'a"b', '"ab', '"a"b', '"a",b"']) t.throws(() => csvFields(bad), { instanceOf: InstructionProblem }, bad);
});

test('Go booleans and suggestions', (t) => {
  for (const s of ['1', 't', 'T', 'TRUE', 'true', 'True']) t.true(goBool(s));
  for (const s of ['0', 'f', 'F', 'FALSE', 'false', 'False']) t.false(goBool(s));
  for (const s of ['yes', 'tRUE', '', 'on']) t.is(goBool(s), undefined);
  t.is(suggest('FOO', INSTRUCTION_NAMES, false), 'FROM');
  t.is(suggest('foo', INSTRUCTION_NAMES, false), 'from');
  // mixed case gets the lower-case spelling, as BuildKit's suggest package does
  t.is(suggest('Workdri', INSTRUCTION_NAMES, false), 'workdir');
  t.is(suggest('COPY', INSTRUCTION_NAMES, false), undefined);
  t.is(suggest('zzzzzz', INSTRUCTION_NAMES, false), undefined);
});

test('mounts: an expander gives the final mount (frontend second pass)', (t) => {
  const env = new Map([['UID', '1000'], ['T', 'cache'], ['DIR', '/root/.cache']]);
  const expand = (w: string) => w.replace(/\$(\w+)/g, (_, k: string) => env.get(k) ?? '');
  t.deepEqual(parseMount('type=$T,target=$DIR,uid=$UID', expand), {
    spec: 'type=$T,target=$DIR,uid=$UID', type: 'cache', target: '/root/.cache', id: '/root/.cache', sharing: 'shared', uid: 1000, readonly: false,
  });
  t.like(parseMount('type=$T,required'), { unresolved: true });
  const e = t.throws(() => parseMount('type=cache,uid=$UID', (w) => w.replace('$UID', 'abc')), { instanceOf: InstructionProblem })!;
  t.is(e.message, 'invalid value abc for uid');
});

// ---------------------------------------------------------------- grammar table ↔ implementation

const SAMPLE: Record<string, string> = {
  chown: '1:1', chmod: '644', link: '', 'keep-git-dir': '', checksum: 'sha256:abc', unpack: '', exclude: '*.md', from: 'x',
  parents: '', platform: 'linux/amd64', interval: '5s', timeout: '5s', 'start-period': '5s', 'start-interval': '5s', retries: '3',
  mount: 'type=cache,target=/c', network: 'none', security: 'insecure',
};
const LINE: Record<string, string> = {
  add: 'a /b', arg: 'A', cmd: 'x', copy: 'a /b', entrypoint: 'x', env: 'A=1', expose: '80', from: 'img', healthcheck: 'CMD true', label: 'a=b',
  maintainer: 'me', onbuild: 'RUN x', run: 'x', shell: '["sh"]', stopsignal: 'SIGTERM', user: 'u', volume: '/v', workdir: '/w',
};

test('grammar: every instruction and every flag in the table is accepted as documented', (t) => {
  t.deepEqual(Object.keys(LINE).sort(), Object.keys(INSTRUCTIONS).sort());
  for (const [cmd, spec] of Object.entries(INSTRUCTIONS)) {
    t.is(spec.name, cmd.toUpperCase());
    const plain = parseDockerfile(`${spec.name} ${LINE[cmd]}`);
    t.notThrows(() => parseInstruction(plain, plain.instructions[0]), cmd);
    for (const flag of spec.flags) {
      t.true(flag.name in SAMPLE, `sample for --${flag.name}`);
      const word = flag.type === 'bool' ? `--${flag.name}` : `--${flag.name}=${SAMPLE[flag.name]}`;
      const twice = flag.repeatable ? `${word} ${word}` : word;
      const ast = parseDockerfile(`${spec.name} ${twice} ${LINE[cmd]}`);
      t.notThrows(() => parseInstruction(ast, ast.instructions[0]), `${cmd} ${twice}`);
      if (!flag.repeatable) {
        const dup = parseDockerfile(`${spec.name} ${word} ${word} ${LINE[cmd]}`);
        t.throws(() => parseInstruction(dup, dup.instructions[0]), { message: /duplicate flag specified/ }, `${cmd} ${word} twice`);
      }
    }
  }
  // every key of the mount table is understood by the mount parser
  for (const opt of MOUNT_OPTIONS) {
    for (const key of [opt.key, ...opt.aliases]) {
      const e = (() => {
        try {
          parseMount(`type=${opt.types[0]},${key}=x`);
          return undefined;
        } catch (err) {
          return err as Error;
        }
      })();
      t.false(Boolean(e?.message.startsWith('unexpected key') && e.message.includes(' in ')), `${key}: ${e?.message}`);
    }
  }
});
