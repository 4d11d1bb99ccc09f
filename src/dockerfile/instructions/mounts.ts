/**
 * `RUN --mount=type=...,key=value,...`: CSV fields parsed into typed mounts with
 * BuildKit's validation and defaults.
 *
 * BuildKit reads option values only after variable expansion. Here a mount is parsed
 * twice: once when the Dockerfile is read (no expansion; values holding `$` stay as
 * written and the mount is marked `unresolved`), and again by the frontend with an
 * expander, which yields the final mount. Everything that needs no expansion (keys,
 * types, flags without values, the combination rules) is checked the first time.
 */
import { CACHE_SHARING_MODES, MOUNT_OPTIONS, MOUNT_TYPES } from '../../../grammar/instructions.js';
import { clip, InstructionProblem, suggest } from './problem.js';

export type MountType = (typeof MOUNT_TYPES)[number];
export type CacheSharing = (typeof CACHE_SHARING_MODES)[number];

interface MountBase {
  /** The flag value as written (for re-parsing with an expander). */
  spec: string;
  /** True when some value holds a `$` reference: parse again with an expander to get the final mount. */
  unresolved?: boolean;
}

/** `type=bind`: a path from the build context or from a stage/image. Read-only unless `rw`. */
export interface BindMount extends MountBase {
  type: 'bind';
  target?: string;
  source?: string;
  from?: string;
  readonly: boolean;
}

/** `type=cache`: a persistent directory shared between builds. */
export interface CacheMount extends MountBase {
  type: 'cache';
  target?: string;
  /** Defaults to the cleaned target path. */
  id?: string;
  sharing: CacheSharing;
  from?: string;
  source?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  readonly: boolean;
}

/** `type=tmpfs`: an empty in-memory filesystem. */
export interface TmpfsMount extends MountBase {
  type: 'tmpfs';
  target?: string;
  /** Size limit in bytes (absent: no limit). */
  size?: number;
  readonly: boolean;
}

/** `type=secret`: a build secret as a file (default /run/secrets/<id>) or an environment variable. */
export interface SecretMount extends MountBase {
  type: 'secret';
  /** From `id=`, else `source=`, else the base name of the target. */
  id?: string;
  target?: string;
  env?: string;
  required: boolean;
  mode?: number;
  uid?: number;
  gid?: number;
  readonly: boolean;
}

/** `type=ssh`: the forwarded SSH agent socket. */
export interface SshMount extends MountBase {
  type: 'ssh';
  /** Defaults to `default`. */
  id: string;
  target?: string;
  required: boolean;
  mode?: number;
  uid?: number;
  gid?: number;
  readonly: boolean;
}

export type Mount = BindMount | CacheMount | TmpfsMount | SecretMount | SshMount;

/** Expands `$VAR` references in one option value (supplied by the frontend). */
export type WordExpander = (word: string) => string;

const ALL_KEYS = MOUNT_OPTIONS.flatMap((o) => [o.key, ...o.aliases]);

