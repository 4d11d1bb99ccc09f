import { createInterface } from 'node:readline';
import type { CliIO } from './io.js';

/**
 * docker's prompt.Confirm, shared by the prune commands: the question with ` [y/N] `,
 * one line from stdin; only `y` (any case) is yes, EOF is no.
 */
export async function confirm(io: CliIO, message: string): Promise<boolean> {
  io.stdout.write(`${message} [y/N] `);
  const rl = createInterface({ input: io.stdin, terminal: false });
  try {
    const line = await new Promise<string | undefined>((resolve) => {
      rl.once('line', (l) => resolve(l));
      rl.once('close', () => resolve(undefined));
    });
    return line !== undefined && line.trim().toLowerCase() === 'y';
  } finally {
    rl.close();
    io.stdin.pause();
  }
}
