import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

/**
 * The store root: `--root`, else `$HOIST_ROOT`, else `/var/lib/hoist` for root and
 * `$XDG_DATA_HOME/hoist` (`~/.local/share/hoist`) for other users.
 */
export function resolveRoot(opt: string | undefined, env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): string {
  if (opt) return resolve(cwd, opt);
  if (env.HOIST_ROOT) return resolve(cwd, env.HOIST_ROOT);
  if (process.getuid?.() === 0) return '/var/lib/hoist';
  const data = env.XDG_DATA_HOME || join(env.HOME || homedir(), '.local', 'share');
  return join(data, 'hoist');
}
