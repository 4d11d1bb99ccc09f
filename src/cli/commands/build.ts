import { readFile, rm, writeFile } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import type { HoistCommand } from '../command.js';
import { build, type BuildOutput } from '../../frontend/build.js';
import { openStore } from '../../image/open.js';
import { hostPlatform } from '../../image/store.js';
import { normalizeName } from '../../image/reference.js';
import { clientOptionsFrom, withRegistryOptions } from '../../registry/cliopts.js';
import { makeProgress, type ProgressMode } from '../../progress/progress.js';
import { resolveInRoot } from '../../solver/rootpath.js';
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
  for (const part of splitFields(spec)) {
    const eq = part.indexOf('=');
    if (eq < 0) throw usage(`invalid --output field ${JSON.stringify(part)}`, 'write --output type=oci,dest=image.tar');
    fields.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  const type = fields.get('type') ?? 'local';
  const dest = fields.get('dest');
  switch (type) {
    case 'image':
    case 'registry': {
      // buildx: type=registry is type=image,push=true; name= may list several names
      const push = type === 'registry' || parseBool(fields.get('push'), 'push');
      const names = (fields.get('name') ?? '').split(',').map((n) => n.trim()).filter(Boolean);
      for (const n of names) normalizeName(n);
      return { type: 'image', ...(push ? { push } : {}), ...(names.length ? { names } : {}) };
    }
    case 'oci':
    case 'docker':
    case 'tar':
      if (!dest) throw usage(`--output type=${type} needs dest=FILE (or dest=- for stdout)`);
      return { type, dest };
    case 'local':
      if (!dest || dest === '-') throw usage('--output type=local needs dest=DIRECTORY');
      return { type: 'local', dest };
    default:
      throw usage(`unknown --output type ${JSON.stringify(type)}`, 'types: image, registry, oci, docker, local, tar');
  }
}

/** Splits `a=1,"b=x,y",c="p,q"` at commas outside double quotes (buildx reads --output as CSV); quotes are dropped, `""` inside quotes is one `"`. */
export function splitFields(spec: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < spec.length; i++) {
    const c = spec[i]!;
    if (c === '"') {
      if (quoted && spec[i + 1] === '"') {
        cur += '"';
        i++;
      } else quoted = !quoted;
    } else if (c === ',' && !quoted) {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  if (quoted) throw usage(`unterminated quote in --output ${JSON.stringify(spec)}`);
  out.push(cur);
  return out;
}

/** Go's strconv.ParseBool, as buildx reads exporter flags (absent: false). */
function parseBool(v: string | undefined, field: string): boolean {
  if (v === undefined) return false;
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(v)) return false;
  throw usage(`invalid --output value ${field}=${v}`, `use ${field}=true or ${field}=false`);
}

