import { setTimeout as sleep } from 'node:timers/promises';
import { HoistError } from '../util/errors.js';
import { lookupCredentials, type Credentials } from './credentials.js';
import { isRetryableNetError, networkError, readBytesLimited, responseError } from './errors.js';

/** How a client reaches registries: where credentials live, which hosts may use plain HTTP, retry policy. */
export interface ClientOptions {
  /** Environment for DOCKER_CONFIG, HOME and HOIST_INSECURE_REGISTRIES (default: process.env). */
  env?: NodeJS.ProcessEnv;
  /** Hosts (`host` or `host:port`) allowed to use plain HTTP, beside loopback. */
  insecureRegistries?: string[];
  /** Use these credentials instead of looking them up (login verification). */
  credentials?: Credentials | null;
  /** Attempts after the first on 5xx answers and dropped connections (default 3). */
  retries?: number;
  /** First backoff delay in ms, doubled each attempt (default 250). */
  retryBaseMs?: number;
}

/** An auth challenge from a `WWW-Authenticate` header. */
interface Challenge {
  scheme: 'basic' | 'bearer';
  params: Record<string, string>;
}

/** What a request needs: body factory (bodies are streams, so a retry needs a fresh one). */
export interface RequestInit2 {
  method?: string;
  headers?: Record<string, string>;
  body?: () => BodyInit;
  /** Repository scopes the request needs, e.g. `repository:app:pull,push`. */
  scopes?: string[];
  /** Retry on 5xx and dropped connections (default true). */
  retry?: boolean;
  /** Follow redirects (default true; blob GETs often redirect to storage). */
  redirect?: 'follow' | 'manual';
}

const MANIFEST_ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

/** The Accept header for manifest requests (both OCI and Docker schema 2, single and multi-platform). */
export const ACCEPT_MANIFESTS = MANIFEST_ACCEPT;

const LOOPBACK = new Set(['localhost', '127.0.0.1', '::1', '[::1]']);

/** Splits `host:port` / `[v6]:port` into the host name part. */
function hostname(host: string): string {
  if (host.startsWith('[')) return host.slice(0, host.indexOf(']') + 1);
  const c = host.lastIndexOf(':');
  return c > 0 ? host.slice(0, c) : host;
}

