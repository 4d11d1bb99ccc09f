import { execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fixture, hoistBin } from '../helpers/paths.js';

/** Result of one CLI run. */
export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `node bin/hoist ARGS` with HOIST_ROOT=root. */
export function hoist(root: string, args: string[], opts: { cwd?: string; stdin?: string | Buffer; env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [hoistBin, ...args], {
      cwd: opts.cwd, env: { ...process.env, ...opts.env, HOIST_ROOT: root }, stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    p.stdin.on('error', () => undefined);
    p.stdin.end(opts.stdin);
  });
}

/** Runs a tool to completion (rejects with its stderr). */
export function tool(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { maxBuffer: 256 * 1024 * 1024 }, (err, stdout, stderr) => (err ? reject(new Error(`${cmd} ${args.join(' ')}: ${stderr || err.message}`)) : resolve(stdout)));
  });
}

/** A fresh temporary directory. */
export function tempDir(prefix = 'hoist-build-test-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

export async function cleanup(...dirs: string[]): Promise<void> {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
}

let baseTar: Promise<string> | undefined;

/** The busybox base image archive (fixtures/busybox/make-image.sh), made once per test process. */
export function busyboxArchive(): Promise<string> {
  baseTar ??= (async () => {
    const dir = await tempDir('hoist-busybox-');
    const out = join(dir, 'busybox.tar');
    await tool('bash', [fixture('busybox', 'make-image.sh'), out]);
    return out;
  })();
  return baseTar;
}

/** A temporary store root with busybox:latest loaded. */
export async function rootWithBusybox(): Promise<string> {
  const root = await tempDir('hoist-build-root-');
  const r = await hoist(root, ['load', '-i', await busyboxArchive()]);
  if (r.code !== 0) throw new Error(`loading busybox failed: ${r.stderr}`);
  return root;
}

/** True when the tests can build (root, unshare, overlayfs). */
export const canBuild = process.getuid?.() === 0;

/**
 * Writes a build context under `dir`: `files` maps context paths to contents (parents
 * made as needed); a string is the Dockerfile alone. Returns `dir`.
 */
export async function writeProject(dir: string, files: string | Record<string, string>): Promise<string> {
  await mkdir(dir, { recursive: true });
  for (const [p, c] of Object.entries(typeof files === 'string' ? { Dockerfile: files } : files)) {
    await mkdir(join(dir, p, '..'), { recursive: true });
    await writeFile(join(dir, p), c);
  }
  return dir;
}
