import test from 'ava';
import { formatTemplate } from '../../src/image/template.js';
import { ago, ellipsis, humanDuration, humanSize, table } from '../../src/image/format.js';
import { isHoistError } from '../../src/util/errors.js';

const data = {
  Id: 'sha256:abc',
  RepoTags: ['busybox:latest', 'x:1'],
  Config: { Env: ['A=1', 'B=2'], Cmd: ['sh'], Labels: { b: '2', a: '1' }, Entrypoint: null, User: '' },
  Size: 2140566,
};

const cases: [string, string][] = [
  ['{{.Id}}', 'sha256:abc'],
  ['{{.Config.Env}}', '[A=1 B=2]'],
  ['{{json .Config.Cmd}}', '["sh"]'],
  ['{{json .Config}}', JSON.stringify(data.Config)],
  ['{{.Config | json}}', JSON.stringify(data.Config)],
  ['{{.Config.Labels}}', 'map[a:1 b:2]'],
  ['{{index .Config.Labels "b"}}', '2'],
  ['{{index .RepoTags 1}}', 'x:1'],
  ['{{join .Config.Env ","}}', 'A=1,B=2'],
  ['{{len .RepoTags}}', '2'],
  ['{{range .Config.Env}}<{{.}}>{{end}}', '<A=1><B=2>'],
  ['{{range $i, $e := .RepoTags}}{{$i}}={{$e}};{{end}}', '0=busybox:latest;1=x:1;'],
  ['{{range $k, $v := .Config.Labels}}{{$k}}{{$v}}{{end}}', 'a1b2'],
  ['{{range .Config.Entrypoint}}x{{else}}none{{end}}', 'none'],
  ['{{if .Config.User}}user{{else}}root{{end}}', 'root'],
  ['{{if .Config.Env}}has env{{end}}', 'has env'],
  ['{{.Config.Entrypoint}}', '<nil>'],
  ['{{.Config.Missing}}', '<no value>'],
  ['{{.Size}} bytes', '2140566 bytes'],
  ['a {{- " b " -}} c', 'a b c'],
  ['{{printf "%s-%d" .Id .Size}}', 'sha256:abc-2140566'],
  ['{{upper "x"}}{{lower "Y"}}', 'Xy'],
  ['{{$.Id}}', 'sha256:abc'],
];
for (const [tpl, want] of cases) test(`template ${tpl}`, (t) => t.is(formatTemplate(tpl, data), want));

for (const bad of ['{{.Id', '{{range .RepoTags}}x', '{{nosuch .Id}}', '{{end}}', '{{"x}}']) {
  test(`bad template ${bad} is a user error`, (t) => {
    const e = t.throws(() => formatTemplate(bad, data));
    t.true(isHoistError(e));
  });
}

test('sizes and durations read like docker', (t) => {
  t.is(humanSize(0), '0B');
  t.is(humanSize(406), '406B');
  t.is(humanSize(2140566), '2.14MB');
  t.is(humanSize(1_000_000_000), '1GB');
  t.is(humanDuration(500), 'Less than a second');
  t.is(humanDuration(90_000), 'About a minute');
  t.is(humanDuration(3 * 86400_000), '3 days');
  t.is(ago('1970-01-01T00:00:00Z', Date.parse('2026-01-01T00:00:00Z')), '56 years ago');
  t.is(ago(undefined), 'N/A');
  t.is(ellipsis('abcdef', 4), 'abc…');
  t.is(table(['A', 'BB'], [['xxxx', 'y']]), 'A      BB\nxxxx   y\n');
});
