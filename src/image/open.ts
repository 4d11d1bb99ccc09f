import { resolveRoot } from '../util/root.js';
import { Store } from './store.js';

/** Opens the store named by a command's `--root` option (else $HOIST_ROOT or the default). */
export function openStore(rootOpt: string | undefined, env: NodeJS.ProcessEnv, cwd: string): Promise<Store> {
  return Store.open(resolveRoot(rootOpt, env, cwd));
}
