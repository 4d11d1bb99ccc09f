import test from 'ava';
import { mergeEnv, parseEnvFile, parseMemory, processConfig } from '../../src/sandbox/imageconfig.js';

const PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

test('ENTRYPOINT and CMD combine as Docker combines them', (t) => {
  const img = { Entrypoint: ['/entry', '-x'], Cmd: ['default', 'args'] };
  t.deepEqual(processConfig(img, {}).args, ['/entry', '-x', 'default', 'args']);
  t.deepEqual(processConfig(img, { cmd: ['mine'] }).args, ['/entry', '-x', 'mine']);
  // --entrypoint drops the image CMD too
  t.deepEqual(processConfig(img, { entrypoint: 'sh' }).args, ['sh']);
  t.deepEqual(processConfig(img, { entrypoint: 'sh', cmd: ['-c', 'true'] }).args, ['sh', '-c', 'true']);
  t.deepEqual(processConfig(img, { entrypoint: '', cmd: ['ls'] }).args, ['ls']);
  t.deepEqual(processConfig({ Cmd: ['sh'] }, {}).args, ['sh']);
  t.deepEqual(processConfig({ Entrypoint: null, Cmd: ['sh'] }, { cmd: ['ls', '-l'] }).args, ['ls', '-l']);
});

test('no command at all is hoist error 125', (t) => {
  const e = t.throws(() => processConfig({}, {}));
  t.is((e as { exitCode?: number }).exitCode, 125);
  t.regex(e!.message, /no command specified/);
});

test('Env, WorkingDir and User defaults from the image, overridden by flags', (t) => {
  const img = { Env: ['A=1', 'B=2'], WorkingDir: '/app', User: 'app', Cmd: ['x'] };
  const p = processConfig(img, {});
  t.deepEqual(p.env, [PATH, 'A=1', 'B=2']);
  t.is(p.cwd, '/app');
  t.is(p.user, 'app');
  const q = processConfig(img, { env: ['B=3', 'C=4', 'HOSTVAR', 'UNSET'], workdir: '/w', user: '0:0' }, { HOSTVAR: 'h' });
  t.deepEqual(q.env, [PATH, 'A=1', 'B=3', 'C=4', 'HOSTVAR=h']);
  t.is(q.cwd, '/w');
  t.is(q.user, '0:0');
  t.is(processConfig({ Cmd: ['x'], Env: ['PATH=/mine'] }, {}).env[0], 'PATH=/mine');
  t.is(processConfig({ Cmd: ['x'], WorkingDir: 'rel' }, {}).cwd, '/rel');
  t.throws(() => processConfig({ Cmd: ['x'] }, { workdir: 'relative' }), { message: /not an absolute path/ });
});

test('mergeEnv replaces in place and refuses an empty name', (t) => {
  t.deepEqual(mergeEnv(['A=1', 'B=2'], ['A=9']), ['A=9', 'B=2']);
  t.throws(() => mergeEnv([], ['=x']), { message: /name is empty/ });
});

test('env files: comments, blanks, bare names; bad names refused', (t) => {
  t.deepEqual(parseEnvFile('# c\n\nA=1\n  B=two words\nC\n', 'f'), ['A=1', 'B=two words', 'C']);
  t.throws(() => parseEnvFile('BAD NAME=1\n', 'f.env'), { message: /f\.env:1/ });
});

test('memory sizes in Docker units', (t) => {
  t.is(parseMemory('512m'), 512 * 1024 * 1024);
  t.is(parseMemory('1g'), 1024 ** 3);
  t.is(parseMemory('1.5GB'), 1.5 * 1024 ** 3);
  t.is(parseMemory('7340032'), 7340032);
  t.throws(() => parseMemory('lots'), { message: /invalid memory size/ });
  t.throws(() => parseMemory('1k'), { message: /below the minimum/ });
});
