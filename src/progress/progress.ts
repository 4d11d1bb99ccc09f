/**
 * Build progress: the solver reports events per vertex; a renderer turns them into
 * BuildKit-style output (`plain` for CI logs, `tty` for terminals, `rawjson`, `quiet`).
 */
import type { Writable } from 'node:stream';

export type ProgressEvent =
  | { type: 'start'; id: string; name: string }
  | { type: 'log'; id: string; data: Buffer; stream: 1 | 2 }
  | { type: 'status'; id: string; text: string }
  | { type: 'cached'; id: string }
  | { type: 'done'; id: string }
  | { type: 'error'; id: string; message: string };

/** Where the solver sends events. */
export interface Progress {
  emit(e: ProgressEvent): void;
  /** Flushes anything pending. */
  close(): void;
}

export type ProgressMode = 'auto' | 'plain' | 'tty' | 'quiet' | 'rawjson';

interface VState {
  n: number;
  name: string;
  started: number;
  partial: string;
}

/** BuildKit's plain printer: `#N name`, log lines with seconds since start, `#N DONE 1.2s`, `#N CACHED`. */
export class PlainProgress implements Progress {
  private next = 1;
  private readonly v = new Map<string, VState>();
  private last: string | undefined;
  constructor(private readonly out: Writable, private readonly withLogs = true) {}

  private header(id: string): VState {
    const s = this.v.get(id)!;
    if (this.last !== id) {
      if (this.last !== undefined) this.out.write('\n');
      this.out.write(`#${s.n} ${s.name}\n`);
      this.last = id;
    }
    return s;
  }

  emit(e: ProgressEvent): void {
    if (e.type === 'start') {
      if (this.v.has(e.id)) return;
      this.v.set(e.id, { n: this.next++, name: e.name, started: performance.now(), partial: '' });
      this.header(e.id);
      return;
    }
    const s = this.v.get(e.id);
    if (!s) return;
    switch (e.type) {
      case 'log': {
        if (!this.withLogs) return;
        const text = s.partial + e.data.toString('utf8');
        const lines = text.split('\n');
        s.partial = lines.pop() ?? '';
        if (lines.length === 0) return;
        this.header(e.id);
        const t = ((performance.now() - s.started) / 1000).toFixed(3);
        for (const l of lines) this.out.write(`#${s.n} ${t} ${l}\n`);
        return;
      }
      case 'status':
        this.header(e.id);
        this.out.write(`#${s.n} ${e.text}\n`);
        return;
      case 'cached':
        this.header(e.id);
        this.out.write(`#${s.n} CACHED\n`);
        return;
      case 'done':
      case 'error': {
        this.header(e.id);
        if (s.partial && this.withLogs) {
          const t = ((performance.now() - s.started) / 1000).toFixed(3);
          this.out.write(`#${s.n} ${t} ${s.partial}\n`);
          s.partial = '';
        }
        if (e.type === 'done') this.out.write(`#${s.n} DONE ${((performance.now() - s.started) / 1000).toFixed(1)}s\n`);
        else this.out.write(`#${s.n} ERROR: ${e.message}\n`);
        return;
      }
    }
  }

  close(): void {
    if (this.last !== undefined) this.out.write('\n');
    this.last = undefined;
  }
}

/** One JSON object per event. */
export class JSONProgress implements Progress {
  constructor(private readonly out: Writable) {}
  emit(e: ProgressEvent): void {
    const o: Record<string, unknown> = { ...e, time: new Date().toISOString() };
    if (e.type === 'log') o.data = e.data.toString('utf8');
    this.out.write(JSON.stringify(o) + '\n');
  }
  close(): void {}
}

/** Prints nothing. */
export class QuietProgress implements Progress {
  emit(): void {}
  close(): void {}
}

/** The renderer for a `--progress` value (`auto` is tty on a terminal, else plain). */
export function makeProgress(mode: ProgressMode, out: Writable & { isTTY?: boolean }): Progress {
  switch (mode) {
    case 'quiet': return new QuietProgress();
    case 'rawjson': return new JSONProgress(out);
    // the tty renderer prints the plain lines without step output, so a terminal shows the steps' progress only
    case 'tty': return new PlainProgress(out, false);
    case 'auto': return new PlainProgress(out, !out.isTTY);
    default: return new PlainProgress(out);
  }
}
