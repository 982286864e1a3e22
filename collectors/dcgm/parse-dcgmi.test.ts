import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildCatalogue, dcgmCatalogue, fieldByName, parseExporterCsv } from './catalogue.js';
import { discoveryCount, parseDiscovery, parseDmonLine } from './parse-dcgmi.js';

const FIXTURES = join(import.meta.dirname, 'fixtures');
const read = (f: string): string => readFileSync(join(FIXTURES, f), 'utf8');

describe('dcgmi dmon parser', () => {
  it('parses the real dmon table of the fixture (fields 1001, 1004, 1005) to the right values', () => {
    const lines = read('dcgmi-dmon__prof-fields-1001-1004-1005__virtualclient.txt').split('\n');
    const parsed = lines.map(parseDmonLine);
    expect(parsed[0]).toEqual({ kind: 'header', columns: ['GRACT', 'TENSO', 'DRAMA'] });
    expect(parsed[1]).toEqual({ kind: 'units' });
    const rows = parsed.filter((p) => p.kind === 'row');
    expect(rows).toHaveLength(15);
    expect(rows.every((r) => r.entity === 'GPU' && r.entityId === 0)).toBe(true);
    expect(rows.map((r) => r.values)).toEqual([
      [0, 0, 0],
      [0.17, 0.121, 0.032],
      [0.998, 0.885, 0.305],
      [0.998, 0.885, 0.305],
      [0.998, 0.885, 0.306],
      [0.998, 0.885, 0.299],
      [0.998, 0.885, 0.299],
      [0.998, 0.885, 0.301],
      [0.998, 0.885, 0.303],
      [0.998, 0.885, 0.302],
      [0.998, 0.885, 0.304],
      [0.998, 0.885, 0.3],
      [0.998, 0.885, 0.295],
      [0.762, 0.653, 0.252],
      [0, 0, 0],
    ]);
    expect(parsed.filter((p) => p.kind === 'text')).toEqual([]);
  });

  it('reads N/A cells as absent, several GPUs, and MIG entities', () => {
    // Synthetic, laid out as DeviceMonitor.cpp prints: 10-wide entity column, values padded to width + 8.
    expect(parseDmonLine('GPU 0     0.998        N/A          0.305        ')).toEqual({
      kind: 'row',
      entity: 'GPU',
      entityId: 0,
      values: [0.998, undefined, 0.305],
    });
    expect(parseDmonLine('GPU 7     N/A          N/A          N/A          ')).toEqual({
      kind: 'row',
      entity: 'GPU',
      entityId: 7,
      values: [undefined, undefined, undefined],
    });
    expect(parseDmonLine('GPU-I 3   0.500        0.250        0.100        ')).toMatchObject({
      kind: 'row',
      entity: 'GPU-I',
      entityId: 3,
    });
  });

  it('keeps error messages and garbage as text, never as values', () => {
    expect(
      parseDmonLine(
        'Error setting watches. Result: -36: Profiling is not supported for this group of GPUs or GPU',
      ),
    ).toEqual({
      kind: 'text',
      text: 'Error setting watches. Result: -36: Profiling is not supported for this group of GPUs or GPU',
    });
    expect(parseDmonLine('GPU 0     0.99x        1.0')).toMatchObject({ kind: 'text' });
    expect(parseDmonLine('')).toEqual({ kind: 'blank' });
  });
});

describe('dcgmi discovery -l parser', () => {
  it('reads the Tesla T4 fixture', () => {
    const text = read('dcgmi-discovery-l__tesla-t4__virtualclient.txt');
    expect(discoveryCount(text)).toBe(1);
    expect(parseDiscovery(text)).toEqual([
      {
        gpuId: 0,
        name: 'Tesla T4',
        pciBusId: '00000001:00:00.0',
        uuid: 'GPU-934a71d6-e50c-86a3-f752-3743a8c1bbb2',
      },
    ]);
  });
});

describe('DCGM field catalogue', () => {
  it('comes from dcgm-exporter’s CSVs and the field table, commented-out fields included', () => {
    const sm = fieldByName('DCGM_FI_PROF_SM_ACTIVE');
    expect(sm).toMatchObject({
      id: 1002,
      shortName: 'SMACT',
      type: 'double',
      promType: 'gauge',
      help: 'The ratio of cycles an SM has at least 1 warp assigned.',
      inDefaultCounters: false,
      inExporterCsv: true,
    });
    expect(fieldByName('DCGM_FI_DEV_GPU_UTIL')).toMatchObject({
      id: 203,
      shortName: 'GPUTL',
      help: 'GPU utilization (in %).',
      inDefaultCounters: true,
    });
    expect(fieldByName('DCGM_FI_DEV_POWER_USAGE')).toMatchObject({ unit: ' W', width: 10 });
    expect(fieldByName('DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION')?.promType).toBe('counter');
    // Every field the issue asks for is there.
    for (const id of [230, 1002, 1003, 1004, 1005, 1006, 1007, 1008, 1009, 1010, 1011, 1012]) {
      expect(
        dcgmCatalogue().some((f) => f.id === id),
        `field ${id}`,
      ).toBe(true);
    }
  });

  it('parses dcgm-exporter’s CSV format, trailing spaces in names and comments included', () => {
    const rows = parseExporterCsv(read('dcgm-exporter__default-counters.csv'));
    expect(rows.find((r) => r.name === 'DCGM_FI_DEV_DEC_UTIL')).toEqual({
      name: 'DCGM_FI_DEV_DEC_UTIL',
      promType: 'gauge',
      help: 'Decoder utilization (in %).',
      enabled: true,
    });
    expect(rows.find((r) => r.name === 'DCGM_FI_DEV_POWER_VIOLATION')?.enabled).toBe(false);
    expect(rows.find((r) => r.name === 'DCGM_FI_DRIVER_VERSION')?.promType).toBe('label');
    expect(rows.filter((r) => r.enabled).map((r) => r.name)).toHaveLength(26);
  });

  it('refuses a malformed field table', () => {
    expect(() =>
      buildCatalogue('field,id,short_name,unit,width,type,help\nX,abc,Y,,5,int64,\n', '', ''),
    ).toThrow(/bad row for X/);
  });
});
