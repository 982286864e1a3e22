import { closeSync, existsSync, openSync, readFileSync, readSync as readFd } from 'node:fs';
import { join } from 'node:path';
import { parseCgroupFile } from '../../agent/attribution/cgroup-container.js';
import type { ContainerStats } from './facts.js';
import { arr, at, num, obj, str } from './json.js';

/** Stats without the rate computed from two samples. */
export type RawStats = Omit<ContainerStats, 'cpuCores'>;

// The kernel's "no limit" for cgroup v1 (PAGE_COUNTER_MAX pages) is just under 2^63.
const UNLIMITED = 2 ** 62;

/** `key value` lines (memory.stat, memory.events, memory.oom_control, cpu.stat) as a map. */
export function parseKeyValues(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const sp = line.indexOf(' ');
    if (sp <= 0) continue;
    const v = Number(line.slice(sp + 1));
    if (Number.isFinite(v)) out.set(line.slice(0, sp), v);
  }
  return out;
}

/** The value of one `key value` line, without building a map of every key (memory.stat has 40+). */
export function keyValue(text: string | undefined, key: string): number | undefined {
  if (text === undefined) return undefined;
  const at = text.startsWith(`${key} `) ? 0 : text.indexOf(`\n${key} `);
  if (at < 0) return undefined;
  const start = at === 0 ? key.length + 1 : at + key.length + 2;
  const end = text.indexOf('\n', start);
  const n = Number(text.slice(start, end < 0 ? undefined : end));
  return Number.isFinite(n) ? n : undefined;
}

/** A single-number file (memory.current, pids.current); `max` and v1's near-2^63 mean no limit. */
export function parseSingle(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const t = text.trim();
  if (t === 'max') return undefined;
  const n = Number(t);
  return t !== '' && Number.isFinite(n) && n < UNLIMITED ? n : undefined;
}

/** v1 blkio.throttle.io_service_bytes(_recursive): `MAJ:MIN Read N` lines, summed over devices. */
export function parseBlkioV1(text: string): { read: number; write: number } {
  let read = 0;
  let write = 0;
  for (const line of text.split('\n')) {
    const [, op, value] = line.trim().split(/\s+/);
    const n = Number(value);
    if (!Number.isFinite(n)) continue;
    if (op === 'Read') read += n;
    else if (op === 'Write') write += n;
  }
  return { read, write };
}

/** v2 io.stat: `MAJ:MIN rbytes=N wbytes=N ...` lines, summed over devices. */
export function parseIoStatV2(text: string): { read: number; write: number } {
  let read = 0;
  let write = 0;
  for (const m of text.matchAll(/\b([rw])bytes=(\d+)/g)) {
    if (m[1] === 'r') read += Number(m[2]);
    else write += Number(m[2]);
  }
  return { read, write };
}

/** /proc/<pid>/net/dev totals over the container's interfaces, loopback excluded (as `docker stats`). */
export function parseNetDev(text: string): { rx: number; tx: number } {
  let rx = 0;
  let tx = 0;
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    if (line.slice(0, colon).trim() === 'lo') continue;
    const f = line
      .slice(colon + 1)
      .trim()
      .split(/\s+/);
    const r = Number(f[0]);
    const t = Number(f[8]);
    if (Number.isFinite(r) && Number.isFinite(t)) {
      rx += r;
      tx += t;
    }
  }
  return { rx, tx };
}

function workingSet(
  usage: number | undefined,
  inactiveFile: number | undefined,
): number | undefined {
  if (usage === undefined) return undefined;
  return Math.max(0, usage - (inactiveFile ?? 0));
}

/**
 * One-shot `GET /containers/{id}/stats?stream=false&one-shot=true` to stats. The limit comes from
 * the container's configuration: without one the API reports the host's memory as the "limit".
 */
