// Behaviour of .dockerignore handling, checked against the cases moby/patternmatcher
// and ignorefile test (re-expressed here), plus BuildKit's Dockerfile-specific ignore
// file rule and a real directory walk.

import test from 'ava';
import { mkdtemp, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HoistError, isHoistError } from '../../src/util/errors.js';
import {
  IgnoreMatcher,
  parseDockerignore,
  readDockerignore,
  translatePattern,
  walkContext,
  type ContextEntry,
  type MatchKind,
} from '../../src/context/dockerignore.js';

/** exact: the path itself matches; parent: only a parent directory matches; no: nothing matches. */
type Want = 'exact' | 'parent' | 'no';

// [pattern, path, expectation] — patternmatcher's TestMatches table.
const single: [string, string, Want][] = [
  ['**', 'file', 'exact'],
  ['**', 'file/', 'exact'],
  ['**/', 'file', 'exact'],
  ['**/', 'file/', 'exact'],
  ['**', '/', 'exact'],
  ['**/', '/', 'exact'],
  ['**', 'dir/file', 'exact'],
  ['**/', 'dir/file', 'exact'],
  ['**', 'dir/file/', 'exact'],
  ['**/', 'dir/file/', 'exact'],
  ['**/**', 'dir/file', 'exact'],
  ['**/**', 'dir/file/', 'exact'],
  ['dir/**', 'dir/file', 'exact'],
  ['dir/**', 'dir/file/', 'exact'],
  ['dir/**', 'dir/dir2/file', 'exact'],
  ['dir/**', 'dir/dir2/file/', 'exact'],
  ['**/dir', 'dir', 'exact'],
  ['**/dir', 'dir/file', 'parent'],
  ['**/dir2/*', 'dir/dir2/file', 'exact'],
  ['**/dir2/*', 'dir/dir2/file/', 'parent'],
  ['**/dir2/**', 'dir/dir2/dir3/file', 'exact'],
  ['**/dir2/**', 'dir/dir2/dir3/file/', 'exact'],
  ['**file', 'file', 'exact'],
  ['**file', 'dir/file', 'exact'],
  ['**/file', 'dir/file', 'exact'],
  ['**file', 'dir/dir/file', 'exact'],
  ['**/file', 'dir/dir/file', 'exact'],
  ['**/file*', 'dir/dir/file', 'exact'],
  ['**/file*', 'dir/dir/file.txt', 'exact'],
  ['**/file*txt', 'dir/dir/file.txt', 'exact'],
  ['**/file*.txt', 'dir/dir/file.txt', 'exact'],
  ['**/file*.txt*', 'dir/dir/file.txt', 'exact'],
  ['**/**/*.txt', 'dir/dir/file.txt', 'exact'],
  ['**/**/*.txt2', 'dir/dir/file.txt', 'no'],
  ['**/*.txt', 'file.txt', 'exact'],
  ['**/**/*.txt', 'file.txt', 'exact'],
  ['a**/*.txt', 'a/file.txt', 'exact'],
  ['a**/*.txt', 'a/dir/file.txt', 'exact'],
  ['a**/*.txt', 'a/dir/dir/file.txt', 'exact'],
  ['a/*.txt', 'a/dir/file.txt', 'no'],
  ['a/*.txt', 'a/file.txt', 'exact'],
  ['a/*.txt**', 'a/file.txt', 'exact'],
  ['a[b-d]e', 'ae', 'no'],
  ['a[b-d]e', 'ace', 'exact'],
  ['a[b-d]e', 'aae', 'no'],
  ['a[^b-d]e', 'aze', 'exact'],
  ['.*', '.foo', 'exact'],
  ['.*', 'foo', 'no'],
  ['abc.def', 'abcdef', 'no'],
  ['abc.def', 'abc.def', 'exact'],
  ['abc.def', 'abcZdef', 'no'],
  ['abc?def', 'abcZdef', 'exact'],
  ['abc?def', 'abcdef', 'no'],
  ['**/foo/bar', 'foo/bar', 'exact'],
  ['**/foo/bar', 'dir/foo/bar', 'exact'],
  ['**/foo/bar', 'dir/dir2/foo/bar', 'exact'],
  ['abc/**', 'abc', 'no'],
  ['abc/**', 'abc/def', 'exact'],
  ['abc/**', 'abc/def/ghi', 'exact'],
  ['**/.foo', '.foo', 'exact'],
  ['**/.foo', 'bar.foo', 'no'],
  ['a(b)c/def', 'a(b)c/def', 'exact'],
  ['a(b)c/def', 'a(b)c/xyz', 'no'],
  ['a.|)$(}+{bc', 'a.|)$(}+{bc', 'exact'],
  ['dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl', 'dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl', 'exact'],
  ['dist/*.whl', 'dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl', 'exact'],
  ['a\\\\', 'a\\', 'exact'],
  ['a\\*b', 'a*b', 'exact'],
  // beyond the upstream table
  ['*', 'dir/file', 'parent'], // `*` does not cross `/`, but the parent `dir` matches
  ['dir/*', 'dir', 'no'],
  ['dir/*', 'dir/a/b', 'parent'],
  ['docs', 'docs/a/b/c', 'parent'],
  ['a?c', 'a/c', 'no'], // `?` does not match `/`
  ['a\\?c', 'a?c', 'exact'],
  ['a\\?c', 'abc', 'no'],
  ['a\\[b]', 'a[b]', 'exact'],
  ['[[]x', '[x', 'exact'],
  ['[a-c]/x', 'b/x', 'exact'],
  ['[!a]', '!', 'exact'], // Go regexp has no `[!...]` negation: `!` is a member
  ['[!a]', 'b', 'no'],
  ['x[^/]y', 'x/y', 'no'],
  ['ünï*', 'ünïcode', 'exact'],
  ['a?b', 'a☺b', 'exact'], // `?` is one character, not one byte
  ['a\\d', 'a1', 'exact'], // escapes go through Go's regexp, where \d is a digit
  ['.', '.', 'no'], // the context root itself is never excluded
]

