import test, { type ExecutionContext } from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseDockerfile } from '../../src/dockerfile/parser.js';
import { DockerfileError } from '../../src/dockerfile/errors.js';
import { parseDockerfileStages, parseInstruction, parseStages, type Command, type FromCommand } from '../../src/dockerfile/instructions.js';
import { sharedDir } from '../helpers/paths.js';

/** Types the last instruction of `text`, without the source fields (checked separately). */
function one(text: string): Record<string, unknown> {
  const ast = parseDockerfile(text);
  return strip(parseInstruction(ast, ast.instructions[ast.instructions.length - 1]));
}

function strip(c: Command | FromCommand): Record<string, unknown> {
  const { keyword: _k, source: _s, location: _l, ...rest } = c as unknown as Record<string, unknown>;
  if (rest.kind === 'onbuild') rest.trigger = strip(rest.trigger as Command);
  return rest;
}

interface Where {
  line: number;
  column: number;
  detail: string | RegExp;
  hint?: RegExp;
  code?: string;
}

/** Expects the last instruction (or the whole file with `stages`) to fail with a DockerfileError at `where`. */
function fails(t: ExecutionContext, text: string, where: Where, stages = false): DockerfileError {
  const ast = parseDockerfile(text);
  const err = t.throws(() => (stages ? parseStages(ast) : parseInstruction(ast, ast.instructions[ast.instructions.length - 1])), {
    instanceOf: DockerfileError,
  })!;
  const e = err as DockerfileError;
  if (typeof where.detail === 'string') t.is(e.detail, where.detail);
  else t.regex(e.detail, where.detail);
  t.is(e.location.line, where.line, 'line');
  t.is(e.location.column, where.column, 'column');
  t.is(e.location.file, 'Dockerfile');
  t.is(e.location.sourceLine, text.split('\n')[where.line - 1]);
  if (where.hint) t.regex(e.hint ?? '', where.hint);
  if (where.code) t.is(e.code, where.code);
  return e;
}

// ---------------------------------------------------------------- FROM

test('FROM: image, platform, stage name (lower-cased)', (t) => {
  t.deepEqual(one('FROM alpine:3.20'), { kind: 'from', baseName: 'alpine:3.20' });
  t.deepEqual(one('FROM --platform=linux/arm64 golang:1.22 AS Build-1'),
    { kind: 'from', baseName: 'golang:1.22', platform: 'linux/arm64', stageName: 'build-1' });
  t.deepEqual(one('from scratch as out'), { kind: 'from', baseName: 'scratch', stageName: 'out' });
  t.deepEqual(one('FROM --platform=$BUILDPLATFORM base'), { kind: 'from', baseName: 'base', platform: '$BUILDPLATFORM' });
});

test('FROM: errors', (t) => {
  fails(t, 'FROM a b', { line: 1, column: 8, detail: 'FROM requires either one or three arguments' });
  fails(t, 'FROM', { line: 1, column: 1, detail: 'FROM requires either one or three arguments' });
  fails(t, 'FROM a AS 1st', { line: 1, column: 11, detail: 'invalid name for build stage: "1st", name can\'t start with a number or contain symbols' });
  fails(t, 'FROM a AS we$ird', { line: 1, column: 11, detail: /invalid name for build stage: "we\$ird"/ });
  const e = fails(t, 'FROM --plaform=linux/amd64 a', { line: 1, column: 6, detail: 'unknown flag: --plaform (did you mean --platform?)' });
  t.regex(e.hint!, /--platform/);
  fails(t, 'FROM --platform a', { line: 1, column: 6, detail: 'missing a value on flag: --platform' });
  fails(t, 'FROM --platform=a --platform=b img', { line: 1, column: 19, detail: 'duplicate flag specified: --platform' });
});

// ---------------------------------------------------------------- RUN

test('RUN: shell and exec forms, defaults', (t) => {
  t.deepEqual(one('FROM a\nRUN apt-get update && \\\n  apt-get install -y curl'), {
    kind: 'run', form: 'shell', cmdLine: ['apt-get update &&   apt-get install -y curl'], heredocs: [], mounts: [],
    network: 'default', security: 'sandbox', flagsUsed: [],
  });
  t.deepEqual(one('RUN ["echo", "a b"]'), {
    kind: 'run', form: 'exec', cmdLine: ['echo', 'a b'], heredocs: [], mounts: [], network: 'default', security: 'sandbox', flagsUsed: [],
  });
  // invalid JSON falls back to the shell form, as BuildKit does
  t.like(one('RUN ["echo", a]'), { form: 'shell', cmdLine: ['["echo", a]'] });
});

