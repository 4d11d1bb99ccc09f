import { readFile, writeFile } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import type { HoistCommand } from '../command.js';
import { build, type BuildOutput } from '../../frontend/build.js';
import { openStore } from '../../image/open.js';
import { hostPlatform } from '../../image/store.js';
import { normalizeName } from '../../image/reference.js';
import { makeProgress, type ProgressMode } from '../../progress/progress.js';
import type { SecretSource } from '../../solver/solver.js';
import { HoistError } from '../../util/errors.js';

async function readAll(s: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c as string));
  return Buffer.concat(chunks).toString('utf8');
}

const usage = (msg: string, hint?: string): HoistError => new HoistError('E_USAGE', msg, { hint, exitCode: 125 });

function list(v: unknown): string[] {
  if (v === undefined) return [];
  return (Array.isArray(v) ? v : [v]).map(String);
}

/** `--output type=…,dest=…` (a bare path means type=local). */
export function parseOutput(spec: string | undefined): BuildOutput {
  if (!spec) return { type: 'image' };
  const fields = new Map<string, string>();
  if (!spec.includes('=')) return { type: 'local', dest: spec };
  for (const part of spec.split(',')) {
    const eq = part.indexOf('=');
    if (eq < 0) throw usage(`invalid --output field ${JSON.stringify(part)}`, 'write --output type=oci,dest=image.tar');
    fields.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  const type = fields.get('type') ?? 'local';
  const dest = fields.get('dest');
  switch (type) {
    case 'image':
    case 'registry':
      if (type === 'registry') throw usage('--output type=registry is not supported', 'build, then push with hoist push');
      return { type: 'image' };
    case 'oci':
    case 'docker':
    case 'tar':
      if (!dest) throw usage(`--output type=${type} needs dest=FILE (or dest=- for stdout)`);
      return { type, dest };
    case 'local':
      if (!dest || dest === '-') throw usage('--output type=local needs dest=DIRECTORY');
      return { type: 'local', dest };
    default:
      throw usage(`unknown --output type ${JSON.stringify(type)}`, 'types: image, oci, docker, local, tar');
  }
}

function parseSecret(spec: string, env: NodeJS.ProcessEnv): [string, SecretSource] {
  const f = new Map<string, string>();
  for (const part of spec.split(',')) {
    const eq = part.indexOf('=');
    if (eq < 0) throw usage(`invalid --secret ${JSON.stringify(spec)}`, 'write --secret id=NAME,src=FILE or id=NAME,env=VAR');
    f.set(part.slice(0, eq), part.slice(eq + 1));
  }
  const id = f.get('id') ?? basename(f.get('src') ?? f.get('source') ?? f.get('env') ?? '');
  if (!id) throw usage(`--secret ${JSON.stringify(spec)} has no id`);
  const src = f.get('src') ?? f.get('source');
  if (src) return [id, { file: resolve(src) }];
  const e = f.get('env') ?? id;
  if (env[e] === undefined && !f.has('env')) throw usage(`--secret ${id}: no src= given and no environment variable ${e}`);
  return [id, { env: e }];
}

export const buildCommand: HoistCommand = {
  command: 'build [context]',
  describe: 'Build an image from a Dockerfile',
  builder: (y) =>
    y
      .positional('context', { type: 'string', describe: 'Build context directory, or - to read the Dockerfile from stdin (no context)' })
      .option('tag', { alias: 't', type: 'string', describe: 'Name the image (repeatable)' })
      .option('file', { alias: 'f', type: 'string', describe: 'Dockerfile path (default: CONTEXT/Dockerfile; - for stdin)' })
      .option('build-arg', { type: 'string', describe: 'Set a build argument KEY[=VALUE] (repeatable)' })
      .option('target', { type: 'string', describe: 'Build this stage' })
      .option('no-cache', { type: 'boolean', default: false, describe: 'Do not use the build cache' })
      .option('cache', { type: 'boolean', hidden: true, describe: 'Use the build cache (--no-cache turns it off)' })
      .option('pull', { type: 'boolean', default: false, describe: 'Accepted for compatibility (images come from the local store)' })
      .option('label', { type: 'string', describe: 'Set an image label KEY=VALUE (repeatable)' })
      .option('iidfile', { type: 'string', describe: 'Write the image ID to this file' })
      .option('progress', { type: 'string', choices: ['auto', 'plain', 'tty', 'quiet', 'rawjson'], default: 'auto', describe: 'Progress output' })
      .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'Print only the image ID' })
      .option('output', { alias: 'o', type: 'string', describe: 'type=image|oci|docker|local|tar[,dest=PATH]' })
      .option('platform', { type: 'string', describe: 'Target platform (only the host platform is supported)' })
      .option('secret', { type: 'string', describe: 'Secret for RUN --mount=type=secret: id=NAME,src=FILE|env=VAR' }),
  async handler(args, io) {
    const ctxArg = (args.context as string | undefined) ?? (args.file === '-' ? undefined : undefined);
    if (ctxArg === undefined) throw usage('hoist build needs a build context', 'pass a directory, e.g. `hoist build -t app .`');
    const hp = hostPlatform();
    if (args.platform) {
      const want = String(args.platform).split(',');
      const ok = want.every((p) => p === `${hp.os}/${hp.architecture}` || p === `${hp.os}/${hp.architecture}${hp.variant ? '/' + hp.variant : ''}`);
      if (!ok) throw usage(`--platform ${args.platform} is not supported: hoist builds for ${hp.os}/${hp.architecture} only`);
    }
    const stdinContext = ctxArg === '-';
    const contextDir = stdinContext ? null : resolve(io.cwd, ctxArg);
    let text: string;
    let dockerfilePath: string | undefined;
    let name = 'Dockerfile';
    if (stdinContext || args.file === '-') {
      if (stdinContext && args.file && args.file !== '-') throw usage('with a context of -, the Dockerfile comes from stdin; drop -f');
      text = await readAll(io.stdin);
      dockerfilePath = '-';
    } else {
      dockerfilePath = args.file ? resolve(io.cwd, String(args.file)) : resolve(contextDir!, 'Dockerfile');
      name = basename(dockerfilePath);
      try {
        text = await readFile(dockerfilePath, 'utf8');
      } catch (e) {
        throw new HoistError('E_DOCKERFILE', `cannot read ${dockerfilePath}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`, {
          hint: args.file ? 'check the -f path' : 'add a Dockerfile to the context or pass -f',
        });
      }
    }
    const buildArgs = new Map<string, string>();
    for (const a of list(args.buildArg)) {
      const eq = a.indexOf('=');
      if (eq < 0) {
        const v = io.env[a];
        if (v !== undefined) buildArgs.set(a, v);
      } else buildArgs.set(a.slice(0, eq), a.slice(eq + 1));
    }
    const labels: Record<string, string> = {};
    for (const l of list(args.label)) {
      const eq = l.indexOf('=');
      labels[eq < 0 ? l : l.slice(0, eq)] = eq < 0 ? '' : l.slice(eq + 1);
    }
    const secrets = new Map<string, SecretSource>();
    for (const s of list(args.secret)) {
      const [id, src] = parseSecret(s, io.env);
      secrets.set(id, src);
    }
    const output = parseOutput(args.output as string | undefined);
    if ((output.type === 'oci' || output.type === 'docker' || output.type === 'tar') && output.dest === '-') {
      (output as { dest: unknown }).dest = io.stdout;
    }
    const store = await openStore(args.root as string | undefined, io.env, io.cwd);
    const mode = (args.quiet ? 'quiet' : String(args.progress)) as ProgressMode;
    const progress = makeProgress(mode, io.stderr as typeof io.stderr & { isTTY?: boolean });
    const tags = list(args.tag);
    // a bad name must fail before the build, not after it
    for (const t of tags) normalizeName(t);
    const res = await build({
      store, contextDir, dockerfileText: text, dockerfilePath, dockerfileName: name, tags, buildArgs, target: args.target as string | undefined,
      noCache: Boolean(args.noCache) || args.cache === false, labels, secrets, output, progress, env: io.env,
    });
    if (res.id) {
      if (args.iidfile) await writeFile(resolve(io.cwd, String(args.iidfile)), res.id);
      if (!((output.type === 'oci' || output.type === 'docker') && typeof output.dest !== 'string')) io.stdout.write(res.id + '\n');
    }
    return 0;
  },
};
