import { createHash } from 'node:crypto';
import { HoistError } from '../util/errors.js';

/** A content digest in `sha256:<64 hex>` form (the only algorithm the store keeps). */
export type Digest = `sha256:${string}`;

const SHA256 = /^sha256:[a-f0-9]{64}$/;
// What the OCI spec allows in general; used to tell "unsupported algorithm" from "garbage".
const ANY_DIGEST = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

/** True when `s` is a well-formed sha256 digest. */
export function isDigest(s: unknown): s is Digest {
  return typeof s === 'string' && SHA256.test(s);
}

/** Validates a digest taken from untrusted input (manifests, archives, the command line). */
export function parseDigest(s: unknown, what = 'digest'): Digest {
  if (isDigest(s)) return s;
  if (typeof s === 'string' && ANY_DIGEST.test(s) && !s.startsWith('sha256:')) {
    throw new HoistError('E_DIGEST', `unsupported ${what} algorithm in ${JSON.stringify(s)}: hoist stores sha256 content only`, {
      hint: 'convert the image with a tool that writes sha256 digests (e.g. skopeo copy)',
    });
  }
  throw new HoistError('E_DIGEST', `invalid ${what} ${JSON.stringify(s)}: expected sha256:<64 lowercase hex digits>`);
}

/** The hex part of a digest (the blob's file name). */
export function digestHex(d: Digest): string {
  return d.slice('sha256:'.length);
}

/** sha256 of an in-memory buffer (manifests, configs; never layers). */
export function sha256Of(data: string | Uint8Array): Digest {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}
