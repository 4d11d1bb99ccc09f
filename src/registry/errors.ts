import { HoistError } from '../util/errors.js';

/** Error codes of the distribution spec that mean "this name/reference does not exist". */
const UNKNOWN_CODES = new Set(['MANIFEST_UNKNOWN', 'NAME_UNKNOWN', 'BLOB_UNKNOWN', 'NOT_FOUND']);

/** One entry of a registry's `{"errors":[…]}` body. */
export interface RegistryErrorEntry {
  code?: string;
  message?: string;
  detail?: unknown;
}

/** Parses the JSON error body of a failed registry response (bounded; tolerant of junk). */
export async function readErrorBody(res: Response): Promise<RegistryErrorEntry[]> {
  let text = '';
  try {
    text = await readTextLimited(res, 64 * 1024);
  } catch {
    return [];
  }
  try {
    const v = JSON.parse(text) as { errors?: RegistryErrorEntry[] };
    if (Array.isArray(v?.errors)) return v.errors.filter((e) => e && typeof e === 'object');
  } catch {
    /* not JSON: fall through */
  }
  const t = text.trim().slice(0, 200);
  return t ? [{ message: t }] : [];
}

/** Reads at most `max` bytes of a response body as text; longer bodies are refused. */
export async function readTextLimited(res: Response, max: number): Promise<string> {
  return (await readBytesLimited(res, max)).toString('utf8');
}

/** Reads a whole (small) response body, refusing more than `max` bytes. */
export async function readBytesLimited(res: Response, max: number): Promise<Buffer> {
  const len = Number(res.headers.get('content-length') ?? NaN);
  if (Number.isFinite(len) && len > max) {
    await res.body?.cancel().catch(() => undefined);
    throw new HoistError('E_REGISTRY', `the registry sent ${len} bytes where at most ${max} were expected`);
  }
  const chunks: Buffer[] = [];
  let n = 0;
  if (!res.body) return Buffer.alloc(0);
  for await (const c of res.body as unknown as AsyncIterable<Uint8Array>) {
    n += c.length;
    if (n > max) {
      await res.body.cancel().catch(() => undefined);
      throw new HoistError('E_REGISTRY', `the registry sent more than the ${max} bytes expected`);
    }
    chunks.push(Buffer.from(c));
  }
  return Buffer.concat(chunks);
}

/** Turns a failed registry response into a HoistError that says what was asked and what the registry answered. */
export async function responseError(res: Response, what: string, ctx: { credentials?: string; reference?: string } = {}): Promise<HoistError> {
  const errs = await readErrorBody(res);
  const detail = errs.map((e) => [e.code?.toLowerCase().replace(/_/g, ' '), e.message].filter(Boolean).join(': ')).filter(Boolean).join('; ');
  const said = detail ? `: ${detail}` : '';
  if (res.status === 401) {
    return new HoistError('E_UNAUTHORIZED', `${what}: the registry refused the request (401 unauthorized${said}); tried ${ctx.credentials ?? 'no credentials'}`, {
      hint: 'log in with `hoist login REGISTRY` (or `docker login`), or check the user name and password',
    });
  }
  if (res.status === 403) {
    return new HoistError('E_DENIED', `${what}: access denied (403 forbidden${said}); tried ${ctx.credentials ?? 'no credentials'}`, {
      hint: 'these credentials lack permission for this repository; log in as a user who has it',
    });
  }
  if (res.status === 404 || errs.some((e) => e.code && UNKNOWN_CODES.has(e.code))) {
    const codes = errs.map((e) => e.code?.toLowerCase().replace(/_/g, ' ')).filter(Boolean).join(', ');
    const head = ctx.reference ? `${ctx.reference} not found in the registry` : 'not found';
    return new HoistError('E_NOT_FOUND', `${what}: ${head} (${codes || '404'})`, {
      hint: ctx.reference ? `check the name and tag; list tags with: curl REGISTRY/v2/NAME/tags/list` : undefined,
    });
  }
  return new HoistError('E_REGISTRY', `${what}: the registry answered ${res.status} ${res.statusText}${said}`);
}

/** The low-level cause code of a failed fetch (ECONNREFUSED, ENOTFOUND, UND_ERR_SOCKET, …). */
export function netErrorCode(e: unknown): string | undefined {
  let cur: unknown = e;
  for (let i = 0; i < 5 && cur; i++) {
    const c = (cur as { code?: unknown }).code;
    if (typeof c === 'string') return c;
    cur = (cur as { cause?: unknown }).cause;
  }
  if (e instanceof Error && /terminated|other side closed|socket/i.test(e.message)) return 'UND_ERR_SOCKET';
  return undefined;
}

/** True for network failures worth retrying (the connection broke; the host exists and answered before). */
export function isRetryableNetError(e: unknown): boolean {
  const c = netErrorCode(e);
  return c === 'ECONNRESET' || c === 'UND_ERR_SOCKET' || c === 'EPIPE' || c === 'ETIMEDOUT' || c === 'UND_ERR_CONNECT_TIMEOUT' || c === 'UND_ERR_HEADERS_TIMEOUT' || c === 'UND_ERR_BODY_TIMEOUT' || c === 'EAI_AGAIN' || c === 'ECONNABORTED';
}

/** Maps a network-level failure to a HoistError naming the host and the likely fix. */
export function networkError(e: unknown, host: string, url: string, insecureHint: boolean): HoistError {
  if (e instanceof HoistError) return e;
  const c = netErrorCode(e);
  const msg = innermostMessage(e);
  if (c === 'ENOTFOUND' || c === 'EAI_AGAIN' || c === 'EAI_NONAME') {
    return new HoistError('E_REGISTRY_UNREACHABLE', `cannot reach registry ${host}: the host name does not resolve (${c})`, { hint: 'check the registry name in the image reference and your DNS/network' });
  }
  if (c === 'ECONNREFUSED') {
    return new HoistError('E_REGISTRY_UNREACHABLE', `cannot reach registry ${host}: connection refused (${url})`, { hint: 'is the registry running and listening on that port?' });
  }
  if (c && (c.startsWith('ERR_SSL') || c.startsWith('ERR_TLS') || c === 'EPROTO' || /CERT|SELF_SIGNED|UNABLE_TO_VERIFY/.test(c))) {
    return new HoistError('E_TLS', `TLS connection to registry ${host} failed: ${msg} (${c})`, {
      hint: insecureHint ? `if ${host} serves plain HTTP or a self-signed certificate, pass --insecure-registry ${host}` : undefined,
    });
  }
  if (/bad port/i.test(msg)) {
    return new HoistError('E_REGISTRY_UNREACHABLE', `cannot reach registry ${host}: its port is on the fetch standard's list of blocked ports (${url})`, { hint: 'serve the registry on another port (e.g. 5000)' });
  }
  if (isRetryableNetError(e)) {
    return new HoistError('E_REGISTRY_CONNECTION', `the connection to registry ${host} was dropped (${c ?? msg}) while talking to ${url}`, { hint: 'the registry or a proxy closed the connection midway; try again' });
  }
  return new HoistError('E_REGISTRY_CONNECTION', `request to registry ${host} failed: ${msg}${c ? ` (${c})` : ''}`);
}

function innermostMessage(e: unknown): string {
  let cur: unknown = e;
  let msg = String((e as Error)?.message ?? e);
  for (let i = 0; i < 5 && cur; i++) {
    if ((cur as Error).message) msg = (cur as Error).message;
    cur = (cur as { cause?: unknown }).cause;
  }
  return msg;
}
