import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ShellLexer, type ShellEnv, type ShellLexerOptions } from '../../src/dockerfile/shell.js';
import { goTrimSpace } from '../../src/dockerfile/gotext.js';
import { HoistError } from '../../src/util/errors.js';
import { sharedDir } from '../helpers/paths.js';

const shellDir = join(sharedDir, 'conformance', 'buildkit', 'shell');

/** Expands, returning the word or the HoistError message (any other error fails the test). */
function expand(lx: ShellLexer, word: string, env: ShellEnv): { ok: true; value: string } | { ok: false; message: string } {
  try {
    return { ok: true, value: lx.processWord(word, env) };
  } catch (e) {
    if (e instanceof HoistError && e.code === 'E_SHELL') return { ok: false, message: e.message };
    throw e;
  }
}

// --- BuildKit's envVarTest: one assertion per line --------------------------

{
  const lines = readFileSync(join(shellDir, 'envVarTest'), 'utf8').split('\n');
  const env = new Map([['PWD', '/home'], ['SHELL', 'bash'], ['KOREAN', '한국어'], ['NULL', '']]);
  const lx = new ShellLexer('\\');
  let count = 0;
  lines.forEach((raw, idx) => {
    if (raw.startsWith('#')) return;
    const line = goTrimSpace(raw);
    if (line === '') return;
    const fields = line.split('|');
    const lineNo = idx + 1;
    if (fields.length !== 3) {
      test(`envVarTest:${lineNo} is well-formed`, (t) => t.fail(`expected 3 fields: ${raw}`));
      return;
    }
    const [platform, input, expected] = fields.map(goTrimSpace);
    if (platform === 'W') return;
    count++;
    test(`envVarTest:${lineNo} ${JSON.stringify(input)}`, (t) => {
      t.true(platform === 'A' || platform === 'U', `unknown platform ${platform}`);
      const got = expand(lx, input, env);
      if (expected === 'error') t.false(got.ok, `expected an error, got ${JSON.stringify(got)}`);
      else t.deepEqual(got, { ok: true, value: expected });
    });
  });
  test('envVarTest has its cases', (t) => {
    t.is(count, 228, 'envVarTest has 228 A/U cases');
  });
}

// --- BuildKit's wordsTest ---------------------------------------------------

{
  const lines = readFileSync(join(shellDir, 'wordsTest'), 'utf8').split('\n');
  const env = new Map<string, string>();
  const lx = new ShellLexer('\\');
  let count = 0;
  lines.forEach((line, idx) => {
    if (line.startsWith('#') || line === '') return;
    if (line.startsWith('ENV ')) {
      // Trailing spaces are significant here: `ENV trailing=ab c   `.
      const kv = line.slice(3).replace(/^ +/, '');
      const eq = kv.indexOf('=');
      if (eq < 0) env.set(kv, '');
      else env.set(kv.slice(0, eq), kv.slice(eq + 1));
      return;
    }
    const fields = line.split('|');
    const lineNo = idx + 1;
    if (fields.length !== 2) {
      test(`wordsTest:${lineNo} is well-formed`, (t) => t.fail(`expected one |: ${line}`));
      return;
    }
    const input = goTrimSpace(fields[0]);
    const expected = fields[1].replace(/^ +/, '').split(',');
    const snapshot = new Map(env);
    count++;
    test(`wordsTest:${lineNo} ${JSON.stringify(input)}`, (t) => {
      let got: string[];
      try {
        got = lx.processWords(input, snapshot);
      } catch (e) {
        t.true(e instanceof HoistError && e.code === 'E_SHELL', String(e));
        got = ['error'];
      }
      t.deepEqual(got, expected);
    });
  });
  test('wordsTest has its cases', (t) => {
    t.is(count, 24, 'wordsTest has 24 cases');
  });
}

// --- The backtick escape token ----------------------------------------------

