/**
 * ADD of git repositories against repositories made here and served by `git daemon`
 * (git://) and by `git http-backend` behind a node:http server (smart HTTP): the
 * default branch, a tag (light and annotated), a branch with a subdir, a commit id,
 * submodules, `.git` only with --keep-git-dir, file modes and owner, --checksum, the
 * cache (an unchanged remote is CACHED, a new commit runs the step again), and errors
 * (missing ref, unreachable remote, COPY of a repository, hostile submodule URLs).
 */
import test from 'ava';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { lstat, mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createNetServer, connect, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { canBuild, cleanup, hoist, rootWithBusybox, tempDir, writeProject } from './helpers.js';

const it = canBuild ? test.serial : test.serial.skip;

let root: string;
let work: string;
let srv: string;
let daemon: ChildProcess | undefined;
let http: Server | undefined;
let gitBase: string;
let httpBase: string;
const shas: Record<string, string> = {};

/** git for the test's own repositories: no user or system configuration. */
function git(cwd: string, ...args: string[]): string {
  const r = spawnSync('git', args, {
    cwd, encoding: 'utf8',
    env: {
      PATH: process.env.PATH, HOME: work, GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null',
      GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@example.com', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@example.com',
    },
  });
  if (r.error) throw new Error(`git is needed by these tests (Debian: apt-get install git): ${r.error.message}`);
  if (r.status !== 0) throw new Error(`git ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim();
}

async function freePort(): Promise<number> {
  const s = createNetServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function waitForPort(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((r) => {
      const c = connect(port, '127.0.0.1');
      c.on('connect', () => {
        c.destroy();
        r(true);
      });
      c.on('error', () => r(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`git daemon did not start on port ${port}`);
}

/** Publishes a work repository as the bare `<name>.git` the servers serve (replacing what was there). */
function publish(dir: string, name: string): void {
  git(dir, 'push', '--quiet', '--force', '--mirror', join(srv, `${name}.git`));
}

test.before(async () => {
  if (!canBuild) return;
  root = await rootWithBusybox();
  work = await tempDir();
  srv = join(work, 'srv');
  await mkdir(srv);

  // the submodule
  const sub = join(work, 'sub');
  await mkdir(sub);
  git(sub, 'init', '-q', '-b', 'main');
  await writeFile(join(sub, 's.txt'), 'in the submodule\n');
  git(sub, 'add', '.');
  git(sub, 'commit', '-q', '-m', 'sub');
  git(srv, 'init', '-q', '--bare', '-b', 'main', 'sub.git');
  publish(sub, 'sub');

  // the repository: v1 (light tag), v2 (annotated), a branch with a subdir, a submodule on main
  const w = join(work, 'w');
  await mkdir(join(w, 'd/e'), { recursive: true });
  git(w, 'init', '-q', '-b', 'main');
  await writeFile(join(w, 'a.txt'), 'one\n');
  await writeFile(join(w, 'd/e/f.txt'), 'deep\n');
  await writeFile(join(w, 'run.sh'), '#!/bin/sh\necho run\n', { mode: 0o755 });
  git(w, 'add', '.');
  git(w, 'commit', '-q', '-m', 'one');
  shas.one = git(w, 'rev-parse', 'HEAD');
  git(w, 'tag', 'v1');
  await writeFile(join(w, 'a.txt'), 'two\n');
  git(w, 'commit', '-q', '-am', 'two');
  shas.two = git(w, 'rev-parse', 'HEAD');
  git(w, 'tag', '-a', 'v2', '-m', 'annotated');
  git(w, 'checkout', '-q', '-b', 'feature');
  await mkdir(join(w, 'sub/inner'), { recursive: true });
  await writeFile(join(w, 'sub/x.txt'), 'on the branch\n');
  await writeFile(join(w, 'sub/inner/y.txt'), 'inner\n');
  git(w, 'add', '.');
  git(w, 'commit', '-q', '-m', 'feature');
  shas.feature = git(w, 'rev-parse', 'HEAD');
  git(w, 'checkout', '-q', 'main');
  git(w, '-c', 'protocol.file.allow=always', 'submodule', 'add', '-q', join(srv, 'sub.git'), 'mods/sub');
  // relative to the superproject's URL, so it is served by the same server
  git(w, 'config', '-f', '.gitmodules', 'submodule.mods/sub.url', '../sub.git');
  git(w, 'add', '.');
  git(w, 'commit', '-q', '-m', 'submodule');
  shas.main = git(w, 'rev-parse', 'HEAD');
  git(srv, 'init', '-q', '--bare', '-b', 'main', 'repo.git');
  publish(w, 'repo');

  const port = await freePort();
  daemon = spawn('git', ['daemon', `--base-path=${srv}`, '--export-all', '--reuseaddr', `--port=${port}`, '--listen=127.0.0.1', srv], { stdio: 'ignore' });
  await waitForPort(port);
  gitBase = `git://127.0.0.1:${port}`;

  // smart HTTP: git http-backend as a CGI program
  http = createHttpServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    const cgi = spawn('git', ['http-backend'], {
      env: {
        PATH: process.env.PATH, GIT_PROJECT_ROOT: srv, GIT_HTTP_EXPORT_ALL: '1', GIT_CONFIG_NOSYSTEM: '1', HOME: work,
        REQUEST_METHOD: req.method ?? 'GET', PATH_INFO: decodeURIComponent(u.pathname), QUERY_STRING: u.search.slice(1),
        CONTENT_TYPE: req.headers['content-type'] ?? '', REMOTE_ADDR: '127.0.0.1', GIT_PROTOCOL: String(req.headers['git-protocol'] ?? ''),
        HTTP_CONTENT_ENCODING: String(req.headers['content-encoding'] ?? ''),
      },
      stdio: ['pipe', 'pipe', 'ignore'],
    });
    req.pipe(cgi.stdin);
    let buf = Buffer.alloc(0);
    let headersDone = false;
    cgi.stdout.on('data', (d: Buffer) => {
      if (headersDone) {
        res.write(d);
        return;
      }
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      headersDone = true;
      let status = 200;
      for (const line of buf.subarray(0, end).toString('latin1').split('\r\n')) {
        const i = line.indexOf(':');
        const k = line.slice(0, i).trim();
        const v = line.slice(i + 1).trim();
        if (k.toLowerCase() === 'status') status = parseInt(v, 10);
        else res.setHeader(k, v);
      }
      res.statusCode = status;
      res.write(buf.subarray(end + 4));
    });
    cgi.stdout.on('end', () => res.end());
  });
  await new Promise<void>((r) => http!.listen(0, '127.0.0.1', r));
  httpBase = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
});