test('patternmatcher single-pattern table: matches and matchesOrParentMatches', (t) => {
  for (const [pattern, path, want] of single) {
    const m = new IgnoreMatcher([pattern]);
    t.is(m.matches(path), want === 'exact', `matches(${JSON.stringify(path)}) with ${JSON.stringify(pattern)}`);
    t.is(m.matchesOrParentMatches(path), want !== 'no', `matchesOrParentMatches(${JSON.stringify(path)}) with ${JSON.stringify(pattern)}`);
  }
});

// [patterns, path, excluded?] — last match wins, exceptions, parents.
const multi: [string[], string, boolean][] = [
  [['**', '!util/docker/web'], 'util/docker/web/foo', false],
  [['**', '!util/docker/web', 'util/docker/web/foo'], 'util/docker/web/foo', true],
  [['**', '!dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl'], 'dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl', false],
  [['**', '!dist/*.whl'], 'dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl', false],
  [['*'], 'fileutils.go', true],
  [['*.go'], 'fileutils.go', true],
  [['!fileutils.go', '*.go'], 'fileutils.go', true],
  [['*.go', '!fileutils.go'], 'fileutils.go', false],
  [['docs', '!docs/README.md'], 'docs/README.md', false],
  [['docs/', '!docs/README.md'], 'docs/README.md', false],
  [['docs/*', '!docs/README.md'], 'docs/README.md', false],
  [['docs', '!docs/README.md'], 'docs/other.md', true],
  [['docs', '!docs/README.md'], 'docs', true],
  [['ba*', 'Dockerfile', '!bay', '.dockerignore'], 'bar', true],
  [['ba*', 'Dockerfile', '!bay', '.dockerignore'], 'bay', false],
  [['ba*', 'Dockerfile', '!bay', '.dockerignore'], 'foo', false],
  [['ba*', 'Dockerfile', '!bay', '.dockerignore'], '.dockerignore', true],
  [['a', '!a/b', 'a/b/c'], 'a/b/c/d', true],
  [['a', '!a/b', 'a/b/c'], 'a/b/x', false],
  [['**/*.log', '!keep/**'], 'keep/deep/x.log', false],
  [['**/*.log', '!keep/**'], 'other/x.log', true],
  [[], 'any/path/there', false],
  [['docs', 'config', ''], 'config', true],
  [['docs', '  !docs/README.md  '], 'docs/README.md', false],
];

test('multi-pattern table: last match wins, exceptions and parent exclusions', (t) => {
  for (const [patterns, path, want] of multi) {
    t.is(new IgnoreMatcher(patterns).matchesOrParentMatches(path), want, `${JSON.stringify(patterns)} on ${path}`);
  }
});

