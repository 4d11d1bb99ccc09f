import { HoistError } from '../util/errors.js';
import type { ContainerConfig } from '../image/types.js';

/** What `run` lets a user override on top of the image's config. */
export interface RunOverrides {
  /** `--entrypoint`: replaces the image's ENTRYPOINT ("" clears it) and drops the image's CMD. */
  entrypoint?: string;
  /** Arguments after the image name: replace the image's CMD. */
  cmd?: string[];
  /** `-e`/`--env-file` entries in order; `KEY` alone copies it from `hostEnv` when set there. */
  env?: string[];
  workdir?: string;
  user?: string;
}

/** The process a container runs, after Docker's rules for combining image config and overrides. */
export interface ProcessConfig {
  args: string[];
  env: string[];
  cwd: string;
  user: string;
}

const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Applies KEY=VALUE entries over a list, replacing earlier values of the same key in place. */
export function mergeEnv(base: string[], extra: string[], hostEnv: NodeJS.ProcessEnv = {}): string[] {
  const out = [...base];
  for (const raw of extra) {
    let e = raw;
    if (!e.includes('=')) {
      const v = hostEnv[e];
      if (v === undefined) continue; // Docker drops `-e KEY` when KEY is not set on the host
      e = `${e}=${v}`;
    }
    const key = e.slice(0, e.indexOf('='));
    if (!key) throw new HoistError('E_BAD_ENV', `invalid environment variable ${JSON.stringify(raw)}: the name is empty`, { exitCode: 125 });
    const i = out.findIndex((x) => x.slice(0, x.indexOf('=') < 0 ? x.length : x.indexOf('=')) === key);
    if (i >= 0) out[i] = e;
    else out.push(e);
  }
  return out;
}

/** Parses an `--env-file`: one KEY=VALUE or KEY per line, `#` comments and blank lines skipped. */
export function parseEnvFile(text: string, name: string): string[] {
  const out: string[] = [];
  for (const [i, line] of text.split(/\r?\n/).entries()) {
    const l = line.replace(/^\s+/, '');
    if (!l || l.startsWith('#')) continue;
    const key = l.includes('=') ? l.slice(0, l.indexOf('=')) : l;
    if (!key || /\s/.test(key)) throw new HoistError('E_BAD_ENV', `${name}:${i + 1}: variable name ${JSON.stringify(key)} is empty or contains whitespace`, { exitCode: 125 });
    out.push(l);
  }
  return out;
}

/**
 * Docker's combination: `--entrypoint` replaces ENTRYPOINT and discards the image CMD;
 * command-line arguments replace CMD; the process is ENTRYPOINT + CMD.
 */
export function processConfig(cfg: ContainerConfig | undefined, o: RunOverrides, hostEnv: NodeJS.ProcessEnv = {}): ProcessConfig {
  const c = cfg ?? {};
  let entrypoint: string[] = c.Entrypoint ?? [];
  let cmd: string[] = c.Cmd ?? [];
  if (o.entrypoint !== undefined) {
    entrypoint = o.entrypoint === '' ? [] : [o.entrypoint];
    cmd = [];
  }
  if (o.cmd && o.cmd.length > 0) cmd = o.cmd;
  const args = [...entrypoint, ...cmd];
  if (args.length === 0) {
    throw new HoistError('E_NO_COMMAND', 'no command specified: the image has neither ENTRYPOINT nor CMD', {
      hint: 'pass a command after the image name, e.g. `hoist run IMAGE sh`',
      exitCode: 125,
    });
  }
  let env = c.Env ?? [];
  if (!env.some((e) => e.startsWith('PATH='))) env = [DEFAULT_PATH, ...env];
  env = mergeEnv(env, o.env ?? [], hostEnv);
  let cwd = o.workdir ?? c.WorkingDir ?? '/';
  if (!cwd) cwd = '/';
  if (o.workdir !== undefined && !o.workdir.startsWith('/')) {
    throw new HoistError('E_BAD_WORKDIR', `the working directory ${JSON.stringify(o.workdir)} is not an absolute path`, { exitCode: 125 });
  }
  if (!cwd.startsWith('/')) cwd = '/' + cwd;
  return { args, env, cwd, user: o.user ?? c.User ?? '' };
}

/** `512m`, `1g`, `1024`, `2.5g` → bytes (Docker's RAMInBytes: binary units, b/k/m/g/t/p). */
export function parseMemory(s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([bkmgtp]?)i?b?$/i.exec(s.trim());
  if (!m) throw new HoistError('E_BAD_MEMORY', `invalid memory size ${JSON.stringify(s)}`, { hint: 'use a number with an optional unit: 512m, 2g', exitCode: 125 });
  const mult = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 }[m[2]!.toLowerCase() as 'k'];
  const v = Math.floor(Number(m[1]) * mult);
  if (v < 6 * 1024 * 1024) throw new HoistError('E_BAD_MEMORY', `memory limit ${s} is below the minimum of 6MB`, { exitCode: 125 });
  return v;
}