const btCases: Array<[string, string | Error, Record<string, string>?]> = [
  ['he`$PWD', 'he$PWD', { PWD: '/home' }],
  ['he\\$PWD', 'he\\/home', { PWD: '/home' }], // a backslash is an ordinary character
  ['c:\\path\\to', 'c:\\path\\to'],
  ['"a`"b"', 'a"b'],
  ['"a\\"b', 'a\\b'], // \" does not escape: the second quote closes
  ['"x``y`tz"', 'x`y`tz'], // in quotes `` is one backtick, `t stays
  ['hello`', 'hello'],
  ["'a`b'", 'a`b'],
  ['"a`"b', new Error('unexpected end of statement while looking for matching double-quote')],
];
for (const [input, want, envObj] of btCases) {
  test(`backtick escape: ${JSON.stringify(input)}`, (t) => {
    const got = expand(new ShellLexer('`'), input, new Map(Object.entries(envObj ?? {})));
    if (want instanceof Error) {
      t.false(got.ok);
      if (!got.ok) t.true(got.message.endsWith(want.message), got.message);
    } else t.deepEqual(got, { ok: true, value: want });
  });
}

test('backtick escape: word splitting honours the escaped blank', (t) => {
  const lx = new ShellLexer('`');
  t.deepEqual(lx.processWords('a` b c', new Map()), ['a b', 'c']);
  t.deepEqual(lx.processWords('a\\ b', new Map()), ['a\\', 'b']);
});

test('an escape token other than \\ or ` is refused', (t) => {
  const e = t.throws(() => new ShellLexer('x'));
  t.true(e instanceof HoistError && e.code === 'E_SHELL');
});

// --- Expansion forms, patterns and matches (cases from BuildKit's lex_test.go) --