// Go's filepath.Match table as patternmatcher checks it: [pattern, path, match, bad-pattern].
const globTable: [string, string, boolean, boolean?][] = [
  ['abc', 'abc', true],
  ['*', 'abc', true],
  ['*c', 'abc', true],
  ['a*', 'a', true],
  ['a*', 'abc', true],
  ['a*', 'ab/c', true],
  ['a*/b', 'abc/b', true],
  ['a*/b', 'a/c/b', false],
  ['a*b*c*d*e*/f', 'axbxcxdxe/f', true],
  ['a*b*c*d*e*/f', 'axbxcxdxexxx/f', true],
  ['a*b*c*d*e*/f', 'axbxcxdxe/xxx/f', false],
  ['a*b*c*d*e*/f', 'axbxcxdxexxx/fff', false],
  ['a*b?c*x', 'abxbbxdbxebxczzx', true],
  ['a*b?c*x', 'abxbbxdbxebxczzy', false],
  ['ab[c]', 'abc', true],
  ['ab[b-d]', 'abc', true],
  ['ab[e-g]', 'abc', false],
  ['ab[^c]', 'abc', false],
  ['ab[^b-d]', 'abc', false],
  ['ab[^e-g]', 'abc', true],
  ['a\\*b', 'a*b', true],
  ['a\\*b', 'ab', false],
  ['a?b', 'a☺b', true],
  ['a[^a]b', 'a☺b', true],
  ['a???b', 'a☺b', false],
  ['a[^a][^a][^a]b', 'a☺b', false],
  ['[a-ζ]*', 'α', true],
  ['*[a-ζ]', 'A', false],
  ['a?b', 'a/b', false],
  ['a*b', 'a/b', false],
  ['[\\]a]', ']', true],
  ['[\\-]', '-', true],
  ['[x\\-]', 'x', true],
  ['[x\\-]', '-', true],
  ['[x\\-]', 'z', false],
  ['[\\-x]', 'x', true],
  ['[\\-x]', '-', true],
  ['[\\-x]', 'a', false],
  ['[]a]', ']', false, true],
  ['[-]', '-', false, true],
  ['[x-]', 'x', false, true],
  ['[-x]', 'x', false, true],
  ['\\', 'a', false, true],
  ['[a-b-c]', 'a', false, true],
  ['[', 'a', false, true],
  ['[^', 'a', false, true],
  ['[^bc', 'a', false, true],
  ['a[', 'a', false, true],
  ['a[', 'ab', false, true],
  ['*x', 'xxx', true],
];

test('filepath.Match table: matches and bad-pattern errors', (t) => {
  for (const [pattern, path, want, bad] of globTable) {
    if (bad) {
      const e = t.throws(() => new IgnoreMatcher([pattern]), undefined, `${pattern} must be refused`);
      t.true(isHoistError(e), pattern);
      t.is((e as HoistError).code, 'E_DOCKERIGNORE');
      t.true(e!.message.includes(JSON.stringify(pattern)), e!.message);
      continue;
    }
    t.is(new IgnoreMatcher([pattern]).matchesOrParentMatches(path), want, `${pattern} on ${path}`);
  }
});

test('patterns that pass the glob check but not Go regexp compilation are refused up front', (t) => {
  for (const [pattern, reason] of [
    ['[Local-Only]/', 'invalid character class range'],
    ['[z-a]', 'invalid character class range'],
    ['a\\q', 'invalid escape sequence'],
    ['[[:nope:]]', 'invalid character class range'],
    ['a\\bb', 'does not support'],
  ] as const) {
    const e = t.throws(() => new IgnoreMatcher([pattern]));
    t.true(e!.message.includes(reason), `${pattern}: ${e!.message}`);
  }
});

test('glob translation picks patternmatcher match kinds and regexps', (t) => {
  const cases: [string, MatchKind, string?][] = [
    ['*', 'regexp', '^[^/]*$'],
    ['file*', 'regexp', '^file[^/]*$'],
    ['*file', 'regexp', '^[^/]*file$'],
    ['a*/b', 'regexp', '^a[^/]*/b$'],
    ['**', 'suffix'],
    ['**/**', 'regexp', '^(.*/)?.*$'],
    ['dir/**', 'prefix'],
    ['**/dir', 'suffix'],
    ['**/dir2/*', 'regexp', '^(.*/)?dir2/[^/]*$'],
    ['**/dir2/**', 'regexp', '^(.*/)?dir2/.*$'],
    ['**file', 'suffix'],
    ['**/file*txt', 'regexp', '^(.*/)?file[^/]*txt$'],
    ['**/**/*.txt', 'regexp', '^(.*/)?(.*/)?[^/]*\\.txt$'],
    ['a[b-d]e', 'regexp', '^a[b-d]e$'],
    ['.*', 'regexp', '^\\.[^/]*$'],
    ['abc.def', 'exact'],
    ['abc?def', 'regexp', '^abc[^/]def$'],
    ['**/foo/bar', 'suffix'],
    ['a(b)c/def', 'exact'],
    ['a.|)$(}+{bc', 'exact'],
  ];
  for (const [pattern, kind, re] of cases) {
    const got = translatePattern(pattern);
    t.is(got.kind, kind, pattern);
    t.is(got.regexp, re, pattern);
  }
});

