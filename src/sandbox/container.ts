import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { constants as osConstants } from 'node:os';
import { HoistError } from '../util/errors.js';
import { withFileLock } from '../image/lock.js';
import { imageLayers, openLayer } from '../image/chainid.js';
import type { ResolvedImage, Store } from '../image/store.js';
import { prepareSnapshots, materializeRootfs, canMountOverlay, type SnapshotLayer } from '../snapshot/store.js';
import { randomName, validName } from './names.js';
import type { SandboxMount, SandboxSpec } from './spec.js';
import type { ProcessConfig } from './imageconfig.js';

export type ContainerState = 'created' | 'running' | 'exited';

/** Options a container keeps so that `start` runs it again the same way. */
export interface ContainerRunConfig extends ProcessConfig {
  hostname: string;
  tty: boolean;
  openStdin: boolean;
  network: 'none' | 'host';
  readonlyRootfs: boolean;
  /** User mounts (bind and tmpfs), in order. */
  mounts: SandboxMount[];
  memory?: number;
  pids?: number;
  stopSignal: string;
  autoRemove: boolean;
}

/** `$ROOT/containers/<id>/config.json`. */
export interface ContainerRecord {
  id: string;
  name: string;
  /** Image ID (config digest). */
  image: string;
  /** What the user typed, for `ps`. */
  imageName: string;
  created: string;
  state: ContainerState;
  config: ContainerRunConfig;
  /** `overlay`: layers stay shared, changes go to upper/; `copy`: rootfs/ is a private copy. */
  rootfs: 'overlay' | 'copy';
  helperPid?: number;
  /** Start time of the helper in clock ticks since boot (/proc/PID/stat), against pid reuse. */
  helperStart?: number;
  initPid?: number;
  startedAt?: string;
  finishedAt?: string;
  exitCode?: number;
}

/** `$ROOT/containers`. */
export function containersDir(root: string): string {
  return join(root, 'containers');
}

/** A container's state directory. */
export function containerDir(root: string, id: string): string {
  if (!/^[0-9a-f]{64}$/.test(id)) throw new HoistError('E_BAD_CONTAINER', `invalid container id ${JSON.stringify(id)}`, { exitCode: 125 });
  return join(containersDir(root), id);
}

/** The clock-tick start time of a live process, or undefined when it does not exist. */
export function processStart(pid: number): number | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // the command name may contain spaces and parentheses: fields start after the last ')'
    const fields = s.slice(s.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z') return undefined;
    return Number(fields[19]);
  } catch {
    return undefined;
  }
}

/** True while the helper supervising this container is alive (the same process, not a reused pid). */
export function helperAlive(r: ContainerRecord): boolean {
  if (!r.helperPid) return false;
  const st = processStart(r.helperPid);
  return st !== undefined && (r.helperStart === undefined || st === r.helperStart);
}

function parentOf(pid: number): number | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined;
  }
}

/**
 * True when the container runs: its helper is alive and its recorded init is still
 * the helper's child (a recycled pid must never be signalled or joined).
 */
export function containerRunning(r: ContainerRecord): boolean {
  return r.state === 'running' && !!r.initPid && helperAlive(r) && parentOf(r.initPid) === r.helperPid;
}

/** Writes config.json atomically. */
export async function saveRecord(root: string, r: ContainerRecord): Promise<void> {
  const dir = containerDir(root, r.id);
  const tmp = join(dir, `.config.json.${process.pid}.${randomBytes(4).toString('hex')}`);
  await writeFile(tmp, JSON.stringify(r, null, 2) + '\n', { mode: 0o600 });
  await rename(tmp, join(dir, 'config.json'));
}

async function readRecord(root: string, id: string): Promise<ContainerRecord | null> {
  try {
    return JSON.parse(await readFile(join(containerDir(root, id), 'config.json'), 'utf8')) as ContainerRecord;
  } catch {
    return null;
  }
}