type MatchCase = { input: string; env: Record<string, string>; expected?: string; err?: true; matched?: string[]; unmatched?: string[] };
const matchCases: MatchCase[] = [
  { input: 'x', env: { DUMMY: 'dummy' }, expected: 'x' },
  { input: 'x ${UNUSED}', env: { DUMMY: 'dummy' }, expected: 'x ', unmatched: ['UNUSED'] },
  { input: 'x ${FOO}', env: { FOO: 'y' }, expected: 'x y', matched: ['FOO'] },
  { input: '${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}', env: { FOO: 'xxx', BAR: '' }, expected: 'xxx  ccc', matched: ['BAR', 'FOO'], unmatched: ['BAZ'] },
  { input: '${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc}', env: { FOO: 'xxx', BAR: '' }, expected: 'xxx bbb ccc', matched: ['BAR', 'FOO'], unmatched: ['BAZ'] },
  { input: '${FOO:-}', env: { FOO: 'xxx' }, expected: 'xxx', matched: ['FOO'] },
  { input: '${FOO:-}', env: {}, expected: '', unmatched: ['FOO'] },
  { input: '${FOO+aaa} ${BAR+bbb} ${BAZ+ccc}', env: { FOO: 'xxx', BAR: '' }, expected: 'aaa bbb ', matched: ['BAR', 'FOO'], unmatched: ['BAZ'] },
  { input: '${FOO:+aaa} ${BAR:+bbb} ${BAZ:+ccc}', env: { FOO: 'xxx', BAR: '' }, expected: 'aaa  ', matched: ['BAR', 'FOO'], unmatched: ['BAZ'] },
  { input: '${FOO?aaa}', env: { FOO: 'xxx' }, expected: 'xxx', matched: ['FOO'] },
  { input: '${BAR?bbb}', env: { BAR: '' }, expected: '', matched: ['BAR'] },
  { input: '${BAZ?ccc}', env: {}, err: true },
  { input: '${FOO:?aaa}', env: { FOO: 'xxx' }, expected: 'xxx', matched: ['FOO'] },
  { input: '${BAR:?bbb}', env: { BAR: '' }, err: true },
  { input: '${BAZ:?}', env: {}, err: true },
  { input: '${FOO=aaa}', env: { FOO: 'xxx' }, err: true },
  { input: '${FOO=:aaa}', env: { FOO: 'xxx' }, err: true },
  { input: '${FOO=}', env: {}, err: true },
  { input: '${FOO#()[]{\\}^$.\\*\\?|\\\\}', env: { FOO: '()[]{}^$.*?|\\x' }, expected: 'x', matched: ['FOO'] },
  { input: '${FOO%%\\**}', env: { FOO: 'xx**' }, expected: 'xx', matched: ['FOO'] },
  { input: '${FOO#*x*y}', env: { FOO: 'xxyy' }, expected: 'y', matched: ['FOO'] },
  { input: '${FOO#*}', env: { FOO: 'xxyy' }, expected: 'xxyy', matched: ['FOO'] },
  { input: '${FOO#$BAR}', env: { FOO: 'xxyy', BAR: 'x' }, expected: 'xyy', matched: ['BAR', 'FOO'] },
  { input: '${FOO#$BAR}', env: { FOO: 'xxyy', BAR: '' }, expected: 'xxyy', matched: ['BAR', 'FOO'] },
  { input: '${FOO#}', env: { FOO: 'xxyy' }, expected: 'xxyy', matched: ['FOO'] },
  { input: '${FOO##*x}', env: { FOO: 'xxyy' }, expected: 'yy', matched: ['FOO'] },
  { input: '${FOO##}', env: { FOO: 'xxyy' }, expected: 'xxyy', matched: ['FOO'] },
  { input: '${FOO#?\\?}', env: { FOO: '???y' }, expected: '?y', matched: ['FOO'] },
  { input: '${ABC:-.}${FOO%x}${ABC:-.}', env: { FOO: 'xxyy' }, expected: '.xxyy.', matched: ['FOO'], unmatched: ['ABC'] },
  { input: '${FOO%%\\**\\*}', env: { FOO: 'a***yy*' }, expected: 'a', matched: ['FOO'] },
  { input: '${FOO%}', env: { FOO: 'xxyy' }, expected: 'xxyy', matched: ['FOO'] },
  { input: '${FOO%%$BAR}', env: { FOO: 'xxyy', BAR: '' }, expected: 'xxyy', matched: ['BAR', 'FOO'] },
  { input: '${FOO:#}', env: {}, err: true },
  { input: '${FOO:##}', env: {}, err: true },
  { input: '${FOO:%}', env: {}, err: true },
  { input: '${FOO:%%}', env: {}, err: true },
  { input: '${FOO/$NEEDLE/.} - ${FOO//$NEEDLE/.}', env: { FOO: '/foo*/*/*.txt', NEEDLE: '\\*/' }, expected: '/foo.*/*.txt - /foo..*.txt', matched: ['FOO', 'NEEDLE'] },
  { input: '${FOO/$NEEDLE/} - ${FOO//$NEEDLE/}', env: { FOO: '/tmp/tmp/bar.txt', NEEDLE: '/tmp' }, expected: '/tmp/bar.txt - /bar.txt', matched: ['FOO', 'NEEDLE'] },
  { input: '${FOO/$NEEDLE/$REPLACEMENT} - ${FOO//$NEEDLE/$REPLACEMENT}', env: { FOO: '/a/foo/b/c.txt', NEEDLE: '/?/', REPLACEMENT: '/' }, expected: '/foo/b/c.txt - /foo/c.txt', matched: ['FOO', 'NEEDLE', 'REPLACEMENT'] },
  { input: '${FOO/$NEEDLE/$REPLACEMENT}', env: { FOO: 'http://google.de', NEEDLE: 'http://', REPLACEMENT: 'https://' }, expected: 'https://google.de', matched: ['FOO', 'NEEDLE', 'REPLACEMENT'] },
  { input: '${FOO//\\//\\/}', env: { FOO: '/tmp/foo.txt' }, expected: '\\/tmp\\/foo.txt', matched: ['FOO'] },
  { input: '${FOO/$BAR/ww}', env: { FOO: 'xxyy', BAR: '' }, expected: 'wwxxyy', matched: ['BAR', 'FOO'] },
  { input: '${FOO//ww}', env: { FOO: 'xxyy' }, err: true },
  { input: '${FOO//}', env: { FOO: 'xxyy' }, err: true },
  { input: '${FOO///}', env: { FOO: 'xxyy' }, expected: 'xxyy', matched: ['FOO'] },
  { input: '${FOO///}', env: {}, expected: '', unmatched: ['FOO'] },
  // Our own, checked against BuildKit's lexer.
  { input: '${V##*/}', env: { V: '/usr/local/bin' }, expected: 'bin', matched: ['V'] },
  { input: '${V#*/}', env: { V: '/usr/local/bin' }, expected: 'usr/local/bin', matched: ['V'] },
  { input: '${V%/*}', env: { V: '/usr/local/bin' }, expected: '/usr/local', matched: ['V'] },
  { input: '${V%%/*}', env: { V: 'usr/local/bin' }, expected: 'usr', matched: ['V'] },
  { input: '${V%.tar.*}', env: { V: 'a.tar.gz' }, expected: 'a', matched: ['V'] },
  { input: '${V#[a]}', env: { V: '[a]x' }, expected: 'x', matched: ['V'] }, // brackets are literal, not a class
  { input: '${V#a?c}', env: { V: 'abcd' }, expected: 'd', matched: ['V'] },
  { input: '${V##*}', env: { V: 'l1\nl2' }, expected: '\nl2', matched: ['V'] }, // * stops at a newline
  { input: '${V//*/-}', env: { V: 'abc' }, expected: '-', matched: ['V'] },
  { input: '${V//x*/-}', env: { V: 'abc' }, expected: 'abc', matched: ['V'] },
  { input: '${V//a/$R}', env: { V: 'banana', R: '<$0|$$|${0}|$1>' }, expected: 'b<a|$|a|>n<a|$|a|>n<a|$|a|>', matched: ['R', 'V'] },
  { input: '${V/a/$R}', env: { V: 'banana', R: '<$0>' }, expected: 'b<$0>nana', matched: ['R', 'V'] },
  { input: '${V//*/-}', env: { V: 'a\nb' }, expected: '-\n-', matched: ['V'] },
  { input: '${V///-}', env: { V: 'abc' }, expected: '-a-b-c-', matched: ['V'] },
  { input: '${V//b*/-}', env: { V: 'abc' }, expected: 'a-', matched: ['V'] },
  { input: '${V//?/-}', env: { V: '😀a' }, expected: '--', matched: ['V'] },
  { input: '${V%%?}', env: { V: 'a😀' }, expected: 'a', matched: ['V'] },
  { input: '${V#😀}', env: { V: '😀😀a' }, expected: '😀a', matched: ['V'] },
];
for (const c of matchCases) {
  test(`processWordWithMatches ${JSON.stringify(c.input)} with ${JSON.stringify(c.env)}`, (t) => {
    const lx = new ShellLexer();
    const env = new Map(Object.entries(c.env));
    if (c.err) {
      const e = t.throws(() => lx.processWordWithMatches(c.input, env));
      t.true(e instanceof HoistError && e.code === 'E_SHELL');
      return;
    }
    const r = lx.processWordWithMatches(c.input, env);
    t.is(r.result, c.expected ?? '<missing expectation>');
    t.deepEqual([...r.matched].sort(), c.matched ?? []);
    t.deepEqual([...r.unmatched].sort(), c.unmatched ?? []);
  });
}

