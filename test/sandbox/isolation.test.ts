import test from 'ava';
import { mkdirSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { makeRootfs, removeRootfs, run, sandboxUsable, tempDir } from './fixture.js';

const skip = sandboxUsable();
const t = skip ? test.skip : test;
let rootfs = '';
let hostDir = '';

test.before(() => {
  if (skip) return;
  hostDir = tempDir('hoist-host-');
  writeFileSync(join(hostDir, 'host-secret'), 'secret\n');
  rootfs = makeRootfs((r) => {
    symlinkSync('../../../../..', join(r, 'up'));
    symlinkSync(hostDir, join(r, 'hostlink')); // absolute: must resolve inside the container
    writeFileSync(join(r, 'inside-marker'), 'in\n');
  });
});
test.after.always(() => {
  if (rootfs) removeRootfs(rootfs);
});

const sh = (script: string, extra: object = {}) => run({ rootfs: { path: rootfs }, args: ['sh', '-c', script], ...extra });

t('host files outside the mounts are invisible', async (tt) => {
  const r = await sh(`ls /; test -e ${hostDir}/host-secret && echo LEAK; cat /up/${hostDir}/host-secret /hostlink/host-secret 2>&1; echo done`);
  tt.is(r.exitCode, 0, r.stderr);
  tt.regex(r.stdout, /inside-marker/);
  tt.notRegex(r.stdout, /LEAK|secret\n/);
  tt.regex(r.stdout, /done/);
});

t('a bind mount shows exactly the mounted directory, read-only when asked', async (tt) => {
  const r = await sh('cat /data/host-secret; touch /data/new 2>&1; echo rc=$?', { mounts: [{ type: 'bind', source: hostDir, destination: '/data', readonly: true }] });
  tt.regex(r.stdout, /^secret\n/);
  tt.regex(r.stdout, /Read-only file system\nrc=1/);
  tt.false(existsSync(join(hostDir, 'new')));
});

t('the container sees only its own processes', async (tt) => {
  const r = await sh('ps -o pid,comm');
  tt.is(r.exitCode, 0, r.stderr);
  const rows = r.stdout.trim().split('\n').slice(1).map((l) => l.trim().split(/\s+/));
  tt.deepEqual(rows[0], ['1', 'hoist-init']);
  tt.true(rows.length <= 4, r.stdout); // init, sh, ps (sh may exec ps directly)
  tt.false(rows.some(([pid]) => Number(pid) === process.pid));
});

t("capabilities are Docker's default set, no_new_privs is set", async (tt) => {
  const r = await sh('grep -E "^(CapEff|CapBnd|CapPrm|CapInh|CapAmb|NoNewPrivs)" /proc/self/status');
  tt.regex(r.stdout, /CapEff:\s+00000000a80425fb/);
  tt.regex(r.stdout, /CapBnd:\s+00000000a80425fb/);
  tt.regex(r.stdout, /CapInh:\s+0000000000000000/);
  tt.regex(r.stdout, /CapAmb:\s+0000000000000000/);
  tt.regex(r.stdout, /NoNewPrivs:\s+1/);
});

t('a non-root user gets no effective capabilities', async (tt) => {
  const r = await sh('id; grep -E "^(CapEff|CapBnd)" /proc/self/status', { user: 'app' });
  tt.regex(r.stdout, /uid=1000\(app\) gid=1000\(app\) groups=50\(staff\)/);
  tt.regex(r.stdout, /CapEff:\s+0000000000000000/);
  tt.regex(r.stdout, /CapBnd:\s+00000000a80425fb/);
});

t('mount is refused inside', async (tt) => {
  const r = await sh('mount -t tmpfs none /tmp 2>&1; echo rc=$?; mount --bind /bin /tmp 2>&1; echo rc=$?');
  tt.regex(r.stdout, /operation not permitted|permission denied/i);
  tt.notRegex(r.stdout, /rc=0/);
});

t('network none leaves only the loopback interface, up', async (tt) => {
  const r = await sh('ls /sys/class/net; cat /proc/net/dev | tail -n +3 | cut -d: -f1', { network: 'none' });
  tt.is(r.exitCode, 0, r.stderr);
  tt.deepEqual(r.stdout.split(/\s+/).filter(Boolean), ['lo', 'lo']);
  const ping = await sh('ping -c1 -W1 127.0.0.1 >/dev/null && echo up', { network: 'none' });
  tt.is(ping.stdout, 'up\n');
});

t('no host descriptor is open in the container', async (tt) => {
  const r = await sh('ls /proc/self/fd');
  tt.deepEqual(r.stdout.split(/\s+/).filter(Boolean), ['0', '1', '2', '3']); // 3 is ls's own directory
});

t('a working directory of /proc/self/fd/N cannot reach the host', async (tt) => {
  for (const fd of [3, 4, 5, 6, 7]) {
    const r = await run({ rootfs: { path: rootfs }, args: ['sh', '-c', 'pwd -P; ls'], cwd: `/proc/self/fd/${fd}` });
    tt.is(r.exitCode, 125, `fd ${fd}: ${r.stdout}`);
    tt.regex(r.stderr, new RegExp(`working directory /proc/self/fd/${fd}`));
  }
});

t('a symlinked working directory resolves inside the root', async (tt) => {
  const a = await run({ rootfs: { path: rootfs }, args: ['sh', '-c', 'pwd -P; ls'], cwd: '/up' });
  tt.is(a.exitCode, 0, a.stderr);
  tt.regex(a.stdout, /^\/\n/);
  tt.regex(a.stdout, /inside-marker/);
  const b = await run({ rootfs: { path: rootfs }, args: ['sh', '-c', 'ls'], cwd: '/hostlink' });
  tt.notRegex(b.stdout, /host-secret/);
});

t('masked and read-only /proc paths', async (tt) => {
  const r = await sh('for f in /proc/keys /proc/timer_list /proc/kcore; do [ -e $f ] && wc -c < $f; done; (echo 1 > /proc/sys/kernel/hostname) 2>&1; echo rc=$?; ls /sys/firmware | wc -l');
  const lines = r.stdout.trim().split('\n');
  tt.true(lines.length >= 4, r.stdout);
  tt.true(lines.slice(0, -3).every((l) => l.trim() === '0'), r.stdout); // masked: empty
  tt.regex(r.stdout, /Read-only file system\nrc=1\n0\n$/);
});

t('minimal /dev', async (tt) => {
  const r = await sh('ls /dev | sort | tr "\\n" " "; echo; head -c 4 /dev/zero | wc -c; readlink /dev/fd; readlink /dev/ptmx');
  tt.is(r.stdout.split('\n')[0], 'core fd full mqueue null ptmx pts random shm stderr stdin stdout tty urandom zero ');
  tt.regex(r.stdout, /\n4\n\/proc\/self\/fd\npts\/ptmx\n/);
});

t('hostile image: mount targets behind symlinks and a FIFO /etc/passwd stay contained', async (tt) => {
  const { execFileSync } = await import('node:child_process');
  const { readdirSync, rmSync } = await import('node:fs');
  const victim = tempDir('hoist-victim-');
  const hostile = makeRootfs((r) => {
    // /etc points "outside"; the bind of /etc/hosts must land inside the root, not in `victim`
    rmSync(join(r, 'etc'), { recursive: true });
    symlinkSync(`../../../../../../../..${victim}`, join(r, 'etc'));
    mkdirSync(join(r, 'data'));
    symlinkSync('/proc/self/root/../../../../..' + victim, join(r, 'data', 'link'));
  });
  try {
    mkdirSync(join(hostile, victim), { recursive: true });
    execFileSync('mkfifo', [join(hostile, victim, 'passwd')]);
    const hostsFile = join(hostDir, 'host-secret');
    const r = await run({
      rootfs: { path: hostile },
      args: ['sh', '-c', 'cat /etc/hosts; echo 0'], // (id would block on the FIFO itself)
      mounts: [{ type: 'bind', source: hostsFile, destination: '/etc/hosts', readonly: true }],
      user: '0',
    });
    tt.is(r.exitCode, 0, r.stderr);
    tt.is(r.stdout, 'secret\n0\n');
    // a target reached through a magic link (/proc/self/root) is refused outright
    const m = await run({ rootfs: { path: hostile }, args: ['true'], mounts: [{ type: 'tmpfs', destination: '/data/link/t' }] });
    tt.is(m.exitCode, 125);
    tt.regex(m.stderr, /tmpfs on \/data\/link\/t.*Too many levels of symbolic links/);
    tt.deepEqual(readdirSync(victim), [], 'something was created on the host through a symlink');
  } finally {
    removeRootfs(hostile);
  }
});

t('seccomp: new namespaces, keyrings and the mount API are refused; ordinary work is not', async (tt) => {
  const r = await sh('grep "^Seccomp:" /proc/self/status; for f in -U -m -n -p; do unshare $f true 2>/dev/null; echo $?; done; (sleep 0 & wait) && echo fork-ok; echo x > /tmp/f && cat /tmp/f');
  tt.is(r.stdout, 'Seccomp:\t2\n1\n1\n1\n1\nfork-ok\nx\n', r.stderr);
  const off = await sh('grep "^Seccomp:" /proc/self/status', { seccomp: false });
  tt.is(off.stdout, 'Seccomp:\t0\n');
});
