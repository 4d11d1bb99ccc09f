// Registry authentication: htpasswd basic auth on a real registry, Docker's config.json and
// credential helpers, and the bearer-token flow through a token server written in the test.
import anyTest, { type TestFn } from 'ava';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { busyboxArchive, hoist, registryUnavailable, sandboxDirs, startProxy, startRegistry, type Registry } from './helpers.js';

const test = anyTest as TestFn<{ basic: Registry; open: Registry }>;
const skip = registryUnavailable();
const USER = 'alice';
const PASS = 'pa55-w0rd-secret';

test.before(async (t) => {
  if (skip) return;
  [t.context.basic, t.context.open] = await Promise.all([startRegistry({ htpasswd: { user: USER, password: PASS } }), startRegistry()]);
});
test.after.always(async (t) => {
  await t.context.basic?.stop();
  await t.context.open?.stop();
});

async function loaded(name: string, extra?: NodeJS.ProcessEnv) {
  const d = await sandboxDirs();
  const env = { root: d.root, dockerConfig: d.dockerConfig, extra };
  const l = await hoist(env, ['load', '-i', await busyboxArchive()]);
  if (l.code !== 0) throw new Error(`load failed: ${l.stderr}`);
  const tg = await hoist(env, ['tag', 'busybox:latest', name]);
  if (tg.code !== 0) throw new Error(`tag failed: ${tg.stderr}`);
  return { ...d, env };
}

(skip ? test.skip : test)('basic auth: push is refused before login, wrong password fails clearly, login --password-stdin then push and pull work, logout', async (t) => {
  const host = t.context.basic.host;
  const name = `${host}/secure/busybox:v1`;
  const a = await loaded(name);
  t.teardown(a.cleanup);

  const denied = await hoist(a.env, ['push', name]);
  t.is(denied.code, 1);
  t.regex(denied.stderr, /401 unauthorized/);
  t.regex(denied.stderr, new RegExp(`no credentials \\(none stored for ${host}`));
  t.regex(denied.stderr, /hoist login/);

  const wrong = await hoist(a.env, ['login', '-u', USER, '--password-stdin', host], 'not-the-password\n');
  t.is(wrong.code, 1);
  t.regex(wrong.stderr, /logging in to .*401 unauthorized/);
  t.regex(wrong.stderr, /user name "alice"/);
  t.notRegex(wrong.stderr, /not-the-password/);
  await t.throwsAsync(readFile(join(a.dockerConfig, 'config.json')), undefined, 'a failed login saves nothing');

  const ok = await hoist(a.env, ['login', '-u', USER, '--password-stdin', host], `${PASS}\n`);
  t.is(ok.code, 0, ok.stderr);
  t.regex(ok.stdout, /Login Succeeded/);
  const cfg = JSON.parse(await readFile(join(a.dockerConfig, 'config.json'), 'utf8')) as { auths: Record<string, { auth: string }> };
  t.is(Buffer.from(cfg.auths[host]!.auth, 'base64').toString(), `${USER}:${PASS}`, 'saved in docker login format');

  const push = await hoist(a.env, ['push', name]);
  t.is(push.code, 0, push.stderr);

  // Another root, same Docker config: the saved credentials serve pull too.
  const b = await sandboxDirs();
  t.teardown(b.cleanup);
  const pull = await hoist({ root: b.root, dockerConfig: a.dockerConfig }, ['pull', name]);
  t.is(pull.code, 0, pull.stderr);

  // A wrong password in the file: the error names the file and key, never the secret.
  await writeFile(join(a.dockerConfig, 'config.json'), JSON.stringify({ auths: { [`http://${host}/v2/`]: { auth: Buffer.from(`${USER}:wrong-s3cret`).toString('base64') } } }));
  const bad = await hoist({ root: b.root, dockerConfig: a.dockerConfig }, ['pull', `${host}/secure/busybox:v1`]);
  t.is(bad.code, 1);
  t.regex(bad.stderr, /401 unauthorized/);
  t.true(bad.stderr.includes(`config.json (auths["http://${host}/v2/"])`), bad.stderr);
  t.false(bad.stderr.includes('wrong-s3cret'));

  const out = await hoist(a.env, ['logout', host]);
  t.is(out.code, 0);
  t.regex(out.stdout, new RegExp(`Removing login credentials for ${host}`));
  const cfg2 = JSON.parse(await readFile(join(a.dockerConfig, 'config.json'), 'utf8')) as { auths: Record<string, unknown> };
  t.deepEqual(cfg2.auths, {});
  t.regex((await hoist(a.env, ['logout', host])).stdout, /Not logged in/);
});

