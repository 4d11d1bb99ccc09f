import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { fixture, hoistBin } from '../helpers/paths.js';

/** The CLI script the tests run (HOIST_TEST_BIN overrides it, e.g. to a harness with only some commands). */
export const cliScript = process.env.HOIST_TEST_BIN ?? hoistBin;

/** Result of one CLI run. */
export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `node bin/hoist ARGS` with the given root and optional stdin. */
export function hoist(root: string, args: string[], stdin?: Buffer | string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [cliScript, ...args], { env: { ...process.env, HOIST_ROOT: root }, stdio: ['pipe', 'pipe', 'pipe'] });
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

/** Runs an external tool, resolving with its output (rejecting with stderr on failure). */
export function tool(cmd: string, args: string[]): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${stderr || err.message}`));
      else resolve({ stdout, stderr });
    });
  });
}

/** A fresh temporary directory. */
export function tempDir(prefix = 'hoist-image-test-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

export async function cleanup(...dirs: string[]): Promise<void> {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
}

export const sha256 = (b: Buffer | string): `sha256:${string}` => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** A tar entry for building test layers. */
export interface TEntry {
  name: string;
  type?: tar.Header['type'];
  content?: string | Buffer;
  linkname?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  uname?: string;
  gname?: string;
  devmajor?: number;
  devminor?: number;
  pax?: Record<string, string>;
}

/** Builds a small tar in memory (test layers only). */
export async function makeTar(entries: TEntry[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const c of pack) chunks.push(c as Buffer);
  })();
  for (const e of entries) {
    const type = e.type ?? 'file';
    const body = typeof e.content === 'string' ? Buffer.from(e.content) : (e.content ?? Buffer.alloc(0));
    const header = {
      name: e.name,
      type,
      mode: e.mode ?? (type === 'directory' ? 0o755 : 0o644),
      uid: e.uid ?? 0,
      gid: e.gid ?? 0,
      uname: e.uname ?? '',
      gname: e.gname ?? '',
      mtime: new Date(1_600_000_000_000),
      linkname: e.linkname,
      devmajor: e.devmajor,
      devminor: e.devminor,
      size: type === 'file' ? body.length : 0,
      ...(e.pax ? { pax: e.pax } : {}),
    } as tar.Header;
    await new Promise<void>((res, rej) => {
      if (type === 'file') pack.entry(header, body, (err) => (err ? rej(err) : res()));
      else pack.entry(header, (err) => (err ? rej(err) : res())).end(Buffer.alloc(0));
    });
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

/** One tar entry's metadata as compared before/after a round trip. */
export interface Listed {
  name: string;
  type: string;
  mode: string;
  uid: number;
  gid: number;
  size: number;
  linkname: string;
  dev: string;
  xattrs: Record<string, string>;
  contentDigest: string;
}

/** Lists a tar (plain bytes) with modes, owners, link targets, device numbers, pax xattrs and content digests. */
export async function listTar(data: Buffer | Readable): Promise<Listed[]> {
  const ex = tar.extract();
  const out: Listed[] = [];
  const feeding = pipeline(Buffer.isBuffer(data) ? Readable.from([data]) : data, ex);
  for await (const e of ex) {
    const h = e.header as tar.Header & { pax?: Record<string, string> };
    const hash = createHash('sha256');
    for await (const c of e) hash.update(c as Buffer);
    const xattrs: Record<string, string> = {};
    for (const [k, v] of Object.entries(h.pax ?? {})) if (k.startsWith('SCHILY.xattr.')) xattrs[k] = String(v);
    out.push({
      name: h.name.replace(/^\.\//, '').replace(/\/$/, ''),
      type: String(h.type),
      mode: (h.mode ?? 0).toString(8),
      uid: h.uid ?? 0,
      gid: h.gid ?? 0,
      size: h.size ?? 0,
      linkname: h.linkname ?? '',
      dev: `${h.devmajor ?? 0}:${h.devminor ?? 0}`,
      xattrs,
      contentDigest: hash.digest('hex'),
    });
  }
  await feeding;
  return out;
}

/** Reads one member of a tar file fully into memory (archives in tests are small). */
export async function tarMember(file: string, name: string): Promise<Buffer | undefined> {
  const ex = tar.extract();
  let found: Buffer | undefined;
  const feeding = pipeline(createReadStream(file), ex);
  for await (const e of ex) {
    const chunks: Buffer[] = [];
    for await (const c of e) chunks.push(c as Buffer);
    if (e.header.name.replace(/^\.\//, '') === name) found = Buffer.concat(chunks);
  }
  await feeding;
  return found;
}

/** A layer with every file type Docker images carry, including setuid, odd owners and xattrs. */
export async function everyTypeLayer(): Promise<Buffer> {
  return makeTar([
    { name: 'bin/', type: 'directory', mode: 0o755 },
    { name: 'bin/tool', content: '#!/bin/sh\necho tool\n', mode: 0o4755, uid: 0, gid: 0 },
    { name: 'bin/sgid', content: 'sgid\n', mode: 0o2711, uid: 0, gid: 50 },
    { name: 'home/', type: 'directory', mode: 0o755 },
    { name: 'home/user/', type: 'directory', mode: 0o700, uid: 1000, gid: 1000 },
    { name: 'home/user/notes.txt', content: 'owned by 1000:2000\n', mode: 0o640, uid: 1000, gid: 2000, uname: 'user', gname: 'staff' },
    { name: 'home/user/link', type: 'symlink', linkname: 'notes.txt', uid: 1000, gid: 1000, mode: 0o777 },
    { name: 'home/user/hard', type: 'link', linkname: 'home/user/notes.txt' },
    { name: 'etc/', type: 'directory' },
    { name: 'etc/capped', content: 'has xattrs\n', mode: 0o755, pax: { 'SCHILY.xattr.user.comment': 'hello', 'SCHILY.xattr.trusted.x': 'y' } },
    { name: 'tmp/', type: 'directory', mode: 0o1777 },
    { name: 'run/fifo', type: 'fifo', mode: 0o600 },
    { name: 'dev/null2', type: 'character-device', mode: 0o666, devmajor: 1, devminor: 3 },
    { name: 'dev/loop9', type: 'block-device', mode: 0o660, devmajor: 7, devminor: 9, gid: 6 },
  ]);
}

/** A second, simple layer (gzip-compressed in the hand-made archive). */
export async function secondLayer(): Promise<Buffer> {
  return makeTar([
    { name: 'app/', type: 'directory' },
    { name: 'app/hello.txt', content: 'hello from layer 2\n' },
    { name: 'etc/.wh.capped', content: '' },
  ]);
}

/** Builds a `docker save` archive by hand: each layer given as its plain tar plus how to store it. */
export async function makeDockerArchive(opts: {
  layers: { tar: Buffer; gzip?: boolean }[];
  tags: string[];
  tamperDiffID?: boolean;
}): Promise<{ archive: Buffer; configDigest: string; diffIDs: string[] }> {
  const diffIDs = opts.layers.map((l) => sha256(l.tar));
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      created: '2024-01-02T03:04:05Z',
      config: { Env: ['PATH=/usr/bin:/bin', 'HELLO=world'], Cmd: ['/bin/tool'], WorkingDir: '/app', Labels: { team: 'build' } },
      rootfs: { type: 'layers', diff_ids: opts.tamperDiffID ? diffIDs.map((d, i) => (i === 0 ? sha256('not this') : d)) : diffIDs },
      history: [
        { created: '2024-01-02T03:04:05Z', created_by: '/bin/sh -c #(nop) ADD every-type /', comment: 'base' },
        { created: '2024-01-02T03:04:05Z', created_by: '/bin/sh -c #(nop)  ENV HELLO=world', empty_layer: true },
        { created: '2024-01-02T03:04:05Z', created_by: 'COPY hello.txt /app/' },
      ].slice(0, opts.layers.length + 1),
    }),
  );
  const configDigest = sha256(config);
  const files: TEntry[] = [{ name: `${configDigest.slice(7)}.json`, content: config }];
  const paths: string[] = [];
  opts.layers.forEach((l, i) => {
    const p = `layer${i}/layer.tar`;
    paths.push(p);
    files.push({ name: `layer${i}/`, type: 'directory' }, { name: p, content: l.gzip ? gzipSync(l.tar) : l.tar });
  });
  files.push({ name: 'manifest.json', content: JSON.stringify([{ Config: `${configDigest.slice(7)}.json`, RepoTags: opts.tags, Layers: paths }]) });
  return { archive: await makeTar(files), configDigest, diffIDs };
}

let busyboxCache: Promise<string> | undefined;
/** The busybox base image archive from fixtures/busybox/make-image.sh (built once per test process). */
export function busyboxArchive(): Promise<string> {
  busyboxCache ??= (async () => {
    const dir = await tempDir('hoist-busybox-');
    const out = join(dir, 'busybox.tar');
    await tool('bash', [fixture('busybox', 'make-image.sh'), out]);
    return out;
  })();
  return busyboxCache;
}

/** Every file under a directory with its size (to prove "nothing left behind"). */
export async function filesUnder(dir: string): Promise<string[]> {
  const { readdir } = await import('node:fs/promises');
  const out: string[] = [];
  const walk = async (d: string, rel: string) => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) await walk(join(d, e.name), r);
      else out.push(r);
    }
  };
  if (existsSync(dir)) await walk(dir, '');
  return out.sort();
}

export { readFile, stat };