/** Parses one `--mount` value; throws InstructionProblem with BuildKit's wording. */
export function parseMount(spec: string, expand?: WordExpander): Mount {
  const fields = csvFields(spec);
  let type: MountType = 'bind';
  let from: string | undefined;
  let source: string | undefined;
  let target: string | undefined;
  let readonly = false;
  let roAuto = true;
  let required = false;
  let size: number | undefined;
  let id: string | undefined;
  let sharing: CacheSharing | undefined;
  let mode: number | undefined;
  let uid: number | undefined;
  let gid: number | undefined;
  let env: string | undefined;
  let unresolved = false;
  // with `type=$VAR` the type is unknown until expansion: type-dependent rules wait too
  let typeUnresolved = false;
  const fail = (msg: string, hint?: string): never => {
    throw new InstructionProblem('E_INVALID_MOUNT', msg, spec, hint);
  };

  for (const field of fields) {
    const eq = field.indexOf('=');
    const key = (eq < 0 ? field : field.slice(0, eq)).toLowerCase();
    if (eq < 0) {
      if (key === 'readonly' || key === 'ro') {
        readonly = true;
        roAuto = false;
      } else if (key === 'readwrite' || key === 'rw') {
        readonly = false;
        roAuto = false;
      } else if (key === 'required') {
        if (!typeUnresolved && type !== 'secret' && type !== 'ssh') fail(`unexpected key '${clip(key)}' for mount type '${type}'`, 'required applies to secret and ssh mounts');
        required = true;
      } else {
        fail(`invalid field '${clip(field)}' must be a key=value pair`, 'write --mount=type=<type>,target=<path>[,key=value...]');
      }
      continue;
    }
    let value = field.slice(eq + 1);
    if (key === 'from') {
      const d = value.indexOf('$');
      if (d >= 0 && d !== value.length - 1) fail(`'from' doesn't support variable expansion, define alias stage instead`,
        'add a stage "FROM ${VAR} AS alias" and mount from=alias');
    }
    if (expand) {
      value = expand(value);
    } else if (value.includes('$') && !isKnownStringKey(key)) {
      // typed values wait for expansion; the key itself is still checked below
      unresolved = true;
      if (key === 'type') typeUnresolved = true;
      if (!ALL_KEYS.includes(key)) unknownKey(key, field, fail);
      continue;
    } else if (value.includes('$')) {
      unresolved = true;
    }
    switch (key) {
      case 'type': {
        const v = value.toLowerCase();
        if (!(MOUNT_TYPES as readonly string[]).includes(v)) {
          const guess = suggest(value, MOUNT_TYPES, true);
          fail(`unsupported mount type ${goQuoted(clip(value))}${guess ? ` (did you mean ${guess}?)` : ''}`, `mount types: ${MOUNT_TYPES.join(', ')}`);
        }
        type = v as MountType;
        break;
      }
      case 'from':
        from = value;
        break;
      case 'source':
      case 'src':
        source = value;
        break;
      case 'target':
      case 'dst':
      case 'destination':
        target = value;
        break;
      case 'readonly':
      case 'ro':
        readonly = goBool(value) ?? fail(`invalid value for ${key}: ${clip(value)}`, 'use true or false');
        roAuto = false;
        break;
      case 'readwrite':
      case 'rw':
        readonly = !(goBool(value) ?? fail(`invalid value for ${key}: ${clip(value)}`, 'use true or false'));
        roAuto = false;
        break;
      case 'required':
        if (!typeUnresolved && type !== 'secret' && type !== 'ssh') fail(`unexpected key '${clip(key)}' for mount type '${type}'`, 'required applies to secret and ssh mounts');
        required = goBool(value) ?? fail(`invalid value for ${key}: ${clip(value)}`, 'use true or false');
        break;
      case 'size':
        if (!typeUnresolved && type !== 'tmpfs') fail(`unexpected key '${clip(key)}' for mount type '${type}'`, 'size applies to tmpfs mounts');
        size = ramInBytes(value) ?? fail(`invalid value for ${key}: ${clip(value)}`, 'write a size such as 64m, 1g or 1048576');
        break;
      case 'id':
        id = value;
        break;
      case 'sharing': {
        const v = value.toLowerCase();
        if (!(CACHE_SHARING_MODES as readonly string[]).includes(v)) {
          const guess = suggest(value, CACHE_SHARING_MODES, true);
          fail(`unsupported sharing value ${goQuoted(clip(value))}${guess ? ` (did you mean ${guess}?)` : ''}`, `sharing modes: ${CACHE_SHARING_MODES.join(', ')}`);
        }
        sharing = v as CacheSharing;
        break;
      }
      case 'mode':
        mode = parseUint(value, 8) ?? fail(`invalid value ${clip(value)} for mode`, 'write the mode in octal, e.g. mode=0755');
        break;
      case 'uid':
        uid = parseUint(value, 10) ?? fail(`invalid value ${clip(value)} for uid`, 'write a numeric user id');
        break;
      case 'gid':
        gid = parseUint(value, 10) ?? fail(`invalid value ${clip(value)} for gid`, 'write a numeric group id');
        break;
      case 'env':
        env = value;
        break;
      default:
        unknownKey(key, field, fail);
    }
  }

  if (typeUnresolved) return { spec, unresolved: true, type: 'bind', readonly: roAuto ? true : readonly };
  if (type !== 'secret' && type !== 'ssh' && type !== 'cache') {
    if (mode !== undefined) fail(`mode not allowed for "${type}" type mounts`);
    if (uid !== undefined) fail(`uid not allowed for "${type}" type mounts`);
    if (gid !== undefined) fail(`gid not allowed for "${type}" type mounts`);
  }
  if (roAuto) readonly = type !== 'cache' && type !== 'tmpfs';
  if (type === 'secret') {
    if (from !== undefined && from !== '') fail('secret mount should not have a from');
    if (sharing !== undefined) fail('secret mount should not define sharing');
    if (!source && !target && !id) fail('invalid secret mount. one of source, target required', 'write --mount=type=secret,id=<id>[,target=<path>|,env=<VAR>]');
    if (source && id) fail("both source and id can't be set");
  }
  if (sharing !== undefined && type !== 'cache') fail(`invalid cache sharing set for ${type} mount`);

  const base: MountBase = { spec };
  if (unresolved) base.unresolved = true;
  const opt = <T extends object>(o: T): T => {
    for (const k of Object.keys(o) as (keyof T)[]) if (o[k] === undefined || o[k] === '') delete o[k];
    return o;
  };
  switch (type) {
    case 'bind':
      return opt({ ...base, type, target, source, from, readonly });
    case 'cache': {
      const cacheId = id || (target && !target.includes('$') ? cleanPath(target) : undefined);
      return opt({ ...base, type, target, id: cacheId, sharing: sharing ?? 'shared', from, source, mode, uid, gid, readonly });
    }
    case 'tmpfs':
      return opt({ ...base, type, target, size: size && size > 0 ? size : undefined, readonly });
    case 'secret': {
      let secretId = source || id;
      if (!secretId && target && !target.includes('$')) secretId = baseName(target);
      let secretTarget = target;
      if (!secretTarget && env === undefined && secretId && !secretId.includes('$')) secretTarget = '/run/secrets/' + baseName(secretId);
      const m: SecretMount = opt({ ...base, type, id: secretId, target: secretTarget, required, mode, uid, gid, readonly });
      if (env !== undefined) m.env = env;
      return m;
    }
    case 'ssh':
      if (source) fail('ssh does not support source', 'use id= to pick an agent socket and target= for its path');
      return opt({ ...base, type, id: id || 'default', target, required, mode, uid, gid, readonly });
  }
}

