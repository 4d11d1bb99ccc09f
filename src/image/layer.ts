import { spawn } from 'node:child_process';
import * as zlib from 'node:zlib';
import { Duplex, PassThrough, Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { HoistError } from '../util/errors.js';
import { HashingStream } from './store.js';
import type { Digest } from './digest.js';
import { MediaType } from './types.js';

/** How a layer blob is compressed. `bzip2`/`xz` are only read (docker load accepts them), never written. */
export type Compression = 'gzip' | 'zstd' | 'uncompressed' | 'bzip2' | 'xz';
/** Compressions hoist can write. */
export type WriteCompression = 'gzip' | 'zstd' | 'uncompressed';

/** Result of writing a layer: the identities the config and the manifest need. */
export interface LayerInfo {
  /** sha256 of the uncompressed tar (goes into config.rootfs.diff_ids). */
  diffID: Digest;
  /** sha256 of the bytes written (the blob digest in the manifest). */
  digest: Digest;
  size: number;
  /** Size of the uncompressed tar. */
  uncompressedSize: number;
  mediaType: string;
}

/** Recognises a compression format from the first bytes of a blob. */
export function detectCompression(head: Uint8Array): Compression {
  const b = Buffer.from(head.buffer, head.byteOffset, head.byteLength);
  if (b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b) return 'gzip';
  if (b.length >= 4 && b.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  if (b.length >= 3 && b.toString('latin1', 0, 3) === 'BZh') return 'bzip2';
  if (b.length >= 6 && b.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz';
  return 'uncompressed';
}

/** The compression a layer media type declares (undefined when the type says nothing, e.g. Docker's `tar`). */
export function compressionOfMediaType(mt: string): Compression | undefined {
  if (mt.endsWith('+gzip') || mt.endsWith('.tar.gzip')) return 'gzip';
  if (mt.endsWith('+zstd') || mt.endsWith('.tar.zstd')) return 'zstd';
  if (mt.endsWith('.tar') || mt.endsWith('.diff.tar')) return 'uncompressed';
  return undefined;
}

/** The OCI layer media type for a compression. */
export function layerMediaType(c: Compression): string {
  switch (c) {
    case 'gzip':
      return MediaType.OciLayerGzip;
    case 'zstd':
      return MediaType.OciLayerZstd;
    case 'uncompressed':
      return MediaType.OciLayer;
    default:
      throw new HoistError('E_COMPRESSION', `${c} layers have no OCI media type; hoist stores them as found only after converting`);
  }
}

/** Wraps an external filter program (zstd, xz, bzip2) as a duplex stream. */
function toolStream(cmd: string, args: string[], pkg: string): Duplex {
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => {
    if (stderr.length < 4096) stderr += c.toString();
  });
  // The output ends only once the exit status is known: a tool failing on corrupt
  // input must surface as an error, not as a short, clean-looking stream.
  const out = new PassThrough();
  child.stdout.pipe(out, { end: false });
  const d = Duplex.from({ writable: child.stdin, readable: out });
  child.stdin.on('error', () => undefined); // EPIPE when the tool quits early; its exit status says why
  child.on('error', (e: NodeJS.ErrnoException) => {
    d.destroy(
      e.code === 'ENOENT'
        ? new HoistError('E_TOOL_MISSING', `the ${cmd} program is needed for this layer but is not installed`, { hint: `install it (Debian: apt-get install ${pkg})` })
        : e,
    );
  });
  child.on('close', (code, sig) => {
    if (code === 0) out.end();
    else if (!d.destroyed) {
      const err = new HoistError('E_COMPRESSION', `${cmd} ${args.join(' ')} failed (${sig ?? `exit ${code}`}): ${stderr.trim() || 'corrupt data'}`);
      out.destroy(err);
      d.destroy(err);
    }
  });
  // If the consumer gives up, do not leave the tool running.
  d.on('close', () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return d;
}

const nativeZstd = zlib as unknown as { createZstdCompress?: () => Duplex; createZstdDecompress?: () => Duplex };

/** A decompressor for the given format (a pass-through for uncompressed). */
export function decompressor(c: Compression): Duplex {
  switch (c) {
    case 'gzip':
      return zlib.createGunzip();
    case 'zstd':
      return nativeZstd.createZstdDecompress ? nativeZstd.createZstdDecompress() : toolStream('zstd', ['-d', '-c', '-q'], 'zstd');
    case 'bzip2':
      return toolStream('bzip2', ['-d', '-c', '-q'], 'bzip2');
    case 'xz':
      return toolStream('xz', ['-d', '-c', '-q'], 'xz-utils');
    case 'uncompressed':
      return new PassThrough();
  }
}

/** A compressor for the given format. */
export function compressor(c: WriteCompression, level?: number): Duplex {
  switch (c) {
    case 'gzip':
      return zlib.createGzip(level === undefined ? {} : { level });
    case 'zstd':
      return nativeZstd.createZstdCompress ? nativeZstd.createZstdCompress() : toolStream('zstd', ['-c', '-q', `-${level ?? 3}`, '-T0'], 'zstd');
    case 'uncompressed':
      return new PassThrough();
  }
}

/**
 * Returns the decompressed content of `src`, detecting the format from its magic bytes
 * (so a mislabelled Docker `layer.tar` that is really gzip still reads right).
 * Also reports the detected format through `onDetect`.
 */
export function decompressAuto(src: Readable, onDetect?: (c: Compression) => void): Readable {
  async function* run(): AsyncGenerator<Buffer> {
    const it = src[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    const head: Buffer[] = [];
    let have = 0;
    let done = false;
    while (have < 6) {
      const r = await it.next();
      if (r.done) {
        done = true;
        break;
      }
      const b = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value);
      head.push(b);
      have += b.length;
    }
    const kind = detectCompression(Buffer.concat(head));
    onDetect?.(kind);
    async function* whole(): AsyncGenerator<Buffer> {
      yield* head;
      if (done) return;
      for (;;) {
        const r = await it.next();
        if (r.done) return;
        yield Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value);
      }
    }
    if (kind === 'uncompressed') {
      yield* whole();
      return;
    }
    const dec = decompressor(kind);
    const feeder = Readable.from(whole(), { objectMode: false });
    feeder.on('error', (e) => dec.destroy(e));
    feeder.pipe(dec);
    try {
      for await (const c of dec) yield c as Buffer;
    } finally {
      feeder.destroy();
      dec.destroy();
    }
  }
  const out = Readable.from(run(), { objectMode: false });
  return out;
}

/**
 * Compresses a tar stream into `out`, computing in the same pass the diff ID
 * (sha256 of the tar) and the blob digest (sha256 of what is written).
 */
export async function writeLayer(tar: Readable, out: Writable, compression: WriteCompression = 'gzip', level?: number): Promise<LayerInfo> {
  const tarHash = new HashingStream();
  const blobHash = new HashingStream();
  await pipeline(tar, tarHash, compressor(compression, level), blobHash, out);
  return {
    diffID: tarHash.digest(),
    digest: blobHash.digest(),
    size: blobHash.size,
    uncompressedSize: tarHash.size,
    mediaType: layerMediaType(compression),
  };
}

/** Hashes the decompressed content of a blob stream: its diff ID and uncompressed size. */
export async function diffIDOf(src: Readable): Promise<{ diffID: Digest; size: number; compression: Compression }> {
  let kind: Compression = 'uncompressed';
  const h = new HashingStream();
  await pipeline(
    decompressAuto(src, (k) => (kind = k)),
    h,
    async function (s: AsyncIterable<Buffer>) {
      for await (const _ of s) {
        /* drain */
      }
    },
  );
  return { diffID: h.digest(), size: h.size, compression: kind };
}
