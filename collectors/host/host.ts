import { readFile, statfs } from 'node:fs/promises';
import { loadavg } from 'node:os';
import * as si from 'systeminformation';
import { gauge, counter, SampleBuilder } from '../../agent/metric.js';
import type { CollectContext, CollectorOutput, PolledCollector } from '../../agent/types.js';
import type { HostConfig } from './config.js';

/** Collector name. */
export const HOST = 'host';

/** Host metric families. */
export const hostMetrics = {
  cpu: gauge(
    'gpulse_host_cpu_utilization_ratio',
    'CPU busy share since the previous sample (0-1); cpu="all" is the average.',
    ['cpu'],
  ),
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
    'Temperature per sensor where the host exposes one.',
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
]);

/** Where the host collector reads from (a different root when the agent runs in a container). */
export interface HostDeps {
  /** File listing mounts (default /proc/self/mounts; /host/proc/1/mounts in a container). */
  readonly mountsFile?: string;
}

/** Builds the host collector: CPU, load, memory, swap, filesystems, network, temperatures. */
export function createHostCollector(config: HostConfig, deps: HostDeps = {}): PolledCollector {
  return {
    kind: 'polled',
    name: HOST,
    intervalMs: config.interval,
    timeoutMs: config.timeout,
    collect: (ctx) => collectHost(ctx, deps),
  };
}

async function collectHost(_ctx: CollectContext, deps: HostDeps): Promise<CollectorOutput> {
  const b = new SampleBuilder();
  const m = hostMetrics;
  const [load, mem, net, temp, filesystems] = await Promise.all([
    si.currentLoad(),
    si.mem(),
    si.networkStats('*'),
    si.cpuTemperature(),
    readFilesystems(deps.mountsFile ?? '/proc/self/mounts'),
  ]);
  b.add(m.cpu, { cpu: 'all' }, load.currentLoad / 100);
  load.cpus.forEach((c, i) => b.add(m.cpu, { cpu: String(i) }, c.load / 100));
  b.add(m.cpus, {}, load.cpus.length);
  const [l1, l5, l15] = loadavg();
  b.add(m.load, { window: '1m' }, l1)
    .add(m.load, { window: '5m' }, l5)
    .add(m.load, { window: '15m' }, l15);
  b.add(m.memTotal, {}, mem.total)
    .add(m.memAvailable, {}, mem.available)
    .add(m.memUsed, {}, mem.total - mem.available)
    .add(m.swapTotal, {}, mem.swaptotal)
    .add(m.swapUsed, {}, mem.swapused);
  for (const fs of filesystems) {
    const l = { mountpoint: fs.mountpoint, fstype: fs.fstype, device: fs.device };
    b.add(m.fsSize, l, fs.size).add(m.fsAvail, l, fs.available);
  }
  for (const n of net) {
    b.add(m.netRx, { interface: n.iface }, n.rx_bytes).add(
      m.netTx,
      { interface: n.iface },
      n.tx_bytes,
    );
  }
  if (typeof temp.main === 'number') b.add(m.temperature, { sensor: 'cpu' }, temp.main);
  temp.cores.forEach((t, i) => b.add(m.temperature, { sensor: `core${i}` }, t));
  return { samples: b.build() };
}

interface Filesystem {
  readonly mountpoint: string;
  readonly fstype: string;
  readonly device: string;
  readonly size: number;
  readonly available: number;
}

/**
 * Real filesystems from the mount table, sized with statfs(2). Not systeminformation's fsSize():
 * that spawns `df` on every call, and this agent avoids a process per interval.
 */
export async function readFilesystems(mountsFile: string): Promise<Filesystem[]> {
  let text: string;
  try {
    text = await readFile(mountsFile, 'utf8');
  } catch {
    return [];
  }
  const seen = new Set<string>();
  const out: Filesystem[] = [];
  for (const line of text.split('\n')) {
    const [device, rawMount, fstype] = line.split(' ');
    if (!device || !rawMount || !fstype || IGNORED_FSTYPES.has(fstype)) continue;
    const mountpoint = rawMount.replace(/\\(\d{3})/g, (_m, oct: string) =>
      String.fromCharCode(parseInt(oct, 8)),
    );
    if (seen.has(mountpoint)) continue;
    seen.add(mountpoint);
    try {
      const st = await statfs(mountpoint);
      out.push({
        mountpoint,
        fstype,
        device,
        size: st.blocks * st.bsize,
        available: st.bavail * st.bsize,
      });
    } catch {
      // A mount that vanished or is not permitted is skipped, not an error for the whole collector.
    }
  }
  return out;
}
