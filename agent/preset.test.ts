import { describe, expect, it } from 'vitest';
import { loadConfig } from './config.js';
import { applyEdgePreset, edgeSpoolBytes, EDGE_SPOOL, freeBytesAt } from './preset.js';

const MIB = 1024 ** 2;

describe('preset: edge', () => {
  it('samples less often and runs fewer child processes', () => {
    const { config } = loadConfig({ env: { GPULSE_PRESET: 'edge' } });
    expect(config.preset).toBe('edge');
    expect(config.collectors['nvidia-smi']).toMatchObject({
      interval: 10_000,
      processes: 'off',
      xmlInterval: 0,
    });
    expect(config.collectors.tegrastats.interval).toBe(10_000);
    expect(config.collectors.host.interval).toBe(60_000);
  });

  it('leaves every explicit setting alone: file, environment and flags win', () => {
    const { config } = loadConfig({
      file: {
        name: 'gpulse.yaml',
        text: 'preset: edge\ncollectors:\n  host:\n    interval: 30s\n',
      },
      env: { GPULSE_NVIDIA_SMI_PROCESSES: 'on' },
      flags: { interval: '5s', 'tegrastats-interval': '2s' },
    });
    expect(config.collectors.host.interval).toBe(30_000);
    expect(config.collectors['nvidia-smi'].processes).toBe('on');
    expect(config.collectors['nvidia-smi'].interval).toBe(5000);
    expect(config.collectors.tegrastats.interval).toBe(2000);
    // Not set explicitly: still the preset's.
    expect(config.collectors['nvidia-smi'].xmlInterval).toBe(0);
  });

  it('is off by default, and an unknown preset is a configuration error with its path', () => {
    expect(loadConfig({}).config.collectors['nvidia-smi'].interval).toBe(5000);
    expect(() => loadConfig({ flags: { preset: 'tiny' } })).toThrow(/preset: .*--preset/s);
  });

  it('sizes the MQTT spool from the free disk where it lives, when the build has MQTT', () => {
    const asked: string[] = [];
    const raw: Record<string, unknown> = { preset: 'edge' };
    const notes = applyEdgePreset(raw, {
      hasSection: (name) => name === 'mqtt',
      freeBytes: (dir) => {
        asked.push(dir);
        return 2000 * MIB;
      },
      env: { STATE_DIRECTORY: '/var/lib/gpulse:/var/lib/other' },
    });
    expect(asked).toEqual(['/var/lib/gpulse/mqtt']);
    expect(raw.mqtt).toEqual({
      telemetry: { interval: '30s' },
      spool: { maxBytes: Math.floor(2000 * MIB * 0.05) },
    });
    expect(notes[0]).toMatch(
      /spool bound 100 MiB \(5% of 2000 MiB free at \/var\/lib\/gpulse\/mqtt\)/,
    );
  });

  it('keeps an explicit spool bound and measures a configured spool directory', () => {
    const explicit: Record<string, unknown> = { mqtt: { spool: { maxBytes: '1GiB' } } };
    applyEdgePreset(explicit, { hasSection: () => true, freeBytes: () => 1e12 });
    expect(explicit.mqtt).toEqual({ spool: { maxBytes: '1GiB' }, telemetry: { interval: '30s' } });
    const asked: string[] = [];
    applyEdgePreset(
      { mqtt: { spool: { dir: '/data/spool' } } },
      { hasSection: () => true, freeBytes: (d) => (asked.push(d), undefined) },
    );
    expect(asked).toEqual(['/data/spool']);
  });

  it('touches no MQTT setting where the build has no MQTT publisher', () => {
    const raw: Record<string, unknown> = {};
    expect(applyEdgePreset(raw, { hasSection: () => false })).toEqual([]);
    expect(raw.mqtt).toBeUndefined();
  });

  it('leaves a malformed section for the schema to report instead of overwriting it', () => {
    const raw: Record<string, unknown> = { collectors: { host: 'fast' } };
    applyEdgePreset(raw, { hasSection: () => false });
    expect((raw.collectors as Record<string, unknown>).host).toBe('fast');
  });
});

describe('spool bound', () => {
  it('is 5 % of the free space, between 8 MiB and 256 MiB', () => {
    expect(edgeSpoolBytes(1000 * MIB)).toBe(50 * MIB);
    expect(edgeSpoolBytes(50 * MIB)).toBe(EDGE_SPOOL.minBytes);
    expect(edgeSpoolBytes(100_000 * MIB)).toBe(EDGE_SPOOL.maxBytes);
    expect(edgeSpoolBytes(undefined)).toBe(EDGE_SPOOL.minBytes);
  });

  it('measures the nearest existing directory of a spool not created yet', () => {
    const here = freeBytesAt('/tmp');
    expect(here).toBeGreaterThan(0);
    expect(freeBytesAt('/tmp/gpulse-does-not-exist/mqtt/spool')).toBeGreaterThan(0);
  });
});