test('parseDockerignore follows ignorefile.ReadAll line handling', (t) => {
  const text = ['test1', '/test2', '/a/file/here', '', 'lastfile', '# this is a comment', '! /inverted/abs/path'].join('\n');
  t.deepEqual(
    parseDockerignore(text).map((p) => p.raw),
    ['test1', 'test2', 'a/file/here', 'lastfile', '!inverted/abs/path'],
  );

  const parsed = parseDockerignore(
    '\ufeff#bom then comment\r\n  spaced/  \r\n./dot/./x\n a/../b\n  # not a comment\n!  keep/me/\n/\n.\n//x//y\n../up\n',
  );
  t.deepEqual(
    parsed.map((p) => [p.raw, p.pattern, p.exclusion, p.line]),
    [
      ['spaced', 'spaced', false, 2], // whitespace trimmed, trailing `/` cleaned away
      ['dot/x', 'dot/x', false, 3], // `./` cleaned
      ['b', 'b', false, 4], // `..` folded
      ['# not a comment', '# not a comment', false, 5], // `#` only comments in column one
      ['!keep/me', 'keep/me', true, 6],
      ['/', '/', false, 7], // a lone `/` stays `/` and matches nothing
      ['.', '.', false, 8],
      ['x/y', 'x/y', false, 9],
      ['../up', '../up', false, 10],
    ],
  );
  const m = new IgnoreMatcher(parsed);
  t.true(m.matchesOrParentMatches('spaced/inner'));
  t.true(m.matchesOrParentMatches('dot/x'));
  t.true(m.matchesOrParentMatches('# not a comment'));
  t.false(m.matchesOrParentMatches('anything'), '`/` and `.` match no context path');
  t.false(m.matchesOrParentMatches('sub/anything'));
  t.deepEqual(parseDockerignore(''), []);
  t.deepEqual(parseDockerignore('# only\n\n   \n'), []);
});

test('invalid patterns name the file, the line and the pattern', (t) => {
  const cases: [string, number, string][] = [
    ['ok\n# c\n\n  [abc\n', 4, '[abc'],
    ['a\n!\n', 2, '!'],
    ['! \n', 1, '!'],
    ['!/\n', 1, '!/'],
    ['x\\\n', 1, 'x\\'],
  ];
  for (const [text, line, pattern] of cases) {
    const e = t.throws(() => parseDockerignore(text, 'ctx/.dockerignore'));
    t.true(isHoistError(e));
    t.true(e!.message.startsWith(`ctx/.dockerignore:${line}: `), e!.message);
    t.true(e!.message.includes(JSON.stringify(pattern)), e!.message);
  }
  const long = parseDockerignore.bind(null, 'a\n' + 'x'.repeat(70000) + '\n', 'f');
  t.throws(long, { message: /^f:2: line is longer than 64 KiB/ });
});

test('hostile nested ** patterns are matched without backtracking blow-up', (t) => {
  // With a backtracking engine this pattern against this path takes exponential time;
  // the NFA engine gives the answer in one pass (no timing asserted, only the result).
  const m = new IgnoreMatcher(['x/' + '**/'.repeat(40) + '*.none']);
  t.false(m.matches('x/' + 'a/'.repeat(300) + 'b.txt'));
  t.true(m.matches('x/' + 'a/'.repeat(300) + 'b.none'));
});

test('mayIncludeUnder tells a walker which excluded directories to enter', (t) => {
  const m = new IgnoreMatcher(['docs', 'build', '!docs/api/README.md']);
  t.true(m.mayIncludeUnder('docs'));
  t.true(m.mayIncludeUnder('docs/api'));
  t.false(m.mayIncludeUnder('docs/other'));
  t.false(m.mayIncludeUnder('build'));
  t.false(new IgnoreMatcher(['docs']).mayIncludeUnder('docs'), 'no exceptions: never');
  const glob = new IgnoreMatcher(['vendor', '!**/LICENSE']);
  t.true(glob.mayIncludeUnder('vendor/x'), 'a wildcard exception could match anywhere');
  const trailing = new IgnoreMatcher(['out', '!out/keep/**']);
  t.true(trailing.mayIncludeUnder('out/keep'));
  t.false(trailing.mayIncludeUnder('out/drop'));
});

