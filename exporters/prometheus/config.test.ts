import { describe, expect, it } from 'vitest';
import { problemsOf } from '../../test/helpers/config-errors.js';
import { loadConfig } from '../../agent/config.js';

const compatOf = (sources: Parameters<typeof loadConfig>[0]) =>
  loadConfig(sources).config.metrics.compat;
const file = (text: string) => ({ file: { name: 'gpulse.yaml', text } });

function problems(sources: Parameters<typeof loadConfig>[0]): readonly string[] {
  return problemsOf(() => loadConfig(sources));
}

describe('metrics.compat', () => {
  it('is empty by default and with "none"', () => {
    expect(compatOf({})).toEqual([]);
    expect(compatOf(file('metrics:\n  compat: none\n'))).toEqual([]);
    expect(compatOf({ env: { GPULSE_METRICS_COMPAT: 'none' } })).toEqual([]);
  });

  it('still takes one naming alone, as before there were two', () => {
    expect(compatOf(file('metrics:\n  compat: dcgm\n'))).toEqual(['dcgm']);
    expect(compatOf({ env: { GPULSE_METRICS_COMPAT: 'dcgm' } })).toEqual(['dcgm']);
    expect(compatOf({ flags: { 'metrics-compat': 'nvidia-gpu-exporter' } })).toEqual([
      'nvidia-gpu-exporter',
    ]);
  });

  it('takes both namings: a YAML list, or comma-separated in a variable or flag', () => {
    expect(compatOf(file('metrics:\n  compat: [nvidia-gpu-exporter, dcgm, dcgm]\n'))).toEqual([
      'nvidia-gpu-exporter',
      'dcgm',
    ]);
    expect(compatOf({ env: { GPULSE_METRICS_COMPAT: 'dcgm, nvidia-gpu-exporter' } })).toEqual([
      'dcgm',
      'nvidia-gpu-exporter',
    ]);
    expect(
      compatOf({
        env: { GPULSE_METRICS_COMPAT: 'dcgm' },
        flags: { 'metrics-compat': 'dcgm,nvidia-gpu-exporter' },
      }),
    ).toEqual(['dcgm', 'nvidia-gpu-exporter']);
  });

  it('rejects unknown namings and "none" among others, saying where', () => {
    expect(problems({ env: { GPULSE_METRICS_COMPAT: 'dcgm,telegraf' } })).toEqual([
      'metrics.compat.1: expected one of none, dcgm, nvidia-gpu-exporter, got "telegraf" (from GPULSE_METRICS_COMPAT)',
    ]);
    expect(problems(file('metrics:\n  compat: [none, dcgm]\n'))).toEqual([
      expect.stringMatching(/^metrics\.compat: "none" cannot be combined with other namings/),
    ]);
  });
});
