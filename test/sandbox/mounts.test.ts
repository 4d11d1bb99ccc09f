import test from 'ava';
import { spawn } from 'node:child_process';
import { copyFileSync, chmodSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { helperPath } from '../../src/sandbox/helper.js';
import { makeRootfs, mountPoints, removeRootfs, run, sandboxUsable, tempDir } from './fixture.js';

const skip = sandboxUsable();
const t = skip ? test.serial.skip : test.serial;
let rootfs = '';

test.before(() => {
  if (!skip) rootfs = makeRootfs();
});
test.after.always(() => {
  if (rootfs) removeRootfs(rootfs);
});

function gone(pid: number): boolean {
  try {
    const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return st.slice(st.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

t('nothing stays mounted on the host after 100 runs, including ones killed with SIGKILL midway', async (tt) => {
  const before = mountPoints();
  const work = tempDir('hoist-mounts-');
  const inits: number[] = [];
  let killed = 0;
  for (let i = 0; i < 100; i++) {
    // half the runs stack an overlay (the container layer case), half bind a directory
    const d = join(work, String(i));
    for (const s of ['upper', 'work', 'mnt']) mkdirSync(join(d, s), { recursive: true });
    const rootfsSpec = i % 2 ? { path: rootfs } : { lower: [rootfs], upper: join(d, 'upper'), work: join(d, 'work'), mountpoint: join(d, 'mnt') };
    const mounts = [{ type: 'tmpfs' as const, destination: '/scratch' }, { type: 'bind' as const, source: work, destination: '/w', readonly: true }];
    if (i % 4 === 3) {
      // SIGKILL the helper at a varying moment: during setup for some, while the command runs for others
      const ac = new AbortController();
      const timer = setTimeout(() => ac.abort(), (i * 7) % 40);
      const r = await run({ rootfs: rootfsSpec, args: ['sleep', '30'], mounts }, { signal: ac.signal, onStart: ({ initPid }) => inits.push(initPid) });
      clearTimeout(timer);
      if (!ac.signal.aborted) ac.abort();
      tt.is(r.exitCode, 137, r.stderr);
      killed++;
    } else {
      const r = await run({ rootfs: rootfsSpec, args: ['sh', '-c', 'echo x > /scratch/f && cat /scratch/f'], mounts }, { onStart: ({ initPid }) => inits.push(initPid) });
      tt.is(r.stdout, 'x\n', r.stderr);
    }
  }
  tt.is(killed, 25);
  await new Promise((res) => setTimeout(res, 200));
  tt.deepEqual(mountPoints(), before);
  tt.true(inits.length >= 75);
  tt.deepEqual(inits.filter((p) => !gone(p)), [], 'container init processes outlived their helper');
});

t('rootless: a non-root user runs the same container in a user namespace', async (tt) => {
  // the helper and the rootfs must be reachable by nobody: copy the helper next to a 0755 rootfs
  const dir = tempDir('hoist-rootless-');
  const bin = join(dir, 'hoist-sandbox');
  copyFileSync(helperPath(), bin);
  chmodSync(bin, 0o755);
  const spec = JSON.stringify({ rootfs: { path: rootfs }, args: ['sh', '-c', 'id -u; grep -E "^CapEff" /proc/self/status; ls /proc/self/fd | wc -l; echo ok'], network: 'none', statusFd: 4 });
  const p = spawn('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', bin, '3'], { stdio: ['ignore', 'pipe', 'pipe', 'pipe', 'pipe'], env: { PATH: process.env.PATH, HOME: '/' } });
  (p.stdio[3] as NodeJS.WritableStream).end(spec);
  let out = '';
  let err = '';
  p.stdout!.on('data', (d) => (out += d));
  p.stderr!.on('data', (d) => (err += d));
  const code = await new Promise<number | null>((res) => p.on('close', res));
  tt.is(code, 0, `the kernel or the helper refused the rootless run: ${err}`);
  tt.is(out, '0\nCapEff:\t00000000a80425fb\n4\nok\n');
  tt.true(existsSync(rootfs));
});

t('rootless through the CLI: load and run as nobody (copy fallback for the root filesystem)', async (tt) => {
  const { execFileSync: run1 } = await import('node:child_process');
  const { chownSync } = await import('node:fs');
  const { fixture, hoistBin } = await import('../helpers/paths.js');
  const dir = tempDir('hoist-rootless-cli-');
  chownSync(dir, 65534, 65534);
  const tar = join(dir, 'busybox.tar');
  run1('bash', [fixture('busybox', 'make-image.sh'), tar]);
  chmodSync(tar, 0o644);
  const env = { PATH: process.env.PATH, HOME: dir, HOIST_ROOT: join(dir, 'root') };
  const asNobody = (args: string[]) =>
    new Promise<{ code: number | null; out: string; err: string }>((res) => {
      const p = spawn('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, hoistBin, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      p.stdout.on('data', (d) => (out += d));
      p.stderr.on('data', (d) => (err += d));
      p.on('close', (code) => res({ code, out, err }));
    });
  const l = await asNobody(['load', '-i', tar]);
  tt.is(l.code, 0, l.err);
  const r = await asNobody(['run', '--rm', '--network', 'none', 'busybox', 'sh', '-c', 'id -u; echo w > /x && cat /x; ls /sys/class/net']);
  tt.is(r.code, 0, `the rootless run failed: ${r.err}`);
  tt.is(r.out, '0\nw\nlo\n');
});