test.after.always(async () => {
  daemon?.kill();
  http?.close();
  if (root) await cleanup(root, work);
});

let n = 0;
const project = (dockerfile: string): Promise<string> => writeProject(join(work, `p${++n}`), dockerfile);

async function build(dir: string, extra: string[] = [], env?: NodeJS.ProcessEnv): Promise<{ code: number; out: string; stderr: string }> {
  const out = join(work, `out${++n}`);
  const r = await hoist(root, ['build', '--progress', 'plain', ...extra, '--output', `type=local,dest=${out}`, dir], env ? { env } : {});
  return { code: r.code, out, stderr: r.stderr };
}

const modeOf = async (p: string): Promise<number> => (await lstat(p)).mode & 0o7777;
const exists = (p: string): Promise<boolean> => lstat(p).then(() => true, () => false);

it('ADD git://…/repo.git: the default branch with its submodule, no .git, files 0644/0755, directories 0755, owner 0:0', async (t) => {
  const r = await build(await project(`FROM busybox\nADD ${gitBase}/repo.git /src\n`));
  t.is(r.code, 0, r.stderr);
  const src = join(r.out, 'src');
  t.is(await readFile(join(src, 'a.txt'), 'utf8'), 'two\n');
  t.is(await readFile(join(src, 'd/e/f.txt'), 'utf8'), 'deep\n');
  t.is(await readFile(join(src, 'mods/sub/s.txt'), 'utf8'), 'in the submodule\n');
  t.false(await exists(join(src, '.git')));
  t.false(await exists(join(src, 'sub')), 'the feature branch is not the default one');
  t.is(await modeOf(join(src, 'a.txt')), 0o644);
  t.is(await modeOf(join(src, 'run.sh')), 0o755);
  t.is(await modeOf(join(src, 'd')), 0o755);
  t.is(await modeOf(join(src, 'd/e')), 0o755);
  const st = await stat(join(src, 'a.txt'));
  t.is(st.uid, 0);
  t.is(st.gid, 0);
  // the resolved commit is what the source vertex shows (git ls-remote output)
  t.regex(r.stderr, new RegExp(`${shas.main}\\trefs/heads/main`));
});

