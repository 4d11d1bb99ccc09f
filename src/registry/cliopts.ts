import type { Argv } from 'yargs';
import type { ClientOptions } from './client.js';

/** Adds `--insecure-registry HOST` (repeatable) to a registry command. */
export function withRegistryOptions<T>(y: Argv<T>): Argv<T> {
  return y.option('insecure-registry', {
    type: 'string',
    requiresArg: true,
    describe: 'Allow plain HTTP (and unverified TLS fallback) for this registry host[:port]; also $HOIST_INSECURE_REGISTRIES',
  }) as unknown as Argv<T>;
}

/** Client options from parsed CLI arguments and the command's environment. */
export function clientOptionsFrom(args: Record<string, unknown>, env: NodeJS.ProcessEnv): ClientOptions {
  const raw = args.insecureRegistry ?? args['insecure-registry'];
  const list = (Array.isArray(raw) ? raw : raw === undefined ? [] : [raw]).map(String).flatMap((s) => s.split(',')).filter(Boolean);
  return { env, insecureRegistries: list };
}
