/**
 * A raw ustar writer for hostile-input tests: writes entry names and link targets
 * exactly as given (`../escape`, absolute paths, links out of the archive), which
 * honest tar writers (and hoist's own) refuse to produce.
 */

export type RawEntry =
  | { type: 'file'; name: string; data: string | Buffer; mode?: number }
  | { type: 'dir'; name: string; mode?: number }
  | { type: 'symlink'; name: string; target: string }
  | { type: 'link'; name: string; target: string };

function header(name: string, type: string, size: number, mode: number, linkname = ''): Buffer {
  const h = Buffer.alloc(512);
  if (Buffer.byteLength(name) > 100) throw new Error(`rawtar: name longer than 100 bytes: ${name}`);
  h.write(name, 0);
  h.write(mode.toString(8).padStart(7, '0') + '\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(size.toString(8).padStart(11, '0') + '\0', 124);
  h.write('00000000000\0', 136);
  h.write('        ', 148);
  h.write(type, 156);
  h.write(linkname, 157);
  h.write('ustar\0', 257);
  h.write('00', 263);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
  return h;
}

/** An uncompressed tar of `entries`, in order, with the two zero blocks at the end. */
export function rawTar(entries: RawEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    if (e.type === 'file') {
      const data = Buffer.from(e.data);
      parts.push(header(e.name, '0', data.length, e.mode ?? 0o644));
      const padded = Buffer.alloc(Math.ceil(data.length / 512) * 512);
      data.copy(padded);
      parts.push(padded);
    } else if (e.type === 'dir') parts.push(header(e.name, '5', 0, e.mode ?? 0o755));
    else if (e.type === 'symlink') parts.push(header(e.name, '2', 0, 0o777, e.target));
    else parts.push(header(e.name, '1', 0, 0o644, e.target));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}