async function tempDir(t: { teardown: (fn: () => Promise<void>) => void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'hoist-ignore-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('Dockerfile-specific ignore file takes precedence over <context>/.dockerignore', async (t) => {
  const ctx = await tempDir(t);
  await writeFile(join(ctx, '.dockerignore'), 'general\n');
  t.deepEqual(await readDockerignore(ctx), { file: join(ctx, '.dockerignore'), patterns: parseDockerignore('general\n') });

  await writeFile(join(ctx, 'Dockerfile.dockerignore'), 'bar\n');
  await writeFile(join(ctx, 'Dockerfile2.dockerignore'), 'foo\n');
  const def = await readDockerignore(ctx);
  t.is(def.file, join(ctx, 'Dockerfile.dockerignore'));
  t.deepEqual(def.patterns.map((p) => p.raw), ['bar']);
  const other = await readDockerignore(ctx, join(ctx, 'Dockerfile2'));
  t.deepEqual(other.patterns.map((p) => p.raw), ['foo']);
  const none = await readDockerignore(ctx, join(ctx, 'Dockerfile3'));
  t.deepEqual(none.patterns.map((p) => p.raw), ['general'], 'falls back when no specific file exists');

  // The specific file sits beside the Dockerfile, wherever that is, not in the context.
  const outside = await tempDir(t);
  await mkdir(join(outside, 'build'));
  await writeFile(join(outside, 'build', 'app.Dockerfile.dockerignore'), '!x\n*\n');
  const far = await readDockerignore(ctx, join(outside, 'build', 'app.Dockerfile'));
  t.is(far.file, join(outside, 'build', 'app.Dockerfile.dockerignore'));
  t.deepEqual(far.patterns.map((p) => p.raw), ['!x', '*']);
  await writeFile(join(ctx, 'app.Dockerfile.dockerignore'), 'wrong-place\n');
  t.is((await readDockerignore(ctx, join(outside, 'app.Dockerfile'))).file, join(ctx, '.dockerignore'));

  const stdin = await readDockerignore(ctx, '-');
  t.is(stdin.file, join(ctx, '.dockerignore'), 'a Dockerfile from stdin has no specific ignore file');

  // An empty specific file still wins (it exists), leaving no patterns.
  await writeFile(join(ctx, 'Dockerfile.dockerignore'), '');
  t.deepEqual(await readDockerignore(ctx), { file: join(ctx, 'Dockerfile.dockerignore'), patterns: [] });
});

test('missing, odd or hostile ignore files', async (t) => {
  const ctx = await tempDir(t);
  t.deepEqual(await readDockerignore(ctx), { file: null, patterns: [] });

  await mkdir(join(ctx, '.dockerignore'));
  t.deepEqual(await readDockerignore(ctx), { file: null, patterns: [] }, 'a directory is not an ignore file');
  await rm(join(ctx, '.dockerignore'), { recursive: true });

  // A symlink is resolved inside the context like a chroot: it cannot read the host's file.
  const host = await tempDir(t);
  await writeFile(join(host, 'secret'), 'host-pattern\n');
  await symlink(join(host, 'secret'), join(ctx, '.dockerignore'));
  t.deepEqual(await readDockerignore(ctx), { file: null, patterns: [] });
  await rm(join(ctx, '.dockerignore'));
  await symlink('../../../../../../../../' + join(host, 'secret'), join(ctx, '.dockerignore'));
  t.deepEqual(await readDockerignore(ctx), { file: null, patterns: [] });
  await rm(join(ctx, '.dockerignore'));
  // ...while a link to a file inside the context works.
  await mkdir(join(ctx, 'conf'));
  await writeFile(join(ctx, 'conf', 'ignore'), 'node_modules\n');
  await symlink('conf/ignore', join(ctx, '.dockerignore'));
  t.deepEqual((await readDockerignore(ctx)).patterns.map((p) => p.raw), ['node_modules']);
  await rm(join(ctx, '.dockerignore'));
  await symlink('/conf/ignore', join(ctx, '.dockerignore'));
  t.deepEqual((await readDockerignore(ctx)).patterns.map((p) => p.raw), ['node_modules'], 'absolute target is rooted at the context');
  await rm(join(ctx, '.dockerignore'));
  await symlink('.dockerignore', join(ctx, '.dockerignore'));
  await t.throwsAsync(readDockerignore(ctx), { message: /too many levels of symbolic links/ });
  await rm(join(ctx, '.dockerignore'));

  await writeFile(join(ctx, '.dockerignore'), 'fine\n\n  bad[\n');
  const e = await t.throwsAsync(readDockerignore(ctx));
  t.true(isHoistError(e));
  t.true(e!.message.startsWith(`${join(ctx, '.dockerignore')}:3: invalid ignore pattern "bad["`), e!.message);
});

