import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { GpuReading } from '../../agent/core/facts.js';
import { identityOf } from '../gpu-series.js';
import {
  LostGpuTracker,
  MISSING_REASON,
  parseDeviceHandleError,
  type PlacedHandleError,
} from './lost-gpu.js';
import { parseComputeAppsCsv, parseQueryGpuCsv, type CsvParseOptions } from './parse-csv.js';
import { parseNvidiaSmiXml } from './parse-xml.js';

const fixture = (path: string): string =>
  readFileSync(join(import.meta.dirname, 'fixtures', path), 'utf8');

/** Parses `csv` with a CSV parser, collecting the GPUs it finds unreachable and the lines it rejects. */
function parseCollecting<T>(
  parse: (text: string, fields: undefined, options: CsvParseOptions) => T[],
  csv: string,
) {
  const unreachable: PlacedHandleError[] = [];
  const rejected: unknown[] = [];
  const parsed = parse(csv, undefined, {
    onUnreachable: (h) => unreachable.push(h),
    onReject: (r) => rejected.push(r),
  });
  return { parsed, unreachable, rejected };
}

describe('parseDeviceHandleError', () => {
  it.each([
    // Each line as printed in a public report (see lost-gpu.ts for where).
    [
      'Unable to determine the device handle for GPU 0000:0B:00.0: Unknown Error',
      { pciBusId: '00000000:0B:00.0', error: 'Unknown Error' },
    ],
    [
      'Unable to determine the device handle for GPU0000:17:00.0: Unknown Error',
      { pciBusId: '00000000:17:00.0', error: 'Unknown Error' },
    ],
    [
      'Unable to determine the device handle for GPU1: 0000:34:00.0: Unknown Error',
      { index: 1, pciBusId: '00000000:34:00.0', error: 'Unknown Error' },
    ],
    [
      'Unable to determine the device handle for gpu 0000:18:00.0: Unknown Error',
      { pciBusId: '00000000:18:00.0', error: 'Unknown Error' },
    ],
    [
      'Unable to determine the device handle for GPU0: 0000:24:00.0: GPU is lost.  Reboot the system to recover this GPU',
      {
        index: 0,
        pciBusId: '00000000:24:00.0',
        error: 'GPU is lost.  Reboot the system to recover this GPU',
      },
    ],
    [
      'Unable to determine the device handle for GPU 0000:02:00.0: GPU is lost. Reboot the system to recover this GPU',
      { pciBusId: '00000000:02:00.0', error: 'GPU is lost. Reboot the system to recover this GPU' },
    ],
    [
      'Unable to determine the device handle for GPU1: Unknown Error',
      { index: 1, error: 'Unknown Error' },
    ],
    [
      'Unable to detect the device handle for GPU0000:B1:00.0: Unknown Error',
      { pciBusId: '00000000:B1:00.0', error: 'Unknown Error' },
    ],
  ])('%s', (line, expected) => {
    expect(parseDeviceHandleError(line)).toEqual(expected);
  });

  it('is no other line', () => {
    for (const line of [
      '0, NVIDIA H100 80GB HBM3, 00000000:0A:00.0',
      'No devices were found',
      "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.",
      'Unable to determine the device handle',
    ])
      expect(parseDeviceHandleError(line)).toBeUndefined();
  });
});