it('#tag (light and annotated), #branch:subdir and #<commit> check out that tree; the query form says the same', async (t) => {
  const r = await build(await project([
    'FROM busybox',
    `ADD ${gitBase}/repo.git#v1 /v1`,
    `ADD ${gitBase}/repo.git#v2 /v2`,
    `ADD ${gitBase}/repo.git#feature:sub /feat/`,
    `ADD ${gitBase}/repo.git#${shas.one} /sha`,
    `ADD ${gitBase}/repo.git?branch=feature&subdir=sub/inner /q`,
    `ADD ${gitBase}/repo.git?submodules=false /nosub`,
    `ADD --link --chown=1000:1001 --chmod=0700 ${gitBase}/repo.git#v1 /own`,
    '',
  ].join('\n')));
  t.is(r.code, 0, r.stderr);
  t.is(await readFile(join(r.out, 'v1/a.txt'), 'utf8'), 'one\n');
  t.is(await readFile(join(r.out, 'v2/a.txt'), 'utf8'), 'two\n');
  t.false(await exists(join(r.out, 'v2/mods')), 'v2 predates the submodule');
  t.deepEqual((await readdir(join(r.out, 'feat'))).sort(), ['inner', 'x.txt']);
  t.is(await readFile(join(r.out, 'feat/x.txt'), 'utf8'), 'on the branch\n');
  t.is(await readFile(join(r.out, 'sha/a.txt'), 'utf8'), 'one\n');
  t.deepEqual(await readdir(join(r.out, 'q')), ['y.txt']);
  // ?submodules=false: the gitlink is an empty directory
  t.deepEqual(await readdir(join(r.out, 'nosub/mods/sub')), []);
  t.is(await readFile(join(r.out, 'nosub/a.txt'), 'utf8'), 'two\n');
  for (const p of ['own/a.txt', 'own/d', 'own/d/e', 'own/run.sh']) {
    const st = await stat(join(r.out, p));
    t.deepEqual([st.uid, st.gid, st.mode & 0o7777], [1000, 1001, 0o700], p);
  }
  for (const d of ['v1', 'v2', 'feat', 'sha', 'q', 'nosub', 'own']) t.false(await exists(join(r.out, d, '.git')), d);
});

it('--keep-git-dir=true keeps .git (a shallow repository at the commit, origin the URL); ?keep-git-dir=true too; not with a subdir', async (t) => {
  const r = await build(await project([
    'FROM busybox',
    `ADD --keep-git-dir=true ${gitBase}/repo.git#main /k`,
    `ADD ${gitBase}/repo.git?keep-git-dir=true&tag=v1 /q`,
    `ADD --keep-git-dir=true ${gitBase}/repo.git#feature:sub /s`,
    `ADD --keep-git-dir=false ${gitBase}/repo.git#main /n`,
    `ADD --keep-git-dir=true ${gitBase}/repo.git#v2 /t`,
    '',
  ].join('\n')));
  t.is(r.code, 0, r.stderr);
  t.true((await stat(join(r.out, 'k/.git'))).isDirectory());
  t.is(git(join(r.out, 'k'), 'rev-parse', 'HEAD'), shas.main);
  t.is(git(join(r.out, 'k'), 'remote', 'get-url', 'origin'), `${gitBase}/repo.git`);
  t.is(git(join(r.out, 'k'), 'status', '--porcelain'), '', 'the work tree is the commit');
  t.is(await readFile(join(r.out, 'k/.git/shallow'), 'utf8'), `${shas.main}\n`);
  t.is(git(join(r.out, 'q'), 'rev-parse', 'HEAD'), shas.one);
  t.false(await exists(join(r.out, 's/.git')));
  // an annotated tag: HEAD at its commit, the tag object kept
  t.is(git(join(r.out, 't'), 'rev-parse', 'HEAD'), shas.two);
  t.is(git(join(r.out, 't'), 'cat-file', '-t', 'refs/tags/v2'), 'tag');
  t.false(await exists(join(r.out, 'n/.git')));
  // the flag and the query must agree
  const bad = await build(await project(`FROM busybox\nADD --keep-git-dir=false ${gitBase}/repo.git?keep-git-dir=true /x\n`));
  t.is(bad.code, 1);
  t.regex(bad.stderr, /inconsistent keep-git-dir configuration/);
});

