import test from 'ava';
import { familiarString, formatReference, parseReference } from '../../src/image/reference.js';
import { isHoistError } from '../../src/util/errors.js';

const D = `sha256:${'ab'.repeat(32)}` as const;

// input → normalised full name, familiar display
const valid: [string, string, string][] = [
  ['busybox', 'docker.io/library/busybox:latest', 'busybox:latest'],
  ['busybox:1.36', 'docker.io/library/busybox:1.36', 'busybox:1.36'],
  ['library/busybox', 'docker.io/library/busybox:latest', 'busybox:latest'],
  ['docker.io/busybox', 'docker.io/library/busybox:latest', 'busybox:latest'],
  ['index.docker.io/library/busybox:x', 'docker.io/library/busybox:x', 'busybox:x'],
  ['user/app', 'docker.io/user/app:latest', 'user/app:latest'],
  ['user/app:v1.2_rc-3', 'docker.io/user/app:v1.2_rc-3', 'user/app:v1.2_rc-3'],
  ['localhost/app', 'localhost/app:latest', 'localhost/app:latest'],
  ['localhost:5000/app:dev', 'localhost:5000/app:dev', 'localhost:5000/app:dev'],
  ['host:5000/ns/name:tag', 'host:5000/ns/name:tag', 'host:5000/ns/name:tag'],
  ['registry.example.com/team/sub/app', 'registry.example.com/team/sub/app:latest', 'registry.example.com/team/sub/app:latest'],
  ['a.b/c__d.e-f--g', 'a.b/c__d.e-f--g:latest', 'a.b/c__d.e-f--g:latest'],
  ['[::1]:5000/app', '[::1]:5000/app:latest', '[::1]:5000/app:latest'],
  [`busybox@${D}`, `docker.io/library/busybox@${D}`, `busybox@${D}`],
  [`busybox:1@${D}`, `docker.io/library/busybox:1@${D}`, `busybox:1@${D}`],
  [`host:5000/ns/name@${D}`, `host:5000/ns/name@${D}`, `host:5000/ns/name@${D}`],
  ['docker.io/library/foo/bar', 'docker.io/library/foo/bar:latest', 'library/foo/bar:latest'],
];

for (const [input, full, familiar] of valid) {
  test(`parses ${input}`, (t) => {
    const r = parseReference(input);
    t.is(formatReference(r), full);
    t.is(familiarString(r), familiar);
  });
}

// input → a fragment the error message must contain
const invalid: [string, string][] = [
  ['', 'empty'],
  ['Busybox', 'lowercase'],
  ['user/App', 'lowercase'],
  ['busybox:', 'tag ""'],
  ['busybox:-x', 'tag "-x"'],
  ['busybox:' + 'x'.repeat(129), 'must be 1-128'],
  ['bad name', 'whitespace'],
  ['a//b', 'empty component'],
  ['app/', 'empty component'],
  ['foo_-bar', 'path component'],
  ['-foo', 'path component'],
  ['busybox@sha256:abc', 'digest'],
  ['busybox@sha256:' + 'AB'.repeat(32), 'lowercase hex'],
  ['busybox@md5:' + 'ab'.repeat(16), 'unsupported digest algorithm'],
  ['ab'.repeat(32), 'image ID'],
  ['host:port/app', 'registry host'],
  ['a.b/' + 'x'.repeat(260), 'longer than 255'],
];

for (const [input, fragment] of invalid) {
  test(`refuses ${JSON.stringify(input.length > 40 ? input.slice(0, 40) + '…' : input)}`, (t) => {
    const e = t.throws(() => parseReference(input));
    t.true(isHoistError(e));
    t.is((e as { code?: string }).code, 'E_REFERENCE');
    t.true(e!.message.includes(fragment), `message ${JSON.stringify(e!.message)} should mention ${JSON.stringify(fragment)}`);
    t.truthy((e as { hint?: string }).hint);
  });
}

test('a digest reference gets no default tag', (t) => {
  const r = parseReference(`busybox@${D}`);
  t.is(r.tag, undefined);
  t.is(r.digest, D);
});