/** The insecure-registry list from options and `$HOIST_INSECURE_REGISTRIES` (comma or space separated). */
export function insecureList(opts: ClientOptions): string[] {
  const env = opts.env ?? process.env;
  const fromEnv = (env.HOIST_INSECURE_REGISTRIES ?? '').split(/[\s,]+/).filter(Boolean);
  return [...(opts.insecureRegistries ?? []), ...fromEnv].map((h) => h.replace(/^[a-z]+:\/\//i, '').replace(/\/.*$/, ''));
}

/** True when `host` may be reached over plain HTTP: loopback, or named as insecure. */
export function isInsecureHost(host: string, list: string[]): boolean {
  const name = hostname(host);
  if (LOOPBACK.has(name) || /^127\.\d+\.\d+\.\d+$/.test(name)) return true;
  return list.some((h) => h === host || h === name);
}

/** The API endpoint host of a registry (Docker Hub's API is not at docker.io). */
export function apiHost(domain: string): string {
  return domain === 'docker.io' ? 'registry-1.docker.io' : domain;
}

/** Parses a `WWW-Authenticate` header value (one challenge; quoted or bare params). */
export function parseChallenge(h: string | null): Challenge | undefined {
  if (!h) return undefined;
  const m = /^\s*(\w+)\s*(.*)$/s.exec(h);
  if (!m) return undefined;
  const scheme = m[1]!.toLowerCase();
  if (scheme !== 'basic' && scheme !== 'bearer') return undefined;
  const params: Record<string, string> = {};
  const re = /(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?/g;
  let p: RegExpExecArray | null;
  while ((p = re.exec(m[2]!))) params[p[1]!.toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : p[3]!;
  return { scheme, params };
}

interface Token {
  value: string;
  expires: number;
}

/** A client for one registry host: endpoint discovery, auth, retries. One per command is enough; tokens are cached per scope set. */
export class RegistryClient {
  private base?: string;
  private challenge?: Challenge | null;
  private creds?: Credentials | null;
  private readonly tokens = new Map<string, Promise<Token>>();
  private readonly insecure: boolean;
  private readonly retries: number;
  private readonly retryBaseMs: number;
  private pinging?: Promise<void>;

  constructor(
    /** The registry as named in references (`localhost:5000`, `docker.io`). */
    readonly host: string,
    private readonly opts: ClientOptions = {},
  ) {
    this.insecure = isInsecureHost(host, insecureList(opts));
    this.retries = opts.retries ?? 3;
    this.retryBaseMs = opts.retryBaseMs ?? 250;
    if (opts.credentials !== undefined) this.creds = opts.credentials;
  }

  /** Where the credentials come from, for messages (never the secret). */
  async credentialsDescription(): Promise<string> {
    const c = await this.credentials();
    return c ? `credentials from ${c.source}` : `no credentials (none stored for ${this.host}; anonymous)`;
  }

  private async credentials(): Promise<Credentials | null> {
    if (this.creds === undefined) this.creds = (await lookupCredentials(this.host, this.opts.env ?? process.env)) ?? null;
    return this.creds;
  }

  /** `GET /v2/`: picks http or https and learns the auth challenge. */
  ping(): Promise<void> {
    this.pinging ??= this.doPing().catch((e: unknown) => {
      this.pinging = undefined;
      throw e;
    });
    return this.pinging;
  }

  private async doPing(): Promise<void> {
    const api = apiHost(this.host);
    const schemes = this.insecure ? ['https', 'http'] : ['https'];
    let lastErr: unknown;
    for (const [i, scheme] of schemes.entries()) {
      const base = `${scheme}://${api}`;
      let res: Response;
      try {
        // The https probe of an insecure host is not retried: its failure just means "use http".
        res = await this.fetchRetrying(`${base}/v2/`, { method: 'GET', retry: i === schemes.length - 1 });
      } catch (e) {
        lastErr = e;
        continue;
      }
      await res.body?.cancel().catch(() => undefined);
      if (res.status === 200 || res.status === 401 || res.status === 403) {
        this.base = base;
        this.challenge = res.status === 401 ? (parseChallenge(res.headers.get('www-authenticate')) ?? null) : null;
        if (res.status === 401 && !this.challenge) {
          throw new HoistError('E_REGISTRY', `registry ${this.host} asks for authentication with an unsupported scheme: ${res.headers.get('www-authenticate') ?? '(no WWW-Authenticate header)'}`);
        }
        return;
      }
      if (res.status === 404) {
        throw new HoistError('E_REGISTRY', `${base}/v2/ answered 404: ${this.host} does not speak the registry API v2`, { hint: 'check the registry host and port' });
      }
      lastErr = await responseError(res, `checking registry ${this.host} (${base}/v2/)`);
    }
    if (lastErr instanceof HoistError) throw lastErr;
    throw networkError(lastErr, this.host, `${schemes.at(-1)}://${api}/v2/`, !this.insecure);
  }

  /** The base URL (`https://host`), after the ping. */
  async baseURL(): Promise<string> {
    await this.ping();
    return this.base!;
  }

  /** Raw fetch with retries on 5xx and broken connections (exponential backoff). */
  private async fetchRetrying(url: string, init: RequestInit2 & { authorization?: string }): Promise<Response> {
    const attempts = init.retry === false ? 1 : this.retries + 1;
    let lastErr: unknown;
    for (let a = 0; a < attempts; a++) {
      if (a > 0) await sleep(this.retryBaseMs * 2 ** (a - 1));
      const headers: Record<string, string> = { 'user-agent': 'hoist/0.1', 'accept-encoding': 'identity', ...(init.headers ?? {}) };
      if (init.authorization) headers.authorization = init.authorization;
      try {
        const res = await fetch(url, {
          method: init.method ?? 'GET',
          headers,
          body: init.body?.(),
          redirect: init.redirect ?? 'follow',
          ...(init.body ? { duplex: 'half' } : {}),
        } as RequestInit);
        if (res.status >= 500 && res.status !== 501 && a < attempts - 1) {
          await res.body?.cancel().catch(() => undefined);
          lastErr = undefined;
          continue;
        }
        return res;
      } catch (e) {
        lastErr = e;
        if (!isRetryableNetError(e)) break;
      }
    }
    throw networkError(lastErr, this.host, url, !this.insecure);
  }

  /** Sends a request to the registry API with auth for `scopes`; re-authenticates once on a 401 that carries a new challenge. */
  async request(pathOrURL: string, init: RequestInit2 = {}): Promise<Response> {
    const base = await this.baseURL();
    const url = /^https?:\/\//.test(pathOrURL) ? pathOrURL : `${base}${pathOrURL}`;
    const scopes = init.scopes ?? [];
    // Credentials go only to the registry itself, never to another origin an upload Location names.
    const sameOrigin = new URL(url).origin === new URL(base).origin;
    if (!sameOrigin) return this.fetchRetrying(url, init);
    let authorization = await this.authorization(scopes, false);
    let res = await this.fetchRetrying(url, { ...init, authorization });
    if (res.status === 401) {
      const ch = parseChallenge(res.headers.get('www-authenticate'));
      if (ch) {
        await res.body?.cancel().catch(() => undefined);
        this.challenge = ch;
        const extra = ch.scheme === 'bearer' && ch.params.scope ? ch.params.scope.split(' ') : [];
        authorization = await this.authorization([...new Set([...scopes, ...extra])], true);
        if (authorization) res = await this.fetchRetrying(url, { ...init, authorization });
      }
    }
    return res;
  }

  /** Like request, but turns any non-2xx answer into a HoistError describing `what`. */
  async requestOK(pathOrURL: string, init: RequestInit2, what: string, reference?: string): Promise<Response> {
    const res = await this.request(pathOrURL, init);
    if (res.ok) return res;
    throw await responseError(res, what, { credentials: await this.credentialsDescription(), reference });
  }

  /** The Authorization header value for `scopes`, or undefined when the registry needs none. */
  private async authorization(scopes: string[], fresh: boolean): Promise<string | undefined> {
    const ch = this.challenge;
    if (!ch) return undefined;
    const creds = await this.credentials();
    if (ch.scheme === 'basic') {
      if (!creds || creds.username === undefined) return undefined;
      return `Basic ${Buffer.from(`${creds.username}:${creds.password ?? ''}`).toString('base64')}`;
    }
    const key = [...scopes].sort().join(' ');
    const now = Date.now();
    let t = this.tokens.get(key);
    if (t && !fresh) {
      const tok = await t.catch(() => undefined);
      if (tok && tok.expires > now) return `Bearer ${tok.value}`;
    }
    t = this.fetchToken(ch, scopes, creds);
    this.tokens.set(key, t);
    t.catch(() => this.tokens.delete(key));
    return `Bearer ${(await t).value}`;
  }

  /** Asks the token realm for a bearer token (GET with basic auth, or the OAuth2 refresh-token POST for identity tokens). */
  private async fetchToken(ch: Challenge, scopes: string[], creds: Credentials | null): Promise<Token> {
    const realm = ch.params.realm;
    if (!realm || !/^https?:\/\//i.test(realm)) throw new HoistError('E_REGISTRY', `registry ${this.host} sent a bearer challenge without a usable realm (${JSON.stringify(realm ?? '')})`);
    const u = new URL(realm);
    let res: Response;
    const what = `getting a token for ${scopes.join(' ') || 'registry access'} from ${u.origin}${u.pathname}`;
    if (creds?.identityToken) {
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: creds.identityToken, client_id: 'hoist', ...(ch.params.service ? { service: ch.params.service } : {}) });
      if (scopes.length) form.set('scope', scopes.join(' '));
      res = await this.fetchRetrying(u.toString(), { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: () => form.toString() });
    } else {
      if (ch.params.service) u.searchParams.set('service', ch.params.service);
      for (const s of scopes) u.searchParams.append('scope', s);
      const authorization = creds?.username !== undefined ? `Basic ${Buffer.from(`${creds.username}:${creds.password ?? ''}`).toString('base64')}` : undefined;
      res = await this.fetchRetrying(u.toString(), { method: 'GET', authorization });
    }
    if (!res.ok) throw await responseError(res, what, { credentials: await this.credentialsDescription() });
    let body: { token?: string; access_token?: string; expires_in?: number };
    try {
      body = JSON.parse((await readBytesLimited(res, 1024 * 1024)).toString('utf8')) as typeof body;
    } catch (e) {
      if (e instanceof HoistError) throw e;
      throw new HoistError('E_REGISTRY', `${what}: the token server did not answer JSON`);
    }
    const value = body.token ?? body.access_token;
    if (!value || typeof value !== 'string') throw new HoistError('E_REGISTRY', `${what}: the answer holds no token`);
    const life = typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : 60;
    // Renew a little early so a token does not expire between the check and the request.
    return { value, expires: Date.now() + Math.max(1, life - 10) * 1000 };
  }

  /**
   * Checks that the client's credentials are accepted (for `hoist login`): with basic auth
   * `/v2/` must answer 200; with bearer auth the token realm must issue a token.
   */
  async verifyCredentials(): Promise<void> {
    await this.ping();
    const ch = this.challenge;
    if (!ch) return;
    const creds = await this.credentials();
    if (ch.scheme === 'basic') {
      const res = await this.fetchRetrying(`${this.base}/v2/`, { authorization: await this.authorization([], true) });
      if (!res.ok) throw await responseError(res, `logging in to ${this.host}`, { credentials: await this.credentialsDescription() });
      await res.body?.cancel().catch(() => undefined);
      return;
    }
    await this.fetchToken(ch, [], creds);
  }
}

/** A `repository:NAME:ACTIONS` scope string. */
export function repoScope(path: string, actions: 'pull' | 'pull,push'): string {
  return `repository:${path}:${actions}`;
}
