import { mkdir, readFile, stat } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import yargs, { type Argv } from 'yargs';
import type { HoistCommand } from '../command.js';
import type { CliIO } from '../io.js';
import { HoistError } from '../../util/errors.js';
import { openStore } from '../../image/open.js';
import type { Store } from '../../image/store.js';
import { createContainer } from '../../sandbox/container.js';
import { startContainer } from '../../sandbox/lifecycle.js';
import { parseEnvFile, parseMemory, processConfig } from '../../sandbox/imageconfig.js';
import type { SandboxMount } from '../../sandbox/spec.js';
import type { SandboxStdio } from '../../sandbox/helper.js';

const list = (v: unknown): string[] => (v === undefined ? [] : Array.isArray(v) ? v.map(String) : [String(v)]);

/** A stream's own descriptor when it is one of this process's stdio streams (so the helper can use the terminal itself). */
export function stdioSlot(s: Readable | Writable, fd: number): Readable | Writable | number {
  const own = [process.stdin, process.stdout, process.stderr][fd];
  return s === own ? fd : s;
}

/** Forwards SIGTERM/SIGHUP sent to hoist to the helper (a terminal's SIGINT reaches the helper directly). */
export function forwardSignals(): { setPid(pid: number): void; dispose(): void } {
  let pid = 0;
  const handlers = (['SIGTERM', 'SIGHUP', 'SIGINT'] as const).map((sig) => {
    const h = () => {
      if (pid && sig !== 'SIGINT') {
        try {
          process.kill(pid, sig);
        } catch {
          // the helper is already gone
        }
      }
    };
    process.on(sig, h);
    return [sig, h] as const;
  });
  return {
    setPid: (p) => (pid = p),
    dispose: () => handlers.forEach(([s, h]) => process.off(s, h)),
  };
}

/** `-v HOST:CTR[:ro|rw]` → a bind mount; missing host directories are created, as Docker does. */
async function parseVolume(v: string, cwd: string): Promise<SandboxMount> {
  const parts = v.split(':');
  let mode = 'rw';
  if (parts.length === 3) mode = parts.pop()!;
  if (parts.length !== 2 || !parts[0] || !parts[1]) {
    throw new HoistError('E_BAD_VOLUME', `invalid volume ${JSON.stringify(v)}: expected HOST:CONTAINER[:ro]`, { exitCode: 125 });
  }
  const [host, ctr] = parts as [string, string];
  if (!isAbsolute(host) && !host.startsWith('.')) {
    throw new HoistError('E_BAD_VOLUME', `named volumes are not supported (${host}): give a host path`, { hint: 'e.g. -v "$PWD/data:/data"', exitCode: 125 });
  }
  if (!ctr.startsWith('/')) throw new HoistError('E_BAD_VOLUME', `invalid volume ${JSON.stringify(v)}: the container path must be absolute`, { exitCode: 125 });
  if (!['ro', 'rw'].includes(mode)) throw new HoistError('E_BAD_VOLUME', `invalid volume mode ${JSON.stringify(mode)} in ${v}: use ro or rw`, { exitCode: 125 });
  const source = resolve(cwd, host);
  if (!(await stat(source).catch(() => null))) await mkdir(source, { recursive: true });
  return { type: 'bind', source, destination: ctr, readonly: mode === 'ro' };
}

function parseTmpfs(t: string): SandboxMount {
  const i = t.indexOf(':');
  const destination = i < 0 ? t : t.slice(0, i);
  if (!destination.startsWith('/')) throw new HoistError('E_BAD_TMPFS', `invalid --tmpfs ${JSON.stringify(t)}: the path must be absolute`, { exitCode: 125 });
  return { type: 'tmpfs', destination, ...(i < 0 ? {} : { options: t.slice(i + 1) }) };
}

/**
 * Re-parses a subcommand's raw words. The command is registered with
 * halt-at-non-option, which leaves everything after the subcommand in `_`: this
 * parses hoist's own flags up to the first word that is not one (the image or the
 * container), and keeps the rest, flags included, for the command to run.
 */
