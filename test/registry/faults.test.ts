// Fault injection: a proxy between hoist and a real registry breaks blob downloads and uploads
// in the ways networks and broken registries do; hoist retries what is transient and otherwise
// fails with a clear message, leaving nothing half-written in the store.
import anyTest, { type TestFn } from 'ava';
import type http from 'node:http';
import { busyboxArchive, fetchUpstream, hoist, registryUnavailable, sandboxDirs, startProxy, startRegistry, tmpLeftovers, type Hook, type Registry } from './helpers.js';

const test = anyTest as TestFn<{ reg: Registry; digest: string }>;
const skip = registryUnavailable();
const REPO = 'faults/busybox:v1';

test.before(async (t) => {
  if (skip) return;
  t.context.reg = await startRegistry();
  const d = await sandboxDirs();
  try {
    const env = { root: d.root, dockerConfig: d.dockerConfig };
    const name = `${t.context.reg.host}/${REPO}`;
    for (const args of [['load', '-i', await busyboxArchive()], ['tag', 'busybox:latest', name], ['push', name]]) {
      const r = await hoist(env, args);
      if (r.code !== 0) throw new Error(`${args.join(' ')}: ${r.stderr}`);
    }
  } finally {
    await d.cleanup();
  }
});
test.after.always(async (t) => {
  await t.context.reg?.stop();
});

/** Serves `hook` for GETs of large blobs (the layer) and forwards everything else. */
function onLayerGet(reg: Registry, fn: (buf: Buffer, req: http.IncomingMessage, res: http.ServerResponse, forward: () => void) => void): Hook {
  return (req, res, forward) => {
    if (req.method !== 'GET' || !/\/blobs\/sha256:/.test(req.url!)) return false;
    void fetchUpstream(reg.host, req.url!).then((buf) => (buf.length > 100_000 ? fn(buf, req, res, forward) : forward()));
  };
}

async function pullThrough(hook: Hook, reg: Registry) {
  const proxy = await startProxy(reg.host, hook);
  const d = await sandboxDirs();
  const env = { root: d.root, dockerConfig: d.dockerConfig };
  const r = await hoist(env, ['pull', `${proxy.host}/${REPO}`]);
  const images = await hoist(env, ['images', '-q']);
  const check = await hoist(env, ['system', 'check']);
  const leftovers = await tmpLeftovers(d.root);
  await proxy.close();
  await d.cleanup();
  return { r, images: images.stdout.trim(), check, leftovers, seen: proxy.seen };
}

(skip ? test.skip : test)('500 twice, then success: the pull retries and completes', async (t) => {
  const count = new Map<string, number>();
  const { r, images, check, seen } = await pullThrough((req, res) => {
    if (req.method !== 'GET' || !/\/(blobs|manifests)\//.test(req.url!)) return false;
    const n = (count.get(req.url!) ?? 0) + 1;
    count.set(req.url!, n);
    if (n > 2) return false;
    res.writeHead(500, { 'content-type': 'application/json' }).end('{"errors":[{"code":"UNKNOWN","message":"injected"}]}');
  }, t.context.reg);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /Status: Downloaded newer image/);
  t.not(images, '');
  t.is(check.code, 0, check.stdout);
  // Manifest, config and layer: each asked three times.
  t.is(seen.filter((s) => s.method === 'GET' && /\/(blobs|manifests)\//.test(s.url)).length, 9);
});

(skip ? test.skip : test)('a registry that always answers 500 fails with its message after the retries', async (t) => {
  const { r, images, check } = await pullThrough((req, res) => {
    if (!/\/manifests\//.test(req.url!)) return false;
    res.writeHead(503, { 'content-type': 'application/json' }).end('{"errors":[{"code":"UNAVAILABLE","message":"maintenance window"}]}');
  }, t.context.reg);
  t.is(r.code, 1);
  t.regex(r.stderr, /answered 503.*maintenance window/);
  t.is(images, '');
  t.is(check.code, 0);
});

(skip ? test.skip : test)('a connection dropped midway through a blob every time: clean failure, no partial blob', async (t) => {
  const { r, images, check, leftovers } = await pullThrough(
    onLayerGet(t.context.reg, (buf, _req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(buf.length) });
      res.write(buf.subarray(0, buf.length >> 1), () => res.socket?.destroy());
    }),
    t.context.reg,
  );
  t.is(r.code, 1);
  t.regex(r.stderr, /connection to registry .* was dropped/);
  t.notRegex(r.stderr, /internal error/);
  t.is(images, '', 'no image was created');
  t.is(check.code, 0, check.stdout);
  t.regex(check.stdout, /checked [0-2] blobs/);
  t.deepEqual(leftovers, []);
});

(skip ? test.skip : test)('a connection dropped once is retried to success', async (t) => {
  let dropped = 0;
  const { r, check } = await pullThrough(
    onLayerGet(t.context.reg, (buf, _req, res, forward) => {
      if (dropped++ > 0) return forward();
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(buf.length) });
      res.write(buf.subarray(0, 1000), () => res.socket?.destroy());
    }),
    t.context.reg,
  );
  t.is(r.code, 0, r.stderr);
  t.is(dropped, 2);
  t.is(check.code, 0);
});

(skip ? test.skip : test)('a blob whose content does not match its digest is refused and not stored', async (t) => {
  const { r, images, check, leftovers } = await pullThrough(
    onLayerGet(t.context.reg, (buf, _req, res) => {
      const evil = Buffer.from(buf);
      evil[evil.length >> 1] ^= 0xff;
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(evil.length) }).end(evil);
    }),
    t.context.reg,
  );
  t.is(r.code, 1);
  t.regex(r.stderr, /does not match its digest/);
  t.is(images, '');
  t.is(check.code, 0);
  t.deepEqual(leftovers, []);
});

(skip ? test.skip : test)('a blob longer than its descriptor says is cut off and refused', async (t) => {
  const { r, images, check } = await pullThrough(
    onLayerGet(t.context.reg, (buf, _req, res) => {
      const more = Buffer.concat([buf, Buffer.alloc(4096, 1)]);
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(more.length) }).end(more);
    }),
    t.context.reg,
  );
  t.is(r.code, 1);
  t.regex(r.stderr, /more than the \d+ bytes/);
  t.is(images, '');
  t.is(check.code, 0);
});

(skip ? test.skip : test)('push: an upload whose connection drops is restarted and succeeds', async (t) => {
  let dropped = 0;
  const proxy = await startProxy(t.context.reg.host, (req) => {
    if (req.method === 'PUT' && /\/blobs\/uploads\//.test(req.url!) && dropped === 0) {
      dropped++;
      req.socket.destroy();
      return;
    }
    return false;
  });
  const d = await sandboxDirs();
  t.teardown(async () => {
    await proxy.close();
    await d.cleanup();
  });
  const env = { root: d.root, dockerConfig: d.dockerConfig };
  const name = `${proxy.host}/faults/pushed:v1`;
  t.is((await hoist(env, ['load', '-i', await busyboxArchive()])).code, 0);
  t.is((await hoist(env, ['tag', 'busybox:latest', name])).code, 0);
  const r = await hoist(env, ['push', name]);
  t.is(r.code, 0, r.stderr);
  t.is(dropped, 1);
  t.regex(r.stdout, /v1: digest: sha256:/);
});
