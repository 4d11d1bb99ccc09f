import type { Readable } from 'node:stream';
import type { HoistCommand } from '../command.js';
import type { CliIO } from '../io.js';
import { HoistError } from '../../util/errors.js';
import { RegistryClient } from '../../registry/client.js';
import { configKey, saveCredentials } from '../../registry/credentials.js';
import { clientOptionsFrom, withRegistryOptions } from '../../registry/cliopts.js';

/** `https://host:5000/v2/` or `host:5000` → `host:5000`; nothing → Docker Hub. */
export function registryHost(arg: unknown): string {
  if (arg === undefined || arg === null || arg === '') return 'docker.io';
  const h = String(arg).replace(/^[a-z]+:\/\//i, '').replace(/\/.*$/, '');
  if (!h || /[\s@]/.test(h)) throw new HoistError('E_USAGE', `invalid registry ${JSON.stringify(String(arg))}`, { hint: 'give a host[:port], e.g. registry.example.com or localhost:5000', exitCode: 125 });
  return h === 'index.docker.io' || h === 'registry-1.docker.io' ? 'docker.io' : h;
}

async function readAll(s: Readable): Promise<string> {
  let out = '';
  for await (const c of s) out += String(c);
  return out;
}

/** Reads one line from a terminal, optionally without echo. */
async function prompt(io: CliIO, question: string, hidden: boolean): Promise<string> {
  io.stderr.write(question);
  const stdin = io.stdin as Readable & { setRawMode?: (m: boolean) => void; isTTY?: boolean };
  if (hidden && stdin.setRawMode) stdin.setRawMode(true);
  try {
    return await new Promise<string>((resolve, reject) => {
      let buf = '';
      const onData = (d: Buffer | string) => {
        for (const ch of String(d)) {
          if (ch === '\r' || ch === '\n') {
            stdin.off('data', onData);
            stdin.pause();
            return resolve(buf);
          }
          if (ch === '\u0003') {
            stdin.off('data', onData);
            return reject(new HoistError('E_USAGE', 'login cancelled', { exitCode: 130 }));
          }
          if (ch === '\u007f') buf = buf.slice(0, -1);
          else buf += ch;
        }
      };
      stdin.on('data', onData);
      stdin.resume();
    });
  } finally {
    if (hidden && stdin.setRawMode) stdin.setRawMode(false);
    if (hidden) io.stderr.write('\n');
  }
}

export const loginCommand: HoistCommand = {
  command: 'login [registry]',
  describe: 'Log in to a registry (credentials are saved in Docker\'s config.json, shared with docker login)',
  builder: (y) =>
    withRegistryOptions(y)
      .positional('registry', { type: 'string', describe: 'host[:port] (default: Docker Hub)' })
      .option('username', { alias: 'u', type: 'string', describe: 'User name' })
      .option('password', { alias: 'p', type: 'string', describe: 'Password (insecure: visible in the process list; prefer --password-stdin)' })
      .option('password-stdin', { type: 'boolean', default: false, describe: 'Read the password from stdin' })
      .example('echo "$TOKEN" | hoist login -u ci --password-stdin registry.example.com', 'non-interactive login'),
  handler: async (args, io) => {
    const host = registryHost(args.registry);
    const tty = !!(io.stdin as { isTTY?: boolean }).isTTY;
    let username = args.username as string | undefined;
    let password = args.password as string | undefined;
    if (password !== undefined) io.stderr.write('WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n');
    if (args.passwordStdin) {
      if (password !== undefined) throw new HoistError('E_USAGE', '--password and --password-stdin are mutually exclusive', { exitCode: 125 });
      if (username === undefined) throw new HoistError('E_USAGE', 'must provide --username with --password-stdin', { exitCode: 125 });
      password = (await readAll(io.stdin)).replace(/\r?\n$/, '');
    }
    if (username === undefined) {
      if (!tty) throw new HoistError('E_USAGE', 'no user name given and stdin is not a terminal', { hint: 'pass -u USER with --password-stdin', exitCode: 125 });
      username = (await prompt(io, 'Username: ', false)).trim();
    }
    if (password === undefined) {
      if (!tty) throw new HoistError('E_USAGE', 'no password given and stdin is not a terminal', { hint: 'pipe it in with --password-stdin', exitCode: 125 });
      password = await prompt(io, 'Password: ', true);
    }
    if (!username) throw new HoistError('E_USAGE', 'the user name is empty', { exitCode: 125 });
    if (!password) throw new HoistError('E_USAGE', 'the password is empty', { exitCode: 125 });
    const client = new RegistryClient(host, {
      ...clientOptionsFrom(args, io.env),
      credentials: { username, password, source: `the user name ${JSON.stringify(username)} and password given to hoist login` },
      retries: 1,
    });
    await client.verifyCredentials();
    const where = await saveCredentials(host, username, password, io.env);
    io.stdout.write(`Credentials for ${configKey(host)} saved in ${where}\nLogin Succeeded\n`);
  },
};