export function reparse(args: Record<string, unknown>, cmd: string, define: (y: Argv) => Argv, usage: string): { opts: Record<string, unknown>; words: string[]; help?: string } {
  const all = ((args._ as unknown[]) ?? []).map(String);
  let i = 0;
  if (all[i] === cmd) i++;
  if (all[i] === cmd) i++; // yargs keeps the matched command word in `_` once more
  const y = define(yargs(all.slice(i)))
    .scriptName('hoist')
    .usage(usage)
    .help(false)
    .option('root', { type: 'string', describe: 'Store root' })
    .option('debug', { type: 'boolean', hidden: true })
    // -h/--help among hoist's own flags (before the image) asks for this help; after it, it is the command's
    .option('help', { alias: 'h', type: 'boolean', describe: 'Show help' })
    .parserConfiguration({ 'halt-at-non-option': true, 'populate--': false })
    .version(false)
    .strictOptions()
    .exitProcess(false)
    .wrap(Math.min(100, process.stdout.columns || 100))
    .fail((msg: string, err: Error | undefined) => {
      throw err ?? new HoistError('E_USAGE', `hoist ${cmd}: ${msg}`, { hint: `see \`hoist ${cmd} --help\``, exitCode: 125 });
    });
  const opts = y.parseSync() as Record<string, unknown>;
  if (opts.help === true) {
    let help = '';
    y.showHelp((s: string) => (help = s));
    return { opts, words: [], help };
  }
  return { opts, words: ((opts._ as unknown[]) ?? []).map(String) };
}

/** Options shared by `run` and `exec`. */
export function processOptions(y: any): any {
  return y
    .option('interactive', { alias: 'i', type: 'boolean', default: false, describe: 'Keep stdin open' })
    .option('tty', { alias: 't', type: 'boolean', default: false, describe: 'Allocate a pseudo-terminal' })
    .option('env', { alias: 'e', type: 'string', describe: 'Set an environment variable (KEY=VALUE, or KEY to copy it)' })
    .option('workdir', { alias: 'w', type: 'string', describe: 'Working directory inside the container' })
    .option('user', { alias: 'u', type: 'string', describe: 'USER[:GROUP] (names or numeric ids)' });
}

/** stdio for a foreground sandbox run, honouring -i and -t. */
export function foregroundStdio(io: CliIO, interactive: boolean): SandboxStdio {
  return {
    stdin: interactive ? stdioSlot(io.stdin, 0) as Readable | number : 'ignore',
    stdout: stdioSlot(io.stdout, 1) as Writable | number,
    stderr: stdioSlot(io.stderr, 2) as Writable | number,
  };
}

const RUN_USAGE = 'hoist run [OPTIONS] IMAGE [COMMAND] [ARG...]\n\nRun a command in a new container. Options go before the image; everything after it is the command.';

export const runCommand: HoistCommand = {
  command: 'run [image] [command..]',
  describe: 'Run a command in a new container',
  builder: (y) =>
    runOptions(y.parserConfiguration({ 'halt-at-non-option': true }))
      .positional('image', { type: 'string', describe: 'Image name or ID' })
      .positional('command', { type: 'string', array: true, describe: 'Command and arguments (replace the image CMD)' }),
  handler: async (raw, io) => {
    const { opts: args, words, help } = reparse(raw, 'run', runOptions, RUN_USAGE);
    if (help !== undefined) {
      io.stdout.write(help + '\n');
      return 0;
    }
    if (words.length === 0) throw new HoistError('E_USAGE', '"hoist run" needs an image', { hint: 'hoist run [OPTIONS] IMAGE [COMMAND] [ARG...]', exitCode: 125 });
    const imageName = words[0]!;
    const command = words.slice(1);
    const store = await openStore((args.root ?? raw.root) as string | undefined, io.env, io.cwd);
    return runHandler(args, io, store, imageName, command);
  },
};

