/**
 * Runs one RUN step through the native sandbox (`runSandbox`, the same code path as
 * `hoist run`): an overlay of the parent snapshots with a private upper directory,
 * /proc, /dev and /sys, the RUN mounts, and the step's env, cwd, user and network.
 *
 * The helper mounts binds and tmpfs itself. Two kinds of RUN mount need an overlay
 * the helper's spec has no mount type for (a read-write bind whose writes are
 * discarded, and a stage's multi-layer filesystem as a bind source): those are
 * mounted on the host for the duration of the step, inside the step's work
 * directory, and unmounted when it ends.
 */
import { spawn } from 'node:child_process';
import { lstat, mkdir, readdir, readFile, rm, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { runSandbox } from '../sandbox/helper.js';
import type { SandboxMount, SandboxSpec } from '../sandbox/spec.js';
import { HoistError } from '../util/errors.js';
import { resolveInRoot } from './rootpath.js';

/** A mount in the RUN step's filesystem. */
export type RunMount =
  | { type: 'bind'; source: string; target: string; readonly: boolean; /** rw binds of directories discard writes through an overlay here */ scratch?: string }
  | { type: 'overlay-ro'; lowers: string[]; subpath: string; target: string; /** where the read-only overlay of several lowers is mounted */ scratch: string }
  | { type: 'tmpfs'; target: string; size?: number }
  | { type: 'file'; source: string; target: string };

/** Everything one RUN step needs. */
export interface RunSpec {
  /** Snapshot dirs, lowest first (may be empty for scratch). */
  lowers: string[];
  upper: string;
  work: string;
  merged: string;
  args: string[];
  env: string[];
  cwd: string;
  /** `user[:group]` as the Dockerfile's USER gives it; the sandbox resolves names in the rootfs. */
  user: string;
  /** Supplementary groups beyond the /etc/group memberships the sandbox adds itself. */
  additionalGids: number[];
  /** `default` is the host network, as BuildKit gives RUN without a bridge network. */
  network: 'default' | 'none' | 'host';
  mounts: RunMount[];
  hostname: string;
}

export interface RunResult {
  exitCode: number;
  signal?: string;
  /** The sandbox's own message when the process could not be set up or started. */
  setupError?: string;
}

async function exists(p: string): Promise<boolean> {
  return (await lstat(p).catch(() => null)) !== null;
}

function tool(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } });
    let err = '';
    child.stderr.on('data', (c: Buffer) => (err += c.toString('utf8')));
    child.on('error', (e) => reject(new HoistError('E_MOUNT', `cannot run ${cmd}: ${e.message}`, { hint: 'hoist build needs util-linux mount/umount' })));
    child.on('close', (code) => (code === 0 ? resolve() : reject(new HoistError('E_MOUNT', `${cmd} ${args.join(' ')}: ${err.trim() || `exit status ${code}`}`))));
  });
}

/** Overlay mounts made on the host for one step; `release` unmounts them (newest first). */
class HostMounts {
  private readonly points: string[] = [];
  async overlay(target: string, lowers: string[], upper?: { upper: string; work: string }): Promise<string> {
    if (lowers.some((l) => /[:,]/.test(l))) {
      throw new HoistError('E_MOUNT', `cannot mount ${lowers.join(', ')}: overlayfs does not take paths with ':' or ','`, { hint: 'move the build context or HOIST_ROOT to a path without those characters' });
    }
    await mkdir(target, { recursive: true });
    // overlayfs lists the top layer first; a read-only overlay needs two lowers
    let lower = [...lowers].reverse().join(':');
    if (!upper && lowers.length === 1) lower += ':' + lowers[0];
    const opts = `lowerdir=${lower}${upper ? `,upperdir=${upper.upper},workdir=${upper.work}` : ''}`;
    await tool('mount', ['-t', 'overlay', 'overlay', '-o', opts, target]);
    this.points.push(target);
    return target;
  }
  async release(): Promise<void> {
    for (const p of this.points.splice(0).reverse()) {
      await tool('umount', [p]).catch(() => tool('umount', ['-l', p]));
    }
  }
}

