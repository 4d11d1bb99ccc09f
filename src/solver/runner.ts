/**
 * Runs one RUN step: the process in fresh mount/pid/uts/ipc(/net) namespaces, on an
 * overlay of the parent snapshots with a private upper directory, with /proc, a
 * minimal /dev, the RUN mounts, and the step's env, cwd and user.
 *
 * The namespaces come from util-linux `unshare` and the chroot/setuid from its
 * `--root/--wd/--setuid/--setgid`, driven by a short generated shell script. This is
 * the build's own executor until the native sandbox (`src/sandbox/`) takes RUN over;
 * the spec below carries everything either needs.
 */
import { spawn } from 'node:child_process';
import { lstat, mkdir, readdir, readFile, rm, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { HoistError } from '../util/errors.js';

/** A mount in the RUN step's filesystem. */
export type RunMount =
  | { type: 'bind'; source: string; target: string; readonly: boolean; /** rw binds discard writes through an overlay */ scratch?: string }
  | { type: 'overlay-ro'; lowers: string[]; subpath: string; target: string }
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
  uid: number;
  gid: number;
  network: 'default' | 'none' | 'host';
  mounts: RunMount[];
  hostname: string;
}

export interface RunResult {
  exitCode: number;
  signal?: string;
}

const SCRIPT = String.raw`
set -eu
m=$1; shift
nl=$1; shift
i=0
while [ $i -lt "$nl" ]; do
  kind=$1; src=$2; dst=$3; opt=$4; shift 4
  t="$m$dst"
  case $kind in
    dir|tmpfs|overlay) [ -d "$t" ] || mkdir -p "$t" ;;
    file) [ -e "$t" ] || { mkdir -p "$(dirname "$t")"; : > "$t"; } ;;
  esac
  case $kind in
    root) mount -t overlay overlay -o "$opt" "$m" ;;
    rootbind) mount --bind "$src" "$m" ;;
    proc) mkdir -p "$t"; mount -t proc proc "$t" ;;
    devtmp) mkdir -p "$t"; mount -t tmpfs -o mode=755,nosuid tmpfs "$t"
      for d in null zero full random urandom tty; do : > "$t/$d"; mount --bind "/dev/$d" "$t/$d"; done
      ln -s /proc/self/fd "$t/fd"; ln -s /proc/self/fd/0 "$t/stdin"; ln -s /proc/self/fd/1 "$t/stdout"; ln -s /proc/self/fd/2 "$t/stderr"
      mkdir "$t/shm" "$t/pts"; mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$t/shm" ;;
    tmpfs) mount -t tmpfs -o "$opt" tmpfs "$t" ;;
    overlay) mount -t overlay overlay -o "$opt" "$t" ;;
    dir|file) mount --bind "$src" "$t"; [ "$opt" = ro ] && mount -o remount,bind,ro "$t" || true ;;
    mkdir) mkdir -p "$t" ;;
  esac
  i=$((i+1))
done
hostname "$1"; shift
wd=$1; uid=$2; gid=$3; shift 3
[ -d "$m$wd" ] || mkdir -p "$m$wd"
exec /usr/bin/env -i "$@" 
`;

async function exists(p: string): Promise<boolean> {
  return (await lstat(p).catch(() => null)) !== null;
}

async function overlaySupportsOpts(): Promise<string> {
  return ',redirect_dir=off,metacopy=off,index=off';
}