function runOptions(y: Argv): Argv {
  return processOptions(y)
      .option('rm', { type: 'boolean', default: false, describe: 'Remove the container when it exits' })
      .option('detach', { alias: 'd', type: 'boolean', default: false, describe: 'Run in the background and print the container ID' })
      .option('name', { type: 'string', describe: 'Container name' })
      .option('env-file', { type: 'string', describe: 'Read environment variables from a file' })
      .option('volume', { alias: 'v', type: 'string', describe: 'Bind mount HOST:CONTAINER[:ro]' })
      .option('tmpfs', { type: 'string', describe: 'Mount a tmpfs: PATH[:OPTIONS]' })
      .option('entrypoint', { type: 'string', describe: "Override the image's ENTRYPOINT" })
      .option('hostname', { type: 'string', describe: 'Container host name (default: the short ID)' })
      .option('network', { type: 'string', default: 'host', choices: ['host', 'none'], describe: 'host: share the host network; none: only loopback' })
      .option('read-only', { type: 'boolean', default: false, describe: 'Mount the root filesystem read-only' })
      .option('memory', { alias: 'm', type: 'string', describe: 'Memory limit (e.g. 512m), through the memory cgroup' })
      .option('pids-limit', { type: 'number', describe: 'Process limit, through the pids cgroup' });
}

async function runHandler(args: Record<string, any>, io: CliIO, store: Store, imageName: string, command: string[]): Promise<number> {
  {
    // halt-at-non-option leaves everything from the image name on in `_` (after "run")
    let img;
    try {
      img = await store.findImage(imageName);
    } catch (e) {
      if (e instanceof HoistError) throw new HoistError(e.code, e.message, { hint: e.hint, exitCode: 125 });
      throw e;
    }
    if (args.detach && args.rm) {
      // Docker allows it; the helper then removes nothing, so refuse instead of leaking a record.
      throw new HoistError('E_USAGE', '--rm with -d is not supported yet', { hint: 'run without --rm and remove the container with `hoist rm`', exitCode: 125 });
    }
    const envFiles: string[] = [];
    for (const f of list(args.envFile)) {
      const text = await readFile(resolve(io.cwd, f), 'utf8').catch((e: Error) => {
        throw new HoistError('E_ENV_FILE', `cannot read env file ${f}: ${e.message}`, { exitCode: 125 });
      });
      envFiles.push(...parseEnvFile(text, f));
    }
    const proc = processConfig(img.config.config, {
      entrypoint: args.entrypoint as string | undefined,
      cmd: command,
      env: [...envFiles, ...list(args.env)],
      workdir: args.workdir as string | undefined,
      user: args.user as string | undefined,
    }, io.env);
    const mounts: SandboxMount[] = [];
    for (const v of list(args.volume)) mounts.push(await parseVolume(v, io.cwd));
    for (const t of list(args.tmpfs)) mounts.push(parseTmpfs(t));
    const pids = args.pidsLimit as number | undefined;
    if (pids !== undefined && (!Number.isInteger(pids) || pids < 1)) throw new HoistError('E_BAD_PIDS', `invalid --pids-limit ${pids}: use a positive integer`, { exitCode: 125 });
    if (args.hostname !== undefined && !/^[a-zA-Z0-9]([a-zA-Z0-9.-]{0,62})$/.test(String(args.hostname))) {
      throw new HoistError('E_BAD_HOSTNAME', `invalid hostname ${JSON.stringify(args.hostname)}`, { exitCode: 125 });
    }
    const rec = await createContainer(store.root, img, imageName, args.name as string | undefined, {
      ...proc,
      ...(args.hostname ? { hostname: String(args.hostname) } : {}),
      tty: !!args.tty,
      openStdin: !!args.interactive,
      network: args.network === 'none' ? 'none' : 'host',
      readonlyRootfs: !!args.readOnly,
      mounts,
      ...(args.memory ? { memory: parseMemory(String(args.memory)) } : {}),
      ...(pids ? { pids } : {}),
      stopSignal: img.config.config?.StopSignal || 'SIGTERM',
      autoRemove: !!args.rm,
    });
    const warn = (m: string) => io.stderr.write(`warning: ${m}\n`);
    if (args.detach) {
      const r = await startContainer(store, img, rec, { detach: true, onWarning: warn });
      if (r.setupError !== undefined || !r.initPid) {
        io.stderr.write(`error: ${r.setupError ?? 'the container did not start'}\n`);
        return r.exitCode || 125;
      }
      io.stdout.write(rec.id + '\n');
      return 0;
    }
    const fwd = forwardSignals();
    try {
      const r = await startContainer(store, img, rec, { ...foregroundStdio(io, !!args.interactive), onWarning: warn, onStart: (p) => fwd.setPid(p) });
      return r.exitCode;
    } finally {
      fwd.dispose();
    }
  }
}
