import type { ResolvedImage, Store } from '../image/store.js';
import { containerSpec, processStart, removeContainerDir, saveRecord, type ContainerRecord } from './container.js';
import { runSandbox, type SandboxResult, type SandboxStdio } from './helper.js';

export interface StartOptions extends SandboxStdio {
  /** Return once the command runs, leaving the helper to supervise it and write the log. */
  detach?: boolean;
  onWarning?: (m: string) => void;
  /** Called with the helper's pid once the container runs (the CLI forwards signals to it). */
  onStart?: (helperPid: number) => void;
}

/**
 * Starts a created or exited container: prepares its root filesystem, runs the helper,
 * keeps config.json current (running → exited), and removes it afterwards for --rm.
 */
export async function startContainer(store: Store, img: ResolvedImage, rec: ContainerRecord, opts: StartOptions = {}): Promise<SandboxResult> {
  const { spec, kind } = await containerSpec(store, img, rec, opts.onWarning);
  let current: ContainerRecord = { ...rec, rootfs: kind };
  delete current.exitCode;
  delete current.finishedAt;
  await saveRecord(store.root, current);
  let pending: Promise<void> | undefined;
  const result = await runSandbox(spec, {
    stdin: opts.stdin,
    stdout: opts.stdout,
    stderr: opts.stderr,
    detach: opts.detach,
    onStart: ({ helperPid, initPid }) => {
      current = { ...current, state: 'running', helperPid, helperStart: processStart(helperPid), initPid, startedAt: new Date().toISOString() };
      // written synchronously enough for `ps` right after `run -d` returns: awaited below
      pending = saveRecord(store.root, current);
      opts.onStart?.(helperPid);
    },
  });
  await pending;
  if (opts.detach && result.setupError === undefined && result.initPid) return result;
  current = { ...current, state: 'exited', exitCode: result.exitCode, finishedAt: new Date().toISOString() };
  if (rec.config.autoRemove) await removeContainerDir(store.root, current);
  else await saveRecord(store.root, current);
  return result;
}