test('${VAR?msg} and ${VAR:?msg} expand the message and name the variable', (t) => {
  const lx = new ShellLexer();
  const set = new Map([['VAR', 'plain'], ['ARG', 'x']]);
  const empty = new Map([['VAR', ''], ['ARG', 'x']]);
  const unset = new Map([['ARG', 'x']]);
  t.is(lx.processWord('${VAR:?message here$ARG}', set), 'plain');
  t.is(expand(lx, '${VAR:?message here$ARG}', empty).ok, false);
  t.throws(() => lx.processWord('${VAR:?message here$ARG}', empty), { message: /VAR: message herex/ });
  t.throws(() => lx.processWord('${VAR:?message here$ARG}', unset), { message: /VAR: message herex/ });
  t.is(lx.processWord('${VAR?message here$ARG}', set), 'plain');
  t.is(lx.processWord('${VAR?message here$ARG}', empty), '');
  t.throws(() => lx.processWord('${VAR?message here$ARG}', unset), { message: /VAR: message herex/ });
});

test('release-name idiom with ${TARGETVARIANT:+-${TARGETVARIANT}}', (t) => {
  const word = 'something-${VERSION}.${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}.tar.gz';
  const lx = new ShellLexer();
  const base = { VERSION: 'v1.2.3', TARGETOS: 'linux' };
  t.is(lx.processWord(word, new Map(Object.entries({ ...base, TARGETARCH: 'arm', TARGETVARIANT: 'v7' }))), 'something-v1.2.3.linux-arm-v7.tar.gz');
  t.is(lx.processWord(word, new Map(Object.entries({ ...base, TARGETARCH: 'arm64', TARGETVARIANT: '' }))), 'something-v1.2.3.linux-arm64.tar.gz');
  t.is(lx.processWord(word, new Map(Object.entries({ ...base, TARGETARCH: 'arm64' }))), 'something-v1.2.3.linux-arm64.tar.gz');
});

