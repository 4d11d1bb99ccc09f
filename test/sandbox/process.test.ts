import test from 'ava';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeRootfs, removeRootfs, run, sandboxUsable, tempDir } from './fixture.js';

const skip = sandboxUsable();
const t = skip ? test.skip : test;
let rootfs = '';

test.before(() => {
  if (!skip) rootfs = makeRootfs();
});
test.after.always(() => {
  if (rootfs) removeRootfs(rootfs);
});

const spec = (args: string[], extra: object = {}) => ({ rootfs: { path: rootfs }, args, ...extra });

t('exit statuses propagate', async (tt) => {
  tt.is((await run(spec(['sh', '-c', 'exit 3']))).exitCode, 3);
  tt.is((await run(spec(['true']))).exitCode, 0);
});

t('a command killed by a signal reports 128+N', async (tt) => {
  const r = await run(spec(['sh', '-c', 'kill -TERM $$; echo not reached']));
  tt.is(r.exitCode, 143);
  tt.is(r.signal, 'SIGTERM');
  tt.is(r.stdout, '');
  tt.is((await run(spec(['sh', '-c', 'kill -KILL $$']))).exitCode, 137);
});

t('missing and non-executable commands: 127 and 126 with clear messages', async (tt) => {
  const a = await run(spec(['/bin/bash']));
  tt.is(a.exitCode, 127);
  tt.regex(a.stderr, /exec: \/bin\/bash: no such file in the image/);
  tt.is(a.setupError, 'exec: /bin/bash: no such file in the image');
  const b = await run(spec(['nosuchcommand']));
  tt.is(b.exitCode, 127);
  tt.regex(b.stderr, /nosuchcommand: executable file not found in \$PATH/);
  const c = await run(spec(['/etc/passwd']));
  tt.is(c.exitCode, 126);
  tt.regex(c.stderr, /exec: \/etc\/passwd: permission denied/);
});

t('setup failures exit 125 with a message', async (tt) => {
  const a = await run({ rootfs: { path: '/nonexistent-rootfs' }, args: ['true'] });
  tt.is(a.exitCode, 125);
  tt.regex(a.stderr, /root filesystem \/nonexistent-rootfs is missing/);
  const b = await run(spec(['true'], { user: 'nosuchuser' }));
  tt.is(b.exitCode, 125);
  tt.regex(b.stderr, /unable to find user nosuchuser/);
  const c = await run({ rootfs: { lower: ['/a:b'], mountpoint: '/x' }, args: ['true'] });
  tt.is(c.exitCode, 125);
  tt.regex(c.stderr, /contains ':' or ','/);
  const d = await run(spec(['true'], { mounts: [{ type: 'bind', source: '/nonexistent-src', destination: '/x' }] }));
  tt.is(d.exitCode, 125);
  tt.regex(d.stderr, /bind mount \/nonexistent-src: cannot open the source/);
});

t('users and groups from the image, numeric ids without entries', async (tt) => {
  const a = await run(spec(['sh', '-c', 'id; echo $HOME; pwd'], { user: 'app', cwd: '/home/app/work' }));
  tt.is(a.stdout, 'uid=1000(app) gid=1000(app) groups=50(staff)\n/home/app\n/home/app/work\n');
  const b = await run(spec(['id'], { user: '4321:8765' }));
  tt.is(b.stdout, 'uid=4321 gid=8765\n');
  const c = await run(spec(['id'], { user: 'app:root' }));
  tt.regex(c.stdout, /uid=1000\(app\) gid=0\(root\)/);
});

t('env, hostname, tmpfs, read-only root', async (tt) => {
  const r = await run(spec(['sh', '-c', 'echo $FOO $HOSTNAME; hostname; touch /x 2>&1; touch /scratch/ok && echo tmpfs-ok'], {
    env: ['FOO=bar'],
    hostname: 'box1',
    readonlyRootfs: true,
    mounts: [{ type: 'tmpfs', destination: '/scratch' }],
  }));
  tt.is(r.stdout, 'bar box1\nbox1\ntouch: /x: Read-only file system\ntmpfs-ok\n');
});