export function parseApiStats(json: unknown, memoryLimitBytes: number | undefined): RawStats {
  const mem = obj(at(json, 'memory_stats'));
  const memStats = obj(mem?.stats);
  const usage = num(mem?.usage);
  // v1 names the hierarchical value total_inactive_file; v2 has only inactive_file.
  const inactive = num(memStats?.total_inactive_file) ?? num(memStats?.inactive_file);
  let rx: number | undefined;
  let tx: number | undefined;
  const networks = obj(at(json, 'networks'));
  if (networks) {
    rx = 0;
    tx = 0;
    for (const n of Object.values(networks)) {
      rx += num(at(n, 'rx_bytes')) ?? 0;
      tx += num(at(n, 'tx_bytes')) ?? 0;
    }
  }
  let read: number | undefined;
  let write: number | undefined;
  const blkio = at(json, 'blkio_stats', 'io_service_bytes_recursive');
  if (Array.isArray(blkio)) {
    read = 0;
    write = 0;
    for (const e of arr(blkio)) {
      const op = (str(at(e, 'op')) ?? '').toLowerCase();
      const v = num(at(e, 'value')) ?? 0;
      if (op === 'read') read += v;
      else if (op === 'write') write += v;
    }
  }
  const totalNs = num(at(json, 'cpu_stats', 'cpu_usage', 'total_usage'));
  return {
    source: 'api',
    cpuSeconds: totalNs === undefined ? undefined : totalNs / 1e9,
    memoryUsageBytes: usage,
    memoryLimitBytes,
    memoryWorkingSetBytes: workingSet(usage, inactive),
    networkReceiveBytes: rx,
    networkTransmitBytes: tx,
    blockReadBytes: read,
    blockWriteBytes: write,
    pids: num(at(json, 'pids_stats', 'current')),
  };
}

/** Where a container's cgroup files are, resolved once per run from its first process. */
export type CgroupLocation =
  | { readonly version: 2; readonly dir: string }
  | {
      readonly version: 1;
      readonly dirs: Readonly<Record<'memory' | 'cpuacct' | 'blkio' | 'pids', string | undefined>>;
    };

/** Reads a pseudo-file; undefined when absent or unreadable. */
export type ReadFile = (path: string) => string | undefined;

const BUFFER = Buffer.alloc(64 * 1024);

/**
 * Synchronous on purpose: cgroup and /proc files are produced by the kernel on read and never
 * wait on a disk; a cycle reads six per container, and open + read + close into one reused
 * buffer costs a fraction of readFileSync (no fstat, no allocation) or of an async read.
 */
const readSync: ReadFile = (path) => {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return undefined;
  }
  try {
    const n = readFd(fd, BUFFER, 0, BUFFER.length, 0);
    if (n < BUFFER.length) return BUFFER.toString('latin1', 0, n);
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
  // Bigger than the buffer (a huge memory.stat): read it whole.
  try {
    return readFileSync(path, 'latin1');
  } catch {
    return undefined;
  }
};

/**
 * Pseudo-files read through descriptors kept open between cycles: opening a cgroup file costs
 * the kernel several times what reading it does, and a cycle reads six per container. A pread
 * at offset 0 makes the kernel generate the content again. A file of a removed cgroup or an
 * exited process fails to read (ENODEV/ESRCH), never shows another's data; it is then closed.
 */
export class PseudoFiles {
  private readonly fds = new Map<string, number>();

  /** At most this many descriptors are kept (the rest are opened and closed per read). */
  constructor(private readonly maxOpen = 512) {}

  /** The file's current content, undefined when it cannot be read. */
  read(path: string): string | undefined {
    let fd = this.fds.get(path);
    const kept = fd !== undefined;
    if (fd === undefined) {
      try {
        fd = openSync(path, 'r');
      } catch {
        return undefined;
      }
    }
    let n: number;
    try {
      n = readFd(fd, BUFFER, 0, BUFFER.length, 0);
    } catch {
      closeSync(fd);
      if (kept) this.fds.delete(path);
      return undefined;
    }
    if (!kept && this.fds.size < this.maxOpen) this.fds.set(path, fd);
    else if (!kept) closeSync(fd);
    // Bigger than the buffer (a huge memory.stat): read it whole.
    return n < BUFFER.length ? BUFFER.toString('latin1', 0, n) : readSync(path);
  }

