import { describe, expect, it } from 'vitest';
import type { GpuReading } from '../../agent/core/facts.js';
import { mergeXmlExtras, type XmlExtras } from './merge.js';

const UUID = 'GPU-0b7a1f43-5a8e-4c27-a1b9-0d1e2f3a4b5c';

const csv: GpuReading = {
  index: 3,
  uuid: UUID,
  name: 'NVIDIA H100 80GB HBM3',
  utilizationRatio: 0.42,
  memoryUsedBytes: undefined,
  clocksHz: { sm: 1_980_000_000, memory: undefined },
  maxClocksHz: {},
  throttle: { sw_power_cap: true },
  throttleSeconds: {},
};

const xml: GpuReading = {
  index: 0,
  uuid: UUID,
  name: 'stale name from -q -x',
  utilizationRatio: 0.1,
  memoryUsedBytes: 1_048_576,
  retiredPagesPending: false,
  clocksHz: { sm: 1_000_000_000, memory: 2_619_000_000, video: 1_545_000_000 },
  maxClocksHz: { sm: 1_980_000_000 },
  throttle: { sw_power_cap: false, hw_slowdown: false },
  throttleSeconds: { hw_slowdown: 12.5 },
  ecc: { enabled: true, correctedVolatile: 4 },
};

describe('mergeXmlExtras', () => {
  it('keeps the CSV value wherever the CSV has one and fills the rest from the XML document', () => {
    const extras: XmlExtras = new Map([[UUID, { gpu: xml, processes: [], cudaVersion: '12.4' }]]);
    const [merged] = mergeXmlExtras([csv], extras);
    expect(merged).toMatchObject({
      index: 3, // identity from the CSV stream, which the series are keyed on
      uuid: UUID,
      name: 'NVIDIA H100 80GB HBM3',
      utilizationRatio: 0.42,
      memoryUsedBytes: 1_048_576, // undefined in the CSV does not hide the XML value
      retiredPagesPending: false,
      cudaVersion: '12.4',
      clocksHz: { sm: 1_980_000_000, memory: 2_619_000_000, video: 1_545_000_000 },
      maxClocksHz: { sm: 1_980_000_000 },
      throttle: { sw_power_cap: true, hw_slowdown: false },
      throttleSeconds: { hw_slowdown: 12.5 },
      ecc: { enabled: true, correctedVolatile: 4 },
    });
    // Inputs are left as they were.
    expect(xml.clocksHz.sm).toBe(1_000_000_000);
    expect(csv.clocksHz.memory).toBeUndefined();
  });

  it('passes readings through when no XML document (or none for that GPU) is known', () => {
    expect(mergeXmlExtras([csv], new Map())).toEqual([csv]);
    const other: XmlExtras = new Map([['GPU-other', { gpu: xml, processes: [] }]]);
    expect(mergeXmlExtras([csv], other)[0]).toBe(csv);
  });
});
