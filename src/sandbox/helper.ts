import { spawn, type StdioOptions } from 'node:child_process';
import { accessSync, constants as fsConstants } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { HoistError } from '../util/errors.js';
import type { SandboxSpec } from './spec.js';

/** Where the compiled helper is: `$HOIST_SANDBOX`, else `native/hoist-sandbox` of this checkout. */
export function helperPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HOIST_SANDBOX) return env.HOIST_SANDBOX;
  // dist/src/sandbox/helper.js → repository root is three levels up
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'native', 'hoist-sandbox');
}

function checkHelper(path: string): void {
  try {
    accessSync(path, fsConstants.X_OK);
  } catch {
    throw new HoistError('E_NO_SANDBOX', `the sandbox helper ${path} is missing or not executable`, {
      hint: 'build it with `npm run native` (needs cc and make)',
      exitCode: 125,
    });
  }
}

/** Where a sandboxed process reads and writes: Node streams, or an inherited descriptor. */
export interface SandboxStdio {
  stdin?: Readable | number | 'ignore';
  stdout?: Writable | number | 'ignore';
  stderr?: Writable | number | 'ignore';
}

export interface RunSandboxOptions extends SandboxStdio {
  /** Aborting kills the sandbox (the helper first, and with it every process inside). */
  signal?: AbortSignal;
  /** Called once the command has been exec'd: the host pids of the helper and of the container's init. */
  onStart?: (info: { helperPid: number; initPid: number }) => void;
  /** Leave the helper running on its own once the command started (for `run -d`); the promise then resolves at start. */
  detach?: boolean;
  env?: NodeJS.ProcessEnv;
}

/** How a sandboxed command ended. */
export interface SandboxResult {
  /** The command's exit status; 128+N when a signal N ended it; 125/126/127 when it could not start. */
  exitCode: number;
  /** Signal name when exitCode is 128+N for a known signal N. */
  signal?: string;
  /** Set when the sandbox or the exec failed: the helper's message (it is also written to stderr). */
  setupError?: string;
  helperPid?: number;
  initPid?: number;
}

const signalNames = new Map<number, string>(Object.entries(osConstants.signals).map(([k, v]) => [v, k]));

/**
 * Runs one spec through the native helper and streams the process's output: the single
 * entry point for `hoist run`, `hoist exec` and build RUN steps.
 */
export function runSandbox(spec: SandboxSpec, opts: RunSandboxOptions = {}): Promise<SandboxResult> {
  const bin = helperPath(opts.env);
  checkHelper(bin);
  const slot = (s: Readable | Writable | number | 'ignore' | undefined, fallback: 'ignore' | 'pipe') =>
    s === undefined ? fallback : typeof s === 'number' || s === 'ignore' ? s : 'pipe';
  const stdio: StdioOptions = [
    opts.detach ? 'ignore' : slot(opts.stdin, 'ignore'),
    opts.detach ? 'ignore' : slot(opts.stdout, 'ignore'),
    opts.detach ? 'pipe' : slot(opts.stderr, 'ignore'),
    'pipe',
    'pipe',
  ];
  const child = spawn(bin, ['3'], { stdio, detached: !!opts.detach, env: opts.env ?? process.env });
  const full: SandboxSpec & { statusFd: number } = { ...spec, statusFd: 4, ...(opts.detach ? { detach: true } : {}) };
  return new Promise<SandboxResult>((resolveP, reject) => {
    let started: { helperPid: number; initPid: number } | undefined;
    let setupError: string | undefined;
    let helperStderr = '';
    let settled = false;
    const finish = (r: SandboxResult | Error) => {
      if (settled) return;
      settled = true;
      opts.signal?.removeEventListener('abort', onAbort);
      if (r instanceof Error) reject(r);
      else resolveP(r);
    };
    const onAbort = () => child.kill('SIGKILL');
    if (opts.signal) {
      if (opts.signal.aborted) onAbort();
      else opts.signal.addEventListener('abort', onAbort, { once: true });
    }
    child.on('error', (e) => finish(new HoistError('E_SANDBOX', `cannot start the sandbox helper ${bin}: ${e.message}`, { exitCode: 125 })));
    const specPipe = child.stdio[3] as Writable;
    specPipe.on('error', () => undefined); // the helper exiting early is reported through its status
    specPipe.end(JSON.stringify(full));
    if (!opts.detach) {
      if (child.stdin && opts.stdin && typeof opts.stdin === 'object') {
        child.stdin.on('error', () => undefined);
        opts.stdin.pipe(child.stdin);
      }
      if (child.stdout && opts.stdout && typeof opts.stdout === 'object') child.stdout.pipe(opts.stdout, { end: false });
      if (child.stderr && opts.stderr && typeof opts.stderr === 'object') child.stderr.pipe(opts.stderr, { end: false });
    } else {
      child.stderr!.on('data', (d: Buffer) => (helperStderr += d.toString()));
    }
    let buf = '';
    const status = child.stdio[4] as Readable;
    status.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let ev: { type?: string; pid?: number; message?: string; code?: number };
        try {
          ev = JSON.parse(line);
        } catch {
          continue;
        }
        if (ev.type === 'started' && typeof ev.pid === 'number') {
          started = { helperPid: child.pid!, initPid: ev.pid };
          opts.onStart?.(started);
          if (opts.detach) {
            // The helper now supervises alone: let go of it and of its pipes.
            child.unref();
            for (const s of child.stdio) (s as { destroy?: () => void } | null)?.destroy?.();
            finish({ exitCode: 0, ...started });
          }
        } else if (ev.type === 'error') {
          setupError = ev.message;
        }
      }
    });
    child.on('close', (code, sig) => {
      let exitCode = code ?? (sig ? 128 + (osConstants.signals[sig] ?? 0) : 125);
      if (opts.detach && !started && !setupError && helperStderr.trim()) setupError = helperStderr.trim().replace(/^hoist-sandbox: /, '');
      if (opts.detach && setupError && !helperStderr.includes(setupError)) helperStderr += setupError;
      if (exitCode === 0 && setupError) exitCode = 125;
      const name = exitCode > 128 ? signalNames.get(exitCode - 128) : undefined;
      finish({ exitCode, ...(name ? { signal: name } : {}), ...(setupError ? { setupError } : {}), ...(started ?? {}) });
    });
  });
}
