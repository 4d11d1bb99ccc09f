import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, symlinkSync, writeFileSync, copyFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { runSandbox, type RunSandboxOptions, type SandboxResult } from '../../src/sandbox/helper.js';
import type { SandboxSpec } from '../../src/sandbox/spec.js';

/** Debian's busybox-static, which every sandbox test uses as its image. */
export const BUSYBOX = '/bin/busybox';

/** True when the tests can run: root, the helper built, busybox-static installed. */
export function sandboxUsable(): string | undefined {
  if (process.getuid?.() !== 0) return 'sandbox tests run as root';
  if (!existsSync(BUSYBOX)) return 'install busybox-static (apt-get install -y busybox-static)';
  return undefined;
}

/** A world-readable temporary directory (the rootless test reads it as nobody). */
export function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(d, 0o755);
  return d;
}

/** Builds a minimal root filesystem: /bin/busybox with its applet links, /etc/passwd and /etc/group. */
export function makeRootfs(extra?: (root: string) => void): string {
  const r = join(tempDir('hoist-rootfs-'), 'root');
  for (const d of ['bin', 'etc', 'tmp', 'root', 'proc', 'sys', 'dev', 'home']) mkdirSync(join(r, d), { recursive: true, mode: 0o755 });
  chmodSync(join(r, 'tmp'), 0o1777);
  copyFileSync(BUSYBOX, join(r, 'bin', 'busybox'));
  chmodSync(join(r, 'bin', 'busybox'), 0o755);
  for (const a of execFileSync(BUSYBOX, ['--list'], { encoding: 'utf8' }).split('\n')) {
    if (a && a !== 'busybox') symlinkSync('busybox', join(r, 'bin', a));
  }
  writeFileSync(join(r, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n');
  writeFileSync(join(r, 'etc', 'group'), 'root:x:0:\nstaff:x:50:app\napp:x:1000:\nnogroup:x:65534:\n');
  extra?.(r);
  return r;
}

/** Removes a temporary rootfs (its parent is the temp dir). */
export function removeRootfs(r: string): void {
  rmSync(join(r, '..'), { recursive: true, force: true });
}

export interface Captured extends SandboxResult {
  stdout: string;
  stderr: string;
}

/** Runs a spec with captured output. */
export async function run(spec: SandboxSpec, opts: RunSandboxOptions = {}): Promise<Captured> {
  const out = new PassThrough();
  const err = new PassThrough();
  let stdout = '';
  let stderr = '';
  out.on('data', (d) => (stdout += d));
  err.on('data', (d) => (stderr += d));
  const r = await runSandbox(spec, { stdout: out, stderr: err, ...opts });
  await new Promise((res) => setImmediate(res));
  return { ...r, stdout, stderr };
}

/** Mount points of this process's mount namespace (to prove nothing leaked onto the host). */
export function mountPoints(): string[] {
  return execFileSync('cat', ['/proc/self/mountinfo'], { encoding: 'utf8' })
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(' ')[4]!)
    .sort();
}
