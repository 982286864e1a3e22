import { mkdirSync, mkdtempSync, readFileSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../test/helpers/log-sink.js';
import { hostConfigSchema } from './config.js';
import { createHostCollector, readFilesystems } from './host.js';

function meminfo(key: string): number {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/meminfo', 'utf8'));
  return Number(m?.[1]) * 1024;
}

describe('host collector on this machine', () => {
  it('reports CPU, load, memory, swap and network as the kernel does', async () => {
    const c = createHostCollector(hostConfigSchema.parse({}));
    const out = await c.collect({
      signal: new AbortController().signal,
      log: silentLogger(),
      now: Date.now,
    });
    const value = (name: string, labels: Record<string, string> = {}) =>
      out.samples.find(
        (s) => s.desc.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
      )?.value;
    expect(value('gpulse_host_cpus')).toBe(cpus().length);
    expect(value('gpulse_host_memory_total_bytes')).toBe(meminfo('MemTotal'));
    expect(value('gpulse_host_swap_total_bytes')).toBe(meminfo('SwapTotal'));
    const used = value('gpulse_host_memory_used_bytes') ?? -1;
    expect(used).toBeGreaterThan(0);
    expect(used).toBeLessThan(meminfo('MemTotal'));
    const all = value('gpulse_host_cpu_utilization_ratio', { cpu: 'all' }) ?? -1;
    expect(all).toBeGreaterThanOrEqual(0);
    expect(all).toBeLessThanOrEqual(1);
    expect(
      out.samples.filter((s) => s.desc.name === 'gpulse_host_cpu_utilization_ratio'),
    ).toHaveLength(cpus().length + 1);
    expect(
      out.samples
        .filter((s) => s.desc.name === 'gpulse_host_load_average')
        .map((s) => s.labels.window),
    ).toEqual(['1m', '5m', '15m']);
    expect(
      value('gpulse_host_network_receive_bytes_total', { interface: 'lo' }),
    ).toBeGreaterThanOrEqual(0);
  });
});

describe('readFilesystems', () => {
  it('sizes real filesystems with statfs, skips pseudo ones, duplicates and vanished mounts; decodes \\040', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gpulse-mounts-'));
    try {
      const spaced = join(dir, 'with space');
      mkdirSync(spaced);
      writeFileSync(
        join(dir, 'mounts'),
        [
          '/dev/vda1 / ext4 rw,relatime 0 0',
          'proc /proc proc rw 0 0',
          'overlay /var/lib/docker/overlay2/x/merged overlay rw 0 0',
          `/dev/vdb ${spaced.replace(' ', '\\040')} xfs rw 0 0`,
          '/dev/vda1 / ext4 rw,relatime 0 0',
          '/dev/gone /no/such/mount ext4 rw 0 0',
        ].join('\n'),
      );
      const list = await readFilesystems(join(dir, 'mounts'));
      expect(list.map((f) => [f.mountpoint, f.fstype, f.device])).toEqual([
        ['/', 'ext4', '/dev/vda1'],
        [spaced, 'xfs', '/dev/vdb'],
      ]);
      const st = statfsSync('/');
      expect(list[0]?.size).toBe(st.blocks * st.bsize);
      expect(await readFilesystems(join(dir, 'missing'))).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