/** Runs the step; output chunks go to `onOutput` as they come. */
export async function runStep(spec: RunSpec, onOutput: (chunk: Buffer, fd: 1 | 2) => void, signal?: AbortSignal): Promise<RunResult> {
  if (process.getuid?.() !== 0) {
    throw new HoistError('E_ROOT_REQUIRED', 'RUN steps need root (namespaces and overlay mounts)', { hint: 'run hoist build as root' });
  }
  const ops: string[][] = [];
  if (spec.lowers.length === 0) {
    ops.push(['rootbind', spec.upper, '/', '']);
  } else {
    const lower = [...spec.lowers].reverse().join(':');
    ops.push(['root', '', '/', `lowerdir=${lower},upperdir=${spec.upper},workdir=${spec.work}${await overlaySupportsOpts()}`]);
  }
  ops.push(['proc', '', '/proc', '']);
  ops.push(['devtmp', '', '/dev', '']);
  if (spec.network !== 'none') {
    if (await exists('/etc/resolv.conf')) ops.push(['file', '/etc/resolv.conf', '/etc/resolv.conf', 'ro']);
  }
  let n = 0;
  for (const m of spec.mounts) {
    switch (m.type) {
      case 'bind': {
        const st = await lstat(m.source).catch(() => null);
        if (!st) throw new HoistError('E_MOUNT', `mount source ${m.source} does not exist`);
        if (st.isDirectory() && !m.readonly && m.scratch) {
          await mkdir(join(m.scratch, 'u'), { recursive: true });
          await mkdir(join(m.scratch, 'w'), { recursive: true });
          ops.push(['overlay', '', m.target, `lowerdir=${m.source},upperdir=${join(m.scratch, 'u')},workdir=${join(m.scratch, 'w')}`]);
        } else ops.push([st.isDirectory() ? 'dir' : 'file', m.source, m.target, m.readonly ? 'ro' : 'rw']);
        break;
      }
      case 'overlay-ro': {
        if (m.lowers.length === 1 && m.subpath === '/') ops.push(['dir', m.lowers[0]!, m.target, 'ro']);
        else {
          const tmpTarget = `/.hoist-src-${n++}`;
          // mounted outside the rootfs so nothing of it can end up in the layer
          const outside = join(spec.work, '..', `src-${n}`);
          await mkdir(outside, { recursive: true });
          ops.push(['overlay-host', '', outside, `lowerdir=${[...m.lowers].reverse().join(':')}${m.lowers.length === 1 ? ':' + m.lowers[0] : ''}`]);
          void tmpTarget;
          ops.push(['dir', join(outside, m.subpath), m.target, 'ro']);
        }
        break;
      }
      case 'tmpfs':
        ops.push(['tmpfs', '', m.target, `mode=1777${m.size ? `,size=${m.size}` : ''}`]);
        break;
      case 'file':
        ops.push(['file', m.source, m.target, 'ro']);
        break;
    }
  }
  // host-side overlay mounts (stage sources) go before the rootfs ones
  const host = ops.filter((o) => o[0] === 'overlay-host');
  const inRoot = ops.filter((o) => o[0] !== 'overlay-host');
  const pre = host.map((o) => `mount -t overlay overlay -o ${shq(o[3]!)} ${shq(o[2]!)}`).join('\n');
  const script = (pre ? pre + '\n' : '') + SCRIPT;
  const argv = [
    '-c', script, 'hoist-run', spec.merged, String(inRoot.length), ...inRoot.flat(), spec.hostname, spec.cwd, String(spec.uid), String(spec.gid),
    ...spec.env, '/usr/bin/unshare', `--root=${spec.merged}`, `--wd=${spec.cwd}`, '-S', String(spec.uid), '-G', String(spec.gid), '--', ...spec.args,
  ];
  const nsFlags = ['--mount', '--propagation', 'private', '--pid', '--fork', '--kill-child', '--uts', '--ipc'];
  if (spec.network === 'none') nsFlags.push('--net');
  await mkdir(spec.merged, { recursive: true });
  return new Promise<RunResult>((resolve, reject) => {
    const child = spawn('/usr/bin/unshare', [...nsFlags, '/bin/sh', ...argv], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' },
      signal,
    });
    child.stdout.on('data', (c: Buffer) => onOutput(c, 1));
    child.stderr.on('data', (c: Buffer) => onOutput(c, 2));
    child.on('error', (e) => reject(new HoistError('E_RUN', `cannot start the RUN sandbox: ${e.message}`, { hint: 'hoist needs util-linux unshare (2.38 or newer)' })));
    child.on('close', (code, sig) => resolve({ exitCode: code ?? 128, ...(sig ? { signal: sig } : {}) }));
  });
}

function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
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
