/**
 * `hoist build -`: standard input is either a Dockerfile (the build then has an empty
 * context) or a tar archive of the whole context, plain or compressed (gzip, bzip2,
 * xz, zstd), as `docker build -` reads it. The input is spooled to a file first, so a
 * large context is never held in memory, then recognised by its first bytes.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { decompressAuto, detectCompression } from '../image/layer.js';
import { unpackLayer } from '../snapshot/unpack.js';
import { HoistError } from '../util/errors.js';

export type StdinInput = { kind: 'dockerfile'; text: string } | { kind: 'archive'; dir: string };

/** True when the first bytes are a compressed stream or a tar header (`ustar` magic at 257). */
export function looksLikeArchive(head: Buffer): boolean {
  if (detectCompression(head) !== 'uncompressed') return true;
  return head.length >= 262 && head.toString('latin1', 257, 262) === 'ustar';
}

/** Reads stdin into `tmp` and returns the Dockerfile text, or the directory the context archive was unpacked into. */
export async function readStdinInput(stdin: Readable, tmp: string): Promise<StdinInput> {
  const spool = join(tmp, 'stdin');
  await pipeline(stdin, createWriteStream(spool, { mode: 0o600 }));
  const head = Buffer.alloc(512);
  const fh = await open(spool, 'r');
  let n: number;
  try {
    ({ bytesRead: n } = await fh.read(head, 0, head.length, 0));
  } finally {
    await fh.close();
  }
  if (!looksLikeArchive(head.subarray(0, n))) return { kind: 'dockerfile', text: await readFile(spool, 'utf8') };
  const dir = join(tmp, 'context');
  await mkdir(dir, { mode: 0o755 });
  try {
    // the same confined unpacker as image layers: `..`, absolute names and links out of the context are refused;
    // `.wh.` names stay ordinary files, devices are skipped
    await unpackLayer(decompressAuto(createReadStream(spool)), dir, { mode: 'oci', devices: 'skip' });
  } catch (e) {
    const why = e instanceof HoistError ? e.message : (e as Error).message;
    throw new HoistError('E_CONTEXT', `cannot read the build context from stdin: ${why}`, {
      hint: 'pipe a tar archive of the context (plain, gzip, bzip2, xz or zstd), or a Dockerfile',
    });
  }
  return { kind: 'archive', dir };
}