(skip ? test.skip : test)('credential helper: credsStore is used for login (no secret in config.json) and for push', async (t) => {
  const host = t.context.basic.host;
  const d = await sandboxDirs();
  t.teardown(d.cleanup);
  // A docker-credential-* helper speaking the real protocol, keeping its store in a file.
  const bin = join(d.dir, 'bin');
  await mkdir(bin, { recursive: true });
  const store = join(d.dir, 'helper-store.json');
  await writeFile(
    join(bin, 'docker-credential-hoisttest'),
    `#!/usr/bin/env node
const fs = require('fs');
const f = ${JSON.stringify(store)};
const db = fs.existsSync(f) ? JSON.parse(fs.readFileSync(f, 'utf8')) : {};
const input = fs.readFileSync(0, 'utf8').trim();
const op = process.argv[2];
if (op === 'get') {
  if (!db[input]) { process.stdout.write('credentials not found in native keychain'); process.exit(1); }
  process.stdout.write(JSON.stringify({ ServerURL: input, Username: db[input].Username, Secret: db[input].Secret }));
} else if (op === 'store') {
  const v = JSON.parse(input); db[v.ServerURL] = v; fs.writeFileSync(f, JSON.stringify(db));
} else if (op === 'erase') {
  delete db[input]; fs.writeFileSync(f, JSON.stringify(db));
}
`,
  );
  await chmod(join(bin, 'docker-credential-hoisttest'), 0o755);
  await mkdir(d.dockerConfig, { recursive: true });
  await writeFile(join(d.dockerConfig, 'config.json'), JSON.stringify({ credsStore: 'hoisttest' }));
  const extra = { PATH: `${bin}:${process.env.PATH}` };
  const name = `${host}/helper/busybox:v1`;
  const a = await loaded(name, extra);
  t.teardown(a.cleanup);
  const env = { root: a.root, dockerConfig: d.dockerConfig, extra };

  const login = await hoist(env, ['login', '-u', USER, '--password-stdin', host], PASS);
  t.is(login.code, 0, login.stderr);
  t.regex(login.stdout, /saved in docker-credential-hoisttest/);
  const cfgText = await readFile(join(d.dockerConfig, 'config.json'), 'utf8');
  t.false(cfgText.includes(Buffer.from(`${USER}:${PASS}`).toString('base64')));
  t.false(cfgText.includes(PASS));
  t.is((JSON.parse(await readFile(store, 'utf8')) as Record<string, { Secret: string }>)[host]?.Secret, PASS);

  const push = await hoist(env, ['push', name]);
  t.is(push.code, 0, push.stderr);

  // A wrong secret from the helper: the error says which helper was asked.
  await writeFile(store, JSON.stringify({ [host]: { ServerURL: host, Username: USER, Secret: 'nope' } }));
  const bad = await hoist(env, ['push', name]);
  t.is(bad.code, 1);
  t.regex(bad.stderr, /credential helper docker-credential-hoisttest/);
});

(skip ? test.skip : test)('bearer tokens: challenge, token fetched with basic credentials, cached per scope, push and pull work', async (t) => {
  const upstream = t.context.open.host;
  const tokens = new Map<string, Set<string>>();
  const tokenRequests: string[][] = [];
  let self = '';
  const challenge = (scope?: string) => `Bearer realm="http://${self}/token",service="hoist-test"${scope ? `,scope="${scope}"` : ''}`;
  const proxy = await startProxy(upstream, (req, res, forward) => {
    const url = new URL(req.url!, 'http://x');
    if (url.pathname === '/token') {
      const want = `Basic ${Buffer.from(`${USER}:${PASS}`).toString('base64')}`;
      if (req.headers.authorization !== want || url.searchParams.get('service') !== 'hoist-test') {
        res.writeHead(401, { 'content-type': 'application/json' }).end('{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}');
        return;
      }
      const scopes = url.searchParams.getAll('scope');
      tokenRequests.push(scopes);
      const tok = `tok${tokens.size}`;
      tokens.set(tok, new Set(scopes));
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: tok, expires_in: 300 }));
      return;
    }
    const m = /^\/v2\/(.+?)\/(blobs|manifests|tags)\//.exec(url.pathname);
    const granted = tokens.get((req.headers.authorization ?? '').replace(/^Bearer /, ''));
    if (!m) {
      if (!granted) return void res.writeHead(401, { 'www-authenticate': challenge() }).end();
    } else {
      const repo = m[1]!;
      const push = req.method !== 'GET' && req.method !== 'HEAD';
      const need = push ? `repository:${repo}:pull,push` : `repository:${repo}:pull`;
      const ok = granted && [...granted].some((s) => s === need || s === `repository:${repo}:pull,push`);
      if (!ok) return void res.writeHead(401, { 'www-authenticate': challenge(need) }).end();
    }
    delete req.headers.authorization;
    forward();
  });
  self = proxy.host;
  const name = `${proxy.host}/tok/busybox:v1`;
  const a = await loaded(name);
  t.teardown(async () => {
    await proxy.close();
    await a.cleanup();
  });

  const anon = await hoist(a.env, ['push', name]);
  t.is(anon.code, 1);
  t.regex(anon.stderr, /getting a token for repository:tok\/busybox:pull,push .*401 unauthorized.*tried no credentials/);

  const wrong = await hoist(a.env, ['login', '-u', USER, '--password-stdin', proxy.host], 'wrong');
  t.is(wrong.code, 1);
  t.regex(wrong.stderr, /bad credentials/);
  const login = await hoist(a.env, ['login', '-u', USER, '--password-stdin', proxy.host], PASS);
  t.is(login.code, 0, login.stderr);

  tokenRequests.length = 0;
  const push = await hoist(a.env, ['push', name]);
  t.is(push.code, 0, push.stderr);
  t.deepEqual(tokenRequests, [['repository:tok/busybox:pull,push']], 'one token for the whole push');

  const b = await sandboxDirs();
  t.teardown(b.cleanup);
  tokenRequests.length = 0;
  const pull = await hoist({ root: b.root, dockerConfig: a.dockerConfig }, ['pull', name]);
  t.is(pull.code, 0, pull.stderr);
  t.deepEqual(tokenRequests, [['repository:tok/busybox:pull']], 'one token for the whole pull');
});
