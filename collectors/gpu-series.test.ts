import { describe, expect, it } from 'vitest';
import type { GpuReading } from '../agent/core/facts.js';
import type { Sample } from '../agent/core/types.js';
import { gpuReadingSamples } from './gpu-series.js';

function reading(index: number, uuid: string, smHz: number): GpuReading {
  return {
    index,
    uuid,
    clocksHz: { sm: smHz },
    maxClocksHz: {},
    throttle: { hw_slowdown: true },
    throttleSeconds: {},
    remappedRowsCorrectable: 2,
  };
}

function find(samples: Sample[], name: string, extra: Record<string, string> = {}): Sample[] {
  return samples.filter(
    (s) => s.desc.name === name && Object.entries(extra).every(([k, v]) => s.labels[k] === v),
  );
}

describe('gpuReadingSamples', () => {
  it('labels every series with its own GPU, also when label objects are reused between calls', () => {
    const first = gpuReadingSamples([reading(0, 'GPU-a', 1e9), reading(1, 'GPU-b', 2e9)]);
    const again = gpuReadingSamples([reading(0, 'GPU-a', 3e9), reading(1, 'GPU-b', 4e9)]);
    // The GPU that moved to another index (a re-enumeration) gets labels for its new index.
    const moved = gpuReadingSamples([reading(1, 'GPU-a', 5e9)]);
    const clock = (s: Sample[]) =>
      find(s, 'gpulse_gpu_clock_hz').map((x) => [
        x.labels.gpu,
        x.labels.uuid,
        x.labels.clock,
        x.value,
      ]);
    expect(clock(first)).toEqual([
      ['0', 'GPU-a', 'sm', 1e9],
      ['1', 'GPU-b', 'sm', 2e9],
    ]);
    expect(clock(again)).toEqual([
      ['0', 'GPU-a', 'sm', 3e9],
      ['1', 'GPU-b', 'sm', 4e9],
    ]);
    expect(clock(moved)).toEqual([['1', 'GPU-a', 'sm', 5e9]]);
    expect(
      find(again, 'gpulse_gpu_throttle_active', { uuid: 'GPU-b', reason: 'hw_slowdown' }),
    ).toHaveLength(1);
    expect(
      find(again, 'gpulse_gpu_throttle_active', { uuid: 'GPU-b' }).filter((s) => s.value === 1),
    ).toHaveLength(1);
    expect(
      find(moved, 'gpulse_gpu_remapped_rows_total').map((s) => [
        s.labels.gpu,
        s.labels.kind,
        s.value,
      ]),
    ).toEqual([['1', 'correctable', 2]]);
  });
});
