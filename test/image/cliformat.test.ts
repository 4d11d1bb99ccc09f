/**
 * docker CLI parity of the list commands and prunes: `--format` (table / template / json)
 * for images, ps and history with docker's field names and column titles, their
 * `--filter`s, and `system prune` / `image prune` with docker's prompt and -a.
 */
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tabwrite } from '../../src/image/format.js';
import { HEADER_FUNCS, formatTemplate, parseTemplate, renderTemplate } from '../../src/image/template.js';
import { goQuote, pathMatch } from '../../src/cli/listformat.js';
import { isHoistError } from '../../src/util/errors.js';
import { fixture } from '../helpers/paths.js';
import { sandboxUsable } from '../sandbox/fixture.js';
import { busyboxArchive, cleanup, everyTypeLayer, hoist, makeDockerArchive, secondLayer, tempDir } from './helpers.js';

// CreatedAt is Go's time.String() in the local zone: pin the zone of the hoist processes
process.env.TZ = 'UTC';

/** app:1 (2 layers), other:1 (1 layer), both created 2024-01-02T03:04:05Z, and busybox:latest (created 1970). */
async function threeImages(root: string) {
  const a = await makeDockerArchive({ layers: [{ tar: await everyTypeLayer() }, { tar: await secondLayer(), gzip: true }], tags: ['app:1'] });
  const b = await makeDockerArchive({ layers: [{ tar: await secondLayer() }], tags: ['other:1'] });
  for (const x of [a, b]) {
    const r = await hoist(root, ['load'], x.archive);
    if (r.code !== 0) throw new Error(r.stderr);
  }
  const bb = await hoist(root, ['load', '-i', await busyboxArchive()]);
  if (bb.code !== 0) throw new Error(bb.stderr);
  const busyboxId = (await hoist(root, ['inspect', '--format', '{{.Id}}', 'busybox'])).stdout.trim();
  return { a, b, busyboxId };
}

const lines = (s: string) => s.split('\n').filter(Boolean);

test('tabwrite is Go tabwriter with docker settings (minwidth 10, padding 3), column blocks and the unpadded last cell', (t) => {
  t.is(tabwrite('a\tb\nccc\td\n'), 'a         b\nccc       d\n');
  t.is(tabwrite('REPOSITORY\tTAG\nx\ty\n'), 'REPOSITORY   TAG\nx            y\n');
  // a line without tabs ends the column block: the lines after it are aligned on their own
  t.is(tabwrite('aaaaaaaaaaaa\tb\nno tabs here\nc\td\n'), 'aaaaaaaaaaaa   b\nno tabs here\nc         d\n');
  // an empty last cell leaves the padded cell before it (docker's history rows without a comment)
  t.is(tabwrite('x\t\nyy\tz\n'), 'x         \nyy        z\n');
  // widths count characters, not UTF-16 units or bytes
  t.is(tabwrite('é…\tb\n'), 'é…        b\n');
});

