// A small PAX/ustar header encoder for the layers hoist writes. tar-stream's packer
// replaces mode 0 by 0644, writes PAX values as UTF-8 text (breaking binary xattrs)
// and cannot emit a PAX header of our own, so layer output uses this instead; the
// bodies still stream from disk.

import { encodePaxRecords, PAX_XATTR } from './tarhdr.js';

export type TarType = 'file' | 'link' | 'symlink' | 'char' | 'block' | 'dir' | 'fifo';

const TYPEFLAG: Record<TarType | 'pax', string> = {
  file: '0', link: '1', symlink: '2', char: '3', block: '4', dir: '5', fifo: '6', pax: 'x',
};

/** One entry to write; `name` has no leading slash, directories end with `/`. */
export interface TarEntry {
  name: string;
  type: TarType;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number; // whole seconds
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  xattrs?: Map<string, Buffer>;
}

const BLOCK = 512;
const MAX_OCTAL = (digits: number): number => 8 ** digits - 1;

/** Zero bytes needed to pad `size` up to the next 512-byte block. */
export function padding(size: number): Buffer {
  const rem = size % BLOCK;
  return Buffer.alloc(rem === 0 ? 0 : BLOCK - rem);
}

/** The two zero blocks that end an archive. */
export const END_OF_ARCHIVE = Buffer.alloc(BLOCK * 2);

function isAscii(s: string): boolean {
  return /^[\x20-\x7e]*$/.test(s);
}

function octal(buf: Buffer, off: number, len: number, value: number): void {
  buf.write(value.toString(8).padStart(len - 1, '0') + '\0', off, len, 'latin1');
}

/** Splits a name into ustar prefix and name fields, or null when it needs PAX. */
function splitUstar(name: string): [string, string] | null {
  if (!isAscii(name)) return null;
  if (name.length <= 100) return ['', name];
  for (let i = name.length - 1; i > 0; i--) {
    if (name[i] !== '/') continue;
    const prefix = name.slice(0, i);
    const rest = name.slice(i + 1);
    if (rest.length > 100) break;
    if (prefix.length <= 155 && rest.length > 0) return [prefix, rest];
  }
  return null;
}

function rawHeader(e: { name: string; prefix: string; type: string; mode: number; uid: number; gid: number; size: number; mtime: number; linkname: string; devmajor: number; devminor: number }): Buffer {
  const b = Buffer.alloc(BLOCK);
  b.write(e.name, 0, 100, 'latin1');
  octal(b, 100, 8, e.mode & 0o7777);
  octal(b, 108, 8, e.uid);
  octal(b, 116, 8, e.gid);
  octal(b, 124, 12, e.size);
  octal(b, 136, 12, e.mtime);
  b.write(e.type, 156, 1, 'latin1');
  b.write(e.linkname, 157, 100, 'latin1');
  b.write('ustar\x0000', 257, 8, 'latin1');
  octal(b, 329, 8, e.devmajor);
  octal(b, 337, 8, e.devminor);
  b.write(e.prefix, 345, 155, 'latin1');
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of b) sum += byte;
  b.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'latin1');
  return b;
}

/**
 * Encodes the header block(s) of one entry: a PAX extended header first when the
 * entry has xattrs or anything ustar cannot hold exactly, then the ustar header.
 */
export function encodeHeader(e: TarEntry): Buffer {
  const records: [string, Buffer | string][] = [];
  let split = splitUstar(e.name);
  if (!split) {
    records.push(['path', e.name]);
    const base = e.name.replace(/\/$/, '').split('/').pop() ?? 'x';
    split = ['', (isAscii(base) ? base : 'pax-name').slice(0, 99) + (e.type === 'dir' ? '/' : '')];
  }
  let linkname = e.linkname ?? '';
  if (linkname && (!isAscii(linkname) || linkname.length > 100)) {
    records.push(['linkpath', linkname]);
    linkname = '';
  }
  const small = (v: number, key: string): number => {
    if (v >= 0 && v <= MAX_OCTAL(7) && Number.isInteger(v)) return v;
    records.push([key, String(v)]);
    return 0;
  };
  const uid = small(e.uid, 'uid');
  const gid = small(e.gid, 'gid');
  const mtime = e.mtime >= 0 && e.mtime <= MAX_OCTAL(11) ? e.mtime : (records.push(['mtime', String(e.mtime)]), 0);
  const size = e.size <= MAX_OCTAL(11) ? e.size : (records.push(['size', String(e.size)]), 0);
  if (e.xattrs) {
    // Sorted so that equal trees give byte-identical layers.
    for (const k of [...e.xattrs.keys()].sort()) records.push([PAX_XATTR + k, e.xattrs.get(k)!]);
  }
  const main = rawHeader({
    name: split[1], prefix: split[0], type: TYPEFLAG[e.type], mode: e.mode, uid, gid, size, mtime,
    linkname, devmajor: e.devmajor ?? 0, devminor: e.devminor ?? 0,
  });
  if (records.length === 0) return main;
  const body = encodePaxRecords(records);
  const paxName = ('PaxHeaders/' + split[1]).slice(0, 100);
  const pax = rawHeader({
    name: paxName, prefix: '', type: TYPEFLAG.pax, mode: 0o644, uid: 0, gid: 0, size: body.length, mtime,
    linkname: '', devmajor: 0, devminor: 0,
  });
  return Buffer.concat([pax, body, padding(body.length), main]);
}