/** Turns the step's mounts into sandbox mounts, mounting the overlays the helper cannot make. */
async function sandboxMounts(spec: RunSpec, host: HostMounts): Promise<SandboxMount[]> {
  const out: SandboxMount[] = [];
  // BuildKit gives RUN the host's resolver configuration unless the network is off
  if (spec.network !== 'none' && (await exists('/etc/resolv.conf'))) {
    out.push({ type: 'bind', source: '/etc/resolv.conf', destination: '/etc/resolv.conf', readonly: true });
  }
  for (const m of spec.mounts) {
    switch (m.type) {
      case 'bind': {
        const st = await lstat(m.source).catch(() => null);
        if (!st) throw new HoistError('E_MOUNT', `mount source ${m.source} does not exist`);
        if (st.isDirectory() && !m.readonly && m.scratch) {
          const u = join(m.scratch, 'u');
          const w = join(m.scratch, 'w');
          await mkdir(u, { recursive: true });
          await mkdir(w, { recursive: true });
          const mnt = await host.overlay(join(m.scratch, 'm'), [m.source], { upper: u, work: w });
          out.push({ type: 'bind', source: mnt, destination: m.target, readonly: false });
        } else out.push({ type: 'bind', source: m.source, destination: m.target, readonly: m.readonly });
        break;
      }
      case 'overlay-ro': {
        const base = m.lowers.length === 1 ? m.lowers[0]! : await host.overlay(m.scratch, m.lowers);
        // the source path is resolved inside the stage's filesystem: its symlinks cannot lead to the host
        const source = await resolveInRoot(base, m.subpath);
        if (!(await exists(source))) throw new HoistError('E_MOUNT', `mount source ${m.subpath} does not exist in the stage`, { hint: 'check the source= of the RUN --mount' });
        out.push({ type: 'bind', source, destination: m.target, readonly: true });
        break;
      }
      case 'tmpfs':
        // BuildKit's RUN tmpfs is executable (Docker's run --tmpfs is not)
        out.push({ type: 'tmpfs', destination: m.target, options: `mode=1777,exec${m.size ? `,size=${m.size}` : ''}` });
        break;
      case 'file':
        out.push({ type: 'bind', source: m.source, destination: m.target, readonly: true });
        break;
    }
  }
  return out;
}

/** A stream that hands each chunk to `fn`. */
function sink(fn: (chunk: Buffer) => void): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, cb) {
      fn(chunk);
      cb();
    },
  });
}

/** Runs the step in the sandbox; output chunks go to `onOutput` as they come. */
export async function runStep(spec: RunSpec, onOutput: (chunk: Buffer, fd: 1 | 2) => void, signal?: AbortSignal): Promise<RunResult> {
  if (process.getuid?.() !== 0) {
    throw new HoistError('E_ROOT_REQUIRED', 'RUN steps need root (namespaces and overlay mounts)', { hint: 'run hoist build as root' });
  }
  const host = new HostMounts();
  try {
    const mounts = await sandboxMounts(spec, host);
    await mkdir(spec.merged, { recursive: true });
    const rootfs: SandboxSpec['rootfs'] = spec.lowers.length === 0
      ? { path: spec.upper, mountpoint: spec.merged }
      : { lower: spec.lowers, upper: spec.upper, work: spec.work, mountpoint: spec.merged };
    const sandbox: SandboxSpec = {
      args: spec.args,
      env: spec.env,
      cwd: spec.cwd,
      user: spec.user,
      ...(spec.additionalGids.length ? { additionalGids: spec.additionalGids } : {}),
      hostname: spec.hostname,
      rootfs,
      mounts,
      network: spec.network === 'none' ? 'none' : 'host',
      dieWithParent: true,
    };
    const res = await runSandbox(sandbox, {
      stdout: sink((c) => onOutput(c, 1)),
      stderr: sink((c) => onOutput(c, 2)),
      ...(signal ? { signal } : {}),
    });
    return { exitCode: res.exitCode, ...(res.signal ? { signal: res.signal } : {}), ...(res.setupError ? { setupError: res.setupError } : {}) };
  } finally {
    await host.release();
  }
}

/**
 * Removes mount points the step had to create (they did not exist in any lower
 * layer and are still empty), so mount targets leave no trace in the layer.
 */
export async function removeMountStubs(upper: string, lowers: string[], targets: string[]): Promise<void> {
  const inLowers = async (rel: string): Promise<boolean> => {
    for (const l of lowers) if (await exists(join(l, rel))) return true;
    return false;
  };
  for (const t of [...new Set(targets)].sort((a, b) => b.length - a.length)) {
    let rel = t.replace(/^\/+/, '');
    while (rel && rel !== '.') {
      if (await inLowers(rel)) break;
      const p = join(upper, rel);
      const st = await lstat(p).catch(() => null);
      if (!st) {
        rel = rel.includes('/') ? rel.slice(0, rel.lastIndexOf('/')) : '';
        continue;
      }
      if (st.isDirectory()) {
        if ((await readdir(p)).length > 0) break;
        await rmdir(p);
      } else if (st.isFile() && st.size === 0) {
        await rm(p);
      } else break;
      rel = rel.includes('/') ? rel.slice(0, rel.lastIndexOf('/')) : '';
    }
  }
}

