/**
 * Which ADD sources are git repositories and what their URL says, as BuildKit's
 * dfgitutil.ParseGitRef decides (expected values taken from its documented behaviour).
 */
import test from 'ava';
import { isCommitSHA, parseGitRef, redactURL, type GitRef } from '../../src/llb/git.js';

function ref(s: string): GitRef {
  const r = parseGitRef(s);
  if (!r.git || 'error' in r) throw new Error(`${s}: not a git ref (${JSON.stringify(r)})`);
  return r.ref;
}

function error(s: string): string {
  const r = parseGitRef(s);
  if (!r.git || !('error' in r)) throw new Error(`${s}: no error (${JSON.stringify(r)})`);
  return r.error;
}

test('http(s) URLs are repositories only when the path ends in .git; anything else is a download or a local path', (t) => {
  for (const s of ['https://example.com/', 'https://example.com/foo', 'https://example.com/foo.git/', 'https://example.com/foo.git.bar',
    'https://github.com/moby/buildkit', 'custom.xyz/moby/buildkit.git', 'github.com/moby/buildkit', './.git', '.git', '../x.git',
    'http://github.com/docker/docker.git:#branch', 'ftp://example.com/x.git', 'file:///srv/x.git', 'src/', 'a b.git']) {
    t.false(parseGitRef(s).git, s);
  }
  t.like(ref('https://example.com/foo.git'), { remote: 'https://example.com/foo.git', ref: '', subdir: '', scheme: 'https' });
  t.like(ref('HTTPS://example.com/foo.git'), { remote: 'https://example.com/foo.git', scheme: 'https' });
  t.like(ref('git://example.com/foo'), { remote: 'git://example.com/foo', scheme: 'git', host: 'example.com' });
  t.like(ref('ssh://git@github.com:22/moby/buildkit.git'), { remote: 'ssh://git@github.com:22/moby/buildkit.git', scheme: 'ssh', host: 'github.com:22' });
  t.like(ref('https://foo:bar@github.com/moby/buildkit.git'), { remote: 'https://foo:bar@github.com/moby/buildkit.git', host: 'github.com' });
});

test('scp-like addresses user@host:path are ssh repositories', (t) => {
  t.like(ref('git@github.com:moby/buildkit'), { remote: 'git@github.com:moby/buildkit', scheme: 'ssh', host: 'github.com' });
  t.like(ref('git@bitbucket.org:atlassianlabs/atlassian-docker.git'), { remote: 'git@bitbucket.org:atlassianlabs/atlassian-docker.git' });
  t.like(ref('nonstandarduser@example.com:/srv/repos/weird/project.git#v1:hack'), { remote: 'nonstandarduser@example.com:/srv/repos/weird/project.git', ref: 'v1', subdir: 'hack' });
  t.like(ref('git@github.com:moby/buildkit.git?subdir=/subdir#v1.0.0'), { remote: 'git@github.com:moby/buildkit.git', ref: 'v1.0.0', subdir: '/subdir' });
});

test('the fragment is ref:subdir; the subdir is cleaned', (t) => {
  t.like(ref('https://example.com/foo.git#deadbeef'), { ref: 'deadbeef', subdir: '' });
  t.like(ref('https://example.com/foo.git#release/1.2'), { ref: 'release/1.2' });
  t.like(ref('https://github.com/foo/bar.git#baz/qux:quux/quuz'), { remote: 'https://github.com/foo/bar.git', ref: 'baz/qux', subdir: 'quux/quuz' });
  t.like(ref('https://github.com/docker/docker.git#:myfolder'), { ref: '', subdir: 'myfolder' });
  t.like(ref('git://h/r.git#main:../../a/./b/'), { ref: 'main', subdir: 'a/b' });
  t.like(ref('git://h/r.git#main:'), { ref: 'main', subdir: '' });
});

test('the query form: ref, tag, branch, subdir, checksum, keep-git-dir, submodules, mtime, fetch-by-commit', (t) => {
  t.like(ref('https://github.com/docker/docker.git?ref=v1.0.0&subdir=/subdir'), { remote: 'https://github.com/docker/docker.git', ref: 'v1.0.0', subdir: '/subdir' });
  t.like(ref('https://github.com/moby/buildkit.git?subdir=/subdir#v1.0.0'), { ref: 'v1.0.0', subdir: '/subdir' });
  t.like(ref('https://github.com/moby/buildkit.git?tag=v1.0.0'), { ref: 'refs/tags/v1.0.0' });
  t.like(ref('https://github.com/moby/buildkit.git?branch=v1.0'), { ref: 'refs/heads/v1.0' });
  t.like(ref('https://github.com/moby/buildkit.git?checksum=abc123'), { checksum: 'abc123' });
  t.like(ref('https://github.com/moby/buildkit.git?commit=abc123'), { checksum: 'abc123' });
  t.like(ref('https://github.com/moby/buildkit.git?keep-git-dir'), { keepGitDir: true });
  t.like(ref('https://github.com/moby/buildkit.git?keep-git-dir=false'), { keepGitDir: false });
  t.like(ref('https://github.com/moby/buildkit.git?submodules=0'), { submodules: false });
  t.like(ref('https://github.com/moby/buildkit.git?mtime=commit'), { mtime: 'commit' });
  t.like(ref('https://github.com/moby/buildkit.git?fetch-by-commit&checksum=deadbeef#refs/heads/branch'), { fetchByCommit: true, checksum: 'deadbeef', ref: 'refs/heads/branch' });
  t.is(ref('https://github.com/moby/buildkit.git?tag=v1').remote, 'https://github.com/moby/buildkit.git');
});

test('query errors are errors of a git source (the step fails), not other kinds of source', (t) => {
  t.is(error('https://github.com/moby/buildkit.git?ref=v1.0.0#v1.2.3'), 'ref conflicts: "v1.2.3" vs "v1.0.0"');
  t.is(error('https://github.com/moby/buildkit.git?ref=v1.0.0&tag=v1.2.3'), 'ref conflicts: "v1.0.0" vs "refs/tags/v1.2.3"');
  t.is(error('https://github.com/moby/buildkit.git?tag=v1.0.0&branch=v1.0'), 'branch conflicts with tag');
  t.is(error('https://github.com/moby/buildkit.git?mtime=invalid'), 'invalid mtime value: "invalid" (must be "checkout" or "commit")');
  t.is(error('https://github.com/moby/buildkit.git?ref='), 'query "ref" has no value');
  t.is(error('https://github.com/moby/buildkit.git?ref=a&ref=b'), 'query "ref" has multiple values');
  t.is(error('https://github.com/moby/buildkit.git?keep-git-dir=maybe'), 'invalid keep-git-dir value: "maybe"');
  t.is(error('https://github.com/moby/buildkit.git?colour=red'), 'unexpected query "colour"');
  t.is(error('git@github.com:moby/buildkit.git?subdir=a&subdir=b'), 'query "subdir" has multiple values');
});

test('commit ids and redaction', (t) => {
  t.true(isCommitSHA('a'.repeat(40)));
  t.true(isCommitSHA('0'.repeat(64)));
  t.false(isCommitSHA('A'.repeat(40)));
  t.false(isCommitSHA('abc1234'));
  t.false(isCommitSHA('g'.repeat(40)));
  t.is(redactURL('https://user:secret@example.com/r.git'), 'https://user:xxxxx@example.com/r.git');
  t.is(redactURL('https://example.com/r.git'), 'https://example.com/r.git');
});
