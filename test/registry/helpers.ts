import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fixture, hoistBin } from '../helpers/paths.js';

export const REGISTRY_BIN = '/usr/bin/docker-registry';

/** Why the registry tests cannot run here, or undefined when they can. */
export function registryUnavailable(): string | undefined {
  if (!existsSync(REGISTRY_BIN)) return 'install Debian\'s docker-registry (apt-get install -y docker-registry)';
  return undefined;
}

/** Result of one CLI run. */
export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `node bin/hoist ARGS` with its own root and Docker config dir (never the user's). */
export function hoist(env: { root: string; dockerConfig: string; extra?: NodeJS.ProcessEnv }, args: string[], stdin?: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const e: NodeJS.ProcessEnv = { ...process.env, HOIST_ROOT: env.root, DOCKER_CONFIG: env.dockerConfig, ...env.extra };
    delete e.HOIST_INSECURE_REGISTRIES;
    if (env.extra?.HOIST_INSECURE_REGISTRIES) e.HOIST_INSECURE_REGISTRIES = env.extra.HOIST_INSECURE_REGISTRIES;
    const p = spawn(process.execPath, [hoistBin, ...args], { env: e, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    p.stdin.on('error', () => undefined);
    p.stdin.end(stdin);
  });
}

/** A free TCP port on loopback (closed again before use; the registry binds it right after). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** A running distribution registry on loopback. */
export interface Registry {
  host: string;
  port: number;
  dir: string;
  stop(): Promise<void>;
}

/** Starts `docker-registry serve` with filesystem storage in a temp dir; with `htpasswd`, basic auth for that user. */
export async function startRegistry(opts: { htpasswd?: { user: string; password: string } } = {}): Promise<Registry> {
  const dir = await mkdtemp(join(tmpdir(), 'hoist-registry-'));
  let auth = '';
  if (opts.htpasswd) {
    const line = await new Promise<string>((res, rej) =>
      execFile('htpasswd', ['-Bbn', opts.htpasswd!.user, opts.htpasswd!.password], (err, out) => (err ? rej(new Error(`htpasswd (apache2-utils) failed: ${err.message}`)) : res(out))),
    );
    await writeFile(join(dir, 'htpasswd'), line);
    auth = `auth:\n  htpasswd:\n    realm: hoist-test\n    path: ${join(dir, 'htpasswd')}\n`;
  }
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    await writeFile(
      join(dir, 'config.yml'),
      `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${join(dir, 'data')}\n  delete:\n    enabled: true\n${auth}http:\n  addr: 127.0.0.1:${port}\n`,
    );
    const child: ChildProcess = spawn(REGISTRY_BIN, ['serve', join(dir, 'config.yml')], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    let exited = false;
    child.on('exit', () => (exited = true));
    const up = await waitUp(port, () => exited);
    if (up) {
      return {
        host: `127.0.0.1:${port}`,
        port,
        dir,
        stop: async () => {
          if (!exited) {
            const gone = new Promise((r) => child.once('exit', r));
            child.kill('SIGTERM');
            await gone;
          }
          await rm(dir, { recursive: true, force: true });
        },
      };
    }
    if (!exited) child.kill('SIGKILL');
    if (attempt >= 3) throw new Error(`docker-registry did not start: ${stderr}`);
  }
}

async function waitUp(port: number, exited: () => boolean): Promise<boolean> {
  for (let i = 0; i < 200 && !exited(); i++) {
    const ok = await new Promise<boolean>((res) => {
      const req = http.get({ host: '127.0.0.1', port, path: '/v2/' }, (r) => {
        r.resume();
        res(true);
      });
      req.on('error', () => res(false));
    });
    if (ok) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

/** One request that went through a test proxy. */
export interface Seen {
  method: string;
  url: string;
  authorization?: string;
}

/**
 * What a proxy does with a request: undefined forwards it; a function takes over the
 * response (to inject faults or answer auth itself).
 */
export type Hook = (req: http.IncomingMessage, res: http.ServerResponse, forward: () => void) => void | boolean;

/** A recording (and optionally fault-injecting) HTTP proxy in front of a registry. */
export interface Proxy {
  host: string;
  seen: Seen[];
  close(): Promise<void>;
}

/** Starts a reverse proxy to `target` (host:port) that records every request and lets `hook` intercept any. */
export async function startProxy(target: string, hook?: Hook): Promise<Proxy> {
  const [thost, tport] = [target.slice(0, target.lastIndexOf(':')), Number(target.slice(target.lastIndexOf(':') + 1))];
  const seen: Seen[] = [];
  const sockets = new Set<net.Socket>();
  const server = http.createServer((req, res) => {
    seen.push({ method: req.method!, url: req.url!, authorization: req.headers.authorization });
    const forward = () => {
      // The Host header stays the proxy's, so the registry's absolute Location URLs lead back through it.
      const up = http.request({ host: thost, port: tport, method: req.method, path: req.url, headers: req.headers }, (ur) => {
        res.writeHead(ur.statusCode!, ur.headers);
        ur.pipe(res);
      });
      up.on('error', () => res.destroy());
      req.pipe(up);
    };
    if (hook && hook(req, res, forward) !== false) return;
    forward();
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    host: `127.0.0.1:${port}`,
    seen,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** Fetches a blob straight from the registry (for fault hooks that serve altered content). */
export function fetchUpstream(target: string, path: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    http
      .get(`http://${target}${path}`, (r) => {
        const chunks: Buffer[] = [];
        r.on('data', (c: Buffer) => chunks.push(c));
        r.on('end', () => resolve(Buffer.concat(chunks)));
      })
      .on('error', reject);
  });
}

let baseTar: Promise<string> | undefined;

/** The busybox fixture image as a docker save archive, built once per test process. */
export function busyboxArchive(): Promise<string> {
  baseTar ??= (async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hoist-reg-busybox-'));
    const out = join(dir, 'busybox.tar');
    await new Promise<void>((res, rej) => execFile('bash', [fixture('busybox', 'make-image.sh'), out], (err, _o, se) => (err ? rej(new Error(se || err.message)) : res())));
    return out;
  })();
  return baseTar;
}

/** A fresh root and Docker config dir; `cleanup` removes both. */
export async function sandboxDirs(): Promise<{ root: string; dockerConfig: string; dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'hoist-reg-test-'));
  return { dir, root: join(dir, 'root'), dockerConfig: join(dir, 'docker'), cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** Files under the store's tmp/ (an interrupted pull must leave none). */
export async function tmpLeftovers(root: string): Promise<string[]> {
  const out: string[] = [];
  for (const d of await readdir(join(root, 'tmp')).catch(() => [] as string[])) {
    out.push(d, ...(await readdir(join(root, 'tmp', d)).catch(() => [] as string[])).map((f) => `${d}/${f}`));
  }
  return out;
}