test('template additions: printf widths, pad, truncate, comparisons, strict fields, header functions', (t) => {
  t.is(formatTemplate('{{printf "%-6s|%3d|%.2f|%05d" "ab" 7 3.14159 42}}', {}), 'ab    |  7|3.14|00042');
  t.is(formatTemplate('[{{pad .A 1 2}}][{{pad .E 1 2}}][{{truncate .A 2}}][{{truncate .A 9}}]', { A: 'abc', E: '' }), '[ abc  ][][ab][abc]');
  t.is(formatTemplate('{{if eq .S "running"}}up{{else}}down{{end}} {{if ne .S "x"}}ne{{end}} {{if lt .N 3}}lt{{end}} {{if eq .S "a" "running"}}any{{end}}', { S: 'running', N: 2 }), 'up ne lt any');
  t.is(formatTemplate('{{and .A .B}}|{{or .E .B}}|{{not .E}}', { A: 'a', B: 'b', E: '' }), 'b|b|true');
  const err = t.throws(() => renderTemplate(parseTemplate('{{.Nope}}'), { A: '1' }, { strict: { typeName: 'image' } }));
  t.true(isHoistError(err));
  t.regex(err!.message, /can't evaluate field Nope in type image/);
  // without strict, a missing key is Go's <no value> (inspect's maps)
  t.is(formatTemplate('{{.Nope}}', { A: '1' }), '<no value>');
  t.is(renderTemplate(parseTemplate('{{json .A}}|{{.A | upper}}|{{truncate .A 1}}|{{lower .A}}'), { A: 'TITLE' }, { funcs: HEADER_FUNCS }), 'TITLE|TITLE|TITLE|TITLE');
});

test('goQuote is strconv.Quote; pathMatch is path.Match', (t) => {
  t.is(goQuote('sh -c "x"\\\t\x01é…'), '"sh -c \\"x\\"\\\\\\t\\x01é…"');
  t.true(pathMatch('busy*', 'busybox'));
  t.false(pathMatch('*', 'team/app'));
  t.true(pathMatch('*/*', 'team/app'));
  t.true(pathMatch('b?sybox', 'busybox'));
  t.true(pathMatch('[a-c]*', 'busybox'));
  t.false(pathMatch('[^b]*', 'busybox'));
  t.true(pathMatch('app:1', 'app:1'));
  t.false(pathMatch('app', 'app:1'));
});

test('images --format: table with docker titles, templates, json, and errors', async (t) => {
  const root = await tempDir();
  const { a, b, busyboxId } = await threeImages(root);
  const short = (id: string) => id.slice(7, 19);

  const tbl = await hoist(root, ['images', '--format', 'table {{.Repository}}\t{{.Tag}}']);
  t.is(tbl.code, 0, tbl.stderr);
  t.is(tbl.stdout, 'REPOSITORY   TAG\napp          1\nother        1\nbusybox      latest\n');
  // a literal backslash-t is a tab, as docker reads it
  t.is((await hoist(root, ['images', '--format', 'table {{.Repository}}\\t{{.Tag}}'])).stdout, tbl.stdout);
  // every title docker gives these fields; header functions leave titles as they are, printf does not
  const titles = await hoist(root, ['images', '--format', 'table {{.ID}}\t{{.Digest}}\t{{.CreatedSince}}\t{{.CreatedAt}}\t{{.Size}}\t{{json .Repository}}\t{{.Tag | upper}}']);
  t.is(lines(titles.stdout)[0], 'IMAGE ID       DIGEST                                                                    CREATED        CREATED AT                      SIZE      REPOSITORY   TAG');
  t.regex(lines(titles.stdout)[1]!, new RegExp(`^${short(a.configDigest)}   sha256:[0-9a-f]{64}   \\d+ \\w+ ago +2024-01-02 03:04:05 \\+0000 UTC   \\S+ +"app" +1$`));

  const plain = await hoist(root, ['images', '--format', '{{.Repository}}:{{.Tag}} {{.ID}}']);
  t.is(plain.stdout, `app:1 ${short(a.configDigest)}\nother:1 ${short(b.configDigest)}\nbusybox:latest ${short(busyboxId)}\n`);
  const noTrunc = await hoist(root, ['images', '--no-trunc', '--format', '{{.ID}}', 'other']);
  t.is(noTrunc.stdout, `${b.configDigest}\n`);

  for (const f of ['json', '{{json .}}']) {
    const j = await hoist(root, ['images', '--format', f]);
    t.is(j.code, 0, j.stderr);
    const rows = lines(j.stdout).map((l) => JSON.parse(l) as Record<string, string>);
    t.is(rows.length, 3);
    // Go marshals the row's fields in key order
    t.deepEqual(Object.keys(rows[0]!), ['Containers', 'CreatedAt', 'CreatedSince', 'Digest', 'ID', 'Repository', 'Size', 'Tag', 'VirtualSize']);
    t.like(rows[0], { Repository: 'app', Tag: '1', ID: short(a.configDigest), CreatedAt: '2024-01-02 03:04:05 +0000 UTC', Containers: '0' });
    t.regex(rows[0]!.Size!, /^\d+(\.\d+)?k?B$/);
    t.is(rows[2]!.CreatedAt, '1970-01-01 00:00:00 +0000 UTC');
  }
  // "table" alone is the default table; the default keeps docker's columns
  const def = await hoist(root, ['images']);
  t.is((await hoist(root, ['images', '--format', 'table'])).stdout, def.stdout);
  t.regex(lines(def.stdout)[0]!, /^REPOSITORY   TAG       IMAGE ID       CREATED +SIZE$/);
  t.regex((await hoist(root, ['images', '--digests'])).stdout, /^REPOSITORY   TAG       DIGEST +IMAGE ID +CREATED +SIZE\n/);
  // --digests adds docker's DIGEST column to a custom table without it
  t.regex((await hoist(root, ['images', '--digests', '--format', 'table {{.Repository}}', 'app'])).stdout, /^REPOSITORY   DIGEST\napp          sha256:[0-9a-f]{64}\n$/);
  // a custom format replaces -q's IDs, as in docker
  t.is((await hoist(root, ['images', '-q', '--format', '{{.Tag}}', 'app'])).stdout, '1\n');

  const bad = await hoist(root, ['images', '--format', '{{.Foo}}']);
  t.is(bad.code, 1);
  t.regex(bad.stderr, /can't evaluate field Foo in type image/);
  t.regex(bad.stderr, /hint: fields: \.ID \.Repository \.Tag/);
  const unclosed = await hoist(root, ['images', '--format', '{{.ID']);
  t.is(unclosed.code, 1);
  t.regex(unclosed.stderr, /template parsing error/);
  await cleanup(root);
});

test('images --filter: dangling, reference (path.Match on the familiar name or name:tag), label, before, since', async (t) => {
  const root = await tempDir();
  const { a, b, busyboxId } = await threeImages(root);
  const short = (id: string) => id.slice(7, 19);
  const q = async (...f: string[]) => {
    const r = await hoist(root, ['images', '--format', '{{.Repository}}:{{.Tag}}', ...f.flatMap((x) => ['--filter', x])]);
    t.is(r.code, 0, r.stderr);
    return lines(r.stdout);
  };
  t.is((await hoist(root, ['images', '-q', '-f', 'dangling=true'])).stdout, '');
  // app:1 now names other's image: a is dangling
  t.is((await hoist(root, ['tag', 'other:1', 'app:1'])).code, 0);
  t.is((await hoist(root, ['images', '-q', '-f', 'dangling=true'])).stdout, `${short(a.configDigest)}\n`);
  t.deepEqual(await q('dangling=true'), ['<none>:<none>']);
  t.deepEqual(await q('dangling=false'), ['app:1', 'other:1', 'busybox:latest']);
  t.is((await hoist(root, ['tag', 'busybox', 'localhost:5000/team/box:3'])).code, 0);
  t.deepEqual(await q('reference=busy*'), ['busybox:latest']);
  t.deepEqual(await q('reference=*:1'), ['app:1', 'other:1']);
  // * does not cross a slash: the registry name needs its own segments
  t.deepEqual(await q('reference=*box*'), ['busybox:latest']);
  t.deepEqual(await q('reference=localhost:5000/*/*'), ['localhost:5000/team/box:3']);
  t.deepEqual(await q('reference=app', 'reference=other'), ['app:1', 'other:1']);
  t.deepEqual(await q('label=team=build'), ['<none>:<none>', 'app:1', 'other:1']);
  t.deepEqual(await q('label=team', 'dangling=false'), ['app:1', 'other:1']);
  t.deepEqual(await q('label=team=other'), []);
  t.deepEqual(await q('before=other:1'), ['busybox:latest', 'localhost:5000/team/box:3']);
  t.deepEqual(await q('since=busybox', 'dangling=false'), ['app:1', 'other:1']);
  t.is(busyboxId.length, 71);
  void b;

  const badValue = await hoist(root, ['images', '-f', 'dangling=maybe']);
  t.is(badValue.code, 1);
  t.regex(badValue.stderr, /invalid filter 'dangling=maybe'/);
  const badKey = await hoist(root, ['images', '--filter', 'color=red']);
  t.is(badKey.code, 1);
  t.regex(badKey.stderr, /invalid filter 'color'/);
  const badForm = await hoist(root, ['images', '--filter', 'dangling']);
  t.is(badForm.code, 125);
  t.regex(badForm.stderr, /bad format of filter \(expected name=value\)/);
  await cleanup(root);
});

test('history --format: docker fields, json, -H=false, custom format over -q', async (t) => {
  const root = await tempDir();
  const { a } = await threeImages(root);
  const j = await hoist(root, ['history', '--format', 'json', 'app:1']);
  t.is(j.code, 0, j.stderr);
  const rows = lines(j.stdout).map((l) => JSON.parse(l) as Record<string, string>);
  t.is(rows.length, 3);
  t.deepEqual(Object.keys(rows[0]!), ['Comment', 'CreatedAt', 'CreatedBy', 'CreatedSince', 'ID', 'Size']);
  t.like(rows[0], { ID: a.configDigest.slice(7, 19), CreatedAt: '2024-01-02T03:04:05Z', CreatedBy: 'COPY hello.txt /app/', Comment: '' });
  t.like(rows[1], { ID: '<missing>', Size: '0B' });
  t.like(rows[2], { Comment: 'base' });

  const tbl = await hoist(root, ['history', '--format', 'table {{.ID}}\t{{.CreatedBy}}\t{{.Comment}}', 'app:1']);
  t.deepEqual(lines(tbl.stdout), [
    'IMAGE          CREATED BY                           COMMENT',
    `${a.configDigest.slice(7, 19)}   COPY hello.txt /app/                 `,
    '<missing>      /bin/sh -c #(nop)  ENV HELLO=world   ',
    '<missing>      /bin/sh -c #(nop) ADD every-type /   base',
  ]);
  // -H=false: dates as RFC 3339, sizes in bytes, and docker's CREATED AT column by default
  const raw = await hoist(root, ['history', '-H=false', 'app:1']);
  t.regex(lines(raw.stdout)[0]!, /^IMAGE +CREATED AT +CREATED BY +SIZE +COMMENT$/);
  t.regex(lines(raw.stdout)[2]!, /^<missing> +2024-01-02T03:04:05Z +\/bin\/sh -c #\(nop\)  ENV HELLO=world +0 +$/);
  t.is((await hoist(root, ['history', '-H=false', '--format', '{{.CreatedSince}}|{{.Size}}', 'app:1'])).stdout.split('\n')[1], '2024-01-02T03:04:05Z|0');
  t.is((await hoist(root, ['history', '-q', '--format', '{{.CreatedBy}}', 'other:1'])).stdout, '/bin/sh -c #(nop)  ENV HELLO=world\n/bin/sh -c #(nop) ADD every-type /\n');
  t.is((await hoist(root, ['history', '-q', 'app:1'])).stdout, `${a.configDigest.slice(7, 19)}\n<missing>\n<missing>\n`);
  await cleanup(root);
});

/** Writes a container record that uses `image` (as a stopped container's config.json would). */
async function fakeContainer(root: string, image: string): Promise<string> {
  const id = 'c0ffee1234567890';
  await mkdir(join(root, 'containers', id), { recursive: true });
  await writeFile(join(root, 'containers', id, 'config.json'), JSON.stringify({ id, image }));
  return id;
}

test('system prune and image prune: docker\'s prompt unless -f, -a for unused tagged images, docker\'s report', async (t) => {
  const root = await tempDir();
  const { a, b, busyboxId } = await threeImages(root);
  t.is((await hoist(root, ['tag', 'other:1', 'app:1'])).code, 0);
  const dangling = async () => (await hoist(root, ['images', '-q', '--no-trunc', '-f', 'dangling=true'])).stdout;
  t.is(await dangling(), `${a.configDigest}\n`);

  // no -f: the question, and anything but y (here n, then end of input) cancels with status 0
  for (const stdin of ['n\n', '']) {
    const no = await hoist(root, ['system', 'prune'], stdin);
    t.is(no.code, 0, no.stderr);
    t.is(
      no.stdout,
      'WARNING! This will remove:\n  - all dangling images\n  - unused build cache\n  - all blobs and snapshots no image or build cache uses\n\nAre you sure you want to continue? [y/N] ',
    );
    t.is(await dangling(), `${a.configDigest}\n`);
  }
  const noAll = await hoist(root, ['system', 'prune', '-a'], 'N\n');
  t.regex(noAll.stdout, /^WARNING! This will remove:\n  - all images without at least one container associated to them\n  - all build cache\n/);
  const noImage = await hoist(root, ['image', 'prune'], 'nope\n');
  t.is(noImage.stdout, 'WARNING! This will remove all dangling images.\nAre you sure you want to continue? [y/N] ');
  t.is(await dangling(), `${a.configDigest}\n`);

  // y: the dangling image goes, reported as docker does
  const yes = await hoist(root, ['image', 'prune'], 'y\n');
  t.is(yes.code, 0, yes.stderr);
  t.regex(yes.stdout, new RegExp(`\\[y/N\\] Deleted Images:\ndeleted: ${a.configDigest}\n\nTotal reclaimed space: [1-9][\\d.]*k?B\n$`));
  t.is(await dangling(), '');
  t.is((await hoist(root, ['images', '--format', '{{.Repository}}:{{.Tag}}'])).stdout, 'app:1\nother:1\nbusybox:latest\n');

  // -a: tagged images no container uses go too; a container's image stays
  await fakeContainer(root, busyboxId);
  const all = await hoist(root, ['image', 'prune', '-a', '-f']);
  t.is(all.code, 0, all.stderr);
  const report = lines(all.stdout);
  t.is(report[0], 'Deleted Images:');
  t.deepEqual(report.slice(1, 3).sort(), ['untagged: app:1', 'untagged: other:1']);
  t.is(report[3], `deleted: ${b.configDigest}`);
  t.regex(report[4]!, /^Total reclaimed space: [1-9]/);
  t.is((await hoist(root, ['images', '--format', '{{.Repository}}:{{.Tag}} {{.Containers}}'])).stdout, 'busybox:latest 1\n');
  t.is((await hoist(root, ['system', 'check'])).code, 0);
  // nothing left to prune: docker prints only the total
  t.is((await hoist(root, ['image', 'prune', '-af'])).stdout, 'Total reclaimed space: 0B\n');

  // system prune -a -f once no container uses it
  const { rm } = await import('node:fs/promises');
  await rm(join(root, 'containers'), { recursive: true });
  const sys = await hoist(root, ['system', 'prune', '-a', '-f']);
  t.is(sys.code, 0, sys.stderr);
  t.regex(sys.stdout, new RegExp(`^Deleted Images:\nuntagged: busybox:latest\ndeleted: ${busyboxId}\n\n`));
  t.regex(sys.stdout, /Total reclaimed space: [1-9][\d.]*[kM]?B\n$/);
  t.is((await hoist(root, ['images', '-q'])).stdout, '');
  t.is((await hoist(root, ['system', 'check'])).code, 0);
  await cleanup(root);
});

const noSandbox = sandboxUsable();
(noSandbox ? test.skip : test)('ps --format and --filter against real containers', async (t) => {
  const root = await tempDir();
  const tar = join(root, 'busybox.tar');
  execFileSync('bash', [fixture('busybox', 'make-image.sh'), tar]);
  t.is((await hoist(root, ['load', '-i', tar])).code, 0);
  t.is((await hoist(root, ['run', '--name', 'fmt-three', 'busybox', 'sh', '-c', 'exit 3'])).code, 3);
  t.is((await hoist(root, ['run', '--name', 'fmt-zero', 'busybox', 'true'])).code, 0);

  const def = await hoist(root, ['ps', '-a']);
  t.is(def.code, 0, def.stderr);
  t.regex(lines(def.stdout)[0]!, /^CONTAINER ID   IMAGE     COMMAND +CREATED +STATUS +PORTS     NAMES$/);
  t.regex(def.stdout, /\n[0-9a-f]{12}   busybox   "sh -c exit 3" +\S.* ago +Exited \(3\) .* ago +fmt-three\n/);

  const tbl = await hoist(root, ['ps', '-a', '--format', 'table {{.Names}}\t{{.State}}\t{{.Image}}']);
  t.is(tbl.stdout, 'NAMES       STATE     IMAGE\nfmt-zero    exited    busybox\nfmt-three   exited    busybox\n');
  const j = lines((await hoist(root, ['ps', '-a', '--format', 'json'])).stdout).map((l) => JSON.parse(l) as Record<string, string>);
  t.deepEqual(Object.keys(j[0]!), ['Command', 'CreatedAt', 'ID', 'Image', 'LocalVolumes', 'Mounts', 'Names', 'Networks', 'Ports', 'RunningFor', 'State', 'Status']);
  t.like(j[1], { Names: 'fmt-three', Command: '"sh -c exit 3"', State: 'exited', Ports: '' });
  t.regex(j[1]!.Status!, /^Exited \(3\) /);
  t.regex(j[1]!.CreatedAt!, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+0000 UTC$/);

  // without -a nothing runs; a status filter lists stopped containers without -a, as docker's does
  t.is((await hoist(root, ['ps', '--format', '{{.Names}}'])).stdout, '');
  t.is((await hoist(root, ['ps', '--filter', 'status=exited', '--format', '{{.Names}}'])).stdout, 'fmt-zero\nfmt-three\n');
  t.is((await hoist(root, ['ps', '-f', 'status=running', '--format', '{{.Names}}'])).stdout, '');
  t.is((await hoist(root, ['ps', '-a', '-f', 'exited=3', '--format', '{{.Names}}'])).stdout, 'fmt-three\n');
  t.is((await hoist(root, ['ps', '-a', '-f', 'name=th', '--format', '{{.Names}} {{.Command}}'])).stdout, 'fmt-three "sh -c exit 3"\n');
  t.is((await hoist(root, ['ps', '-a', '-f', 'name=^fmt-z', '-f', 'status=exited', '--format', '{{.Names}}'])).stdout, 'fmt-zero\n');
  const id = j[0]!.ID!;
  t.is((await hoist(root, ['ps', '-a', '-f', `id=${id.slice(0, 5)}`, '--format', '{{.Names}}'])).stdout, 'fmt-zero\n');
  // -l / -n N: the latest created containers, in every state
  t.is((await hoist(root, ['ps', '-l', '--format', '{{.Names}}'])).stdout, 'fmt-zero\n');
  t.is((await hoist(root, ['ps', '-n', '2', '--format', '{{.Names}}'])).stdout, 'fmt-zero\nfmt-three\n');
  // -q wins over a custom format
  t.is((await hoist(root, ['ps', '-aq', '--format', '{{.Names}}'])).stdout, `${id}\n${j[1]!.ID}\n`);
  const bad = await hoist(root, ['ps', '-f', 'status=sleeping']);
  t.is(bad.code, 1);
  t.regex(bad.stderr, /invalid filter 'status=sleeping'/);
  const badField = await hoist(root, ['ps', '-a', '--format', '{{.Nope}}']);
  t.is(badField.code, 1);
  t.regex(badField.stderr, /can't evaluate field Nope in type container/);
  await hoist(root, ['rm', 'fmt-three', 'fmt-zero']);
  await cleanup(root);
});