describe('partial output: the good GPUs keep their values', () => {
  it('--query-gpu: rows around a lost GPU’s line parse as if it were not there, at their index', () => {
    const csv = fixture('csv/h100-80gb-hbm3-x8__535.161.07__query-gpu__virtualclient.csv');
    const full = parseQueryGpuCsv(csv);
    const lines = csv.split('\n');
    // Row of GPU 2 (line 3 after the header), as a 535 driver prints a GPU it cannot open.
    lines[3] = 'Unable to determine the device handle for GPU0000:18:00.0: Unknown Error';
    const { parsed: partial, ...reported } = parseCollecting(parseQueryGpuCsv, lines.join('\n'));
    expect(reported.rejected).toEqual([]);
    expect(reported.unreachable).toEqual([
      { pciBusId: '00000000:18:00.0', error: 'Unknown Error', position: 2 },
    ]);
    expect(partial.map((g) => g.index)).toEqual([0, 1, 3, 4, 5, 6, 7]);
    expect(partial).toEqual(full.filter((g) => g.index !== 2));
    // Values of a good GPU, read from the capture's row.
    expect(partial[2]).toMatchObject({
      index: 3,
      pciBusId: '00000000:69:00.0',
      temperatureCelsius: 25,
      memoryTotalBytes: 81559 * 1048576,
    });
  });

  it('--query-compute-apps: the others’ processes stay, the line is no garbage', () => {
    const csv = fixture(
      'csv/linux-x86_64__nvidia-geforce-rtx-2080-super__610.57.04__load__query-compute-apps.csv',
    );
    const lines = csv.split('\n');
    lines.splice(
      1,
      0,
      'Unable to determine the device handle for GPU0: 0000:01:00.0: Unknown Error',
    );
    const { parsed: procs, ...reported } = parseCollecting(parseComputeAppsCsv, lines.join('\n'));
    expect(reported.rejected).toEqual([]);
    expect(reported.unreachable.map((h) => h.index)).toEqual([0]);
    expect(procs.map((p) => [p.pid, p.processName, p.usedMemoryBytes])).toEqual([
      [28512, 'ffmpeg', 370 * 1048576],
      [28511, 'ffmpeg', 230 * 1048576],
    ]);
  });

  it('-q -x: the line where a <gpu> was leaves a well-formed document; the others keep their index', () => {
    const xml = fixture('xml/tesla-k80-x4-processes__430.26__v10__pai.xml');
    const full = parseNvidiaSmiXml(xml);
    const lines = xml.split('\n');
    // The second <gpu> (lines 269-528, 1-based) and its blank line replaced by the handle error.
    lines.splice(
      268,
      261,
      'Unable to determine the device handle for GPU 00002DF7:00:00.0: Unknown Error',
    );
    const partial = parseNvidiaSmiXml(lines.join('\n'));
    expect(partial.unreachable).toEqual([
      { pciBusId: '00002DF7:00:00.0', error: 'Unknown Error', position: 1 },
    ]);
    expect(partial.gpus.map((g) => [g.index, g.uuid])).toEqual([
      [0, 'GPU-c3b26f7a-8dcb-619c-fa1b-8029265a4db0'],
      [2, 'GPU-30bc2701-3bc2-5f35-0ebd-9867a077e138'],
      [3, 'GPU-3341aba2-f01d-2c1f-7dd4-e389779faec2'],
    ]);
    expect(partial.gpus).toEqual(full.gpus.filter((g) => g.index !== 1));
    // The lost GPU's process (pid 58642) is gone with it; GPU 0's stays.
    expect(partial.processes.map((p) => p.pid)).toEqual([58813]);
    expect(full.processes.map((p) => p.pid)).toEqual([58813, 58642]);
  });
});

const reading = (index: number, uuid: string, bus: string): GpuReading => ({
  index,
  uuid,
  name: 'NVIDIA H100 80GB HBM3',
  pciBusId: bus,
  driverVersion: '590.48.01',
  utilizationRatio: 0.5,
  temperatureCelsius: 60,
  clocksHz: { sm: 1_980_000_000 },
  maxClocksHz: {},
  throttle: { gpu_idle: false },
  throttleSeconds: {},
});

describe('LostGpuTracker', () => {
  const g0 = reading(0, 'GPU-a', '00000000:0A:00.0');
  const g1 = reading(1, 'GPU-b', '00000000:18:00.0');

  it('names a GPU by the bus of its line, keeps its identity without values, and its start', () => {
    const t = new LostGpuTracker();
    expect(t.update([g0, g1], [], 1000)).toEqual([]);
    const line = { index: 1, pciBusId: '00000000:18:00.0', error: 'Unknown Error', position: 1 };
    const lost = t.update([g0], [line], 2000);
    expect(lost).toEqual([{ reading: identityOf(g1), reason: 'Unknown Error', since: 2000 }]);
    expect(lost[0]?.reading.utilizationRatio).toBeUndefined();
    expect(lost[0]?.reading.clocksHz).toEqual({});
    expect(t.update([g0], [line], 3000)[0]?.since).toBe(2000);
    expect(t.update([g0, g1], [], 4000)).toEqual([]);
  });

  it('gives a GPU lost before it was ever seen the index of its place and an empty UUID', () => {
    const t = new LostGpuTracker();
    const lost = t.update(
      [g0],
      [{ pciBusId: '00000000:18:00.0', error: 'Unknown Error', position: 1 }],
      1000,
    );
    expect(lost.map((l) => [l.reading.index, l.reading.uuid, l.reading.pciBusId])).toEqual([
      [1, '', '00000000:18:00.0'],
    ]);
  });

  it('takes a known GPU missing from two blocks in a row as lost, one block as a hiccup', () => {
    const t = new LostGpuTracker();
    t.update([g0, g1], [], 1000);
    expect(t.update([g0], [], 2000)).toEqual([]);
    expect(t.update([g0, g1], [], 3000)).toEqual([]);
    expect(t.update([g0], [], 4000)).toEqual([]);
    expect(t.update([g0], [], 5000)).toEqual([
      { reading: identityOf(g1), reason: MISSING_REASON, since: 5000 },
    ]);
    expect(t.current().map((l) => l.reading.uuid)).toEqual(['GPU-b']);
  });
});