test('RUN: --network and --security', (t) => {
  t.like(one('RUN --network=none --security=insecure make'), { network: 'none', security: 'insecure', flagsUsed: ['network', 'security'] });
  t.like(one('RUN --network=host make'), { network: 'host', security: 'sandbox' });
  fails(t, 'RUN --network=bogus make', { line: 1, column: 5, detail: 'invalid network mode "bogus"', hint: /default, none, host/ });
  fails(t, 'RUN --security=root make', { line: 1, column: 5, detail: 'security "root" is not valid', hint: /sandbox, insecure/ });
  fails(t, 'RUN --network=none --network=host make', { line: 1, column: 20, detail: 'duplicate flag specified: --network' });
  fails(t, 'RUN --network=none \\\n  --network=none make', { line: 2, column: 3, detail: 'duplicate flag specified: --network' });
  fails(t, 'COPY --link --link a /b', { line: 1, column: 13, detail: 'duplicate flag specified: --link' });
  fails(t, 'RUN --network make', { line: 1, column: 5, detail: 'missing a value on flag: --network' });
  const e = fails(t, 'RUN --foo=bar make', { line: 1, column: 5, detail: 'unknown flag: --foo', code: 'E_UNKNOWN_FLAG' });
  t.is(e.hint, 'valid flags for RUN: --mount, --network, --security');
  fails(t, 'RUN --mout=type=cache,target=/x make', { line: 1, column: 5, detail: 'unknown flag: --mout (did you mean --mount?)' });
});

test('RUN: flags on a continuation line are located there', (t) => {
  fails(t, 'FROM a\nRUN --network=none \\\n    --security=bad \\\n    make', { line: 3, column: 5, detail: 'security "bad" is not valid' });
});

test('RUN --mount: every type with its options and defaults', (t) => {
  const run = one([
    'RUN --mount=type=bind,source=go.sum,target=/src/go.sum \\',
    '    --mount=type=bind,from=build,src=/out,dst=/in,rw \\',
    '    --mount=type=cache,target=/root/.cache/go-build/,sharing=locked,mode=0700,uid=1000,gid=1000 \\',
    '    --mount=type=cache,id=apt,target=/var/cache/apt,from=cachebase,source=/c,ro \\',
    '    --mount=type=tmpfs,target=/tmp,size=64m \\',
    '    --mount=type=secret,id=npmrc,target=/root/.npmrc,required,mode=0440,uid=1,gid=2 \\',
    '    --mount=type=secret,id=token,env=TOKEN \\',
    '    --mount=type=secret,source=aws \\',
    '    --mount=type=ssh,id=github,target=/run/ssh.sock,required=true,mode=0600,uid=0,gid=0 \\',
    '    --mount=type=ssh \\',
    '    go build ./...',
  ].join('\n'));
  const mounts = (run.mounts as Record<string, unknown>[]).map(({ spec: _s, ...m }) => m);
  t.deepEqual(mounts, [
    { type: 'bind', source: 'go.sum', target: '/src/go.sum', readonly: true },
    { type: 'bind', from: 'build', source: '/out', target: '/in', readonly: false },
    { type: 'cache', target: '/root/.cache/go-build/', id: '/root/.cache/go-build', sharing: 'locked', mode: 0o700, uid: 1000, gid: 1000, readonly: false },
    { type: 'cache', target: '/var/cache/apt', id: 'apt', sharing: 'shared', from: 'cachebase', source: '/c', readonly: true },
    { type: 'tmpfs', target: '/tmp', size: 64 * 1024 * 1024, readonly: false },
    { type: 'secret', id: 'npmrc', target: '/root/.npmrc', required: true, mode: 0o440, uid: 1, gid: 2, readonly: true },
    { type: 'secret', id: 'token', env: 'TOKEN', required: false, readonly: true },
    { type: 'secret', id: 'aws', target: '/run/secrets/aws', required: false, readonly: true },
    { type: 'ssh', id: 'github', target: '/run/ssh.sock', required: true, mode: 0o600, uid: 0, gid: 0, readonly: true },
    { type: 'ssh', id: 'default', required: false, readonly: true },
  ]);
  t.is((run.mounts as { spec: string }[])[0].spec, 'type=bind,source=go.sum,target=/src/go.sum');
  t.deepEqual(run.flagsUsed, ['mount']);
});

test('RUN --mount: secret id from the target, quoted CSV fields, key case', (t) => {
  const run = one('RUN --mount=type=secret,target=/etc/creds/db.pass --mount="TYPE=bind,\\"target=/a,b\\",RO" true');
  t.like((run.mounts as object[])[0], { type: 'secret', id: 'db.pass', target: '/etc/creds/db.pass' });
  t.like((run.mounts as object[])[1], { type: 'bind', target: '/a,b', readonly: true });
});

test('RUN --mount: values with variables wait for expansion', (t) => {
  const run = one('RUN --mount=type=cache,target=$HOME/.cache,uid=$UID true');
  t.deepEqual((run.mounts as object[])[0], {
    spec: 'type=cache,target=$HOME/.cache,uid=$UID', unresolved: true, type: 'cache', target: '$HOME/.cache', sharing: 'shared', readonly: false,
  });
});

