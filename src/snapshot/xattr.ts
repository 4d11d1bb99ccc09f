import { execFile, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { HoistError } from '../util/errors.js';

// Node has no xattr API and hoist ships no addon, so extended attributes go through
// the `attr` package's setfattr/getfattr. Both act on the path with -h (no deref);
// callers only pass paths whose parents were resolved inside the layer root.

let toolCache: Promise<boolean> | undefined;

/** True when setfattr and getfattr are installed (Debian package `attr`). */
export function xattrToolsAvailable(): Promise<boolean> {
  toolCache ??= new Promise((resolve) => {
    execFile('getfattr', ['--version'], (err1) => {
      if (err1) return resolve(false);
      execFile('setfattr', ['--version'], (err2) => resolve(!err2));
    });
  });
  return toolCache;
}

/** Why setting one attribute failed, in errno terms when setfattr said so. */
export type SetXattrFailure = 'unsupported' | 'denied' | 'other';

/** Sets one extended attribute on `path` (never following a final symlink). */
export function setXattr(path: string, name: string, value: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('setfattr', ['-h', '-n', name, '-v', '0x' + value.toString('hex'), '--', path], (err, _out, stderr) => {
      if (!err) return resolve();
      const msg = String(stderr).trim();
      const kind: SetXattrFailure = /not supported/i.test(msg) ? 'unsupported' : /not permitted|denied/i.test(msg) ? 'denied' : 'other';
      reject(Object.assign(new Error(`setfattr ${name} on ${path}: ${msg || err.message}`), { xattrFailure: kind }));
    });
  });
}

/** Classifies an error thrown by setXattr. */
export function xattrFailure(e: unknown): SetXattrFailure {
  return ((e as { xattrFailure?: SetXattrFailure }).xattrFailure) ?? 'other';
}

// getfattr prints names with non-printable bytes and backslashes as \ooo octal.
function unescapeName(s: string): string {
  if (!s.includes('\\')) return s;
  const bytes: number[] = [];
  const raw = Buffer.from(s, 'utf8');
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] === 0x5c && i + 3 < raw.length && /^[0-7]{3}$/.test(raw.subarray(i + 1, i + 4).toString('latin1'))) {
      bytes.push(parseInt(raw.subarray(i + 1, i + 4).toString('latin1'), 8));
      i += 3;
    } else {
      bytes.push(raw[i]!);
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

/**
 * Reads every extended attribute of every file under `dir` in one getfattr run
 * (physical walk, symlinks not followed). Returns absolute path → (name → value);
 * files without attributes are absent, so memory scales with attributed files only.
 */
export function readTreeXattrs(dir: string): Promise<Map<string, Map<string, Buffer>>> {
  return new Promise((resolve, reject) => {
    const out = new Map<string, Map<string, Buffer>>();
    const child = spawn('getfattr', ['-R', '-P', '-h', '-d', '-m', '-', '-e', 'hex', '--absolute-names', '--', dir], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    let current: Map<string, Buffer> | undefined;
    const rl = createInterface({ input: child.stdout, crlfDelay: Infinity });
    rl.on('line', (line) => {
      if (line.startsWith('# file: ')) {
        current = new Map();
        out.set(unescapeName(line.slice(8)), current);
      } else if (line && current) {
        const eq = line.indexOf('=');
        if (eq < 0) return;
        const name = unescapeName(line.slice(0, eq));
        let v = line.slice(eq + 1);
        let value: Buffer;
        if (v.startsWith('0x')) value = Buffer.from(v.slice(2), 'hex');
        else if (v.startsWith('0s')) value = Buffer.from(v.slice(2), 'base64');
        else { if (v.startsWith('"')) v = v.slice(1, -1); value = Buffer.from(v, 'utf8'); }
        current.set(name, value);
      }
    });
    child.on('error', (e) => reject(new HoistError('E_XATTR_TOOL', `cannot run getfattr: ${e.message}`, {
      hint: 'install the "attr" package (apt-get install attr)',
    })));
    child.on('close', (code) => {
      // getfattr exits 1 when some file had no attributes it could read; only a
      // message on stderr means something actually failed.
      if (code !== 0 && stderr.trim()) {
        reject(new HoistError('E_XATTR_READ', `reading extended attributes under ${dir} failed: ${stderr.trim()}`));
      } else resolve(out);
    });
  });
}