function unknownKey(key: string, field: string, fail: (m: string, h?: string) => never): never {
  const guess = suggest(key, ALL_KEYS, true);
  return fail(`unexpected key '${clip(key)}' in '${clip(field)}'${guess ? ` (did you mean ${guess}?)` : ''}`,
    `mount options: ${MOUNT_OPTIONS.map((o) => o.key).join(', ')}`);
}

function isKnownStringKey(key: string): boolean {
  return ['from', 'source', 'src', 'target', 'dst', 'destination', 'id', 'env'].includes(key);
}

/** A single-line CSV record, as Go's csv reader splits it (quotes double as escapes). */
export function csvFields(line: string): string[] {
  if (line.endsWith('\n')) line = line.slice(0, line.endsWith('\r\n') ? -2 : -1);
  if (line === '') {
    throw new InstructionProblem('E_INVALID_MOUNT', 'failed to parse csv mounts: EOF', undefined,
      'write --mount=type=<type>,target=<path>[,key=value...]');
  }
  const out: string[] = [];
  let pos = 0;
  const bad = (col: number, what: string): never => {
    throw new InstructionProblem('E_INVALID_MOUNT', `failed to parse csv mounts: parse error on line 1, column ${col}: ${what}`, line,
      'quote a whole field, e.g. "target=/a,b", and double quotes inside it');
  };
  for (;;) {
    if (line[pos] !== '"') {
      const comma = line.indexOf(',', pos);
      const field = comma < 0 ? line.slice(pos) : line.slice(pos, comma);
      const q = field.indexOf('"');
      if (q >= 0) bad(pos + q + 1, 'bare " in non-quoted-field');
      out.push(field);
      if (comma < 0) return out;
      pos = comma + 1;
      continue;
    }
    pos++;
    let field = '';
    for (;;) {
      const q = line.indexOf('"', pos);
      if (q < 0) bad(pos + 1, 'extraneous or missing " in quoted-field');
      field += line.slice(pos, q);
      pos = q + 1;
      if (line[pos] === '"') {
        field += '"';
        pos++;
        continue;
      }
      if (line[pos] === ',') {
        out.push(field);
        pos++;
        break;
      }
      if (pos >= line.length) {
        out.push(field);
        return out;
      }
      bad(pos, 'extraneous or missing " in quoted-field');
    }
  }
}

/** Go's strconv.ParseBool. */
export function goBool(s: string): boolean | undefined {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(s)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(s)) return false;
  return undefined;
}

/** Go's strconv.ParseUint(s, base, 32). */
function parseUint(s: string, base: 8 | 10): number | undefined {
  const re = base === 8 ? /^[0-7]+$/ : /^[0-9]+$/;
  if (!re.test(s)) return undefined;
  const n = parseInt(s, base);
  return n <= 0xffffffff ? n : undefined;
}

/** docker/go-units RAMInBytes: `64m`, `1.5GiB`, `100 kb`, plain bytes; binary multiples. */
export function ramInBytes(s: string): number | undefined {
  const m = /^([0-9.eE+-]*[0-9.])( ?)([A-Za-z]{0,3})$/.exec(s);
  if (!m) return undefined;
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(m[1])) return undefined;
  const n = Number(m[1]);
  if (!Number.isFinite(n) || n < 0) return undefined;
  const sfx = m[3].toLowerCase();
  if (sfx === '' || sfx === 'b') return Math.trunc(n);
  const mul: Record<string, number> = { k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 };
  if (!(sfx[0] in mul)) return undefined;
  if (sfx.length === 2 && sfx[1] !== 'b') return undefined;
  if (sfx.length === 3 && sfx.slice(1) !== 'ib') return undefined;
  return Math.trunc(n * mul[sfx[0]]);
}

function goQuoted(s: string): string {
  return JSON.stringify(s);
}

/** path.Clean for slash paths. */
function cleanPath(p: string): string {
  const abs = p.startsWith('/');
  const parts: string[] = [];
  for (const seg of p.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') {
      if (parts.length > 0 && parts[parts.length - 1] !== '..') parts.pop();
      else if (!abs) parts.push('..');
      continue;
    }
    parts.push(seg);
  }
  const out = (abs ? '/' : '') + parts.join('/');
  return out === '' ? '.' : out;
}

/** path.Base for slash paths. */
function baseName(p: string): string {
  const trimmed = p.replace(/\/+$/, '');
  if (trimmed === '') return p === '' ? '.' : '/';
  return trimmed.slice(trimmed.lastIndexOf('/') + 1);
}
