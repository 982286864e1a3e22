import { readFile, statfs } from 'node:fs/promises';
import { arch, hostname, loadavg, release } from 'node:os';
import { join } from 'node:path';
import { counter, gauge, SampleBuilder } from '../../agent/core/metric.js';
import type { CollectContext, CollectorOutput, PolledCollector } from '../../agent/core/types.js';
import type { HostConfig } from './config.js';
import {
  busyRatio,
  CPU_MODES,
  parseMeminfo,
  parseNetDev,
  parseProcStat,
  readTemperatures,
  type CpuTimes,
} from './procfs.js';

/** Collector name. */
export const HOST = 'host';

/** Host metric families. */
export const hostMetrics = {
  info: gauge('gpulse_host_info', 'Host identity; always 1.', ['hostname', 'kernel', 'arch', 'os']),
  cpu: gauge(
    'gpulse_host_cpu_utilization_ratio',
    'CPU busy share since the previous sample (0-1); cpu="all" is the whole machine.',
    ['cpu'],
  ),
  cpuSeconds: counter('gpulse_host_cpu_seconds_total', 'CPU time of the whole machine by mode.', [
    'mode',
  ]),
  cpus: gauge('gpulse_host_cpus', 'Logical CPUs.'),
  load: gauge('gpulse_host_load_average', 'System load average.', ['window']),
  memTotal: gauge('gpulse_host_memory_total_bytes', 'Physical memory.'),
  memAvailable: gauge(
    'gpulse_host_memory_available_bytes',
    'Memory available for new work without swapping.',
  ),
  memUsed: gauge('gpulse_host_memory_used_bytes', 'Memory in use (total minus available).'),
  swapTotal: gauge('gpulse_host_swap_total_bytes', 'Swap space.'),
  swapUsed: gauge('gpulse_host_swap_used_bytes', 'Swap space in use.'),
  fsSize: gauge('gpulse_host_filesystem_size_bytes', 'Filesystem size.', [
    'mountpoint',
    'fstype',
    'device',
  ]),
  fsAvail: gauge(
    'gpulse_host_filesystem_available_bytes',
    'Filesystem space available to unprivileged users.',
    ['mountpoint', 'fstype', 'device'],
  ),
  netRx: counter('gpulse_host_network_receive_bytes_total', 'Bytes received per interface.', [
    'interface',
  ]),
  netTx: counter('gpulse_host_network_transmit_bytes_total', 'Bytes sent per interface.', [
    'interface',
  ]),
  temperature: gauge(
    'gpulse_host_temperature_celsius',
    'Temperature per sensor where the host exposes one (hwmon, thermal zones).',
    ['sensor'],
  ),
} as const;

// Pseudo and container-internal filesystems say nothing about disk space.
const IGNORED_FSTYPES = new Set([
  'proc',
  'sysfs',
  'devtmpfs',
  'devpts',
  'cgroup',
  'cgroup2',
  'securityfs',
  'pstore',
  'bpf',
  'debugfs',
  'tracefs',
  'mqueue',
  'hugetlbfs',
  'configfs',
  'fusectl',
  'binfmt_misc',
  'autofs',
  'nsfs',
  'rpc_pipefs',
  'squashfs',
  'overlay',
  'tmpfs',
  'ramfs',
  'efivarfs',
  'selinuxfs',
  'fuse.lxcfs',
  'shm',
  'nfsd',
]);

/** Kernel ticks per second (USER_HZ): 100 on every Linux architecture gpulse runs on. */
const USER_HZ = 100;

/**
 * Builds the host collector: CPU, load, memory, swap, filesystems, network, temperatures.
 * Read straight from /proc and /sys rather than through systeminformation, whose calls run
 * synchronous child processes (`ip`, `nmcli`, `sensors`) that block the event loop for tens of
 * milliseconds — exactly when a scrape must not wait.
 */
