import { HoistError } from '../util/errors.js';
import { isDigest, type Digest } from './digest.js';

/** A parsed, normalised image reference: `docker.io/library/busybox:latest`. */
export interface Reference {
  /** Registry host with optional port, e.g. `docker.io`, `localhost:5000`. */
  domain: string;
  /** Repository path inside the registry, e.g. `library/busybox`. */
  path: string;
  tag?: string;
  digest?: Digest;
}

export const DEFAULT_DOMAIN = 'docker.io';
export const DEFAULT_TAG = 'latest';
const LEGACY_DOMAIN = 'index.docker.io';
const OFFICIAL_PREFIX = 'library/';
const NAME_MAX = 255;

// The grammar of distribution/reference, written out piece by piece so errors can say which piece failed.
const DOMAIN_COMPONENT = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$/;
const IPV6 = /^\[[a-fA-F0-9:]+\]$/;
const PORT = /^[0-9]+$/;
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const ANY_DIGEST = /^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$/;
const HEX64 = /^[a-f0-9]{64}$/;

function invalid(input: string, why: string): HoistError {
  return new HoistError('E_REFERENCE', `invalid reference ${JSON.stringify(input)}: ${why}`, {
    hint: 'use NAME[:TAG] or NAME@sha256:DIGEST, e.g. busybox:1.36 or registry.example.com:5000/team/app:v1',
  });
}

function validDomain(d: string): boolean {
  let host = d;
  const colon = d.lastIndexOf(':');
  if (colon > 0 && !d.endsWith(']')) {
    if (!PORT.test(d.slice(colon + 1))) return false;
    host = d.slice(0, colon);
  }
  if (IPV6.test(host)) return true;
  return host.split('.').every((c) => DOMAIN_COMPONENT.test(c));
}

/** Parses a Docker image reference and normalises it (`busybox` → `docker.io/library/busybox:latest`). */
export function parseReference(input: string, opts: { defaultTag?: boolean } = {}): Reference {
  const defaultTag = opts.defaultTag ?? true;
  if (input === '') throw invalid(input, 'the name is empty');
  if (/\s/.test(input)) throw invalid(input, 'it contains whitespace');
  if (HEX64.test(input)) {
    throw invalid(input, 'a 64-character hexadecimal string is an image ID, not a name');
  }
  let rest = input;
  let digest: Digest | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    const d = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!ANY_DIGEST.test(d)) throw invalid(input, `${JSON.stringify(d)} is not a digest (expected sha256:<64 hex digits>)`);
    if (!isDigest(d)) {
      if (d.startsWith('sha256:')) throw invalid(input, 'a sha256 digest has exactly 64 lowercase hex digits');
      throw invalid(input, `unsupported digest algorithm ${JSON.stringify(d.split(':')[0])}; hoist uses sha256`);
    }
    digest = d;
  }
  let tag: string | undefined;
  // A tag is after the last ':' that comes after the last '/'; an earlier ':' is a registry port.
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) {
      throw invalid(input, `tag ${JSON.stringify(tag)} must be 1-128 characters of letters, digits, '_', '.' and '-', not starting with '.' or '-'`);
    }
  }
  if (rest === '') throw invalid(input, 'the repository name is empty');
  let domain: string;
  let path: string;
  const slash = rest.indexOf('/');
  const first = slash >= 0 ? rest.slice(0, slash) : '';
  // Same rule as Docker: the first component is a registry only if it looks like a host.
  if (slash >= 0 && (first.includes('.') || first.includes(':') || first === 'localhost' || first.toLowerCase() !== first)) {
    domain = first;
    path = rest.slice(slash + 1);
    if (!validDomain(domain)) throw invalid(input, `${JSON.stringify(domain)} is not a valid registry host[:port]`);
  } else {
    domain = DEFAULT_DOMAIN;
    path = rest;
  }
  if (domain === LEGACY_DOMAIN) domain = DEFAULT_DOMAIN;
  if (domain === DEFAULT_DOMAIN && !path.includes('/')) path = OFFICIAL_PREFIX + path;
  if (path === '') throw invalid(input, 'the repository name is empty');
  for (const comp of path.split('/')) {
    if (comp === '') throw invalid(input, 'the repository path has an empty component (double or trailing "/")');
    if (!PATH_COMPONENT.test(comp)) {
      if (comp.toLowerCase() !== comp && PATH_COMPONENT.test(comp.toLowerCase())) {
        throw invalid(input, 'repository names must be lowercase');
      }
      throw invalid(
        input,
        `path component ${JSON.stringify(comp)} may only contain lowercase letters, digits and single separators ('.', '_', '__', '-')`,
      );
    }
  }
  if (domain.length + 1 + path.length > NAME_MAX) throw invalid(input, `the repository name is longer than ${NAME_MAX} characters`);
  if (tag === undefined && digest === undefined && defaultTag) tag = DEFAULT_TAG;
  return { domain, path, tag, digest };
}

/** The repository part: `docker.io/library/busybox`. */
export function repositoryName(r: Reference): string {
  return `${r.domain}/${r.path}`;
}

/** Full normalised string: `docker.io/library/busybox:latest` or `…@sha256:…`. */
export function formatReference(r: Reference): string {
  let s = repositoryName(r);
  if (r.tag !== undefined) s += `:${r.tag}`;
  if (r.digest !== undefined) s += `@${r.digest}`;
  return s;
}

/** The repository as Docker displays it: `busybox`, `user/app`, `host:5000/ns/app`. */
export function familiarRepository(r: Reference): string {
  if (r.domain !== DEFAULT_DOMAIN) return repositoryName(r);
  return r.path.startsWith(OFFICIAL_PREFIX) && r.path.indexOf('/', OFFICIAL_PREFIX.length) < 0 ? r.path.slice(OFFICIAL_PREFIX.length) : r.path;
}

/** The whole reference as Docker displays it: `busybox:latest`. */
export function familiarString(r: Reference): string {
  let s = familiarRepository(r);
  if (r.tag !== undefined) s += `:${r.tag}`;
  if (r.digest !== undefined) s += `@${r.digest}`;
  return s;
}

/** Parses and returns the normalised string form, for names stored in index.json. */
export function normalizeName(input: string): string {
  return formatReference(parseReference(input));
}
