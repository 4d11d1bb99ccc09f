import test from 'ava';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fixture, hoistBin } from '../helpers/paths.js';
import { sandboxUsable, tempDir } from './fixture.js';

const skip = sandboxUsable();
const t = skip ? test.skip : test;
let root = '';

interface Result { code: number; stdout: string; stderr: string }

function hoist(args: string[], input?: string): Promise<Result> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [hoistBin, ...args], { env: { ...process.env, HOIST_ROOT: root }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.stdin.end(input ?? '');
    p.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

test.before(async () => {
  if (skip) return;
  root = join(tempDir('hoist-cli-'), 'root');
  const tar = join(root, '..', 'busybox.tar');
  execFileSync('bash', [fixture('busybox', 'make-image.sh'), tar]);
  const r = await hoist(['load', '-i', tar]);
  if (r.code !== 0) throw new Error(`loading busybox failed: ${r.stderr}`);
});

test.after.always(async () => {
  // a failed assertion must not leave detached containers running
  if (!root) return;
  const ids = (await hoist(['ps', '-a', '-q'])).stdout.split('\n').filter(Boolean);
  if (ids.length) await hoist(['rm', '-f', ...ids]);
});

t('run --rm: output, exit status, and the container is gone', async (tt) => {
  const name = `gone${process.pid}`;
  const r = await hoist(['run', '--rm', '--name', name, 'busybox', 'sh', '-c', 'echo hi; ls -l /etc/hostname >/dev/null; exit 3']);
  tt.is(r.code, 3, r.stderr);
  tt.is(r.stdout, 'hi\n');
  const left = readdirSync(join(root, 'containers')).filter((n) => existsSync(join(root, 'containers', n, 'config.json')) && readFileSync(join(root, 'containers', n, 'config.json'), 'utf8').includes(name));
  tt.deepEqual(left, []);
});

t('command flags after the image belong to the command', async (tt) => {
  const r = await hoist(['run', '--rm', '-e', 'A=b', 'busybox', 'sh', '-c', 'echo $A "$@"', 'x', '-e', '--rm']);
  tt.is(r.stdout, 'b -e --rm\n', r.stderr);
});

t('hoist errors are 125, missing commands 127 with the message', async (tt) => {
  const a = await hoist(['run', '--rm', 'nosuchimage']);
  tt.is(a.code, 125);
  tt.regex(a.stderr, /no such image: nosuchimage/);
  const b = await hoist(['run', '--rm', 'busybox', '/bin/bash']);
  tt.is(b.code, 127);
  tt.regex(b.stderr, /exec: \/bin\/bash: no such file in the image/);
  const c = await hoist(['run', '--rm', '--bogus-flag', 'busybox', 'true']);
  tt.is(c.code, 125);
});

t('--network none, --read-only, -v ro, --tmpfs, -w, -u, --hostname', async (tt) => {
  const host = tempDir('hoist-vol-');
  writeFileSync(join(host, 'f'), 'from host\n');
  const r = await hoist(['run', '--rm', '--network', 'none', '--read-only', '-v', `${host}:/data:ro`, '--tmpfs', '/scratch', '-w', '/scratch/sub', '-u', 'nobody', '--hostname', 'h1',
    'busybox', 'sh', '-c', 'ls /sys/class/net; cat /data/f; (touch /x) 2>&1; pwd; id -u; hostname; cat /etc/hostname']);
  tt.is(r.code, 0, r.stderr);
  tt.is(r.stdout, 'lo\nfrom host\ntouch: /x: Read-only file system\n/scratch/sub\n65534\nh1\nh1\n');
});

t('-t gives the command a terminal', async (tt) => {
  const r = await hoist(['run', '--rm', '-t', 'busybox', 'tty']);
  tt.is(r.code, 0, r.stderr);
  tt.regex(r.stdout, /^\/dev\/pts\/\d+\r?\n$/);
});

t('-i passes stdin', async (tt) => {
  const r = await hoist(['run', '--rm', '-i', 'busybox', 'wc', '-l'], 'a\nb\nc\n');
  tt.is(r.stdout.trim(), '3');
});

t('detached container: ps, logs, exec, stop with the STOPSIGNAL, start, rm', async (tt) => {
  const name = `web${process.pid}`;
  const script = 'trap "echo got USR1; exit 7" USR1; trap "echo got TERM; exit 8" TERM; echo started; while :; do sleep 0.05; done';
  const d = await hoist(['run', '-d', '--name', name, 'busybox', 'sh', '-c', script]);
  tt.is(d.code, 0, d.stderr);
  const id = d.stdout.trim();
  tt.regex(id, /^[0-9a-f]{64}$/);
  const cfg = JSON.parse(readFileSync(join(root, 'containers', id, 'config.json'), 'utf8'));
  tt.is(cfg.name, name);
  tt.regex(cfg.image, /^sha256:[0-9a-f]{64}$/);
  tt.is(cfg.state, 'running');
  // As if the image said STOPSIGNAL SIGUSR1: stop must deliver exactly that to the command.
  cfg.config.stopSignal = 'SIGUSR1';
  writeFileSync(join(root, 'containers', id, 'config.json'), JSON.stringify(cfg));

  const ps = await hoist(['ps']);
  tt.regex(ps.stdout, new RegExp(`${id.slice(0, 12)}\\s+busybox\\s+.*Up .*${name}`));
  const q = await hoist(['ps', '-q']);
  tt.true(q.stdout.split('\n').includes(id.slice(0, 12)));

  const ex = await hoist(['exec', '-e', 'X=1', name, 'sh', '-c', 'echo $X $(hostname); ps -o pid,comm | grep -E "^ +(1|2) "']);
  tt.is(ex.code, 0, ex.stderr);
  // joined the container's pid namespace: its init and main process are visible as 1 and 2
  tt.regex(ex.stdout, new RegExp(`^1 ${id.slice(0, 12)}\n +1 hoist-init\n +2 sh\n$`));
  tt.is((await hoist(['exec', name, 'sh', '-c', 'exit 4'])).code, 4);

  const stop = await hoist(['stop', '-t', '5', name]);
  tt.is(stop.code, 0, stop.stderr);
  const logs = await hoist(['logs', name]);
  tt.is(logs.stdout, 'started\ngot USR1\n');
  const tail = await hoist(['logs', '--tail', '1', '-t', name]);
  tt.regex(tail.stdout, /^\d{4}-\d\d-\d\dT[\d:.]+Z got USR1\n$/);
  const all = await hoist(['ps', '-a']);
  tt.regex(all.stdout, new RegExp(`Exited \\(7\\).*${name}`));

  tt.is((await hoist(['start', name])).code, 0);
  const running = await hoist(['ps']);
  tt.regex(running.stdout, new RegExp(name));
  tt.is((await hoist(['rm', name])).code, 1, 'rm without -f refuses a running container');
  tt.is((await hoist(['kill', '-s', 'TERM', name])).code, 0);
  for (let i = 0; i < 100 && (await hoist(['ps', '-q'])).stdout.includes(id.slice(0, 12)); i++) await new Promise((r) => setTimeout(r, 50));
  const after = await hoist(['ps', '-a']);
  tt.regex(after.stdout, new RegExp(`Exited \\(8\\).*${name}`));
  tt.is((await hoist(['rm', name])).code, 0);
  tt.false(existsSync(join(root, 'containers', id)));
});

t('the writable layer persists across start; rm -f kills a running container', async (tt) => {
  const name = `keep${process.pid}`;
  const a = await hoist(['run', '--name', name, 'busybox', 'sh', '-c', 'echo kept > /data.txt; rm /bin/vi']);
  tt.is(a.code, 0, a.stderr);
  const cfg = JSON.parse(readFileSync(join(root, 'containers', readdirSync(join(root, 'containers')).find((n) => existsSync(join(root, 'containers', n, 'config.json')) && readFileSync(join(root, 'containers', n, 'config.json'), 'utf8').includes(name))!, 'config.json'), 'utf8'));
  cfg.config.args = ['sh', '-c', 'cat /data.txt; ls /bin/vi 2>&1; sleep 30'];
  writeFileSync(join(root, 'containers', cfg.id, 'config.json'), JSON.stringify(cfg));
  tt.is((await hoist(['start', name])).code, 0);
  await new Promise((r) => setTimeout(r, 300));
  const logs = await hoist(['logs', name]);
  tt.regex(logs.stdout + logs.stderr, /kept\n/);
  tt.regex(logs.stdout + logs.stderr, /No such file/);
  // a fresh container of the same image still has vi: the change stayed in the container layer
  const fresh = await hoist(['run', '--rm', 'busybox', 'ls', '/bin/vi']);
  tt.is(fresh.stdout, '/bin/vi\n');
  const rm = await hoist(['rm', '-f', name]);
  tt.is(rm.code, 0, rm.stderr);
  tt.false(existsSync(join(root, 'containers', cfg.id)));
});

t('names: generated Docker-style, duplicates refused', async (tt) => {
  const a = await hoist(['run', 'busybox', 'true']);
  tt.is(a.code, 0);
  const ps = await hoist(['ps', '-a']);
  tt.regex(ps.stdout, /\s[a-z]+_[a-z]+\n/);
  const name = `dup${process.pid}`;
  tt.is((await hoist(['run', '--name', name, 'busybox', 'true'])).code, 0);
  const b = await hoist(['run', '--name', name, 'busybox', 'true']);
  tt.is(b.code, 125);
  tt.regex(b.stderr, /already in use/);
});

t('--pids-limit is enforced through the cgroup', async (tt) => {
  const r = await hoist(['run', '--rm', '--pids-limit', '3', 'busybox', 'sh', '-c', 'for i in 1 2 3 4 5 6; do sleep 1 & done 2>&1; wait']);
  tt.regex(r.stdout + r.stderr, /can't fork|Resource temporarily unavailable/);
});

t('commit turns the writable layer into a new image layer (deletions included, mount points not)', async (tt) => {
  const name = `cm${process.pid}`;
  tt.is((await hoist(['run', '--name', name, 'busybox', 'sh', '-c', 'echo committed > /hello; rm /bin/vi; mkdir -p /opt/x'])).code, 0);
  const c = await hoist(['commit', '-m', 'note', name, `committed${process.pid}:v1`]);
  tt.is(c.code, 0, c.stderr);
  tt.regex(c.stdout, /^sha256:[0-9a-f]{64}\n$/);
  const r = await hoist(['run', '--rm', `committed${process.pid}:v1`, 'sh', '-c', 'cat /hello; ls /bin/vi 2>&1; ls /opt']);
  tt.is(r.stdout, 'committed\nls: /bin/vi: No such file or directory\nx\n');
  const h = await hoist(['history', `committed${process.pid}:v1`]);
  tt.regex(h.stdout, new RegExp(`hoist commit ${name}\\s+\\d+B\\s+note`));
  // the layer holds exactly the changes: no /etc/hosts, /etc/hostname, /etc/resolv.conf, /proc, /dev
  const size = Number(/hoist commit \S+\s+(\d+)B/.exec(h.stdout)?.[1]);
  tt.true(size < 400, h.stdout);
  tt.is((await hoist(['rm', name])).code, 0);
});

t('-it on a real terminal: raw relay, window size, and SIGWINCH resizing', async (tt) => {
  // util-linux `script` gives hoist a pty as its terminal; the resize comes from outside, as a user's would
  // The resize waits until the container has printed its first size (a flag file through a bind
  // mount), and the container waits (up to 20 s) for the size to change: no timing guesses under load.
  const flag = await mkdtemp(join(tmpdir(), 'hoist-tty-'));
  tt.teardown(() => rm(flag, { recursive: true, force: true }));
  const inside = 'stty size; tty; touch /flag/ready; i=0; while [ "$(stty size)" = "40 100" ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done; stty size; exit 5';
  const inner = `stty rows 40 cols 100; (while [ ! -e ${flag}/ready ]; do sleep 0.1; done; stty rows 50 cols 120 </dev/tty) & HOIST_ROOT=${root} ${process.execPath} ${hoistBin} run --rm -it -v ${flag}:/flag busybox sh -c '${inside}'`;
  const r = await new Promise<Result>((resolve) => {
    // script's stdin stays open: at EOF, script types an end-of-file character into the terminal,
    // which the raw relay would pass on to the container (seen as a stray ^@ in the output)
    const p = spawn('script', ['-qec', inner, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    p.on('exit', () => p.stdin.end());
  });
  tt.is(r.code, 5, r.stdout + r.stderr);
  tt.regex(r.stdout, /40 100\r\n\/dev\/pts\/\d+\r\n50 120\r\n/);
});

t('logs -f follows until the container exits', async (tt) => {
  const name = `follow${process.pid}`;
  const d = await hoist(['run', '-d', '--name', name, 'busybox', 'sh', '-c', 'for i in 1 2 3; do echo line$i; sleep 0.3; done']);
  tt.is(d.code, 0, d.stderr);
  const f = await hoist(['logs', '-f', name]);
  tt.is(f.stdout, 'line1\nline2\nline3\n');
  tt.is((await hoist(['rm', name])).code, 0);
});
