import { spawn } from 'node:child_process';
import { mkdir, readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { HoistError } from '../util/errors.js';
import { writeFileAtomic } from '../util/atomic.js';

/** A username/secret pair, or an OAuth2 identity (refresh) token, for one registry. */
export interface Credentials {
  username?: string;
  password?: string;
  /** Docker's `identitytoken`: used as a refresh token against the token realm. */
  identityToken?: string;
  /** Where they came from, for error messages: never contains the secret. */
  source: string;
}

/** Docker's config.json, the parts hoist reads and writes (other keys are preserved). */
interface DockerConfigFile {
  auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string; [k: string]: unknown }>;
  credsStore?: string;
  credHelpers?: Record<string, string>;
  [k: string]: unknown;
}

/** Docker Hub's historical key in config.json. */
const HUB_KEY = 'https://index.docker.io/v1/';
const HUB_HOSTS = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com']);

/** The directory of Docker's client config: `$DOCKER_CONFIG`, else `~/.docker`. */
export function dockerConfigDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.DOCKER_CONFIG) return env.DOCKER_CONFIG;
  return join(env.HOME || homedir(), '.docker');
}

/** The config.json path credentials are read from and saved to. */
export function dockerConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(dockerConfigDir(env), 'config.json');
}

/** The key a registry host has in config.json (`https://index.docker.io/v1/` for Docker Hub). */
export function configKey(host: string): string {
  return HUB_HOSTS.has(host) ? HUB_KEY : host;
}

/** Reduces an `auths` key (`https://host:5000/v2/`, `http://host`, `host`) to its host. */
function keyHost(key: string): string {
  let k = key.replace(/^[a-z]+:\/\//i, '');
  const slash = k.indexOf('/');
  if (slash >= 0) k = k.slice(0, slash);
  return HUB_HOSTS.has(k) ? 'docker.io' : k;
}

async function readConfig(path: string): Promise<DockerConfigFile> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new HoistError('E_CONFIG', `cannot read ${path}: ${(e as Error).message}`);
  }
  if (text.trim() === '') return {};
  try {
    const v = JSON.parse(text) as unknown;
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('not a JSON object');
    return v as DockerConfigFile;
  } catch (e) {
    throw new HoistError('E_CONFIG', `${path} is not valid JSON: ${(e as Error).message}`, { hint: 'fix or remove the file, then log in again' });
  }
}

async function writeConfig(path: string, cfg: DockerConfigFile): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  try {
    await writeFileAtomic(path, JSON.stringify(cfg, null, '\t') + '\n', { mode: 0o600 });
  } catch (e) {
    throw new HoistError('E_CONFIG', `cannot write ${path}: ${(e as Error).message}`);
  }
}

/** The credential helper configured for `host`, if any (credHelpers beats credsStore). */
function helperFor(cfg: DockerConfigFile, host: string): string | undefined {
  const helpers = cfg.credHelpers ?? {};
  for (const [k, v] of Object.entries(helpers)) if (keyHost(k) === keyHost(host) && typeof v === 'string' && v) return v;
  return typeof cfg.credsStore === 'string' && cfg.credsStore ? cfg.credsStore : undefined;
}