/** Brings the recorded state up to date: a running container whose helper is gone has exited. */
export async function reconcile(root: string, r: ContainerRecord): Promise<ContainerRecord> {
  if (r.state !== 'running' || helperAlive(r)) return r;
  let exit: { exitCode?: number; finishedAt?: string } = {};
  try {
    exit = JSON.parse(await readFile(join(containerDir(root, r.id), 'exit.json'), 'utf8'));
  } catch {
    // the helper was killed before it could record the status: report it as SIGKILL
  }
  const done: ContainerRecord = { ...r, state: 'exited', exitCode: exit.exitCode ?? 137, finishedAt: exit.finishedAt ?? new Date().toISOString() };
  await saveRecord(root, done).catch(() => undefined);
  return done;
}

/** Every container record, newest first, with states reconciled. */
export async function listContainers(root: string): Promise<ContainerRecord[]> {
  const ids = await readdir(containersDir(root)).catch(() => [] as string[]);
  const out: ContainerRecord[] = [];
  for (const id of ids) {
    if (!/^[0-9a-f]{64}$/.test(id)) continue;
    const r = await readRecord(root, id);
    if (r) out.push(await reconcile(root, r));
  }
  return out.sort((a, b) => b.created.localeCompare(a.created));
}

/** Finds a container by name, full ID or unique ID prefix. */
export async function findContainer(root: string, ref: string): Promise<ContainerRecord> {
  const all = await listContainers(root);
  const name = ref.replace(/^\//, '');
  const byName = all.find((c) => c.name === name);
  if (byName) return byName;
  if (/^[0-9a-f]+$/.test(ref)) {
    const hits = all.filter((c) => c.id.startsWith(ref));
    if (hits.length > 1) throw new HoistError('E_AMBIGUOUS', `container ID prefix ${ref} matches ${hits.length} containers`, { hint: 'give more characters of the ID', exitCode: 1 });
    if (hits.length === 1) return hits[0]!;
  }
  throw new HoistError('E_NO_CONTAINER', `no such container: ${ref}`, { hint: 'list containers with `hoist ps -a`', exitCode: 1 });
}

/** Creates the container's directory and record; the name is checked and taken under a lock. */
export async function createContainer(root: string, img: ResolvedImage, imageName: string, name: string | undefined, config: Omit<ContainerRunConfig, 'hostname'> & { hostname?: string }): Promise<ContainerRecord> {
  await mkdir(containersDir(root), { recursive: true, mode: 0o711 });
  const id = randomBytes(32).toString('hex');
  if (name !== undefined && !validName(name)) {
    throw new HoistError('E_BAD_NAME', `invalid container name ${JSON.stringify(name)}: only [a-zA-Z0-9][a-zA-Z0-9_.-]+ are allowed`, { exitCode: 125 });
  }
  return withFileLock(join(root, 'containers.lock'), async () => {
    const taken = new Set((await listContainers(root)).map((c) => c.name));
    let n = name?.replace(/^\//, '');
    if (n !== undefined && taken.has(n)) {
      throw new HoistError('E_NAME_IN_USE', `the container name "${n}" is already in use`, { hint: `remove that container (hoist rm ${n}) or choose another name`, exitCode: 125 });
    }
    while (n === undefined || taken.has(n)) n = randomName();
    const dir = containerDir(root, id);
    await mkdir(dir, { mode: 0o700 });
    const rec: ContainerRecord = {
      id,
      name: n,
      image: img.id,
      imageName,
      created: new Date().toISOString(),
      state: 'created',
      config: { ...config, hostname: config.hostname ?? id.slice(0, 12) },
      rootfs: 'overlay',
    };
    await saveRecord(root, rec);
    return rec;
  });
}

/**
 * Docker's "init layer": mount points the sandbox always binds over (/etc/hosts,
 * /etc/hostname, /etc/resolv.conf, /proc, /sys, /dev) exist in a read-only layer
 * between the image and the container's upper dir, so they never end up in it (or in
 * a `hoist commit`).
 */
async function initLayer(dir: string): Promise<string> {
  const init = join(dir, 'init');
  for (const d of ['etc', 'proc', 'sys', 'dev']) await mkdir(join(init, d), { recursive: true, mode: 0o755 });
  for (const f of ['hosts', 'hostname', 'resolv.conf']) await writeFile(join(init, 'etc', f), '', { flag: 'a', mode: 0o644 });
  return init;
}

/**
 * Makes the container's root filesystem ready: unpacks missing layer snapshots and
 * returns the spec's rootfs (overlay of the snapshots + upper/, or a private copy
 * in rootfs/ where overlayfs cannot be mounted, e.g. rootless).
 */
export async function prepareContainerRootfs(store: Store, img: ResolvedImage, rec: ContainerRecord, onWarning?: (m: string) => void): Promise<{ rootfs: SandboxSpec['rootfs']; kind: 'overlay' | 'copy' }> {
  const root = store.root;
  const dir = containerDir(root, rec.id);
  const layers: SnapshotLayer[] = imageLayers(img).map((l) => ({
    diffID: l.diffID,
    chainID: l.chainID,
    open: async () => openLayer(store, l.descriptor),
  }));
  const dirs = await prepareSnapshots(root, layers, { onWarning });
  const mountpoint = join(dir, 'rootfs');
  const copied = await stat(join(dir, 'rootfs', 'proc')).catch(() => null);
  // Root can always mount overlay on a normal filesystem; only ask the kernel when not root.
  const overlay = rec.rootfs === 'copy' && copied ? { ok: false } : process.getuid?.() === 0 ? { ok: true } : await canMountOverlay(root);
  if (overlay.ok) {
    await mkdir(join(dir, 'upper'), { recursive: true });
    await mkdir(join(dir, 'work'), { recursive: true });
    await mkdir(mountpoint, { recursive: true });
    dirs.push(await initLayer(dir));
    return { kind: 'overlay', rootfs: { lower: dirs, upper: join(dir, 'upper'), work: join(dir, 'work'), mountpoint } };
  }
  const entries = await readdir(mountpoint).catch(() => null);
  if (!entries || entries.length === 0) await materializeRootfs(dirs, mountpoint, { onWarning });
  return { kind: 'copy', rootfs: { path: mountpoint } };
}

/** /etc/hosts, /etc/resolv.conf and /etc/hostname for the container, written into its directory. */
export async function writeEtcFiles(root: string, rec: ContainerRecord): Promise<SandboxMount[]> {
  const dir = containerDir(root, rec.id);
  const h = rec.config.hostname;
  let hosts = `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t${h}\n`;
  if (rec.config.network === 'host') {
    const host = await readFile('/etc/hosts', 'utf8').catch(() => '');
    hosts = host ? `${host.replace(/\n?$/, '\n')}127.0.1.1\t${h}\n` : hosts;
  }
  const resolv = (await readFile('/etc/resolv.conf', 'utf8').catch(() => '')) || 'nameserver 8.8.8.8\n';
  await writeFile(join(dir, 'hosts'), hosts);
  await writeFile(join(dir, 'resolv.conf'), resolv);
  await writeFile(join(dir, 'hostname'), h + '\n');
  return ['hosts', 'resolv.conf', 'hostname'].map((f) => ({ type: 'bind' as const, source: join(dir, f), destination: `/etc/${f}` }));
}

/** The helper spec that starts this container. */
export async function containerSpec(store: Store, img: ResolvedImage, rec: ContainerRecord, onWarning?: (m: string) => void): Promise<{ spec: SandboxSpec; kind: 'overlay' | 'copy' }> {
  const c = rec.config;
  const { rootfs, kind } = await prepareContainerRootfs(store, img, rec, onWarning);
  const dir = containerDir(store.root, rec.id);
  const etc = await writeEtcFiles(store.root, rec);
  const spec: SandboxSpec = {
    args: c.args,
    env: c.env,
    cwd: c.cwd,
    user: c.user,
    hostname: c.hostname,
    rootfs,
    readonlyRootfs: c.readonlyRootfs,
    mounts: [...etc, ...c.mounts],
    network: c.network,
    tty: c.tty,
    openStdin: c.openStdin,
    logPath: join(dir, 'log'),
    exitFile: join(dir, 'exit.json'),
    ...(c.memory || c.pids ? { cgroup: { name: `hoist-${rec.id.slice(0, 12)}`, ...(c.memory ? { memory: c.memory } : {}), ...(c.pids ? { pids: c.pids } : {}) } } : {}),
  };
  return { spec, kind };
}

/** Parses `TERM`, `SIGTERM`, `15` into a signal number. */
export function parseSignal(s: string): number {
  if (/^\d+$/.test(s)) {
    const n = Number(s);
    if (n > 0 && n < 65) return n;
  } else {
    const name = s.toUpperCase().startsWith('SIG') ? s.toUpperCase() : `SIG${s.toUpperCase()}`;
    const n = (osConstants.signals as Record<string, number>)[name];
    if (n) return n;
  }
  throw new HoistError('E_BAD_SIGNAL', `invalid signal ${JSON.stringify(s)}`, { hint: 'use a name such as TERM or KILL, or a number', exitCode: 1 });
}

function requireRunning(r: ContainerRecord): number {
  if (!containerRunning(r) || !r.initPid) {
    throw new HoistError('E_NOT_RUNNING', `container ${r.name} is not running`, { hint: 'start it with `hoist start`', exitCode: 1 });
  }
  return r.initPid;
}

/** Sends a signal to the container's init, which passes it on to the command (SIGKILL ends the whole container). */
export function signalContainer(r: ContainerRecord, sig: number): void {
  const pid = requireRunning(r);
  try {
    process.kill(pid, sig);
  } catch (e) {
    throw new HoistError('E_KILL', `cannot signal container ${r.name}: ${(e as Error).message}`, { exitCode: 1 });
  }
}

/** Resolves when the container's helper has exited (polling: it is not our child). */
export async function waitStopped(root: string, r: ContainerRecord, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (helperAlive(r)) {
    if (Date.now() >= deadline) return false;
    await new Promise((res) => setTimeout(res, 20));
  }
  await reconcile(root, r);
  return true;
}

/** Docker's stop: the image's STOPSIGNAL, then SIGKILL after `timeoutSec`. */
export async function stopContainer(root: string, r: ContainerRecord, timeoutSec: number): Promise<void> {
  if (r.state !== 'running' || !helperAlive(r)) return;
  try {
    signalContainer(r, parseSignal(r.config.stopSignal || 'SIGTERM'));
  } catch (e) {
    if (!helperAlive(r)) return;
    throw e;
  }
  if (await waitStopped(root, r, timeoutSec * 1000)) return;
  if (r.initPid && containerRunning(r)) process.kill(r.initPid, 'SIGKILL');
  await waitStopped(root, r, 10_000);
}

/** Deletes the container's directory (the caller stops it first). */
export async function removeContainerDir(root: string, r: ContainerRecord): Promise<void> {
  const dir = containerDir(root, r.id);
  // Renaming first makes the removal look atomic to `ps` and to the image module.
  const trash = join(root, 'tmp', `${process.pid}-container-rm-${randomBytes(6).toString('hex')}`);
  await mkdir(join(root, 'tmp'), { recursive: true, mode: 0o700 });
  await rename(dir, trash).catch(async (e: NodeJS.ErrnoException) => {
    if (e.code !== 'ENOENT') throw e;
  });
  await rm(trash, { recursive: true, force: true });
}