/** Resolves `user[:group]` (names or ids) against the rootfs' /etc/passwd and /etc/group. */
export async function resolveUser(
  user: string,
  readEtc: (name: 'passwd' | 'group') => Promise<string | null>,
  /** COPY --chown: a numeric uid unknown to passwd gets gid = uid (Docker's documented rule); RUN's USER gets 0. */
  gidFromUid = false,
): Promise<{ uid: number; gid: number; home: string }> {
  const passwd = await readEtc('passwd');
  const homeOf = (uid: number): string => passwd?.split('\n').find((l) => l.split(':')[2] === String(uid))?.split(':')[5] || '/';
  if (!user) return { uid: 0, gid: 0, home: homeOf(0) };
  const [u, g] = user.split(':', 2) as [string, string | undefined];
  let uid: number;
  let gid: number | undefined;
  if (u === '') {
    uid = 0;
    gid = 0;
  } else if (/^[0-9]+$/.test(u)) {
    uid = Number(u);
    const line = passwd?.split('\n').find((l) => l.split(':')[2] === u);
    if (line) gid = Number(line.split(':')[3]);
    else if (gidFromUid) gid = uid;
  } else {
    const line = passwd?.split('\n').find((l) => l.split(':')[0] === u);
    if (!line) throw new HoistError('E_USER', `unable to find user ${u}: no matching entries in passwd file`, { hint: 'create the user in an earlier RUN step, or use a numeric uid' });
    uid = Number(line.split(':')[2]);
    gid = Number(line.split(':')[3]);
  }
  if (g !== undefined && g !== '') {
    if (/^[0-9]+$/.test(g)) gid = Number(g);
    else {
      const group = await readEtc('group');
      const line = group?.split('\n').find((l) => l.split(':')[0] === g);
      if (!line) throw new HoistError('E_USER', `unable to find group ${g}: no matching entries in group file`, { hint: 'create the group in an earlier RUN step, or use a numeric gid' });
      gid = Number(line.split(':')[2]);
    }
  }
  return { uid, gid: gid ?? 0, home: homeOf(uid) };
}

/** Reads /etc/<name> from the topmost snapshot dir that has it (a symlink-free regular file). */
export async function etcFromLayers(dirs: string[], name: 'passwd' | 'group'): Promise<string | null> {
  for (const d of [...dirs].reverse()) {
    const p = join(d, 'etc', name);
    const st = await lstat(p).catch(() => null);
    if (!st) continue;
    if (!st.isFile()) return null;
    return readFile(p, 'utf8');
  }
  return null;
}

/**
 * The supplementary groups to pass to the sandbox so that a RUN process ends with
 * BuildKit's list (moby/sys/user GetExecUser, then ensureAdditionalGids): the primary
 * gid, plus, when no group is named and the user has a passwd entry, every group whose
 * member list names the user. The sandbox itself adds the member groups of any user it
 * finds in passwd, so only the rest is returned.
 */
export async function extraGids(user: string, gid: number, readEtc: (name: 'passwd' | 'group') => Promise<string | null>): Promise<number[]> {
  const [u, g] = user.split(':', 2) as [string, string | undefined];
  const passwd = (await readEtc('passwd')) ?? '';
  const entry = passwd.split('\n').map((l) => l.split(':')).find((f) => f.length >= 7 && /^\d+$/.test(f[2]!) &&
    (u === '' ? f[2] === '0' : /^\d+$/.test(u) ? Number(f[2]) === Number(u) : f[0] === u));
  const memberOf: number[] = [];
  if (entry) {
    for (const line of ((await readEtc('group')) ?? '').split('\n')) {
      const f = line.split(':');
      if (line.startsWith('#') || f.length < 4 || !/^\d+$/.test(f[2]!)) continue;
      if (f[3]!.trim().split(',').includes(entry[0]!)) memberOf.push(Number(f[2]));
    }
  }
  // BuildKit's fast path: numeric uid and gid take no supplementary groups from the files
  const numeric = /^\d+$/.test(u) && g !== undefined && /^\d+$/.test(g);
  const implicit = !numeric && (g === undefined || g === '') && entry !== undefined;
  const want = implicit ? [...memberOf] : [];
  if (!want.includes(gid)) want.unshift(gid);
  // what the sandbox adds on its own is not passed again (setgroups keeps duplicates)
  const added = [...memberOf];
  return want.filter((x) => {
    const i = added.indexOf(x);
    if (i < 0) return true;
    added.splice(i, 1);
    return false;
  });
}
