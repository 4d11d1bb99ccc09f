// PAX handling shared by unpack and diff. tar-stream decodes PAX records as UTF-8
// text, which corrupts binary xattr values (security.capability is binary); these
// helpers keep PAX bytes exact on both sides.

import type { Extract } from 'tar-stream';

/** Prefix of PAX records that carry extended attributes (GNU tar, Go, containerd). */
export const PAX_XATTR = 'SCHILY.xattr.';

/** Symbol under which the raw xattr values of an entry are attached to `header.pax`. */
export const RAW_XATTRS: unique symbol = Symbol('hoist.rawXattrs');

/** Parses a PAX extended header body into records, keeping values as bytes. */
export function parsePaxRecords(buf: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let off = 0;
  while (off < buf.length) {
    const sp = buf.indexOf(0x20, off);
    if (sp < 0) break;
    const len = parseInt(buf.subarray(off, sp).toString('latin1'), 10);
    if (!Number.isFinite(len) || len <= 0 || off + len > buf.length) break;
    const rec = buf.subarray(sp + 1, off + len - 1); // drop trailing newline
    const eq = rec.indexOf(0x3d);
    if (eq > 0) out.set(rec.subarray(0, eq).toString('utf8'), Buffer.from(rec.subarray(eq + 1)));
    off += len;
  }
  return out;
}

/**
 * Makes one tar-stream extractor keep the raw bytes of SCHILY.xattr.* records:
 * after tar-stream decodes a PAX header, the exact values are attached to the
 * decoded object under RAW_XATTRS, which tar-stream then hands out as `header.pax`.
 */
export function keepRawPaxXattrs(ex: Extract): void {
  const inner = ex as unknown as {
    _decodeLongHeader?: (buf: Buffer) => void;
    _header: { type: string } | null;
    _pax: Record<string | symbol, unknown> | null;
    _paxGlobal: Record<string | symbol, unknown> | null;
  };
  const orig = inner._decodeLongHeader;
  if (typeof orig !== 'function') {
    // Without this hook binary xattrs would be silently corrupted; fail loudly instead.
    throw new Error('tar-stream internals changed: _decodeLongHeader is missing (update src/snapshot/tarhdr.ts)');
  }
  inner._decodeLongHeader = function (this: typeof inner, buf: Buffer) {
    orig.call(this, buf);
    const type = this._header?.type;
    if (type !== 'pax-header' && type !== 'pax-global-header') return;
    const target = type === 'pax-header' ? this._pax : this._paxGlobal;
    if (!target) return;
    const xattrs = new Map<string, Buffer>();
    const inherited = target[RAW_XATTRS] as Map<string, Buffer> | undefined;
    if (inherited) for (const [k, v] of inherited) xattrs.set(k, v);
    for (const [k, v] of parsePaxRecords(buf)) {
      if (k.startsWith(PAX_XATTR)) xattrs.set(k.slice(PAX_XATTR.length), v);
    }
    target[RAW_XATTRS] = xattrs;
  };
}

function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`, 'utf8'), value, Buffer.from('\n')]);
  // The length prefix counts its own digits, so grow it until it is self-consistent.
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len), 'latin1'), body]);
}

/** Encodes PAX records with exact byte values (for pack.entry of type 'pax-header'). */
export function encodePaxRecords(records: [string, Buffer | string][]): Buffer {
  return Buffer.concat(records.map(([k, v]) => paxRecord(k, typeof v === 'string' ? Buffer.from(v, 'utf8') : v)));
}