/** A matcher that records every path the walker asks about. */
class SpyMatcher extends IgnoreMatcher {
  readonly asked: string[] = [];
  override matchesOrParentMatches(p: string): boolean {
    this.asked.push(p);
    return super.matchesOrParentMatches(p);
  }
}

async function collect(it: AsyncIterable<ContextEntry>): Promise<string[]> {
  const out: string[] = [];
  for await (const e of it) out.push(e.path);
  return out;
}

test('walkContext lists what survives, re-includes under an excluded dir, never follows symlinks', async (t) => {
  const ctx = await tempDir(t);
  const host = await tempDir(t);
  await writeFile(join(host, 'outside.txt'), 'x');
  const files: Record<string, string> = {
    'Dockerfile': 'FROM scratch\n',
    'src/main.ts': '',
    'src/a-b.ts': '',
    'src/z/deep.ts': '',
    'docs/README.md': '',
    'docs/guide.md': '',
    'docs/api/index.md': '',
    'node_modules/pkg/index.js': '',
    'logs/x.log': '',
    'app.log': '',
  };
  for (const [p, c] of Object.entries(files)) {
    await mkdir(join(ctx, p, '..'), { recursive: true });
    await writeFile(join(ctx, p), c);
  }
  await symlink(host, join(ctx, 'hostlink'));
  await symlink('../' + 'x'.repeat(3), join(ctx, 'src', 'dangling'));
  await writeFile(join(ctx, '.dockerignore'), '# build context rules\nnode_modules\ndocs\n!docs/README.md\n**/*.log\n.dockerignore\n');

  const { patterns } = await readDockerignore(ctx);
  const m = new SpyMatcher(patterns);
  const entries: ContextEntry[] = [];
  for await (const e of walkContext(ctx, m)) entries.push(e);
  t.deepEqual(
    entries.map((e) => e.path),
    [
      'Dockerfile',
      'docs', // excluded, but reported because a re-included file lies below it
      'docs/README.md',
      'hostlink',
      'logs',
      'src',
      'src/a-b.ts',
      'src/dangling',
      'src/main.ts',
      'src/z',
      'src/z/deep.ts',
    ],
  );
  t.true(entries.find((e) => e.path === 'hostlink')!.stat.isSymbolicLink(), 'symlink reported as a symlink');
  t.false(m.asked.some((p) => p.startsWith('hostlink/')), 'symlinked directory not entered');
  t.false(m.asked.some((p) => p.startsWith('node_modules/')), 'excluded dir without exceptions not entered');
  t.false(m.asked.includes('docs/api/index.md'), 'docs/api cannot hold a re-included file, so it is not entered');
  t.true(m.asked.includes('docs/guide.md'));

  // Without exceptions under it, an excluded directory is not reported at all.
  t.deepEqual(await collect(walkContext(ctx, new IgnoreMatcher(['docs', 'src', 'hostlink', 'logs', 'node_modules', '*.log', '.*']))), ['Dockerfile']);
  // A wildcard exception makes the walk look everywhere below excluded directories.
  t.deepEqual(await collect(walkContext(ctx, new IgnoreMatcher(['*', '!**/deep.ts']))), ['src', 'src/z', 'src/z/deep.ts']);
  // No patterns: everything, in depth-first byte order.
  const all = await collect(walkContext(ctx, new IgnoreMatcher([])));
  t.is(all.length, 20);
  t.deepEqual(all.slice(0, 3), ['.dockerignore', 'Dockerfile', 'app.log']);

  await t.throwsAsync(collect(walkContext(join(ctx, 'nope'), m)), { message: /does not exist/ });
  await t.throwsAsync(collect(walkContext(join(ctx, 'Dockerfile'), m)), { message: /is not a directory/ });
});
