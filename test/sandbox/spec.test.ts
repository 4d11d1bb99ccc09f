import test from 'ava';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { helperPath } from '../../src/sandbox/helper.js';

const bin = helperPath();
const t = existsSync(bin) ? test : test.skip;

function feed(input: string | Buffer): { status: number | null; signal: NodeJS.Signals | null; stderr: string } {
  const r = spawnSync(bin, ['0'], { input, encoding: 'utf8', timeout: 10_000 });
  return { status: r.status, signal: r.signal, stderr: r.stderr };
}

t('malformed specifications are refused with 125 and a reason, never a crash', (tt) => {
  const cases: [string, RegExp][] = [
    ['', /invalid JSON: unexpected end of input/],
    ['{bad', /invalid JSON/],
    ['[1,2]', /must be an object/],
    ['{"args":"sh"}', /args must be an array of strings/],
    ['{"args":[]}', /no command given/],
    ['{"args":["a\\u0000b"]}', /NUL in string/],
    ['{"args":["\\ud800"]}', /surrogate/],
    ['{"args":["x"],"rootfs":{"path":"relative"}}', /must be an absolute path/],
    ['{"args":["x"],"rootfs":{"lower":["/a,upperdir=/tmp"],"mountpoint":"/m"}}', /contains ':' or ','/],
    ['{"args":["x"],"rootfs":{"path":"/"},"mounts":[{"type":"proc","destination":"/x"}]}', /mount type proc is not bind or tmpfs/],
    ['{"args":["x"],"rootfs":{"path":"/"},"network":"bridge"}', /network bridge is not supported/],
    ['{"args":["x"],"rootfs":{"path":"/"},"cgroup":{"name":"../escape","pids":3}}', /single path component/],
    ['{"args":["x"],"rlimits":[{"type":"nofile","soft":10,"hard":5}],"rootfs":{"path":"/"}}', /soft limit above hard limit/],
    ['{"args":["x"],"mode":"exec"}', /needs the container's pid/],
    ['{"args":["x"]} trailing', /trailing data/],
    ['['.repeat(100000), /nesting too deep/],
  ];
  for (const [input, why] of cases) {
    const r = feed(input);
    tt.is(r.status, 125, input.slice(0, 60));
    tt.regex(r.stderr, why, input.slice(0, 60));
  }
});

t('random bytes never crash the helper', (tt) => {
  for (let i = 0; i < 100; i++) {
    const junk = randomBytes(1 + (i * 37) % 300);
    const r = feed(junk);
    tt.is(r.signal, null);
    tt.is(r.status, 125);
  }
});