it('smart HTTP (git http-backend): http://…/repo.git#v1 is a repository, not a download', async (t) => {
  const r = await build(await project(`FROM busybox\nADD ${httpBase}/repo.git#v1 /h\n`));
  t.is(r.code, 0, r.stderr);
  t.is(await readFile(join(r.out, 'h/a.txt'), 'utf8'), 'one\n');
  t.false(await exists(join(r.out, 'h/.git')));
});

it('an unchanged remote is CACHED on rebuild; a new commit on the branch runs the step again', async (t) => {
  const w = join(work, 'cachew');
  await mkdir(w);
  git(w, 'init', '-q', '-b', 'main');
  await writeFile(join(w, 'v.txt'), 'first\n');
  git(w, 'add', '.');
  git(w, 'commit', '-q', '-m', 'first');
  git(srv, 'init', '-q', '--bare', '-b', 'main', 'cache.git');
  publish(w, 'cache');
  const dir = await project(`FROM busybox\nADD ${gitBase}/cache.git#main /c\nRUN cat /c/v.txt > /copy.txt\n`);
  const first = await build(dir);
  t.is(first.code, 0, first.stderr);
  t.is(await readFile(join(first.out, 'copy.txt'), 'utf8'), 'first\n');
  const second = await build(dir);
  t.is(second.code, 0, second.stderr);
  t.regex(second.stderr, /#\d+ \[2\/3\] ADD \S+cache\.git#main \/c\n#\d+ CACHED/);
  t.regex(second.stderr, /#\d+ \[3\/3\] RUN cat \/c\/v\.txt > \/copy\.txt\n#\d+ CACHED/);
  await writeFile(join(w, 'v.txt'), 'second\n');
  git(w, 'commit', '-q', '-am', 'second');
  publish(w, 'cache');
  const third = await build(dir);
  t.is(third.code, 0, third.stderr);
  t.notRegex(third.stderr, /\[2\/3\] ADD \S+cache\.git#main \/c\n#\d+ CACHED/);
  t.is(await readFile(join(third.out, 'copy.txt'), 'utf8'), 'second\n');
  // no checkout is left behind in the store's tmp
  t.deepEqual((await readdir(join(root, 'tmp')).catch(() => [])).filter((x) => x.includes('git')), []);
});

it('--checksum: a commit id prefix that matches passes; another fails the step', async (t) => {
  const ok = await build(await project(`FROM busybox\nADD --checksum=${shas.one.slice(0, 7)} ${gitBase}/repo.git#v1 /c\n`));
  t.is(ok.code, 0, ok.stderr);
  t.is(await readFile(join(ok.out, 'c/a.txt'), 'utf8'), 'one\n');
  const bad = await build(await project(`FROM busybox\nADD --checksum=${shas.two.slice(0, 12)} ${gitBase}/repo.git#v1 /c\n`));
  t.is(bad.code, 1);
  t.regex(bad.stderr, new RegExp(`expected checksum to match ${shas.two.slice(0, 12)}, got ${shas.one}`));
  t.regex(bad.stderr, /Dockerfile:2/);
  const notHex = await build(await project(`FROM busybox\nADD --checksum=sha256:abc ${gitBase}/repo.git /c\n`));
  t.is(notHex.code, 1);
  t.regex(notHex.stderr, /invalid checksum sha256:abc for Git URL, expected hex commit hash/);
});

it('a missing ref or an unreachable repository fails the step: the URL, git\'s message, the Dockerfile line, exit 1', async (t) => {
  const missing = await build(await project(`FROM busybox\nADD ${gitBase}/repo.git#nope /x\n`));
  t.is(missing.code, 1);
  t.regex(missing.stderr, /failed to load cache key: repository does not contain ref nope/);
  t.regex(missing.stderr, />>> ADD git:\/\/127\.0\.0\.1:\d+\/repo\.git#nope \/x/);
  t.true(missing.stderr.includes(`${gitBase}/repo.git has no branch, tag or ref named nope`));
  const port = await freePort();
  const gone = await build(await project(`FROM busybox\nADD git://127.0.0.1:${port}/repo.git#main /x\n`));
  t.is(gone.code, 1);
  t.true(gone.stderr.includes(`failed to fetch remote git://127.0.0.1:${port}/repo.git: git stderr:`), gone.stderr);
  t.regex(gone.stderr, /unable to connect|Connection refused/);
  t.regex(gone.stderr, /Dockerfile:2/);
  const norepo = await build(await project(`FROM busybox\nADD ${gitBase}/absent.git /x\n`));
  t.is(norepo.code, 1);
  t.true(norepo.stderr.includes(`error fetching default branch for repository ${gitBase}/absent.git`), norepo.stderr);
  // SSH remotes need a forwarded agent (docker build --ssh), which hoist does not have
  const ssh = await build(await project(`FROM busybox\nADD git@127.0.0.1:repo.git /x\n`));
  t.is(ssh.code, 1);
  t.regex(ssh.stderr, /no SSH key "default" forwarded from the client/);
});

it('COPY of a repository is refused and a bad or conflicting query option is an error', async (t) => {
  const copy = await build(await project(`FROM busybox\nCOPY ${gitBase}/repo.git /x\n`));
  t.is(copy.code, 1);
  t.regex(copy.stderr, /source can't be a git ref for COPY/);
  const q = await build(await project(`FROM busybox\nADD ${gitBase}/repo.git?colour=red /x\n`));
  t.is(q.code, 1);
  t.regex(q.stderr, /unexpected query "colour"/);
  const conflict = await build(await project(`FROM busybox\nADD ${gitBase}/repo.git?tag=v1#v2 /x\n`));
  t.is(conflict.code, 1);
  t.regex(conflict.stderr, /ref conflicts: "v2" vs "refs\/tags\/v1"/);
});

it('a submodule URL with the ext::, file or ssh transport is refused, whatever the user\'s git configuration allows: nothing runs', async (t) => {
  const marker = join(work, 'pwned');
  // a user configuration (and environment) that would let git run ext:: commands: hoist's git must not read them
  const home = join(work, 'permissive-home');
  await mkdir(home);
  await writeFile(join(home, '.gitconfig'), '[protocol]\n\tallow = always\n');
  const env = { HOME: home, GIT_ALLOW_PROTOCOL: 'ext:file:git', XDG_CONFIG_HOME: home };
  for (const [name, url] of [['evil-ext', `ext::sh -c touch% ${marker}`], ['evil-file', join(srv, 'sub.git')], ['evil-ssh', 'ssh://127.0.0.1:1/x.git']] as const) {
    const w = join(work, name);
    await mkdir(w);
    git(w, 'init', '-q', '-b', 'main');
    await writeFile(join(w, '.gitmodules'), `[submodule "m"]\n\tpath = m\n\turl = ${url}\n`);
    git(w, 'update-index', '--add', '--cacheinfo', `160000,${shas.one},m`);
    git(w, 'add', '.gitmodules');
    git(w, 'commit', '-q', '-m', 'evil');
    git(srv, 'init', '-q', '--bare', '-b', 'main', `${name}.git`);
    publish(w, name);
    const r = await build(await project(`FROM busybox\nADD ${gitBase}/${name}.git /x\n`), [], env);
    t.is(r.code, 1, name);
    t.regex(r.stderr, /failed to update submodules for/, name);
    t.regex(r.stderr, /transport '(ext|file|ssh)' not allowed/, name);
  }
  t.false(await exists(marker));
});
