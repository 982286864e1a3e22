import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { collectContext, sampleValue as value } from '../../test/helpers/collector-harness.js';
import { hostConfigSchema } from './config.js';
import { createHostCollector, parseMounts, sizeFilesystems } from './host.js';
import { busyRatio, parseMeminfo, parseNetDev, parseProcStat, readTemperatures } from './procfs.js';

const fixture = (name: string) => readFileSync(join(import.meta.dirname, 'fixtures', name), 'utf8');
const dir = mkdtempSync(join(tmpdir(), 'gpulse-host-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('procfs parsers', () => {
  it('reads /proc/stat per CPU and for the whole machine', () => {
    const cpus = parseProcStat(fixture('proc-stat__debian12-2cpu.txt'));
    expect(cpus.map((c) => c.cpu)).toEqual(['all', '0', '1']);
    expect(cpus[0]?.ticks).toEqual({
      user: 1103697,
      nice: 0,
      system: 174834,
      idle: 196513,
      iowait: 1562,
      irq: 0,
      softirq: 1918,
      steal: 8272,
    });
    expect(parseProcStat('cpu 1 2\ngarbage\ncpu0 a b c d')).toEqual([]);
  });

  it('computes the busy share between two samples', () => {
    const [a] = parseProcStat('cpu 100 0 100 700 100 0 0 0');
    const [b] = parseProcStat('cpu 150 0 150 900 100 0 0 0');
    expect(busyRatio(a!, b!)).toBeCloseTo(100 / 300, 10);
    expect(busyRatio(a!, a!)).toBeUndefined();
  });

  it('reads /proc/meminfo in bytes', () => {
    expect(parseMeminfo(fixture('proc-meminfo__debian12.txt'))).toEqual({
      total: 24683656 * 1024,
      available: 23077608 * 1024,
      swapTotal: 2097148 * 1024,
      swapFree: 1048574 * 1024,
    });
    expect(parseMeminfo('nonsense')).toEqual({});
  });

  it('reads /proc/net/dev byte counters', () => {
    expect(parseNetDev(fixture('proc-net-dev__debian12.txt'))).toEqual([
      { iface: 'lo', rxBytes: 11050484597, txBytes: 11050484597 },
      { iface: 'eth0', rxBytes: 352630430, txBytes: 9876543 },
    ]);
    expect(parseNetDev('h1\nh2\n  broken: x y\n')).toEqual([]);
  });

  it('keeps real filesystems once each and decodes escaped mount points', () => {
    expect(parseMounts(fixture('proc-mounts__debian12.txt'))).toEqual([
      { device: '/dev/vda', mountpoint: '/', fstype: 'ext4' },
      { device: '/dev/vda', mountpoint: '/work/with space', fstype: 'ext4' },
    ]);
  });

  it('sizes filesystems with statfs and skips vanished mounts', async () => {
    const fs = await sizeFilesystems('/dev/x / ext4 rw 0 0\n/dev/y /no/such/mount ext4 rw 0 0\n');
    expect(fs).toHaveLength(1);
    expect(fs[0]?.size).toBeGreaterThan(0);
    expect(fs[0]?.available).toBeLessThanOrEqual(fs[0]!.size);
  });

  it('reads hwmon and thermal-zone temperatures, dropping disconnected sensors', async () => {
    const sys = join(dir, 'sys');
    mkdirSync(join(sys, 'class', 'hwmon', 'hwmon0'), { recursive: true });
    mkdirSync(join(sys, 'class', 'thermal', 'thermal_zone0'), { recursive: true });
    mkdirSync(join(sys, 'class', 'thermal', 'thermal_zone1'), { recursive: true });
    writeFileSync(join(sys, 'class', 'hwmon', 'hwmon0', 'name'), 'coretemp\n');
    writeFileSync(join(sys, 'class', 'hwmon', 'hwmon0', 'temp1_input'), '45000\n');
    writeFileSync(join(sys, 'class', 'hwmon', 'hwmon0', 'temp1_label'), 'Package id 0\n');
    writeFileSync(join(sys, 'class', 'hwmon', 'hwmon0', 'temp2_input'), '-256000\n');
    writeFileSync(join(sys, 'class', 'thermal', 'thermal_zone0', 'type'), 'cpu-thermal\n');
    writeFileSync(join(sys, 'class', 'thermal', 'thermal_zone0', 'temp'), '51500\n');
    writeFileSync(join(sys, 'class', 'thermal', 'thermal_zone1', 'type'), 'cpu-thermal\n');
    writeFileSync(join(sys, 'class', 'thermal', 'thermal_zone1', 'temp'), '52000\n');
    expect(await readTemperatures(sys)).toEqual([
      { sensor: 'coretemp:Package_id_0', celsius: 45 },
      { sensor: 'cpu-thermal', celsius: 51.5 },
      { sensor: 'cpu-thermal_2', celsius: 52 },
    ]);
    expect(await readTemperatures(join(dir, 'nowhere'))).toEqual([]);
  });
});