test('a lookup function works as the environment', (t) => {
  const lx = new ShellLexer();
  const env = (name: string) => (name === 'HOME' ? '/root' : undefined);
  t.is(lx.processWord('$HOME/${USER:-nobody}', env), '/root/nobody');
});

// --- Exact error messages ---------------------------------------------------

const errorCases: Array<[string, Record<string, string>, string]> = [
  ['${V:?}', {}, 'failed to process "${V:?}": V: is not allowed to be unset'],
  ['${V:?}', { V: '' }, 'failed to process "${V:?}": V: is not allowed to be empty'],
  ['${V?must set V}', {}, 'failed to process "${V?must set V}": V: must set V'],
  ['${}', {}, 'failed to process "${}": syntax error: bad substitution'],
  ['${V:-x', {}, 'failed to process "${V:-x": syntax error: missing \'}\''],
  ['${V/x}', { V: 'x' }, 'failed to process "${V/x}": syntax error: missing \'/\' in ${}'],
  ['${V:=x}', {}, 'failed to process "${V:=x}": unsupported modifier (:=) in substitution'],
  ['${V:x}', {}, 'failed to process "${V:x}": unsupported modifier (:x) in substitution'],
  ['${V:#x}', { V: 'x' }, 'failed to process "${V:#x}": unsupported modifier (:#) in substitution'],
  ['${V', {}, 'failed to process "${V": unsupported modifier (\ufffd) in substitution'],
  ['${V#\\x}', { V: 'x' }, 'failed to process "${V#\\\\x}": invalid pattern (\\x) in substitution: invalid escape \'\\x\''],
  ["'abc", {}, 'failed to process "\'abc": unexpected end of statement while looking for matching single-quote'],
  ['"abc', {}, 'failed to process "\\"abc": unexpected end of statement while looking for matching double-quote'],
];
for (const [input, envObj, message] of errorCases) {
  test(`error message for ${JSON.stringify(input)} with ${JSON.stringify(envObj)}`, (t) => {
    const e = t.throws(() => new ShellLexer().processWord(input, new Map(Object.entries(envObj))));
    t.true(e instanceof HoistError);
    t.is((e as HoistError).code, 'E_SHELL');
    t.is(e?.message, message);
    t.truthy((e as HoistError).hint);
  });
}

// --- Lexer knobs used by the parser and the frontend ------------------------

const optionCases: Array<[ShellLexerOptions, string, Record<string, string>, string | string[]]> = [
  [{ rawQuotes: true }, '\'a\'"b"\\c', {}, '\'a\'"b"c'],
  [{ rawEscapes: true }, '\'a\'"b"\\c$X', {}, 'ab\\c'],
  [{ rawEscapes: true }, '"\\t"', {}, '\\\\t'],
  [{ skipProcessQuotes: true }, '\'a b\' "c"', {}, ["'a", "b'", '"c"']],
  [{ skipUnsetEnv: true }, '$X ${X} ${X:-d} ${X//a/b} ${X:x} $Y', { Y: 'y' }, '$X ${X} ${X:-d} ${X/a/b} ${X:x} y'],
  [{ rawQuotes: true, rawEscapes: true, skipUnsetEnv: true }, 'cat <<"EOF" \\$x', {}, ['cat', '<<"EOF"', '\\$x']],
];
for (const [opts, input, envObj, want] of optionCases) {
  test(`options ${JSON.stringify(opts)} on ${JSON.stringify(input)}`, (t) => {
    const lx = new ShellLexer('\\', opts);
    const env = new Map(Object.entries(envObj));
    if (Array.isArray(want)) t.deepEqual(lx.processWords(input, env), want);
    else t.is(lx.processWord(input, env), want);
  });
}

