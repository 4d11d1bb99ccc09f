/**
 * Long-lived copy workers. Starting node for every COPY/ADD/WORKDIR step cost about
 * 100 ms (most of a small step), so a build keeps its workers (`copyworker.js
 * --serve`, each in its own private mount namespace) and hands them one spec after
 * another; a second worker starts only when two steps copy at the same time.
 * Idle workers hold nothing open that keeps the process alive, and end after a few
 * idle seconds or when the process does (their stdin closes).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { CopyFailure } from './copyworker.js';

const SCRIPT = fileURLToPath(new URL('./copyworker.js', import.meta.url));
/** An idle worker is ended after this long. */
const IDLE_MS = 5000;

/** A worker's answer to one spec. */
export type CopyReply = { ok: true } | ({ ok: false } & CopyFailure);

type Refable = { ref?: () => void; unref?: () => void };

class Worker {
  private readonly child: ChildProcess;
  private pending?: { resolve(r: CopyReply): void };
  private stderr = '';
  private idleTimer?: NodeJS.Timeout;
  dead = false;

  constructor(private readonly onDead: (w: Worker) => void) {
    this.child = spawn('/usr/bin/unshare', ['--mount', '--propagation', 'private', process.execPath, SCRIPT, '--serve'], {
      stdio: ['pipe', 'ignore', 'pipe', 'pipe'],
    });
    const replies = this.child.stdio[3] as Readable;
    createInterface({ input: replies, crlfDelay: Infinity }).on('line', (line) => {
      const p = this.pending;
      this.pending = undefined;
      this.stderr = '';
      let r: CopyReply;
      try {
        r = JSON.parse(line) as CopyReply;
      } catch {
        r = { ok: false, code: 'E_COPY', message: `copy worker answered ${JSON.stringify(line.slice(0, 200))}` };
      }
      p?.resolve(r);
    });
    this.child.stderr!.on('data', (c: Buffer) => {
      this.stderr = (this.stderr + c.toString('utf8')).slice(-8192);
    });
    this.child.stdin!.on('error', () => undefined); // EPIPE after the worker died: 'close' reports it
    this.child.on('error', (e) => this.die(`cannot start the copy worker: ${e.message}`));
    this.child.on('close', (code, sig) => this.die(this.lastError() ?? `copy worker exited (${sig ?? `status ${code}`})`));
  }

  private lastError(): string | undefined {
    const line = this.stderr.trim().split('\n').pop();
    if (!line) return undefined;
    try {
      return (JSON.parse(line) as { message?: string }).message ?? line;
    } catch {
      return this.stderr.trim();
    }
  }

  private die(message: string): void {
    if (this.dead) return;
    this.dead = true;
    clearTimeout(this.idleTimer);
    this.pending?.resolve({ ok: false, code: 'E_COPY', message });
    this.pending = undefined;
    this.onDead(this);
  }

  /** Whether the process is kept alive for this worker (only while it has a spec). */
  private hold(on: boolean): void {
    for (const h of [this.child, this.child.stdin, this.child.stdio[3], this.child.stderr] as (Refable | null)[]) {
      if (on) h?.ref?.();
      else h?.unref?.();
    }
  }

  run(specFile: string): Promise<CopyReply> {
    clearTimeout(this.idleTimer);
    this.hold(true);
    return new Promise<CopyReply>((resolve) => {
      this.pending = { resolve };
      (this.child.stdin as Writable).write(specFile + '\n');
    }).finally(() => this.hold(false));
  }

  /** Marks the worker idle: it ends after IDLE_MS unless it gets another spec. */
  rest(): void {
    this.idleTimer = setTimeout(() => this.end(), IDLE_MS);
    this.idleTimer.unref();
    this.hold(false);
  }

  end(): void {
    this.child.stdin?.end();
  }
}

/** The copy workers of one build. */
export class CopyWorkers {
  private readonly idle: Worker[] = [];

  private start(): Worker {
    return new Worker((w) => {
      const i = this.idle.indexOf(w);
      if (i >= 0) this.idle.splice(i, 1);
    });
  }

  /** Starts a worker ahead of need when none is idle (its node start overlaps other work). */
  warm(): void {
    if (this.idle.length > 0) return;
    const w = this.start();
    w.rest();
    this.idle.push(w);
  }

  /** Runs one spec on an idle worker (or a new one). */
  async run(specFile: string): Promise<CopyReply> {
    const w = this.idle.pop() ?? this.start();
    const r = await w.run(specFile);
    if (!w.dead) {
      w.rest();
      this.idle.push(w);
    }
    return r;
  }

  /** Ends the idle workers. */
  close(): void {
    for (const w of this.idle.splice(0)) w.end();
  }
}