/** Result of running `docker-credential-<name> <action>`; `missing` when the helper is not installed. */
async function runHelper(name: string, action: 'get' | 'store' | 'erase', input: string): Promise<{ missing: boolean; code: number; stdout: string; stderr: string }> {
  if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new HoistError('E_CONFIG', `invalid credential helper name ${JSON.stringify(name)} in the docker config`);
  return new Promise((resolve) => {
    const p = spawn(`docker-credential-${name}`, [action], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('error', (e) => resolve({ missing: (e as NodeJS.ErrnoException).code === 'ENOENT', code: -1, stdout, stderr: e.message }));
    p.on('close', (code) => resolve({ missing: false, code: code ?? -1, stdout, stderr }));
    p.stdin.on('error', () => undefined);
    p.stdin.end(input);
  });
}

/** Finds credentials for a registry host: credential helper first (when installed), then `auths`. */
export async function lookupCredentials(host: string, env: NodeJS.ProcessEnv = process.env): Promise<Credentials | undefined> {
  const path = dockerConfigPath(env);
  const cfg = await readConfig(path);
  const key = configKey(host);
  const helper = helperFor(cfg, host);
  if (helper) {
    const r = await runHelper(helper, 'get', key);
    if (!r.missing) {
      const source = `credential helper docker-credential-${helper} (server ${key}, configured in ${path})`;
      if (r.code !== 0) {
        // "credentials not found" is the helper protocol's way to say: none stored.
        if (/not found/i.test(r.stdout + r.stderr)) return undefined;
        throw new HoistError('E_CREDENTIALS', `${source} failed: ${(r.stderr || r.stdout).trim()}`);
      }
      let v: { Username?: string; Secret?: string };
      try {
        v = JSON.parse(r.stdout) as { Username?: string; Secret?: string };
      } catch {
        throw new HoistError('E_CREDENTIALS', `${source} printed something that is not JSON`);
      }
      if (!v.Secret) return undefined;
      if (v.Username === '<token>') return { identityToken: v.Secret, source };
      return { username: v.Username ?? '', password: v.Secret, source };
    }
  }
  const auths = cfg.auths ?? {};
  const want = keyHost(key);
  const entry = Object.entries(auths).find(([k]) => k === key) ?? Object.entries(auths).find(([k]) => keyHost(k) === want);
  if (!entry) return undefined;
  const [k, a] = entry;
  const source = `${path} (auths["${k}"])`;
  if (!a || typeof a !== 'object') return undefined;
  if (typeof a.identitytoken === 'string' && a.identitytoken) return { identityToken: a.identitytoken, source };
  if (typeof a.auth === 'string' && a.auth) {
    const dec = Buffer.from(a.auth, 'base64').toString('utf8');
    const colon = dec.indexOf(':');
    if (colon < 0) throw new HoistError('E_CREDENTIALS', `${source}: the "auth" value is not base64 of USER:PASSWORD`, { hint: `log in again with hoist login ${host}` });
    return { username: dec.slice(0, colon), password: dec.slice(colon + 1), source };
  }
  if (typeof a.username === 'string' && typeof a.password === 'string') return { username: a.username, password: a.password, source };
  return undefined;
}

/** Saves credentials the way `docker login` does: through the credential helper if one is installed, else base64 in `auths`. Returns where. */
export async function saveCredentials(host: string, username: string, password: string, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const path = dockerConfigPath(env);
  const cfg = await readConfig(path);
  const key = configKey(host);
  const helper = helperFor(cfg, host);
  if (helper) {
    const r = await runHelper(helper, 'store', JSON.stringify({ ServerURL: key, Username: username, Secret: password }));
    if (!r.missing) {
      if (r.code !== 0) throw new HoistError('E_CREDENTIALS', `credential helper docker-credential-${helper} could not store the credentials: ${(r.stderr || r.stdout).trim()}`);
      // Docker leaves an empty entry in auths so `docker info`-style listings know the registry.
      cfg.auths = { ...(cfg.auths ?? {}), [key]: {} };
      await writeConfig(path, cfg);
      return `docker-credential-${helper}`;
    }
  }
  const auths = { ...(cfg.auths ?? {}) };
  for (const k of Object.keys(auths)) if (k !== key && keyHost(k) === keyHost(key)) delete auths[k];
  auths[key] = { auth: Buffer.from(`${username}:${password}`).toString('base64') };
  cfg.auths = auths;
  await writeConfig(path, cfg);
  return path;
}

/** Removes stored credentials for `host`; returns false when there were none. */
export async function eraseCredentials(host: string, env: NodeJS.ProcessEnv = process.env): Promise<boolean> {
  const path = dockerConfigPath(env);
  const cfg = await readConfig(path);
  const key = configKey(host);
  let found = false;
  const helper = helperFor(cfg, host);
  if (helper) {
    const r = await runHelper(helper, 'erase', key);
    if (!r.missing && r.code === 0) found = true;
  }
  const auths = { ...(cfg.auths ?? {}) };
  for (const k of Object.keys(auths)) {
    if (keyHost(k) === keyHost(key)) {
      delete auths[k];
      found = true;
    }
  }
  if (found) {
    cfg.auths = auths;
    await writeConfig(path, cfg);
  }
  return found;
}