t('-t gives a real terminal of the requested size', async (tt) => {
  const r = await run(spec(['sh', '-c', 'tty; stty size; test -t 0 && echo stdin-is-tty'], { tty: true, consoleSize: { rows: 33, cols: 101 } }));
  tt.is(r.exitCode, 0);
  tt.is(r.stdout.replace(/\r/g, ''), '/dev/pts/0\n33 101\nstdin-is-tty\n');
});

t('stdin reaches the command with openStdin', async (tt) => {
  const { PassThrough } = await import('node:stream');
  const input = new PassThrough();
  input.end('hello from stdin\n');
  const r = await run(spec(['cat'], { openStdin: true }), { stdin: input });
  tt.is(r.stdout, 'hello from stdin\n');
});

t('rlimits are applied, never above the current hard limit', async (tt) => {
  const r = await run(spec(['sh', '-c', 'ulimit -n; ulimit -Hn'], { rlimits: [{ type: 'nofile', soft: 100, hard: 1 << 40 }] }));
  const [soft, hard] = r.stdout.trim().split('\n');
  tt.is(soft, '100');
  tt.true(Number(hard) <= 1 << 30, r.stdout);
});

t('the log records stdout and stderr as json-file lines, and the exit file the status', async (tt) => {
  const dir = tempDir('hoist-log-');
  const r = await run(spec(['sh', '-c', 'echo out; echo err >&2; printf partial; exit 5'], { logPath: join(dir, 'log'), exitFile: join(dir, 'exit.json') }));
  tt.is(r.exitCode, 5);
  tt.is(r.stdout, 'out\npartial');
  const lines = readFileSync(join(dir, 'log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  tt.deepEqual(lines.map((l) => [l.stream, l.log]).sort(), [['stderr', 'err\n'], ['stdout', 'out\n'], ['stdout', 'partial']]);
  tt.regex(lines[0].time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
  tt.is(JSON.parse(readFileSync(join(dir, 'exit.json'), 'utf8')).exitCode, 5);
});

t('pids limit through the cgroup', async (tt) => {
  const r = await run(spec(['sh', '-c', 'for i in 1 2 3 4 5 6 7 8; do sleep 2 & done 2>&1; wait; cat /proc/self/cgroup'], { cgroup: { name: `hoist-test-${process.pid}`, pids: 4 } }));
  tt.regex(r.stdout + r.stderr, /can't fork|Resource temporarily unavailable/);
  tt.false(existsSync(`/sys/fs/cgroup/pids/hoist-test-${process.pid}`));
});

t('an aborted run kills the whole sandbox', async (tt) => {
  const ac = new AbortController();
  let init = 0;
  const p = run(spec(['sleep', '30']), { signal: ac.signal, onStart: ({ initPid }) => { init = initPid; ac.abort(); } });
  const r = await p;
  tt.is(r.exitCode, 137);
  tt.true(init > 0);
  await new Promise((res) => setTimeout(res, 100));
  tt.false(existsSync(`/proc/${init}/stat`) && !readFileSync(`/proc/${init}/stat`, 'utf8').includes(') Z'), 'init survived its helper');
});

t('memory limit through the cgroup: exceeding it gets the command OOM-killed', async (tt) => {
  const r = await run(spec(['sh', '-c', 'dd if=/dev/zero of=/dev/null bs=200M count=1 2>/dev/null; echo survived=$?'], { cgroup: { name: `hoist-mem-${process.pid}`, memory: 32 * 1024 * 1024 } }));
  // dd is killed by the OOM killer (SIGKILL → 137 seen by sh) and the shell carries on
  tt.is(r.stdout, 'survived=137\n', r.stderr);
});

t('signals sent to the helper reach the command', async (tt) => {
  let helper = 0;
  const p = run(spec(['sh', '-c', 'trap "echo got HUP; exit 9" HUP; echo ready; while :; do sleep 0.05; done']), {
    onStart: ({ helperPid }) => (helper = helperPid),
  });
  while (!helper) await new Promise((res) => setTimeout(res, 10));
  await new Promise((res) => setTimeout(res, 200));
  process.kill(helper, 'SIGHUP');
  const r = await p;
  tt.is(r.exitCode, 9);
  tt.is(r.stdout, 'ready\ngot HUP\n');
});