export function createHostCollector(config: HostConfig & { procRoot: string }): PolledCollector {
  let previous = new Map<string, CpuTimes>();
  const osName = readOsName(join(config.rootfs, 'etc', 'os-release'));
  return {
    kind: 'polled',
    name: HOST,
    intervalMs: config.interval,
    timeoutMs: config.timeout,
    async collect(_ctx: CollectContext): Promise<CollectorOutput> {
      const { procRoot, sysRoot } = config;
      const [stat, meminfo, netdev, mounts, temps, os] = await Promise.all([
        readFile(join(procRoot, 'stat'), 'utf8'),
        readFile(join(procRoot, 'meminfo'), 'utf8'),
        // /proc/1/net/dev is the host's network namespace when the agent runs in a container.
        readFile(join(procRoot, '1', 'net', 'dev'), 'utf8').catch(() =>
          readFile(join(procRoot, 'net', 'dev'), 'utf8'),
        ),
        readFile(join(procRoot, '1', 'mounts'), 'utf8').catch(() =>
          readFile(join(procRoot, 'self', 'mounts'), 'utf8'),
        ),
        readTemperatures(sysRoot),
        osName,
      ]);
      const b = new SampleBuilder();
      const m = hostMetrics;
      b.add(m.info, { hostname: hostname(), kernel: release(), arch: arch(), os }, 1);
      const cpus = parseProcStat(stat);
      const next = new Map(cpus.map((c) => [c.cpu, c]));
      for (const c of cpus) {
        const prev = previous.get(c.cpu);
        if (prev) b.add(m.cpu, { cpu: c.cpu }, busyRatio(prev, c));
      }
      previous = next;
      const all = next.get('all');
      if (all)
        for (const mode of CPU_MODES) b.add(m.cpuSeconds, { mode }, all.ticks[mode] / USER_HZ);
      b.add(m.cpus, {}, cpus.filter((c) => c.cpu !== 'all').length);
      const [l1, l5, l15] = loadavg();
      b.add(m.load, { window: '1m' }, l1)
        .add(m.load, { window: '5m' }, l5)
        .add(m.load, { window: '15m' }, l15);
      const mem = parseMeminfo(meminfo);
      b.add(m.memTotal, {}, mem.total)
        .add(m.memAvailable, {}, mem.available)
        .add(m.memUsed, {}, difference(mem.total, mem.available))
        .add(m.swapTotal, {}, mem.swapTotal)
        .add(m.swapUsed, {}, difference(mem.swapTotal, mem.swapFree));
      for (const fs of await sizeFilesystems(mounts, config.rootfs)) {
        const l = { mountpoint: fs.mountpoint, fstype: fs.fstype, device: fs.device };
        b.add(m.fsSize, l, fs.size).add(m.fsAvail, l, fs.available);
      }
      for (const n of parseNetDev(netdev)) {
        b.add(m.netRx, { interface: n.iface }, n.rxBytes).add(
          m.netTx,
          { interface: n.iface },
          n.txBytes,
        );
      }
      for (const t of temps) b.add(m.temperature, { sensor: t.sensor }, t.celsius);
      return { samples: b.build() };
    },
  };
}

/** `a - b` where both are known (a meminfo line may be missing), else undefined. */
function difference(a: number | undefined, b: number | undefined): number | undefined {
  return a !== undefined && b !== undefined ? a - b : undefined;
}

async function readOsName(path: string): Promise<string> {
  const text = await readFile(path, 'utf8').catch(() => '');
  const m = /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(text);
  return m?.[1] ?? '';
}

/** One filesystem's size. */
export interface Filesystem {
  readonly mountpoint: string;
  readonly fstype: string;
  readonly device: string;
  readonly size: number;
  readonly available: number;
}

/** Parses a mount table (/proc/mounts format) into real filesystems, octal escapes decoded. */
export function parseMounts(
  text: string,
): { device: string; mountpoint: string; fstype: string }[] {
  const seen = new Set<string>();
  const out: { device: string; mountpoint: string; fstype: string }[] = [];
  for (const line of text.split('\n')) {
    const [device, rawMount, fstype] = line.split(' ');
    if (!device || !rawMount || !fstype || IGNORED_FSTYPES.has(fstype)) continue;
    const mountpoint = rawMount.replace(/\\(\d{3})/g, (_m, oct: string) =>
      String.fromCharCode(parseInt(oct, 8)),
    );
    if (seen.has(mountpoint)) continue;
    seen.add(mountpoint);
    out.push({ device, mountpoint, fstype });
  }
  return out;
}

/** Sizes filesystems with statfs(2) (under `rootfs` when the host is mounted into a container). */
export async function sizeFilesystems(mountsText: string, rootfs = '/'): Promise<Filesystem[]> {
  const out: Filesystem[] = [];
  for (const fs of parseMounts(mountsText)) {
    try {
      const st = await statfs(join(rootfs, fs.mountpoint));
      out.push({ ...fs, size: st.blocks * st.bsize, available: st.bavail * st.bsize });
    } catch {
      // A mount that vanished or is not permitted is skipped, not an error for the whole collector.
    }
  }
  return out;
}
