// Pure functions of the registry client: challenges, insecure hosts, Docker config handling.
import test from 'ava';
import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isInsecureHost, parseChallenge, insecureList } from '../../src/registry/client.js';
import { configKey, eraseCredentials, lookupCredentials, saveCredentials } from '../../src/registry/credentials.js';

test('WWW-Authenticate challenges: quoted and bare params, escapes, unknown schemes', (t) => {
  t.deepEqual(parseChallenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"'), {
    scheme: 'bearer',
    params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/busybox:pull' },
  });
  t.deepEqual(parseChallenge('Basic realm="a \\"q\\" b"'), { scheme: 'basic', params: { realm: 'a "q" b' } });
  t.deepEqual(parseChallenge('bearer realm=http://x/t, service=s'), { scheme: 'bearer', params: { realm: 'http://x/t', service: 's' } });
  t.is(parseChallenge('Negotiate abc'), undefined);
  t.is(parseChallenge(null), undefined);
});

test('plain HTTP only for loopback and hosts named insecure', (t) => {
  for (const h of ['localhost', 'localhost:5000', '127.0.0.1:5000', '127.1.2.3', '[::1]:5000']) t.true(isInsecureHost(h, []), h);
  for (const h of ['registry.example.com', 'localhost.evil.com:5000', '10.0.0.1:5000', '127.0.0.1.nip.io']) t.false(isInsecureHost(h, []), h);
  t.true(isInsecureHost('reg.lan:5000', ['reg.lan:5000']));
  t.true(isInsecureHost('reg.lan:5000', ['reg.lan']));
  t.false(isInsecureHost('reg.lan:5000', ['reg.lan:6000']));
  t.deepEqual(insecureList({ env: { HOIST_INSECURE_REGISTRIES: 'a:1, http://b/ c' }, insecureRegistries: ['d'] }), ['d', 'a:1', 'b', 'c']);
});

test('docker config: keys are normalised, auth is base64 USER:PASS, other keys survive save and erase', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'hoist-dockercfg-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const env = { DOCKER_CONFIG: dir, PATH: process.env.PATH };
  t.is(await lookupCredentials('reg.example.com', env), undefined, 'no file: no credentials');
  t.is(configKey('docker.io'), 'https://index.docker.io/v1/');
  await writeFile(join(dir, 'config.json'), JSON.stringify({ auths: { 'https://index.docker.io/v1/': { auth: Buffer.from('u:p:with:colons').toString('base64') } }, psFormat: 'table' }));
  const hub = await lookupCredentials('docker.io', env);
  t.is(hub?.username, 'u');
  t.is(hub?.password, 'p:with:colons');
  t.regex(hub!.source, /auths\["https:\/\/index\.docker\.io\/v1\/"\]/);
  await saveCredentials('reg.example.com:5000', 'me', 'secret', env);
  const cfg = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  t.is(cfg.psFormat, 'table');
  t.deepEqual((cfg.auths as Record<string, unknown>)['reg.example.com:5000'], { auth: Buffer.from('me:secret').toString('base64') });
  t.is((await lookupCredentials('reg.example.com:5000', env))?.password, 'secret');
  t.true(await eraseCredentials('reg.example.com:5000', env));
  t.false(await eraseCredentials('reg.example.com:5000', env));
  t.is((await lookupCredentials('docker.io', env))?.username, 'u', 'other registries untouched');
  // A credsStore whose helper is not installed falls back to auths.
  await writeFile(join(dir, 'config.json'), JSON.stringify({ credsStore: 'not-installed-xyz', auths: { 'http://h:1/v2/': { auth: Buffer.from('a:b').toString('base64') } } }));
  t.is((await lookupCredentials('h:1', env))?.username, 'a');
  await mkdir(join(dir, 'bad'), { recursive: true });
  await writeFile(join(dir, 'bad', 'config.json'), '{not json');
  await t.throwsAsync(lookupCredentials('h', { DOCKER_CONFIG: join(dir, 'bad') }), { message: /config\.json is not valid JSON/ });
  await writeFile(join(dir, 'bad', 'config.json'), JSON.stringify({ auths: { h: { auth: Buffer.from('nocolon').toString('base64') } } }));
  await t.throwsAsync(lookupCredentials('h', { DOCKER_CONFIG: join(dir, 'bad') }), { message: /not base64 of USER:PASSWORD/ });
});