/** `--push`: shorthand for --output type=registry; with --output it sets push=true on an image output (buildx's rule). */
export function withPush(out: BuildOutput, explicit: boolean): BuildOutput {
  if (out.type === 'image') return { ...out, push: true };
  if (!explicit) return { type: 'image', push: true };
  throw usage(`push and ${JSON.stringify(out.type)} output can't be used together`, 'drop --push, or use --output type=image,push=true');
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
    withRegistryOptions(y)
      .positional('context', { type: 'string', describe: 'Build context directory, or - for stdin: a tar archive of the context (plain, gzip, bzip2, xz, zstd) or a Dockerfile (empty context)' })
      .option('tag', { alias: 't', type: 'string', describe: 'Name the image (repeatable)' })
      .option('file', { alias: 'f', type: 'string', describe: 'Dockerfile path (default: CONTEXT/Dockerfile; - for stdin; with a context archive on stdin, a path inside it)' })
      .option('build-arg', { type: 'string', describe: 'Set a build argument KEY[=VALUE] (repeatable)' })
      .option('target', { type: 'string', describe: 'Build this stage' })
      .option('no-cache', { type: 'boolean', default: false, describe: 'Do not use the build cache' })
      .option('cache', { type: 'boolean', hidden: true, describe: 'Use the build cache (--no-cache turns it off)' })
      .option('pull', { type: 'boolean', default: false, describe: 'Ask the registry for the current version of every FROM image (default: a local image is used as is, a missing one pulled)' })
      .option('push', { type: 'boolean', default: false, describe: 'Push the image to its registry (shorthand for --output type=registry)' })
      .option('label', { type: 'string', describe: 'Set an image label KEY=VALUE (repeatable)' })
      .option('iidfile', { type: 'string', describe: 'Write the image ID to this file' })
      .option('progress', { type: 'string', choices: ['auto', 'plain', 'tty', 'quiet', 'rawjson'], default: 'auto', describe: 'Progress output' })
      .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'Print only the image ID' })
      .option('output', { alias: 'o', type: 'string', describe: 'type=image|registry|oci|docker|local|tar[,dest=PATH][,name=REF][,push=true]' })
      .option('platform', { type: 'string', describe: 'Target platform (only the host platform is supported)' })
      .option('secret', { type: 'string', describe: 'Secret for RUN --mount=type=secret: id=NAME,src=FILE|env=VAR' })
      .option('cache-to', { type: 'string', describe: 'Export the build cache: type=local,dest=DIR or type=registry,ref=REF[,mode=min|max][,ignore-error=true] (repeatable)' })
      .option('cache-from', { type: 'string', describe: 'Use a build cache exported with --cache-to: type=local,src=DIR or type=registry,ref=REF (repeatable)' }),
  async handler(args, io) {
    const ctxArg = (args.context as string | undefined) ?? (args.file === '-' ? undefined : undefined);
    if (ctxArg === undefined) throw usage('hoist build needs a build context', 'pass a directory, e.g. `hoist build -t app .`');
    const hp = hostPlatform();
    if (args.platform) {
      const want = String(args.platform).split(',');
      const ok = want.every((p) => p === `${hp.os}/${hp.architecture}` || p === `${hp.os}/${hp.architecture}${hp.variant ? '/' + hp.variant : ''}`);
      if (!ok) throw usage(`--platform ${args.platform} is not supported: hoist builds for ${hp.os}/${hp.architecture} only`);
    }
    // yargs hands a lone `-` positional over as ''
    const stdinContext = ctxArg === '-' || ctxArg === '';
    let contextDir = stdinContext ? null : resolve(io.cwd, ctxArg);
    const store = await openStore(args.root as string | undefined, io.env, io.cwd);
    let text: string;
    let dockerfilePath: string | undefined;
    let name = 'Dockerfile';
    let stdinTmp: string | undefined;
    if (stdinContext) {
      if (args.file === '-') throw usage('the context and the Dockerfile cannot both come from stdin', 'pass the context as a directory, or the Dockerfile inside the archive with -f');
      stdinTmp = await store.tmpDir('stdin-context');
      const { readStdinInput } = await import('../../context/stdin.js');
      const input = await readStdinInput(io.stdin, stdinTmp).catch(async (e: unknown) => {
        await rm(stdinTmp!, { recursive: true, force: true });
        throw e;
      });
      if (input.kind === 'dockerfile') {
        if (args.file) throw usage('-f names a file in the context, but stdin holds a Dockerfile, not a context archive', 'drop -f, or pipe a tar archive of the context');
        text = input.text;
        dockerfilePath = '-';
      } else {
        // a tar context: the Dockerfile is inside it (-f is relative to the context), found without leaving it
        contextDir = input.dir;
        name = args.file ? String(args.file) : 'Dockerfile';
        dockerfilePath = await resolveInRoot(contextDir, '/' + name);
        try {
          text = await readFile(dockerfilePath, 'utf8');
        } catch {
          await rm(stdinTmp, { recursive: true, force: true });
          throw new HoistError('E_DOCKERFILE', `the context archive from stdin has no ${name}`, { hint: 'add a Dockerfile to the archive or name it with -f PATH-IN-ARCHIVE' });
        }
        name = basename(name);
      }
    } else if (args.file === '-') {
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
    let output = parseOutput(args.output as string | undefined);
    if (args.push) output = withPush(output, args.output !== undefined);
    if ((output.type === 'oci' || output.type === 'docker' || output.type === 'tar') && output.dest === '-') {
      (output as { dest: unknown }).dest = io.stdout;
    }
    // the cache exporter (and the registry client under it) loads only when a cache flag is given
    const cacheFlags = list(args.cacheTo).length + list(args.cacheFrom).length > 0 ? await import('../../cache/remote.js') : undefined;
    const cacheTo = list(args.cacheTo).map((s) => cacheFlags!.parseCacheTo(s));
    const cacheFrom = list(args.cacheFrom).map((s) => cacheFlags!.parseCacheFrom(s));
    const mode = (args.quiet ? 'quiet' : String(args.progress)) as ProgressMode;
    const progress = makeProgress(mode, io.stderr as typeof io.stderr & { isTTY?: boolean });
    const tags = list(args.tag);
    // a bad name must fail before the build, not after it
    for (const t of tags) normalizeName(t);
    if (output.type === 'image' && output.push && !output.names?.length && tags.length === 0) {
      throw new HoistError('E_USAGE', 'tag is needed when pushing to registry', { hint: 'name the image with -t REGISTRY/REPO:TAG or --output type=image,name=REF,push=true' });
    }
    const res = await build({
      store, contextDir, dockerfileText: text, dockerfilePath, dockerfileName: name, tags, buildArgs, target: args.target as string | undefined,
      noCache: Boolean(args.noCache) || args.cache === false, labels, secrets, output, progress, env: io.env, cacheTo, cacheFrom,
      registry: { ...clientOptionsFrom(args, io.env), pull: Boolean(args.pull) },
    }).finally(() => (stdinTmp ? rm(stdinTmp, { recursive: true, force: true }) : undefined));
    if (res.id) {
      if (args.iidfile) await writeFile(resolve(io.cwd, String(args.iidfile)), res.id);
      if (!((output.type === 'oci' || output.type === 'docker') && typeof output.dest !== 'string')) io.stdout.write(res.id + '\n');
    }
    return 0;
  },
};