describe('host collector', () => {
  it('reports a fake host root: CPU share from consecutive samples, memory, network, disks', async () => {
    const proc = join(dir, 'proc');
    mkdirSync(join(proc, 'net'), { recursive: true });
    writeFileSync(
      join(proc, 'stat'),
      'cpu 100 0 100 700 100 0 0 0\ncpu0 100 0 100 700 100 0 0 0\n',
    );
    cpSync(
      join(import.meta.dirname, 'fixtures', 'proc-meminfo__debian12.txt'),
      join(proc, 'meminfo'),
    );
    cpSync(
      join(import.meta.dirname, 'fixtures', 'proc-net-dev__debian12.txt'),
      join(proc, 'net', 'dev'),
    );
    mkdirSync(join(proc, 'self'), { recursive: true });
    writeFileSync(join(proc, 'self', 'mounts'), '/dev/vda / ext4 rw 0 0\n');
    const collector = createHostCollector({
      ...hostConfigSchema.parse({ sysRoot: join(dir, 'nosys') }),
      procRoot: proc,
    });
    const ctx = collectContext();
    const first = await collector.collect(ctx);
    // One sample cannot give a rate: no utilization yet, but the cumulative counters are there.
    expect(
      value(first.samples, 'gpulse_host_cpu_utilization_ratio', { cpu: 'all' }),
    ).toBeUndefined();
    expect(value(first.samples, 'gpulse_host_cpu_seconds_total', { mode: 'user' })).toBe(1);
    writeFileSync(
      join(proc, 'stat'),
      'cpu 150 0 150 900 100 0 0 0\ncpu0 150 0 150 900 100 0 0 0\n',
    );
    const second = (await collector.collect(ctx)).samples;
    expect(value(second, 'gpulse_host_cpu_utilization_ratio', { cpu: 'all' })).toBeCloseTo(
      1 / 3,
      10,
    );
    expect(value(second, 'gpulse_host_cpu_utilization_ratio', { cpu: '0' })).toBeCloseTo(1 / 3, 10);
    expect(value(second, 'gpulse_host_cpus')).toBe(1);
    expect(value(second, 'gpulse_host_memory_total_bytes')).toBe(24683656 * 1024);
    expect(value(second, 'gpulse_host_memory_used_bytes')).toBe((24683656 - 23077608) * 1024);
    expect(value(second, 'gpulse_host_swap_used_bytes')).toBe((2097148 - 1048574) * 1024);
    expect(value(second, 'gpulse_host_network_receive_bytes_total', { interface: 'eth0' })).toBe(
      352630430,
    );
    expect(value(second, 'gpulse_host_network_transmit_bytes_total', { interface: 'eth0' })).toBe(
      9876543,
    );
    expect(value(second, 'gpulse_host_filesystem_size_bytes', { mountpoint: '/' })).toBeGreaterThan(
      0,
    );
    expect(value(second, 'gpulse_host_load_average', { window: '1m' })).toBeGreaterThanOrEqual(0);
    expect(second.some((s) => s.desc.name === 'gpulse_host_info')).toBe(true);
  });

  it('reads this machine', async () => {
    const collector = createHostCollector({ ...hostConfigSchema.parse({}), procRoot: '/proc' });
    const ctx = collectContext();
    await collector.collect(ctx);
    // CPU utilization is a ratio of /proc/stat deltas: wait until the kernel's counters (10 ms
    // ticks) have moved since that collect, or two collects within one tick have no ratio.
    const cpuLine = () => readFileSync('/proc/stat', 'utf8').split('\n')[0];
    const before = cpuLine();
    await expect.poll(cpuLine, { timeout: 10_000, interval: 10 }).not.toBe(before);
    const samples = (await collector.collect(ctx)).samples;
    expect(value(samples, 'gpulse_host_memory_total_bytes')).toBeGreaterThan(0);
    expect(
      value(samples, 'gpulse_host_cpu_utilization_ratio', { cpu: 'all' }),
    ).toBeGreaterThanOrEqual(0);
  });
});
