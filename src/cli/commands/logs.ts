import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { HoistCommand } from '../command.js';
import type { CliIO } from '../io.js';
import { HoistError } from '../../util/errors.js';
import { resolveRoot } from '../../util/root.js';
import { containerDir, findContainer, helperAlive, reconcile } from '../../sandbox/container.js';

interface LogLine { log: string; stream: string; time: string }

/** Streams log records from byte `start`; returns the offset after the last complete line. */
async function readLines(path: string, start: number, each: (l: LogLine) => void): Promise<number> {
  const st = await stat(path).catch(() => null);
  if (!st || st.size <= start) return start;
  let offset = start;
  const rl = createInterface({ input: createReadStream(path, { start, end: st.size - 1 }), crlfDelay: Infinity });
  for await (const line of rl) {
    // a line still being written has no newline yet: stop before it
    if (offset + Buffer.byteLength(line) + 1 > st.size) break;
    offset += Buffer.byteLength(line) + 1;
    try {
      each(JSON.parse(line) as LogLine);
    } catch {
      // a torn record from a helper killed mid-write: skip it
    }
  }
  return offset;
}

function printer(io: CliIO, timestamps: boolean): (l: LogLine) => void {
  return (l) => (l.stream === 'stderr' ? io.stderr : io.stdout).write((timestamps ? `${l.time} ` : '') + l.log);
}

export const logsCommand: HoistCommand = {
  command: 'logs <container>',
  describe: "Show a container's output",
  builder: (y) =>
    y
      .positional('container', { type: 'string' })
      .option('follow', { alias: 'f', type: 'boolean', default: false, describe: 'Keep printing new output until the container stops' })
      .option('tail', { alias: 'n', type: 'string', default: 'all', describe: 'Number of lines from the end (or all)' })
      .option('timestamps', { alias: 't', type: 'boolean', default: false, describe: 'Prefix each line with its time' }),
  handler: async (args, io) => {
    const root = resolveRoot(args.root as string | undefined, io.env, io.cwd);
    const c = await findContainer(root, String(args.container));
    const path = join(containerDir(root, c.id), 'log');
    const print = printer(io, !!args.timestamps);
    const tail = String(args.tail);
    let offset = 0;
    if (tail === 'all') offset = await readLines(path, 0, print);
    else {
      const n = Number(tail);
      if (!Number.isInteger(n) || n < 0) throw new HoistError('E_USAGE', `invalid --tail ${tail}: use a number or all`, { exitCode: 1 });
      // keep only the last n records: a ring buffer, never the whole log
      const ring: LogLine[] = [];
      offset = await readLines(path, 0, (l) => {
        ring.push(l);
        if (ring.length > n) ring.shift();
      });
      ring.forEach(print);
    }
    if (!args.follow) return;
    let cur = c;
    for (;;) {
      offset = await readLines(path, offset, print);
      if (!helperAlive(cur)) {
        cur = await reconcile(root, cur);
        await readLines(path, offset, print);
        return;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  },
};
