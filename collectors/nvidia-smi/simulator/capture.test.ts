import { describe, expect, it } from 'vitest';
import {
  parseCaptureSections,
  parseHelpFields,
  parseListMigProfiles,
  parseQTextMigDevices,
  parseQTextTree,
  parseQueryCsv,
} from './capture.js';
import { readFixture } from './fixtures.js';

const H200_MIG = 'captures/linux-x86_64__nvidia-h200-mig__590.48.01__nvidia-gpu-exporter.txt';

describe('parseCaptureSections', () => {
  const sections = parseCaptureSections(readFixture(H200_MIG));

  it('keys bodies by title and keeps them as printed', () => {
    expect(sections.get('capabilities :: version')).toBe(
      [
        'NVIDIA-SMI version  : 590.48.01',
        'NVML version        : 590.48',
        'DRIVER version      : 590.48.01',
        'CUDA Version        : 13.1',
      ].join('\n'),
    );
    expect(sections.get('load :: query-compute-apps (per-process)')).toBe(
      readFixture(
        'csv/linux-x86_64__nvidia-h200-mig__590.48.01__load__query-compute-apps.csv',
      ).replace(/\n$/, ''),
    );
  });

  it('finds the MIG devices of -L and -q', () => {
    expect([...parseListMigProfiles(sections.get('capabilities :: list (-L)') ?? '')]).toEqual([
      [0, '1c.3g.71gb'],
      [1, '2c.3g.71gb'],
      [2, '2g.35gb'],
      [3, '1g.18gb'],
      [4, '1g.18gb'],
    ]);
    const migs = parseQTextMigDevices(sections.get('load :: query (-q)') ?? '');
    expect(migs.map((m) => [m.gpuInstanceId, m.computeInstanceId, m.fbUsedMiB])).toEqual([
      [2, 0, 16925],
      [2, 1, 16925],
      [3, 0, 17],
      [9, 0, 9],
      [10, 0, 9],
    ]);
    expect(migs[0]?.attributes['Multiprocessor count']).toBe(16);
    expect(migs[0]?.bar1TotalMiB).toBe(59237);
  });

  it('reads -q text as label paths', () => {
    const tree = parseQTextTree(sections.get('idle :: query (-q)') ?? '');
    expect(tree.get('BAR1 Memory Usage/Total')).toBe('262144 MiB');
    expect(tree.get('PCI/GPU Link Info/PCIe Generation/Max')).toBe('5');
    expect(tree.get('Temperature/GPU Slowdown T.Limit Temp')).toBe('-2 C');
  });
});

describe('parseQueryCsv', () => {
  it('splits the header into names and units', () => {
    const t = parseQueryCsv('name, memory.used [MiB]\nH100, 5 MiB\n');
    expect(t.columns).toEqual([
      { name: 'name', unit: undefined },
      { name: 'memory.used', unit: 'MiB' },
    ]);
    expect(t.rows).toEqual([['H100', '5 MiB']]);
  });

  it('puts units back on a nounits capture (VirtualClient), never on [N/A]', () => {
    const t = parseQueryCsv(
      readFixture('csv/tesla-t4-x1-na-fields__550.54.15__query-gpu__virtualclient.csv'),
    );
    const cell = (name: string): string | undefined =>
      t.rows[0]?.[t.columns.findIndex((c) => c.name === name)];
    expect(cell('memory.total')).toBe('15360 MiB');
    expect(cell('utilization.gpu')).toBe('2 %');
    expect(cell('power.draw.average')).toBe('[N/A]');
    expect(cell('power.draw.instant')).toBe('9.31 W');
    expect(cell('temperature.memory')).toBe('N/A');
  });
});

describe('parseHelpFields', () => {
  it('lists canonical names with aliases, skipping the compute_mode value list', () => {
    const help = parseCaptureSections(readFixture(H200_MIG)).get('capabilities :: help-query-gpu');
    const entries = parseHelpFields(help ?? '');
    expect(entries.find((e) => e.names[0] === 'name')?.names).toEqual(['name', 'gpu_name']);
    expect(entries.find((e) => e.names[0] === 'clocks_event_reasons.active')?.names).toEqual([
      'clocks_event_reasons.active',
      'clocks_throttle_reasons.active',
    ]);
    expect(entries.some((e) => e.names[0]?.startsWith('0:'))).toBe(false);
    expect(entries.find((e) => e.names[0] === 'timestamp')?.description).toMatch(/YYYY\/MM\/DD/);
  });
});