test('RUN --mount: errors name the option and point at the flag', (t) => {
  const cases: [string, string | RegExp][] = [
    ['type=nope', 'unsupported mount type "nope"'],
    ['type=cahce,target=/c', 'unsupported mount type "cahce" (did you mean cache?)'],
    ['type=cache,sharing=bogus', 'unsupported sharing value "bogus"'],
    ['type=cache,sharing=lockd', 'unsupported sharing value "lockd" (did you mean locked?)'],
    ['type=bind,target=/x,mode=0700', 'mode not allowed for "bind" type mounts'],
    ['type=tmpfs,target=/x,uid=1', 'uid not allowed for "tmpfs" type mounts'],
    ['type=bind,target=/x,gid=1', 'gid not allowed for "bind" type mounts'],
    ['type=cache,target=/x,mode=999', 'invalid value 999 for mode'],
    ['type=cache,target=/x,uid=-1', 'invalid value -1 for uid'],
    ['type=cache,target=/x,gid=4294967296', 'invalid value 4294967296 for gid'],
    ['type=cache,target=/x,size=1m', "unexpected key 'size' for mount type 'cache'"],
    ['type=tmpfs,target=/x,size=lots', 'invalid value for size: lots'],
    ['target=/x,required', "unexpected key 'required' for mount type 'bind'"],
    ['type=secret,id=a,required=maybe', 'invalid value for required: maybe'],
    ['type=bind,target=/x,ro=maybe', 'invalid value for ro: maybe'],
    ['type=bind,target=/x,rw=2', 'invalid value for rw: 2'],
    ['type=secret', 'invalid secret mount. one of source, target required'],
    ['type=secret,source=a,id=b', "both source and id can't be set"],
    ['type=secret,id=a,from=img', 'secret mount should not have a from'],
    ['type=secret,id=a,sharing=shared', 'secret mount should not define sharing'],
    ['type=bind,target=/x,sharing=shared', 'invalid cache sharing set for bind mount'],
    ['type=ssh,source=x', 'ssh does not support source'],
    ['type=bind,from=${STAGE}x,target=/x', "'from' doesn't support variable expansion, define alias stage instead"],
    ['type=bind,targett=/x', "unexpected key 'targett' in 'targett=/x' (did you mean target?)"],
    ['type=bind,target', "invalid field 'target' must be a key=value pair"],
    ['type=bind,tar\\"get=/x', /^failed to parse csv mounts: parse error on line 1, column 14: bare "/],
  ];
  for (const [spec, detail] of cases) {
    fails(t, `FROM a\nRUN --network=none --mount=${spec} true`, { line: 2, column: 20, detail, code: 'E_INVALID_MOUNT' });
  }
  fails(t, 'RUN --mount= true', { line: 1, column: 5, detail: 'failed to parse csv mounts: EOF' });
});

test('RUN: heredocs (several, <<-, quoted delimiter, command after the marker)', (t) => {
  const text = ['FROM a', 'RUN <<EOF', 'apt-get update', 'EOF', 'RUN <<-"END" python3', '\tprint("$x")', '\tEND',
    'RUN 3<<A cat /proc/self/fd/3 - <<B', 'one', 'A', 'two', 'B'].join('\n');
  const { stages } = parseStages(parseDockerfile(text));
  const [r1, r2, r3] = stages[0].commands.map(strip);
  t.deepEqual(r1, {
    kind: 'run', form: 'shell', cmdLine: ['<<EOF'], heredocs: [{ name: 'EOF', data: 'apt-get update\n', chomp: false, expand: true }],
    mounts: [], network: 'default', security: 'sandbox', flagsUsed: [],
  });
  t.like(r2, { cmdLine: ['<<-"END" python3'], heredocs: [{ name: 'END', data: '\tprint("$x")\n', chomp: true, expand: false }] });
  t.deepEqual(r3.heredocs, [
    { name: 'A', data: 'one\n', chomp: false, expand: true },
    { name: 'B', data: 'two\n', chomp: false, expand: true },
  ]);
});

// ---------------------------------------------------------------- CMD / ENTRYPOINT

test('CMD and ENTRYPOINT: shell, exec, empty', (t) => {
  t.deepEqual(one('CMD ["nginx", "-g", "daemon off;"]'), { kind: 'cmd', form: 'exec', cmdLine: ['nginx', '-g', 'daemon off;'] });
  t.deepEqual(one('CMD make server'), { kind: 'cmd', form: 'shell', cmdLine: ['make server'] });
  t.deepEqual(one('ENTRYPOINT ["/entry.sh"]'), { kind: 'entrypoint', form: 'exec', cmdLine: ['/entry.sh'] });
  t.deepEqual(one('ENTRYPOINT exec top -b'), { kind: 'entrypoint', form: 'shell', cmdLine: ['exec top -b'] });
  t.deepEqual(one('ENTRYPOINT []'), { kind: 'entrypoint', form: 'exec', cmdLine: [] });
  t.deepEqual(one("CMD ['single', 'quotes']"), { kind: 'cmd', form: 'shell', cmdLine: ["['single', 'quotes']"] });
  fails(t, 'CMD --init ["a"]', { line: 1, column: 5, detail: 'unknown flag: --init', hint: /CMD takes no flags/ });
});

// ---------------------------------------------------------------- COPY / ADD

test('COPY: sources, destination, every flag', (t) => {
  t.deepEqual(one('COPY a.txt b/ /dest/'), {
    kind: 'copy', sources: ['a.txt', 'b/'], heredocSources: [], dest: '/dest/', link: false, exclude: [], parents: false,
  });
  t.deepEqual(one('COPY --from=build --chown=app:app --chmod=0755 --link --parents --exclude=*.md --exclude=.git ./src/ /app/'), {
    kind: 'copy', sources: ['./src/'], heredocSources: [], dest: '/app/', from: 'build', chown: 'app:app',
    chmod: { kind: 'octal', text: '0755', mode: 0o755 }, link: true, exclude: ['*.md', '.git'], parents: true,
  });
  t.like(one('COPY ["my file.txt", "other file", "/dest dir/"]'), { sources: ['my file.txt', 'other file'], dest: '/dest dir/' });
  t.like(one('COPY --link=false --parents=TRUE a /b'), { link: false, parents: true });
  t.like(one('COPY --chmod=$MODE a /b'), { chmod: { kind: 'unresolved', text: '$MODE' } });
});

test('COPY --chmod: symbolic modes are parsed and applied like chmod(1)', (t) => {
  const c = one('COPY --chmod=u+x,g-w a /b');
  t.deepEqual(c.chmod, { kind: 'symbolic', text: 'u+x,g-w', ops: [{ op: '-', bits: 0o020 }, { op: '+', bits: 0o100 }] });
});

test('COPY/ADD: argument and flag errors', (t) => {
  fails(t, 'COPY onlyone', { line: 1, column: 6,
    detail: 'COPY requires at least two arguments, but only one was provided. Destination could not be determined' });
  fails(t, 'COPY \\\n  quux', { line: 2, column: 3, detail: /^COPY requires at least two arguments/ });
  fails(t, 'ADD', { line: 1, column: 1, detail: /^ADD requires at least two arguments/ });
  fails(t, 'COPY --chmod=9z a /b', { line: 1, column: 6,
    detail: "invalid chmod parameter: '9z'. it should be octal string and between 0 and 07777", hint: /u\+x,g-w/ });
  fails(t, 'COPY --chmod=10000 a /b', { line: 1, column: 6, detail: "invalid chmod parameter: '10000'. it should be octal string and between 0 and 07777" });
  fails(t, 'COPY --chmod=u+q a /b', { line: 1, column: 6, detail: /^invalid chmod parameter: 'u\+q'/ });
  fails(t, 'COPY --chmod=ug a /b', { line: 1, column: 6, detail: /^invalid chmod parameter: 'ug'/ });
  fails(t, 'COPY --link=maybe a /b', { line: 1, column: 6, detail: 'expecting boolean value for flag --link, not: maybe' });
  fails(t, 'COPY --link= a /b', { line: 1, column: 6, detail: 'missing a value on flag: --link' });
  fails(t, 'COPY --from a /b', { line: 1, column: 6, detail: 'missing a value on flag: --from' });
  fails(t, 'COPY --from=a --from=b x /y', { line: 1, column: 15, detail: 'duplicate flag specified: --from' });
  fails(t, 'COPY --checksum=sha256:abc a /b', { line: 1, column: 6, detail: 'unknown flag: --checksum',
    hint: /valid flags for COPY: --chown, --from, --chmod, --link, --exclude, --parents/ });
  fails(t, 'ADD --from=x a /b', { line: 1, column: 5, detail: 'unknown flag: --from' });
  fails(t, 'ADD --parents a /b', { line: 1, column: 5, detail: 'unknown flag: --parents', hint: /valid flags for ADD: --chown, --chmod, --link, --keep-git-dir, --checksum, --unpack, --exclude/ });
});

test('ADD: checksum, keep-git-dir, unpack (absent unless given), exclude', (t) => {
  t.deepEqual(one('ADD https://example.com/a.tar.gz /x/'), {
    kind: 'add', sources: ['https://example.com/a.tar.gz'], heredocSources: [], dest: '/x/', link: false, exclude: [],
  });
  t.deepEqual(one('ADD --checksum=sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d --keep-git-dir --unpack=false --exclude=*.tmp --chown=1:2 --chmod=go-w --link https://example.com/a.tar.gz /x/'), {
    kind: 'add', sources: ['https://example.com/a.tar.gz'], heredocSources: [], dest: '/x/',
    chown: '1:2', chmod: { kind: 'symbolic', text: 'go-w', ops: [{ op: '-', bits: 0o022 }] }, link: true, exclude: ['*.tmp'],
    checksum: 'sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d', keepGitDir: true, unpack: false,
  });
  t.like(one('ADD --unpack https://example.com/a.tar.gz /x/'), { unpack: true });
  t.like(one('ADD --keep-git-dir=false git@github.com:a/b.git /src'), { keepGitDir: false });
});

test('COPY/ADD: heredoc sources (chomp, quoted delimiter, mixed with paths)', (t) => {
  const text = ['FROM a', 'COPY <<EOF /etc/motd', 'hello $USER', 'EOF',
    'COPY <<-"RAW" real.txt <<TWO /dst/', '\t\tkeep $x', '\tRAW', 'second', 'TWO',
    'ADD <<EOF /x', 'add body', 'EOF'].join('\n');
  const cmds = parseStages(parseDockerfile(text)).stages[0].commands.map(strip);
  t.deepEqual(cmds[0], {
    kind: 'copy', sources: [], heredocSources: [{ path: 'EOF', data: 'hello $USER\n', expand: true }], dest: '/etc/motd',
    link: false, exclude: [], parents: false,
  });
  t.deepEqual(cmds[1].sources, ['real.txt']);
  t.deepEqual(cmds[1].heredocSources, [
    { path: 'RAW', data: 'keep $x\n', expand: false },
    { path: 'TWO', data: 'second\n', expand: true },
  ]);
  t.like(cmds[2], { kind: 'add', heredocSources: [{ path: 'EOF', data: 'add body\n', expand: true }], dest: '/x' });
  fails(t, 'FROM a\nCOPY a <<EOF\nx\nEOF', { line: 2, column: 8, detail: 'COPY cannot accept a heredoc as a destination' });
});

// ---------------------------------------------------------------- ENV / LABEL / ARG

test('ENV and LABEL: both forms, values as written', (t) => {
  t.deepEqual(one('ENV A=1 B="two words" C=${A}'), { kind: 'env', pairs: [
    { key: 'A', value: '1', legacy: false }, { key: 'B', value: '"two words"', legacy: false }, { key: 'C', value: '${A}', legacy: false },
  ] });
  t.deepEqual(one('ENV PATH /usr/local/bin:$PATH'), { kind: 'env', pairs: [{ key: 'PATH', value: '/usr/local/bin:$PATH', legacy: true }] });
  t.deepEqual(one('LABEL org.opencontainers.image.title="hoist" version=1'), { kind: 'label', labels: [
    { key: 'org.opencontainers.image.title', value: '"hoist"', legacy: false }, { key: 'version', value: '1', legacy: false },
  ] });
  fails(t, 'ENV', { line: 1, column: 1, detail: 'ENV requires at least one argument' });
  fails(t, 'LABEL', { line: 1, column: 1, detail: 'LABEL requires at least one argument' });
  fails(t, 'ENV =x', { line: 1, column: 5, detail: 'ENV names can not be blank' });
  fails(t, 'LABEL --x=1 a=b', { line: 1, column: 7, detail: 'unknown flag: --x', hint: /LABEL takes no flags/ });
});

test('ARG: several per line, defaults, errors', (t) => {
  t.deepEqual(one('ARG VERSION=1.2 TARGETOS NAME="a b" EMPTY='), { kind: 'arg', args: [
    { key: 'VERSION', value: '1.2' }, { key: 'TARGETOS' }, { key: 'NAME', value: '"a b"' }, { key: 'EMPTY', value: '' },
  ] });
  fails(t, 'ARG', { line: 1, column: 1, detail: 'ARG requires at least one argument' });
  fails(t, 'ARG ok=1 =x', { line: 1, column: 10, detail: 'ARG names can not be blank' });
});

// ---------------------------------------------------------------- the single-argument instructions

test('EXPOSE, VOLUME, USER, WORKDIR, STOPSIGNAL, MAINTAINER', (t) => {
  t.deepEqual(one('EXPOSE 8080/udp 80 443/tcp'), { kind: 'expose', ports: ['443/tcp', '80', '8080/udp'] });
  t.deepEqual(one('VOLUME ["/data", "/var/log"]'), { kind: 'volume', volumes: ['/data', '/var/log'] });
  t.deepEqual(one('VOLUME /a /b'), { kind: 'volume', volumes: ['/a', '/b'] });
  t.deepEqual(one('USER app:staff'), { kind: 'user', user: 'app:staff' });
  t.deepEqual(one('WORKDIR /opt/my app'), { kind: 'workdir', path: '/opt/my app' });
  t.deepEqual(one('STOPSIGNAL SIGTERM'), { kind: 'stopsignal', signal: 'SIGTERM' });
  t.deepEqual(one('MAINTAINER Bourbon Tian "bourbon@1mcloud.com"'), { kind: 'maintainer', maintainer: 'Bourbon Tian "bourbon@1mcloud.com"' });
  fails(t, 'EXPOSE', { line: 1, column: 1, detail: 'EXPOSE requires at least one argument' });
  fails(t, 'VOLUME', { line: 1, column: 1, detail: 'VOLUME requires at least one argument' });
  fails(t, 'VOLUME ["/a", " "]', { line: 1, column: 1, detail: 'VOLUME specified can not be an empty string' });
  fails(t, 'USER', { line: 1, column: 1, detail: 'USER requires exactly one argument' });
  fails(t, 'WORKDIR', { line: 1, column: 1, detail: 'WORKDIR requires exactly one argument' });
  fails(t, 'STOPSIGNAL', { line: 1, column: 1, detail: 'STOPSIGNAL requires exactly one argument' });
  fails(t, 'MAINTAINER --boo joe@example.com', { line: 1, column: 12, detail: 'unknown flag: --boo' });
  fails(t, 'WORKDIR --chown=1 /x', { line: 1, column: 9, detail: 'unknown flag: --chown', hint: /WORKDIR takes no flags/ });
});

test('SHELL: JSON form required', (t) => {
  t.deepEqual(one('SHELL ["/bin/bash", "-eo", "pipefail", "-c"]'), { kind: 'shell', shell: ['/bin/bash', '-eo', 'pipefail', '-c'] });
  const e = fails(t, 'SHELL /bin/bash -c', { line: 1, column: 7, detail: 'SHELL requires the arguments to be in JSON form' });
  t.is(e.hint, 'write SHELL ["/bin/bash","-c"]');
  fails(t, 'SHELL []', { line: 1, column: 1, detail: 'SHELL requires at least one argument' });
});

// ---------------------------------------------------------------- HEALTHCHECK

test('HEALTHCHECK: NONE, CMD-SHELL, CMD exec, durations and retries', (t) => {
  t.deepEqual(one('HEALTHCHECK NONE'), { kind: 'healthcheck', health: { test: ['NONE'] } });
  t.deepEqual(one('HEALTHCHECK CMD curl -f http://localhost/ || exit 1'), { kind: 'healthcheck', health: {
    test: ['CMD-SHELL', 'curl -f http://localhost/ || exit 1'], interval: 0, timeout: 0, startPeriod: 0, startInterval: 0, retries: 0,
  } });
  t.deepEqual(one('HEALTHCHECK --interval=1m30s --timeout=2.5s --start-period=500ms --start-interval=1h --retries=3 CMD ["/bin/check", "-q"]'), {
    kind: 'healthcheck', health: {
      test: ['CMD', '/bin/check', '-q'], interval: 90e9, timeout: 2.5e9, startPeriod: 500e6, startInterval: 3600e9, retries: 3,
    },
  });
  t.like(one('healthcheck --interval=0 cmd true'), { health: { test: ['CMD-SHELL', 'true'], interval: 0 } });
});

test('HEALTHCHECK: errors', (t) => {
  fails(t, 'HEALTHCHECK --start-period=xyz CMD true', { line: 1, column: 13,
    detail: 'invalid --start-period: time: invalid duration "xyz"', hint: /30s/ });
  fails(t, 'HEALTHCHECK --interval=5 CMD true', { line: 1, column: 13, detail: 'invalid --interval: time: missing unit in duration "5"' });
  fails(t, 'HEALTHCHECK --timeout=3d CMD true', { line: 1, column: 13, detail: 'invalid --timeout: time: unknown unit "d" in duration "3d"' });
  fails(t, 'HEALTHCHECK --interval=500us CMD true', { line: 1, column: 13, detail: 'Interval "interval" cannot be less than 1ms' });
  fails(t, 'HEALTHCHECK --timeout=-1s CMD true', { line: 1, column: 13, detail: 'Interval "timeout" cannot be less than 1ms' });
  fails(t, 'HEALTHCHECK --retries=-1 CMD true', { line: 1, column: 13, detail: '--retries cannot be negative (-1)' });
  fails(t, 'HEALTHCHECK --retries=three CMD true', { line: 1, column: 13, detail: 'invalid --retries value "three": must be an integer' });
  fails(t, 'HEALTHCHECK --retries=1 --retries=2 CMD true', { line: 1, column: 25, detail: 'duplicate flag specified: --retries' });
  fails(t, 'HEALTHCHECK --intervl=5s CMD true', { line: 1, column: 13, detail: 'unknown flag: --intervl (did you mean --interval?)' });
  fails(t, 'HEALTHCHECK CMD', { line: 1, column: 13, detail: 'Missing command after HEALTHCHECK CMD' });
  fails(t, 'HEALTHCHECK RUN true', { line: 1, column: 13, detail: 'Unknown type "RUN" in HEALTHCHECK (try CMD)' });
  fails(t, 'HEALTHCHECK NONE now', { line: 1, column: 18, detail: 'HEALTHCHECK NONE takes no arguments' });
  fails(t, 'HEALTHCHECK', { line: 1, column: 1, detail: 'HEALTHCHECK requires at least one argument' });
});

test('HEALTHCHECK NONE: flags are ignored as BuildKit does, with a warning', (t) => {
  const r = parseStages(parseDockerfile('FROM a\nHEALTHCHECK --interval=5s NONE'));
  t.deepEqual(strip(r.stages[0].commands[0]), { kind: 'healthcheck', health: { test: ['NONE'] } });
  t.deepEqual(r.warnings, [{ message: 'HEALTHCHECK NONE ignores its flags (--interval=5s)', line: 2 }]);
});

// ---------------------------------------------------------------- ONBUILD

test('ONBUILD: the trigger is typed and kept as an expression', (t) => {
  t.deepEqual(one('ONBUILD RUN --network=none make'), {
    kind: 'onbuild', expression: 'RUN --network=none make',
    trigger: { kind: 'run', form: 'shell', cmdLine: ['make'], heredocs: [], mounts: [], network: 'none', security: 'sandbox', flagsUsed: ['network'] },
  });
  t.like(one('onbuild COPY . /app'), { expression: 'COPY . /app', trigger: { kind: 'copy', sources: ['.'], dest: '/app' } });
  const h = one('ONBUILD RUN <<EOF\necho hi\nEOF');
  t.is(h.expression, 'RUN <<EOF\necho hi\nEOF');
  t.like(h.trigger, { kind: 'run', heredocs: [{ name: 'EOF', data: 'echo hi\n' }] });
});

test('ONBUILD: refuses ONBUILD, FROM and MAINTAINER with BuildKit\'s messages', (t) => {
  fails(t, 'ONBUILD ONBUILD RUN touch foobar', { line: 1, column: 9, detail: 'Chaining ONBUILD via `ONBUILD ONBUILD` isn\'t allowed' });
  fails(t, 'ONBUILD FROM scratch', { line: 1, column: 9, detail: "FROM isn't allowed as an ONBUILD trigger" });
  fails(t, 'onbuild maintainer me', { line: 1, column: 9, detail: "MAINTAINER isn't allowed as an ONBUILD trigger" });
  fails(t, 'ONBUILD', { line: 1, column: 1, detail: 'ONBUILD requires at least one argument' });
  fails(t, 'ONBUILD RUN --network=bogus x', { line: 1, column: 13, detail: 'invalid network mode "bogus"' });
  fails(t, 'ONBUILD FORM x', { line: 1, column: 9, detail: 'unknown instruction: FORM in ONBUILD trigger (did you mean FROM?)' });
});

// ---------------------------------------------------------------- unknown instructions

test('unknown instructions: suggestion by edit distance, in the case written', (t) => {
  fails(t, 'FOO bar', { line: 1, column: 1, detail: 'unknown instruction: FOO (did you mean FROM?)', code: 'E_UNKNOWN_INSTRUCTION' });
  fails(t, 'foo bar', { line: 1, column: 1, detail: 'unknown instruction: foo (did you mean from?)' });
  fails(t, '  COPPY a b', { line: 1, column: 3, detail: 'unknown instruction: COPPY (did you mean COPY?)' });
  const e = fails(t, 'FROBNICATE x', { line: 1, column: 1, detail: 'unknown instruction: FROBNICATE' });
  t.regex(e.hint!, /ADD, ARG, CMD, COPY/);
});

test('unknown instructions: invisible characters are named', (t) => {
  const e = fails(t, 'FROM a\n\u00a0 EXPOSE\u00a0 80', { line: 2, column: 3,
    detail: 'unknown instruction "EXPOSE\\u00a0" — the line contains a non-breaking space (U+00A0)' });
  t.regex(e.hint!, /replace the non-breaking space after EXPOSE with a plain space/);
  t.regex(e.format(), /\^/);
  fails(t, 'RUN\u200bls', { line: 1, column: 1, detail: 'unknown instruction "RUN\\u200bls" — the line contains a zero-width space (U+200B)' });
});

test('the nbsp seed fails exactly where BuildKit fails, with the character named', (t) => {
  const text = readFileSync(join(sharedDir, 'seeds', 'nbsp-pypy.Dockerfile'), 'utf8');
  const ast = parseDockerfile(text, { file: 'nbsp-pypy.Dockerfile' });
  const err = t.throws(() => parseStages(ast), { instanceOf: DockerfileError }) as DockerfileError;
  const line = text.split('\n').findIndex((l) => l.includes('EXPOSE')) + 1;
  t.is(err.location.line, line);
  t.is(err.location.column, 3);
  // the file has no plain space at all after EXPOSE: the whole word is what BuildKit sees as the instruction
  t.is(err.detail, 'unknown instruction "EXPOSE\\u00a080" — the line contains a non-breaking space (U+00A0)');
  t.is(err.hint, 'replace the non-breaking space after EXPOSE with a plain space (it was probably pasted from a web page)');
  t.true(err.message.startsWith(`nbsp-pypy.Dockerfile:${line}:3: `));
});

// ---------------------------------------------------------------- stages

test('stages: meta ARGs, grouping, names, platforms', (t) => {
  const text = ['# syntax=docker/dockerfile:1', 'ARG GO=1.22', 'ARG BASE', 'FROM --platform=$BUILDPLATFORM golang:$GO AS Build',
    'WORKDIR /src', 'RUN go build', 'FROM alpine', 'COPY --from=build /out /bin/', 'CMD ["app"]'].join('\n');
  const r = parseStages(parseDockerfile(text));
  t.deepEqual(r.metaArgs.map(strip), [
    { kind: 'arg', args: [{ key: 'GO', value: '1.22' }] },
    { kind: 'arg', args: [{ key: 'BASE' }] },
  ]);
  t.is(r.stages.length, 2);
  t.like(r.stages[0], { name: 'build', base: 'golang:$GO', platform: '$BUILDPLATFORM', location: { startLine: 4 } });
  t.deepEqual(r.stages[0].commands.map((c) => c.kind), ['workdir', 'run']);
  t.is(r.stages[1].name, undefined);
  t.deepEqual(r.stages[1].commands.map((c) => c.kind), ['copy', 'cmd']);
  t.deepEqual(r.stages[1].commands[0].location, { startLine: 8, startCol: 1, endLine: 8, endCol: 0 });
  t.is(r.stages[1].commands[0].source, 'COPY --from=build /out /bin/');
  t.is(r.stages[1].commands[0].keyword, 'COPY');
});

test('stages: duplicate and reserved names are warnings, as in BuildKit', (t) => {
  const r = parseStages(parseDockerfile('FROM a AS base\nFROM b AS BASE\nFROM c AS scratch\nFROM d AS context'));
  t.is(r.stages.length, 4);
  t.deepEqual(r.warnings.map((w) => w.line), [2, 3, 4]);
  t.regex(r.warnings[0].message, /^Duplicate stage name "base", stage names should be unique \(first defined on line 1\)/);
  t.regex(r.warnings[1].message, /^Stage name should not use the same name as reserved stage "scratch"/);
  t.regex(r.warnings[2].message, /^Stage name should not use the same name as reserved stage "context"/);
});

test('stages: errors', (t) => {
  fails(t, 'ARG A\nRUN echo\nFROM a', { line: 2, column: 1,
    detail: 'no build stage in current context: RUN comes before the first FROM', hint: /only ARG may come before the first FROM/ }, true);
  fails(t, 'ARG A=1', { line: 1, column: 1, detail: 'dockerfile contains no stages to build', hint: /FROM/ }, true);
  fails(t, 'FROM a\nRUN --bogus x', { line: 2, column: 5, detail: 'unknown flag: --bogus' }, true);
});

test('the seed Dockerfiles type into the expected stages', (t) => {
  const read = (name: string) => readFileSync(join(sharedDir, 'seeds', name), 'utf8');
  const labels = parseDockerfileStages(read('scratch-labels.Dockerfile'), { file: 'scratch-labels.Dockerfile' });
  t.is(labels.stages.length, 1);
  t.like(labels.stages[0], { base: 'scratch', location: { startLine: 2 } });
  t.deepEqual(labels.stages[0].commands.map(strip), [
    { kind: 'maintainer', maintainer: 'asion<gogery@163.com>' },
    { kind: 'add', sources: ['file.txt'], heredocSources: [], dest: '/', link: false, exclude: [] },
    { kind: 'label', labels: [
      { key: 'name', value: '"CentOS Base Image"', legacy: false }, { key: 'vendor', value: '"CentOS"', legacy: false },
      { key: 'license', value: '"GPLv2"', legacy: false }, { key: 'build-date', value: '"2016-06-02"', legacy: false },
    ] },
    { kind: 'cmd', form: 'exec', cmdLine: ['/bin/bash'] },
  ]);
  t.deepEqual(labels.stages[0].commands[2].location, { startLine: 6, startCol: 1, endLine: 9, endCol: 0 });

  const web = parseDockerfileStages(read('static-web.Dockerfile'));
  t.deepEqual(web.metaArgs, []);
  t.is(web.stages[0].base, 'ubuntu:14.04');
  t.deepEqual(web.stages[0].commands.map((c) => c.kind), ['maintainer', 'run', 'run', 'run', 'expose']);
  t.like(strip(web.stages[0].commands[3]), { cmdLine: ["echo 'Hi, I am in your container' \t>/usr/share/nginx/html/index.html"] });
});