// --- BuildKit quirks kept on purpose ----------------------------------------

test('processWords: "<<" and the blanks after it stay one word (heredoc markers)', (t) => {
  t.deepEqual(new ShellLexer().processWords('a <<  EOF b', new Map()), ['a', '<<  EOF', 'b']);
});

test('processWords: text before a ${x:-...} in the same word is dropped, as in BuildKit', (t) => {
  const lx = new ShellLexer();
  t.deepEqual(lx.processWords('hello${x:-y}', new Map()), ['y']);
  t.deepEqual(lx.processWords('a b${x:-y}c d', new Map()), ['a', 'yc', 'd']);
  // processWord is not affected.
  t.is(lx.processWord('hello${x:-y}', new Map()), 'helloy');
});

// --- Hostile input ----------------------------------------------------------

test('deep nesting is refused with a HoistError, not a stack overflow', (t) => {
  const word = '${a:-'.repeat(20000) + 'x' + '}'.repeat(20000);
  const e = t.throws(() => new ShellLexer().processWord(word, new Map()));
  t.true(e instanceof HoistError && e.code === 'E_SHELL', String(e));
  t.regex(e!.message, /nested more than/);
  // Moderate nesting still works.
  t.is(new ShellLexer().processWord('${a:-'.repeat(200) + 'x' + '}'.repeat(200), new Map()), 'x');
});

test('patterns with many stars on long values finish (no exponential backtracking)', (t) => {
  const value = 'a'.repeat(3000);
  const env = new Map([['V', value]]);
  const lx = new ShellLexer();
  t.is(lx.processWord('${V#' + '*a'.repeat(30) + 'b}', env), value);
  t.is(lx.processWord('${V//' + '*a'.repeat(30) + 'b/x}', env), value);
  t.is(lx.processWord('${V%%' + 'a*'.repeat(30) + '}', env), '');
});

test('random input never throws anything but HoistError E_SHELL', (t) => {
  let seed = 12345;
  const rnd = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const pieces = ['$', '{', '}', ':', '-', '+', '?', '#', '%', '/', '\\', '`', "'", '"', ' ', '\t', '\n', 'a', 'B', '_', '0', '9', '*', '<', '[', '안', '😀', '\u00a0', '\ufeff', '${a', '${a:-', '${a#', '${a//', '$$'];
  const env = new Map([['a', 'x*y z'], ['B', ''], ['_', '$0\\']]);
  const lexers = [
    new ShellLexer('\\'),
    new ShellLexer('`'),
    new ShellLexer('\\', { rawQuotes: true, rawEscapes: true, skipUnsetEnv: true }),
    new ShellLexer('\\', { skipProcessQuotes: true }),
  ];
  let errors = 0;
  for (let i = 0; i < 20000; i++) {
    let word = '';
    for (let n = 1 + rnd(16); n > 0; n--) word += pieces[rnd(pieces.length)];
    const lx = lexers[rnd(lexers.length)];
    try {
      if (rnd(2) === 0) t.is(typeof lx.processWord(word, env), 'string');
      else t.true(Array.isArray(lx.processWords(word, env)));
    } catch (e) {
      if (!(e instanceof HoistError) || e.code !== 'E_SHELL') {
        t.fail(`input ${JSON.stringify(word)} threw ${String(e)}`);
        return;
      }
      errors++;
    }
  }
  // The generator must reach the error paths too, or it tests little.
  t.true(errors > 1000, `only ${errors} errors`);
});