  /** Closes the descriptors of files under these directories (a container run ended). */
  release(dirs: readonly string[]): void {
    for (const [path, fd] of this.fds) {
      if (dirs.some((d) => path.startsWith(`${d}/`))) {
        closeSync(fd);
        this.fds.delete(path);
      }
    }
  }

  /** Closes every descriptor. */
  close(): void {
    for (const fd of this.fds.values()) closeSync(fd);
    this.fds.clear();
  }

  /** Descriptors kept open. */
  get size(): number {
    return this.fds.size;
  }
}

/** Options of the cgroup stats reader. */
export interface CgroupStatsOptions {
  readonly cgroupRoot: string;
  readonly procRoot: string;
  readonly read?: ReadFile;
  /** Whether the host runs cgroup v2 only; detected from `<cgroupRoot>/cgroup.controllers` by default. */
  readonly unified?: boolean;
}

/** Container stats straight from cgroup files (v1 and v2) and the container's /proc/<pid>/net/dev. */
export class CgroupStats {
  private readonly read: ReadFile;
  private readonly unified: boolean;
  private readonly files: PseudoFiles | undefined;

  constructor(private readonly options: CgroupStatsOptions) {
    if (options.read) {
      this.read = options.read;
    } else {
      const files = new PseudoFiles();
      this.files = files;
      this.read = (path) => files.read(path);
    }
    this.unified = options.unified ?? existsSync(join(options.cgroupRoot, 'cgroup.controllers'));
  }

  /** Closes what a finished run's sampling kept open. */
  release(location: CgroupLocation | null | undefined, pid: number | undefined): void {
    const dirs: string[] = [];
    if (location?.version === 2) dirs.push(location.dir);
    if (location?.version === 1) {
      for (const d of Object.values(location.dirs)) if (d !== undefined) dirs.push(d);
    }
    if (pid !== undefined) dirs.push(join(this.options.procRoot, String(pid)));
    this.files?.release(dirs);
  }

  /** Closes every kept descriptor (the collector stopped). */
  close(): void {
    this.files?.close();
  }

  /** Descriptors kept open (for tests). */
  get openFiles(): number {
    return this.files?.size ?? 0;
  }

  /** The cgroup directories of the process `pid`, or undefined when they cannot be used. */
  locate(pid: number): CgroupLocation | undefined {
    // Read once per run: not worth a kept descriptor.
    const text = (this.options.read ?? readSync)(
      join(this.options.procRoot, String(pid), 'cgroup'),
    );
    if (text === undefined) return undefined;
    const lines = parseCgroupFile(text);
    // A path relative to another cgroup namespace ("/../..") cannot be joined to our mount.
    const usable = (p: string) => !p.split('/').includes('..');
    const root = this.options.cgroupRoot;
    if (this.unified) {
      const line = lines.find((l) => l.hierarchyId === 0 && l.controllers.length === 0);
      if (!line || !usable(line.path) || line.path === '/') return undefined;
      return { version: 2, dir: join(root, line.path) };
    }
    const dirOf = (controller: string): string | undefined => {
      const line = lines.find((l) => l.controllers.includes(controller));
      if (!line || !usable(line.path)) return undefined;
      // Mounted as its own directory (`memory`) or co-mounted (`cpu,cpuacct`) with per-name links.
      const candidates = [controller, line.controllers.join(',')].map((m) =>
        join(root, m, line.path),
      );
      return candidates.find((d) => existsSync(d));
    };
    const dirs = {
      memory: dirOf('memory'),
      cpuacct: dirOf('cpuacct'),
      blkio: dirOf('blkio'),
      pids: dirOf('pids'),
    };
    return dirs.memory || dirs.cpuacct ? { version: 1, dirs } : undefined;
  }

  /** Reads one sample; undefined when the cgroup is gone (the container stopped meanwhile). */
  sample(location: CgroupLocation, pid: number, withNetwork: boolean): RawStats | undefined {
    const stats =
      location.version === 2 ? this.sampleV2(location.dir) : this.sampleV1(location.dirs);
    if (!stats) return undefined;
    if (!withNetwork) return stats;
    const dev = this.read(join(this.options.procRoot, String(pid), 'net', 'dev'));
    if (dev === undefined) return stats;
    const net = parseNetDev(dev);
    return { ...stats, networkReceiveBytes: net.rx, networkTransmitBytes: net.tx };
  }

  private sampleV2(dir: string): RawStats | undefined {
    const f = (name: string) => this.read(join(dir, name));
    const usage = parseSingle(f('memory.current'));
    if (usage === undefined) return undefined;
    const stat = f('memory.stat');
    const events = f('memory.events');
    const io = f('io.stat');
    const blk = io === undefined ? undefined : parseIoStatV2(io);
    const usec = keyValue(f('cpu.stat'), 'usage_usec');
    return {
      source: 'cgroup',
      cpuSeconds: usec === undefined ? undefined : usec / 1e6,
      memoryUsageBytes: usage,
      memoryLimitBytes: parseSingle(f('memory.max')),
      memoryWorkingSetBytes: workingSet(usage, keyValue(stat, 'inactive_file')),
      oomKillCounter: keyValue(events, 'oom_kill'),
      blockReadBytes: blk?.read,
      blockWriteBytes: blk?.write,
      pids: parseSingle(f('pids.current')),
    };
  }

  private sampleV1(dirs: Extract<CgroupLocation, { version: 1 }>['dirs']): RawStats | undefined {
    const f = (dir: string | undefined, name: string) =>
      dir === undefined ? undefined : this.read(join(dir, name));
    const usage = parseSingle(f(dirs.memory, 'memory.usage_in_bytes'));
    const cpuNs = parseSingle(f(dirs.cpuacct, 'cpuacct.usage'));
    if (usage === undefined && cpuNs === undefined) return undefined;
    const stat = f(dirs.memory, 'memory.stat');
    const oom = f(dirs.memory, 'memory.oom_control');
    const blkText = f(dirs.blkio, 'blkio.throttle.io_service_bytes_recursive');
    const blk = blkText === undefined ? undefined : parseBlkioV1(blkText);
    return {
      source: 'cgroup',
      cpuSeconds: cpuNs === undefined ? undefined : cpuNs / 1e9,
      memoryUsageBytes: usage,
      memoryLimitBytes: parseSingle(f(dirs.memory, 'memory.limit_in_bytes')),
      memoryWorkingSetBytes: workingSet(
        usage,
        keyValue(stat, 'total_inactive_file') ?? keyValue(stat, 'inactive_file'),
      ),
      oomKillCounter: keyValue(oom, 'oom_kill'),
      blockReadBytes: blk?.read,
      blockWriteBytes: blk?.write,
      pids: parseSingle(f(dirs.pids, 'pids.current')),
    };
  }
}

/** CPU cores used between two samples of the same run; undefined across a counter reset. */
export function cpuCores(
  prev: { readonly cpuSeconds?: number; readonly at: number } | undefined,
  cur: { readonly cpuSeconds?: number; readonly at: number },
): number | undefined {
  if (!prev || prev.cpuSeconds === undefined || cur.cpuSeconds === undefined) return undefined;
  const dt = (cur.at - prev.at) / 1000;
  const dc = cur.cpuSeconds - prev.cpuSeconds;
  if (dt <= 0 || dc < 0) return undefined;
  return dc / dt;
}
