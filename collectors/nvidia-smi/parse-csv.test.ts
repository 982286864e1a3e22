import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  THROTTLE_REASONS,
  type GpuProcess,
  type GpuReading,
  type ThrottleReason,
} from '../../agent/core/facts.js';
import {
  COMPUTE_APPS_FIELDS,
  QUERY_GPU_FIELDS,
  parseComputeAppsCsv,
  parseComputeAppsRow,
  parseHelpQueryGpu,
  parseQueryGpuCsv,
  parseQueryGpuRow,
  selectQueryFields,
  splitCsvLine,
  type RejectedRow,
} from './parse-csv.js';
import { fixturesDir, readFixture as fixture } from './simulator/fixtures.js';

const MiB = 1048576;
const MHz = 1e6;
const MASKED_UUID = 'GPU-00000000-0000-0000-0000-000000000000';

/** Every reason false except `active`: the CSV reports all nine (eight columns + the mask). */
function throttle(...active: ThrottleReason[]): Record<ThrottleReason, boolean> {
  return Object.fromEntries(THROTTLE_REASONS.map((r) => [r, active.includes(r)])) as Record<
    ThrottleReason,
    boolean
  >;
}

function parseWithRejects(text: string, fields?: readonly string[]) {
  const rejects: RejectedRow[] = [];
  const gpus = parseQueryGpuCsv(text, fields, { onReject: (r) => rejects.push(r) });
  return { gpus, rejects };
}

// ---------------------------------------------------------------------------------------------
// --query-gpu with ~200-240 fields from the nvidia_gpu_exporter captures (csv/*all-fields.csv).
// The per-machine part is constant across idle/load; the table row holds what the file prints
// for the moment, in the file's own units.

type Machine = Omit<
  GpuReading,
  | 'memoryUsedBytes'
  | 'memoryFreeBytes'
  | 'temperatureCelsius'
  | 'powerDrawWatts'
  | 'clocksHz'
  | 'pstate'
  | 'throttle'
  | 'throttleSeconds'
  | 'pcieLinkGen'
>;

const RTX_2080_SUPER: Machine = {
  index: 0,
  uuid: MASKED_UUID,
  name: 'NVIDIA GeForce RTX 2080 SUPER',
  pciBusId: '00000000:0C:00.0',
  computeCapability: '7.5',
  memoryTotalBytes: 8192 * MiB,
  powerLimitWatts: 250,
  enforcedPowerLimitWatts: 250,
  powerDefaultLimitWatts: 250,
  computeMode: 'default',
  recoveryAction: 'none',
  maxClocksHz: { graphics: 2145 * MHz, sm: 2145 * MHz, memory: 7751 * MHz },
  pcieLinkGenMax: 3,
  pcieLinkWidth: 16,
  pcieLinkWidthMax: 16,
};
const RTX_2080_SUPER_LINUX_595: Machine = {
  ...RTX_2080_SUPER,
  driverVersion: '595.71.05',
  vbiosVersion: '90.04.7A.40.73',
  memoryReservedBytes: 408 * MiB,
  persistenceMode: false,
};
const RTX_2080_SUPER_LINUX_610: Machine = {
  ...RTX_2080_SUPER_LINUX_595,
  driverVersion: '610.57.04',
  memoryReservedBytes: 400 * MiB,
};
// Windows prints the VBIOS in lower case and has no persistence mode.
const RTX_2080_SUPER_WINDOWS_591: Machine = {
  ...RTX_2080_SUPER,
  driverVersion: '591.86',
  vbiosVersion: '90.04.7a.40.73',
  memoryReservedBytes: 205 * MiB,
};
const RTX_2080_SUPER_WINDOWS_610: Machine = {
  ...RTX_2080_SUPER_WINDOWS_591,
  driverVersion: '610.62',
};
const RTX_4080_SUPER: Machine = {
  index: 0,
  uuid: MASKED_UUID,
  name: 'NVIDIA GeForce RTX 4080 SUPER',
  pciBusId: '00000000:01:00.0',
  driverVersion: '595.71.05',
  vbiosVersion: '95.03.44.00.B2',
  computeCapability: '8.9',
  memoryTotalBytes: 16376 * MiB,
  memoryReservedBytes: 434 * MiB,
  powerLimitWatts: 320,
  enforcedPowerLimitWatts: 320,
  powerDefaultLimitWatts: 320,
  computeMode: 'default',
  recoveryAction: 'none',
  maxClocksHz: { graphics: 3165 * MHz, sm: 3165 * MHz, memory: 11501 * MHz },
  pcieLinkGenMax: 4,
  pcieLinkWidth: 16,
  pcieLinkWidthMax: 16,
  persistenceMode: false,
};
const DATACENTER = {
  index: 0,
  uuid: MASKED_UUID,
  driverVersion: '590.48.01',
  serial: '0000000000000',
  computeCapability: '9.0',
  powerLimitWatts: 700,
  enforcedPowerLimitWatts: 700,
  powerDefaultLimitWatts: 700,
  computeMode: 'default',
  recoveryAction: 'none',
  // NVLink fabric registration; the GeForce boards print N/A (no fabric).
  fabricState: 'completed',
  pcieLinkGenMax: 5,
  pcieLinkWidth: 16,
  pcieLinkWidthMax: 16,
  persistenceMode: true,
  ecc: {
    enabled: true,
    correctedVolatile: 0,
    uncorrectedVolatile: 0,
    correctedAggregate: 0,
    uncorrectedAggregate: 0,
  },
} as const;
// Remapped rows read "[N/A]" once MIG is on, so only the non-MIG machines carry them.
const NO_REMAPS = {
  remappedRowsCorrectable: 0,
  remappedRowsUncorrectable: 0,
  remappedRowsPending: false,
  remappedRowsFailure: false,
} as const;
const H100_MIG: Machine = {
  ...DATACENTER,
  name: 'NVIDIA H100 80GB HBM3',
  pciBusId: '00000000:00:09.0',
  vbiosVersion: '96.00.A5.00.01',
  memoryTotalBytes: 81559 * MiB,
  memoryReservedBytes: 479 * MiB,
  maxClocksHz: { graphics: 1980 * MHz, sm: 1980 * MHz, memory: 2619 * MHz },
  migEnabled: true,
};
const H100: Machine = { ...H100_MIG, ...NO_REMAPS, migEnabled: false };
const H200_MIG: Machine = {
  ...DATACENTER,
  name: 'NVIDIA H200',
  pciBusId: '00000000:83:00.0',
  vbiosVersion: '96.00.A5.00.03',
  memoryTotalBytes: 143771 * MiB,
  memoryReservedBytes: 614 * MiB,
  maxClocksHz: { graphics: 1980 * MHz, sm: 1980 * MHz, memory: 3201 * MHz },
  migEnabled: true,
};
const H200: Machine = { ...H200_MIG, ...NO_REMAPS, migEnabled: false };

interface Moment {
  /** memory.used, memory.free [MiB] */
  mem: [number, number];
  /** utilization.gpu/.memory/.encoder/.decoder [%]; absent under MIG ("[N/A]"). */
  util?: [number, number, number, number];
  /** temperature.gpu, temperature.memory (absent where "N/A") */
  temp: [number, number?];
  /** power.draw [W] */
  power: number;
  /** clocks.current.graphics/sm/memory/video [MHz] */
  clocks: [number, number, number, number];
  /** fan.speed [%]; absent on the passively cooled data-centre boards ("[N/A]"). */
  fan?: number;
  pstate: number;
  active: ThrottleReason[];
  /** clocks_event_reasons_counters.sw_power_cap [us]; the other four counters are 0 us everywhere. */
  swPowerCapUs: number;
  /** pcie.link.gen.gpucurrent */
  gen: number;
}

function reading(machine: Machine, m: Moment): GpuReading {
  const [used, free] = m.mem;
  const [gpu, mem, enc, dec] = m.util ?? [];
  return {
    ...machine,
    ...(m.util && {
      utilizationRatio: gpu! / 100,
      memoryUtilizationRatio: mem! / 100,
      encoderUtilizationRatio: enc! / 100,
      decoderUtilizationRatio: dec! / 100,
    }),
    memoryUsedBytes: used * MiB,
    memoryFreeBytes: free * MiB,
    temperatureCelsius: m.temp[0],
    ...(m.temp[1] !== undefined && { memoryTemperatureCelsius: m.temp[1] }),
    powerDrawWatts: m.power,
    clocksHz: {
      graphics: m.clocks[0] * MHz,
      sm: m.clocks[1] * MHz,
      memory: m.clocks[2] * MHz,
      video: m.clocks[3] * MHz,
    },
    ...(m.fan !== undefined && { fanSpeedRatio: m.fan / 100 }),
    pstate: m.pstate,
    throttle: throttle(...m.active),
    throttleSeconds: {
      sw_power_cap: m.swPowerCapUs / 1e6,
      sync_boost: 0,
      sw_thermal_slowdown: 0,
      hw_thermal_slowdown: 0,
      hw_power_brake_slowdown: 0,
    },
    pcieLinkGen: m.gen,
  };
}

// prettier-ignore
const ALL_FIELDS: [capture: string, phase: 'idle' | 'load', expected: GpuReading][] = [
  ['linux-x86_64__nvidia-geforce-rtx-2080-super__595.71.05', 'idle', reading(RTX_2080_SUPER_LINUX_595, { mem: [214, 7571], util: [0, 9, 0, 0], temp: [40], power: 39.32, clocks: [765, 765, 810, 705], fan: 38, pstate: 8, active: ['sw_power_cap'], swPowerCapUs: 212553937, gen: 1 })],
  ['linux-x86_64__nvidia-geforce-rtx-2080-super__595.71.05', 'load', reading(RTX_2080_SUPER_LINUX_595, { mem: [819, 6967], util: [8, 3, 100, 0], temp: [45], power: 111.5, clocks: [2055, 2055, 7500, 1905], fan: 38, pstate: 2, active: [], swPowerCapUs: 221310321, gen: 3 })],
  ['linux-x86_64__nvidia-geforce-rtx-2080-super__610.57.04', 'idle', reading(RTX_2080_SUPER_LINUX_610, { mem: [211, 7582], util: [0, 0, 0, 0], temp: [33], power: 39.17, clocks: [765, 765, 810, 675], fan: 38, pstate: 8, active: ['gpu_idle'], swPowerCapUs: 15814595384, gen: 1 })],
  ['linux-x86_64__nvidia-geforce-rtx-2080-super__610.57.04', 'load', reading(RTX_2080_SUPER_LINUX_610, { mem: [815, 6978], util: [8, 3, 100, 0], temp: [38], power: 98.14, clocks: [2070, 2070, 7500, 1920], fan: 38, pstate: 2, active: [], swPowerCapUs: 15820333506, gen: 3 })],
  ['linux-x86_64__nvidia-geforce-rtx-4080-super__595.71.05', 'idle', reading(RTX_4080_SUPER, { mem: [596, 15348], util: [0, 23, 0, 0], temp: [43], power: 26.2, clocks: [210, 210, 405, 1185], fan: 0, pstate: 8, active: ['gpu_idle'], swPowerCapUs: 0, gen: 1 })],
  ['linux-x86_64__nvidia-geforce-rtx-4080-super__595.71.05', 'load', reading(RTX_4080_SUPER, { mem: [1474, 14470], util: [7, 2, 72, 0], temp: [46], power: 84.24, clocks: [2805, 2805, 11251, 2145], fan: 0, pstate: 2, active: [], swPowerCapUs: 0, gen: 4 })],
  ['linux-x86_64__nvidia-h100-80gb-hbm3__590.48.01', 'idle', reading(H100, { mem: [0, 81081], util: [0, 0, 0, 0], temp: [41, 48], power: 69.85, clocks: [345, 345, 2619, 765], pstate: 0, active: ['gpu_idle'], swPowerCapUs: 0, gen: 5 })],
  ['linux-x86_64__nvidia-h100-80gb-hbm3__590.48.01', 'load', reading(H100, { mem: [19818, 61263], util: [100, 11, 0, 0], temp: [59, 54], power: 631.95, clocks: [1980, 1980, 2619, 1545], pstate: 0, active: [], swPowerCapUs: 0, gen: 5 })],
  ['linux-x86_64__nvidia-h100-mig__590.48.01', 'idle', reading(H100_MIG, { mem: [59, 81022], temp: [42, 48], power: 71.15, clocks: [345, 345, 2619, 765], pstate: 0, active: ['gpu_idle'], swPowerCapUs: 0, gen: 5 })],
  ['linux-x86_64__nvidia-h100-mig__590.48.01', 'load', reading(H100_MIG, { mem: [11125, 69956], temp: [53, 59], power: 433.78, clocks: [1980, 1980, 2619, 1545], pstate: 0, active: [], swPowerCapUs: 0, gen: 5 })],
  ['linux-x86_64__nvidia-h200-mig__590.48.01', 'idle', reading(H200_MIG, { mem: [55, 143103], temp: [28, 32], power: 78.28, clocks: [345, 345, 3201, 765], pstate: 0, active: ['gpu_idle'], swPowerCapUs: 0, gen: 5 })],
  ['linux-x86_64__nvidia-h200-mig__590.48.01', 'load', reading(H200_MIG, { mem: [16959, 126199], temp: [36, 39], power: 295.01, clocks: [1980, 1980, 3201, 1545], pstate: 0, active: [], swPowerCapUs: 0, gen: 5 })],
  ['linux-x86_64__nvidia-h200__590.48.01', 'idle', reading(H200, { mem: [0, 143158], util: [0, 0, 0, 0], temp: [28, 32], power: 77.71, clocks: [345, 345, 3201, 765], pstate: 0, active: ['gpu_idle'], swPowerCapUs: 0, gen: 5 })],
  ['linux-x86_64__nvidia-h200__590.48.01', 'load', reading(H200, { mem: [32362, 110796], util: [100, 7, 0, 0], temp: [52, 40], power: 627.4, clocks: [1980, 1980, 3201, 1545], pstate: 0, active: [], swPowerCapUs: 0, gen: 5 })],
  ['windows-x86_64__nvidia-geforce-rtx-2080-super__591.86', 'idle', reading(RTX_2080_SUPER_WINDOWS_591, { mem: [702, 7286], util: [0, 0, 0, 0], temp: [40], power: 38.92, clocks: [300, 300, 405, 540], fan: 37, pstate: 8, active: ['gpu_idle'], swPowerCapUs: 5451018134, gen: 3 })],
  // gpu_idle stays Active with the encoder at 100 %: NVENC load does not count as "busy".
  ['windows-x86_64__nvidia-geforce-rtx-2080-super__591.86', 'load', reading(RTX_2080_SUPER_WINDOWS_591, { mem: [1296, 6692], util: [7, 3, 100, 0], temp: [45], power: 97.43, clocks: [2055, 2055, 7500, 1905], fan: 38, pstate: 2, active: ['gpu_idle'], swPowerCapUs: 5459682741, gen: 3 })],
  ['windows-x86_64__nvidia-geforce-rtx-2080-super__610.62', 'idle', reading(RTX_2080_SUPER_WINDOWS_610, { mem: [797, 7191], util: [0, 10, 0, 0], temp: [40], power: 39.25, clocks: [300, 300, 405, 540], fan: 38, pstate: 8, active: ['gpu_idle'], swPowerCapUs: 824898457, gen: 3 })],
  ['windows-x86_64__nvidia-geforce-rtx-2080-super__610.62', 'load', reading(RTX_2080_SUPER_WINDOWS_610, { mem: [1366, 6622], util: [7, 3, 99, 0], temp: [44], power: 97.99, clocks: [2040, 2040, 7500, 1890], fan: 38, pstate: 2, active: [], swPowerCapUs: 834002687, gen: 3 })],
];

const allFieldsFile = (capture: string, phase: string): string =>
  `csv/${capture}__${phase}__query-gpu-all-fields.csv`;

describe('parseQueryGpuCsv on the all-fields captures', () => {
  it.each(ALL_FIELDS)('%s (%s)', (capture, phase, expected) => {
    const { gpus, rejects } = parseWithRejects(fixture(allFieldsFile(capture, phase)));
    expect(rejects).toEqual([]);
    expect(gpus).toStrictEqual([expected]);
  });

  it.each(ALL_FIELDS)(
    '%s (%s): the .active mask agrees with the per-reason columns',
    (capture, phase) => {
      const [header = '', row = ''] = fixture(allFieldsFile(capture, phase)).split('\n');
      const keep = header
        .split(', ')
        .map((name, i) => [name, i] as const)
        .filter(([name]) => !/^clocks_event_reasons\.(?!active|supported)/.test(name));
      const cells = row.split(', ');
      const fromMask = parseQueryGpuRow(
        keep.map(([, i]) => cells[i] ?? ''),
        keep.map(([name]) => name),
      );
      expect(fromMask?.throttle).toEqual(parseQueryGpuCsv(`${header}\n${row}`)[0]?.throttle);
    },
  );

  it('reads a noheader,nounits line with the selected field list (the streaming path)', () => {
    const [header = '', row = ''] = fixture(allFieldsFile(ALL_FIELDS[0]![0], 'idle')).split('\n');
    const byName = new Map(
      header.split(', ').map((name, i) => [name.replace(/ \[.*\]$/, ''), row.split(', ')[i]]),
    );
    const fields = selectQueryFields([...byName.keys()], []);
    // --format=csv,noheader,nounits prints "214" where the default format prints "214 MiB".
    const line = fields.map((f) => byName.get(f)!.replace(/ (MiB|W|MHz|%|us)$/, '')).join(', ');
    expect(line).toContain(', 214, ');
    expect(parseQueryGpuCsv(line, fields)).toStrictEqual([ALL_FIELDS[0]![2]]);
    expect(parseQueryGpuRow(line.split(', '), fields)).toStrictEqual(ALL_FIELDS[0]![2]);
  });
});

// ---------------------------------------------------------------------------------------------
// Other CSV fixtures: VirtualClient's field subsets and nvidia_gpu_exporter's unit-bearing sample.

const VC_H100 = {
  name: 'NVIDIA H100 80GB HBM3',
  driverVersion: '535.161.07',
  memoryTotalBytes: 81559 * MiB,
  memoryFreeBytes: 81007 * MiB,
  pstate: 0,
  clocksHz: { graphics: 345 * MHz, sm: 345 * MHz, memory: 2619 * MHz, video: 765 * MHz },
  maxClocksHz: {},
  throttle: {},
  throttleSeconds: {},
  pcieLinkGen: 5,
  pcieLinkGenMax: 5,
  pcieLinkWidth: 16,
} as const;
const VC_H100_ZERO_ECC = {
  correctedVolatile: 0,
  uncorrectedVolatile: 0,
  correctedAggregate: 0,
  uncorrectedAggregate: 0,
};

function vcH100(index: number, bus: string, temps: [number, number], power: number): GpuReading {
  return {
    ...VC_H100,
    index,
    // No uuid column: the PCI bus id stands in, marked so it cannot pass for a UUID.
    uuid: `pci:${bus}`,
    pciBusId: bus,
    utilizationRatio: 0,
    memoryUtilizationRatio: 0,
    memoryUsedBytes: 0,
    temperatureCelsius: temps[0],
    memoryTemperatureCelsius: temps[1],
    powerDrawWatts: power,
    ecc: VC_H100_ZERO_ECC,
  };
}

function vcT4(index: number, bus: string, total: number, used: number, free: number, temp: number) {
  return {
    index,
    uuid: `pci:${bus}`,
    name: 'Tesla T4',
    pciBusId: bus,
    driverVersion: '510.108.03',
    pstate: 8,
    pcieLinkGen: 1,
    pcieLinkGenMax: 3,
    temperatureCelsius: temp,
    utilizationRatio: 0,
    memoryUtilizationRatio: 0,
    memoryTotalBytes: total * MiB,
    memoryUsedBytes: used * MiB,
    memoryFreeBytes: free * MiB,
    clocksHz: {},
    maxClocksHz: {},
    throttle: {},
    throttleSeconds: {},
  };
}

// prettier-ignore
const OTHER_QUERY_GPU: [file: string, expected: GpuReading[]][] = [
  // ECC columns edited by the source authors to 4, 5, 6...; the .total columns are the ones read.
  ['h100-80gb-hbm3-x1-ecc-edited__535.161.07__query-gpu__virtualclient.csv', [{
    ...vcH100(0, '00000000:0A:00.0', [26, 35], 70.89),
    utilizationRatio: 0.01,
    memoryUtilizationRatio: 0.02,
    memoryUsedBytes: 3 * MiB,
    ecc: { correctedVolatile: 7, correctedAggregate: 11, uncorrectedVolatile: 14, uncorrectedAggregate: 20 },
  }]],
  // Rows 4-7 repeat the bus ids of rows 0-3 (edited sample), so their stand-in ids repeat too.
  ['h100-80gb-hbm3-x8__535.161.07__query-gpu__virtualclient.csv', [
    vcH100(0, '00000000:0A:00.0', [26, 35], 70.89),
    vcH100(1, '00000000:11:00.0', [26, 34], 71.71),
    vcH100(2, '00000000:18:00.0', [25, 33], 70.78),
    vcH100(3, '00000000:69:00.0', [25, 33], 72.17),
    vcH100(4, '00000000:0A:00.0', [26, 35], 70.89),
    vcH100(5, '00000000:11:00.0', [26, 34], 71.71),
    vcH100(6, '00000000:18:00.0', [25, 33], 70.78),
    vcH100(7, '00000000:69:00.0', [25, 33], 72.17),
  ]],
  // Bare "N/A" (temperature.memory) and "[N/A]" (power.draw.average) in one row; the instant
  // reading is the remaining power source.
  ['tesla-t4-x1-na-fields__550.54.15__query-gpu__virtualclient.csv', [{
    index: 0,
    uuid: 'pci:00000001:01:00.0',
    name: 'Tesla T4',
    pciBusId: '00000001:01:00.0',
    driverVersion: '550.54.15',
    pstate: 8,
    pcieLinkGen: 1,
    pcieLinkGenMax: 3,
    pcieLinkWidth: 16,
    utilizationRatio: 0.02,
    memoryUtilizationRatio: 0.03,
    temperatureCelsius: 26,
    powerDrawWatts: 9.31,
    clocksHz: { graphics: 300 * MHz, sm: 300 * MHz, memory: 405 * MHz, video: 540 * MHz },
    maxClocksHz: {},
    memoryTotalBytes: 15360 * MiB,
    memoryFreeBytes: 14917 * MiB,
    memoryUsedBytes: 100 * MiB,
    throttle: {},
    throttleSeconds: {},
    ecc: { correctedVolatile: 20, correctedAggregate: 1, uncorrectedVolatile: 5, uncorrectedAggregate: 9 },
  }]],
  // No index column either: the row position stands in.
  ['tesla-t4-x1__510.108.03__query-gpu__virtualclient.csv', [vcT4(0, '00000001:00:00.0', 15360, 159, 14750, 36)]],
  ['tesla-t4-x4__510.108.03__query-gpu__virtualclient.csv', [
    vcT4(0, '00000001:00:00.0', 16384, 257, 15670, 48),
    vcT4(1, '00000002:00:00.0', 16384, 14, 15913, 51),
    vcT4(2, '00000003:00:00.0', 16384, 14, 15913, 53),
    vcT4(3, '00000004:00:00.0', 16384, 14, 15913, 53),
  ]],
  // Units in the values ("38 %", "575 MiB"), index as the last column, serial "[N/A]".
  ['rtx-2080-super-windows-wddm-plus-synthetic-row__466.63__query-gpu-with-units__nvidia-gpu-exporter.csv', [
    {
      index: 0,
      uuid: 'GPU-df6e7a7c-7314-46f8-abc4-b88b36dcf3aa',
      name: 'NVIDIA GeForce RTX 2080 SUPER',
      pciBusId: '00000000:01:00.0',
      driverVersion: '466.63',
      vbiosVersion: '90.04.7a.40.73',
      computeCapability: '7.5',
      fanSpeedRatio: 0.38,
      memoryUsedBytes: 575 * MiB,
      clocksHz: {},
      maxClocksHz: {},
      throttle: {},
      throttleSeconds: {},
    },
    {
      index: 1,
      uuid: 'GPU-04757e3e-3077-4e2e-b988-7e2d647b52e9',
      name: 'Some Other GPU',
      pciBusId: '00000000:02:00.0',
      driverVersion: '123.45',
      vbiosVersion: '1a.2b.3c.4d',
      computeCapability: '8.6',
      fanSpeedRatio: 0.5,
      memoryUsedBytes: 1234 * MiB,
      clocksHz: {},
      maxClocksHz: {},
      throttle: {},
      throttleSeconds: {},
    },
  ]],
];

describe('parseQueryGpuCsv on the other CSV fixtures', () => {
  it.each(OTHER_QUERY_GPU)('%s', (file, expected) => {
    const { gpus, rejects } = parseWithRejects(fixture(`csv/${file}`));
    expect(rejects).toEqual([]);
    expect(gpus).toStrictEqual(expected);
  });

  it('covers every query-gpu CSV fixture', () => {
    const tested = [
      ...ALL_FIELDS.map(([capture, phase]) => allFieldsFile(capture, phase)),
      ...OTHER_QUERY_GPU.map(([file]) => `csv/${file}`),
    ];
    const present = readdirSync(join(fixturesDir(), 'csv'))
      .filter((f) => !f.includes('compute-apps'))
      .map((f) => `csv/${f}`);
    expect(tested.sort()).toEqual(present.sort());
  });
});

// ---------------------------------------------------------------------------------------------
// --query-compute-apps

type App = [pid: number, name: string, mib?: number];
const apps = (rows: App[]): GpuProcess[] =>
  rows.map(([pid, processName, mib]) => ({
    pid,
    gpuUuid: MASKED_UUID,
    processName,
    ...(mib !== undefined && { usedMemoryBytes: mib * MiB }),
  }));

const WIN = 'C:\\Windows\\';
const SYSAPPS = 'C:\\Windows\\SystemApps\\';
const CBS = `${SYSAPPS}MicrosoftWindows.Client.CBS_cw5n1h2txyewy\\`;
const FFMPEG_WIN =
  'C:\\Users\\utku\\AppData\\Local\\Microsoft\\WinGet\\Packages\\Gyan.FFmpeg_Microsoft.Winget.Source_8wekyb3d8bbwe\\ffmpeg-8.1.1-full_build\\bin\\ffmpeg.exe';
const OVERLAY = 'C:\\Program Files\\NVIDIA Corporation\\NVIDIA App\\CEF\\NVIDIA Overlay.exe';

// Windows WDDM: every process, the two ffmpeg encoders included, has used_gpu_memory "[N/A]".
const WINDOWS_591_IDLE: App[] = [
  [12444, `${CBS}TextInputHost.exe`],
  [15076, `${SYSAPPS}ShellExperienceHost_cw5n1h2txyewy\\ShellExperienceHost.exe`],
  [2056, `${WIN}System32\\dwm.exe`],
  [12332, `${WIN}explorer.exe`],
  [20372, 'C:\\Program Files\\NZXT CAM\\NZXT CAM.exe'],
  [4680, 'C:\\Program Files\\NVIDIA Corporation\\NVIDIA GeForce Experience\\NVIDIA Share.exe'],
  [14160, `${CBS}SearchHost.exe`],
  [
    14184,
    `${SYSAPPS}Microsoft.Windows.StartMenuExperienceHost_cw5n1h2txyewy\\StartMenuExperienceHost.exe`,
  ],
  [16280, 'C:\\Program Files\\Controller Companion\\ControllerCompanion.exe'],
  [24804, `${WIN}ImmersiveControlPanel\\SystemSettings.exe`],
];
const WINDOWS_610_IDLE: App[] = [
  [2140, `${WIN}System32\\dwm.exe`],
  [13264, `${WIN}System32\\ShellHost.exe`],
  [13504, `${CBS}CrossDeviceResume.exe`],
  [13160, `${WIN}explorer.exe`],
  [
    14872,
    `${SYSAPPS}Microsoft.Windows.StartMenuExperienceHost_cw5n1h2txyewy\\StartMenuExperienceHost.exe`,
  ],
  [14808, `${CBS}SearchHost.exe`],
  [16760, `${SYSAPPS}ShellExperienceHost_cw5n1h2txyewy\\ShellExperienceHost.exe`],
  [17648, OVERLAY],
  [15964, OVERLAY],
  [
    17840,
    'C:\\Program Files (x86)\\Microsoft\\EdgeWebView\\Application\\149.0.4022.80\\msedgewebview2.exe',
  ],
  [19052, `${SYSAPPS}Microsoft.LockApp_cw5n1h2txyewy\\LockApp.exe`],
  [20440, 'C:\\Program Files\\Controller Companion\\ControllerCompanion.exe'],
  [
    21912,
    'C:\\Program Files\\WindowsApps\\Microsoft.YourPhone_1.26042.99.0_x64__8wekyb3d8bbwe\\PhoneExperienceHost.exe',
  ],
  [22412, `${CBS}TextInputHost.exe`],
  [
    23480,
    'C:\\Program Files\\WindowsApps\\Agilebits.1Password_8.12.24.34_x64__amwd9z03whsfe\\1Password.exe',
  ],
  [23988, 'C:\\Program Files (x86)\\Microsoft\\Edge\\Application\\msedge.exe'],
  [
    19956,
    'C:\\Program Files\\WindowsApps\\Microsoft.WindowsTerminal_1.24.11321.0_x64__8wekyb3d8bbwe\\WindowsTerminal.exe',
  ],
  [2164, `${WIN}System32\\ApplicationFrameHost.exe`],
  [13092, `${WIN}ImmersiveControlPanel\\SystemSettings.exe`],
];

// prettier-ignore
const COMPUTE_APPS: [capture: string, idle: App[], load: App[]][] = [
  ['linux-x86_64__nvidia-geforce-rtx-2080-super__595.71.05', [], [[5268, 'ffmpeg', 370], [5267, 'ffmpeg', 230]]],
  ['linux-x86_64__nvidia-geforce-rtx-2080-super__610.57.04', [], [[28512, 'ffmpeg', 370], [28511, 'ffmpeg', 230]]],
  ['linux-x86_64__nvidia-geforce-rtx-4080-super__595.71.05', [[2165, '/usr/bin/kwin_wayland', 25]], [[2165, '/usr/bin/kwin_wayland', 25], [5022, 'ffmpeg', 503], [5021, 'ffmpeg', 360]]],
  ['linux-x86_64__nvidia-h100-80gb-hbm3__590.48.01', [], [[11327, '/root/tools/memhog', 2566], [11328, '/root/tools/memhog', 1542], [11345, './gpu_burn', 15690]]],
  ['linux-x86_64__nvidia-h100-mig__590.48.01', [], [[21180, '/root/tools/memhog', 2296], [21181, '/root/tools/memhog', 1272], [21198, './gpu_burn', 7484]]],
  ['linux-x86_64__nvidia-h200-mig__590.48.01', [], [[12249, '/root/tools/memhog', 2194], [12250, '/root/tools/memhog', 1170], [12267, './gpu_burn', 13526]]],
  ['linux-x86_64__nvidia-h200__590.48.01', [], [[10291, '/root/tools/memhog', 2566], [10293, '/root/tools/memhog', 1542], [10309, './gpu_burn', 28234]]],
  ['windows-x86_64__nvidia-geforce-rtx-2080-super__591.86', WINDOWS_591_IDLE, [...WINDOWS_591_IDLE, [25704, FFMPEG_WIN], [26660, FFMPEG_WIN]]],
  ['windows-x86_64__nvidia-geforce-rtx-2080-super__610.62', WINDOWS_610_IDLE, [...WINDOWS_610_IDLE, [12940, FFMPEG_WIN], [13820, FFMPEG_WIN]]],
];

describe('parseComputeAppsCsv', () => {
  it.each(COMPUTE_APPS)('%s (load)', (capture, _idle, load) => {
    const rejects: RejectedRow[] = [];
    const text = fixture(`csv/${capture}__load__query-compute-apps.csv`);
    expect(
      parseComputeAppsCsv(text, undefined, { onReject: (r) => rejects.push(r) }),
    ).toStrictEqual(apps(load));
    expect(rejects).toEqual([]);
  });

  it('maps "No running processes found" and a bare header to no processes', () => {
    expect(parseComputeAppsCsv('No running processes found\n')).toEqual([]);
    expect(
      parseComputeAppsCsv('timestamp, gpu_uuid, pid, process_name, used_gpu_memory [MiB]\n'),
    ).toEqual([]);
    expect(parseComputeAppsCsv('')).toEqual([]);
  });

  it('reads a noheader,nounits line with COMPUTE_APPS_FIELDS', () => {
    const line = `2026/07/14 09:00:44.742, ${MASKED_UUID}, 21198, ./gpu_burn, 7484, 00000000:00:09.0, NVIDIA H100 80GB HBM3`;
    expect(parseComputeAppsCsv(line, COMPUTE_APPS_FIELDS)).toStrictEqual(
      apps([[21198, './gpu_burn', 7484]]),
    );
  });

  it('keeps process names with spaces, and joins back a name split at ", "', () => {
    const fields = ['pid', 'process_name', 'used_gpu_memory', 'gpu_uuid'];
    expect(
      parseComputeAppsRow(
        ['42', 'C:\\Program Files\\NZXT CAM\\NZXT CAM.exe', '[N/A]', MASKED_UUID],
        fields,
      ),
    ).toStrictEqual(apps([[42, 'C:\\Program Files\\NZXT CAM\\NZXT CAM.exe']])[0]);
    // Command line of the rtx-3080 XML fixture: "--enable-crash-reporter=, --change-stack..."
    const cells =
      '2214, msedge --enable-crash-reporter=, --change-stack-guard-on-fork=enable, 79 MiB, GPU-1'.split(
        ', ',
      );
    expect(parseComputeAppsRow(cells, fields)).toStrictEqual({
      pid: 2214,
      gpuUuid: 'GPU-1',
      processName: 'msedge --enable-crash-reporter=, --change-stack-guard-on-fork=enable',
      usedMemoryBytes: 79 * MiB,
    });
  });

  it('accepts the "name" and "used_memory" aliases', () => {
    expect(
      parseComputeAppsCsv('gpu_uuid, pid, name, used_memory [MiB]\nGPU-1, 7, python, 576 MiB'),
    ).toStrictEqual([
      { pid: 7, gpuUuid: 'GPU-1', processName: 'python', usedMemoryBytes: 576 * MiB },
    ]);
  });

  it('falls back to the bus id without gpu_uuid and keeps a process whose name is hidden', () => {
    const text = 'pid, process_name, gpu_bus_id\n9, [Insufficient Permissions], 00000000:0C:00.0';
    expect(parseComputeAppsCsv(text)).toStrictEqual([
      { pid: 9, gpuUuid: 'pci:00000000:0C:00.0', processName: '' },
    ]);
  });

  it('rejects rows without pid or GPU, or with too few cells, and reports them', () => {
    const rejects: RejectedRow[] = [];
    const text = [
      'timestamp, gpu_uuid, pid, process_name, used_gpu_memory [MiB]',
      '2026/07/14 09:00:44.742, GPU-1, [N/A], python, 10 MiB',
      '2026/07/14 09:00:44.742, [N/A], 12, python, 10 MiB',
      '2026/07/14 09:00:44.742, GPU-1, 13',
      '2026/07/14 09:00:44.742, GPU-1, 14, python, 10 MiB',
    ].join('\n');
    expect(
      parseComputeAppsCsv(text, undefined, { onReject: (r) => rejects.push(r) }),
    ).toStrictEqual([
      { pid: 14, gpuUuid: 'GPU-1', processName: 'python', usedMemoryBytes: 10 * MiB },
    ]);
    expect(rejects.map((r) => [r.line, r.reason])).toEqual([
      [2, 'invalid_row'],
      [3, 'invalid_row'],
      [4, 'column_count'],
    ]);
    expect(parseComputeAppsRow(['1', '2'], ['pid'])).toBeUndefined();
  });
});

// ---------------------------------------------------------------------------------------------
// The nvidia_gpu_exporter captures: every idle and load section parses like the CSV above.

const RULE = /^#{80}$/;

/** Body of the section titled `# <title>` in a capture (between its banner and the next). */
function captureSection(text: string, title: string): string {
  const lines = text.split('\n');
  const start = lines.indexOf(`# ${title}`);
  if (start < 0) throw new Error(`no section "${title}"`);
  const bodyStart = lines.findIndex((line, i) => i > start && RULE.test(line)) + 1;
  const next = lines.findIndex((line, i) => i >= bodyStart && RULE.test(line));
  return lines.slice(bodyStart, next < 0 ? undefined : next).join('\n');
}

const CAPTURES = COMPUTE_APPS.map(([capture]) => capture);

describe('capture sections', () => {
  it('lists every capture file', () => {
    const present = readdirSync(join(fixturesDir(), 'captures'));
    expect(present.sort()).toEqual(CAPTURES.map((c) => `${c}__nvidia-gpu-exporter.txt`).sort());
  });

  it('finds sections by title and stops at the next banner', () => {
    const text = [
      '#'.repeat(80),
      '# a :: b',
      '# $ cmd',
      '#'.repeat(80),
      'x, y',
      '1, 2',
      '',
      '#'.repeat(80),
    ].join('\n');
    expect(captureSection(text, 'a :: b')).toBe('x, y\n1, 2\n');
    expect(captureSection(`${text}\n# last\n${'#'.repeat(80)}\ntail`, 'last')).toBe('tail');
    expect(() => captureSection(text, 'missing')).toThrow('no section');
  });

  it.each(ALL_FIELDS)('%s: %s query-gpu section', (capture, phase, expected) => {
    const text = fixture(`captures/${capture}__nvidia-gpu-exporter.txt`);
    const section = captureSection(text, `${phase} :: query-gpu (csv, what the exporter parses)`);
    expect(section.trim()).toBe(fixture(allFieldsFile(capture, phase)).trim());
    expect(parseWithRejects(section)).toStrictEqual({ gpus: [expected], rejects: [] });
  });

  it.each(COMPUTE_APPS)('%s: idle and load query-compute-apps sections', (capture, idle, load) => {
    const text = fixture(`captures/${capture}__nvidia-gpu-exporter.txt`);
    const rejects: RejectedRow[] = [];
    const onReject = (r: RejectedRow): number => rejects.push(r);
    const idleSection = captureSection(text, 'idle :: query-compute-apps (per-process)');
    const loadSection = captureSection(text, 'load :: query-compute-apps (per-process)');
    expect(parseComputeAppsCsv(idleSection, undefined, { onReject })).toStrictEqual(apps(idle));
    expect(parseComputeAppsCsv(loadSection, undefined, { onReject })).toStrictEqual(apps(load));
    expect(rejects).toEqual([]);
  });

  it.each(CAPTURES)(
    '%s: help-query-gpu section → every gpulse field, new names only',
    (capture) => {
      const text = fixture(`captures/${capture}__nvidia-gpu-exporter.txt`);
      const known = parseHelpQueryGpu(captureSection(text, 'capabilities :: help-query-gpu'));
      // The exporter's own field list is derived from the same help text.
      const derived = captureSection(
        text,
        'capabilities :: query-gpu field list (derived, used for query-gpu above)',
      )
        .split('\n')
        .filter(Boolean);
      expect(known).toEqual(expect.arrayContaining(derived));
      expect(known).toEqual(expect.arrayContaining([...QUERY_GPU_FIELDS]));
      expect(known).toEqual(expect.arrayContaining(['gpu_name', 'clocks.gr', 'retired_pages.sbe']));
      const selected = selectQueryFields(known, []);
      expect(selected).toEqual(
        QUERY_GPU_FIELDS.filter(
          (f) => !f.startsWith('clocks_throttle_reasons.') && f !== 'pcie.link.gen.current',
        ),
      );
    },
  );
});

// ---------------------------------------------------------------------------------------------
// --help-query-gpu and field selection

describe('parseHelpQueryGpu', () => {
  const help = fixture('text/help-query-gpu__recent-driver__nvidia-gpu-exporter.txt');

  it('returns every quoted name, aliases included, and no prose', () => {
    const names = parseHelpQueryGpu(help);
    expect(names).toHaveLength(135);
    expect(names.slice(0, 6)).toEqual([
      'timestamp',
      'driver_version',
      'count',
      'name',
      'gpu_name',
      'serial',
    ]);
    expect(names).toEqual(
      expect.arrayContaining(['clocks.max.gr', 'clocks.max.sm', 'retired_pages.dbe']),
    );
    expect(names).not.toContain('Default');
    expect(names).not.toContain('--query-gpu=');
    expect(new Set(names).size).toBe(names.length);
  });

  it('reads both "new" or "old" orders and CRLF output', () => {
    const text =
      '"clocks_event_reasons.active" or "clocks_throttle_reasons.active"\r\nActive reasons.\r\n"pstate"\r\n';
    expect(parseHelpQueryGpu(text)).toEqual([
      'clocks_event_reasons.active',
      'clocks_throttle_reasons.active',
      'pstate',
    ]);
  });
});

describe('selectQueryFields', () => {
  it('asks a pre-535 driver for the legacy throttle names and skips what it lacks', () => {
    const selected = selectQueryFields(
      parseHelpQueryGpu(fixture('text/help-query-gpu__recent-driver__nvidia-gpu-exporter.txt')),
      [],
    );
    expect(selected).toContain('clocks_throttle_reasons.active');
    expect(selected).toContain('clocks_throttle_reasons.hw_slowdown');
    expect(selected).toContain('pcie.link.gen.current');
    expect(selected.some((f) => f.startsWith('clocks_event_reasons'))).toBe(false);
    for (const absent of [
      'compute_cap',
      'memory.reserved',
      'utilization.encoder',
      'power.draw.average',
      'remapped_rows.correctable',
      'gpu_recovery_action',
      'fabric.state',
    ]) {
      expect(selected).not.toContain(absent);
    }
    expect(selected).toContain('compute_mode');
    expect(selected).toContain('power.default_limit');
    expect(selected).toHaveLength(53);
  });

  it('asks once per concept, whichever order the names come in', () => {
    expect(
      selectQueryFields(['clocks_throttle_reasons.active', 'clocks_event_reasons.active'], []),
    ).toEqual(['clocks_event_reasons.active']);
    expect(selectQueryFields(['pcie.link.gen.current'], [])).toEqual(['pcie.link.gen.current']);
  });

  it('drops fields matching an exclude glob, by new or old name', () => {
    const known = [
      'index',
      'uuid',
      'remapped_rows.correctable',
      'remapped_rows.failure',
      'clocks_throttle_reasons.active',
    ];
    expect(selectQueryFields(known, ['remapped_rows.*'])).toEqual([
      'index',
      'uuid',
      'clocks_throttle_reasons.active',
    ]);
    expect(selectQueryFields(known, ['clocks_event_reasons.*', 'uu?d'])).toEqual([
      'index',
      'uuid',
      'remapped_rows.correctable',
      'remapped_rows.failure',
    ]);
    expect(selectQueryFields(known, ['*'])).toEqual([]);
    expect(selectQueryFields([], [])).toEqual([]);
  });

  it('ignores names gpulse does not use', () => {
    expect(selectQueryFields(['pci.domain', 'hostname', 'index'], [])).toEqual(['index']);
  });
});

// ---------------------------------------------------------------------------------------------
// Lines that must not become readings

describe('splitCsvLine', () => {
  it('splits on ", " only, keeps empty cells and strips the line end', () => {
    expect(splitCsvLine('0, GPU-a, , P8, \r\n')).toEqual(['0', 'GPU-a', '', 'P8', '']);
    expect(splitCsvLine('0, GPU-a, , P8,\n')).toEqual(['0', 'GPU-a', '', 'P8', '']);
    expect(splitCsvLine('42, train,eval "x", 10 MiB')).toEqual(['42', 'train,eval "x"', '10 MiB']);
    expect(splitCsvLine('')).toEqual(['']);
  });

  it('feeds the streaming row parsers', () => {
    expect(
      parseQueryGpuRow(splitCsvLine('3, GPU-a, 2566\n'), ['index', 'uuid', 'memory.used']),
    ).toMatchObject({
      index: 3,
      memoryUsedBytes: 2566 * MiB,
    });
  });
});

describe('parseQueryGpuCsv rejects what does not fit', () => {
  const fields = ['index', 'uuid', 'memory.used', 'fan.speed'];

  it('rejects a truncated row and a garbage line, keeps the good rows, never throws', () => {
    const text = [
      '0, GPU-a, 100, 30',
      '1, GPU-b, 2',
      'NVRM: something else entirely',
      '2, GPU-c, 300, 50',
    ].join('\n');
    const { gpus, rejects } = parseWithRejects(text, fields);
    expect(gpus.map((g) => [g.index, g.uuid, g.memoryUsedBytes, g.fanSpeedRatio])).toEqual([
      [0, 'GPU-a', 100 * MiB, 0.3],
      [2, 'GPU-c', 300 * MiB, 0.5],
    ]);
    expect(rejects).toEqual([
      { line: 2, text: '1, GPU-b, 2', reason: 'column_count' },
      { line: 3, text: 'NVRM: something else entirely', reason: 'column_count' },
    ]);
  });

  it('takes a lost GPU’s line for that GPU, not for garbage: the rows after it keep their place', () => {
    const text = [
      '0, GPU-a, 100, 30',
      'Unable to determine the device handle for GPU0000:0C:00.0: Unknown Error',
      '2, GPU-c, 300, 50',
    ].join('\n');
    const unreachable: unknown[] = [];
    const rejects: unknown[] = [];
    const gpus = parseQueryGpuCsv(text, fields, {
      onReject: (r) => rejects.push(r),
      onUnreachable: (h) => unreachable.push(h),
    });
    expect(gpus.map((g) => g.uuid)).toEqual(['GPU-a', 'GPU-c']);
    expect(rejects).toEqual([]);
    expect(unreachable).toEqual([
      { pciBusId: '00000000:0C:00.0', error: 'Unknown Error', position: 1 },
    ]);
  });

  it('rejects rows when neither a header nor fields name the columns', () => {
    const { gpus, rejects } = parseWithRejects('0, GPU-a, 100, 30');
    expect(gpus).toEqual([]);
    expect(rejects).toEqual([{ line: 1, text: '0, GPU-a, 100, 30', reason: 'no_columns' }]);
  });

  it('rejects a row with neither uuid nor bus id, and a lone row without index', () => {
    const { gpus, rejects } = parseWithRejects('0, [GPU requires reset], 1, 2', fields);
    expect(gpus).toEqual([]);
    expect(rejects.map((r) => r.reason)).toEqual(['invalid_row']);
    expect(parseQueryGpuRow(['GPU-a'], ['uuid'])).toBeUndefined();
    expect(parseQueryGpuRow(['GPU-a'], ['uuid'], 3)).toMatchObject({ index: 3, uuid: 'GPU-a' });
  });

  it('rejects a row whose cell count differs from the fields (streaming path)', () => {
    expect(parseQueryGpuRow(['0', 'GPU-a'], fields)).toBeUndefined();
    expect(parseQueryGpuRow(['0', 'GPU-a', '1', '2', '3'], fields)).toBeUndefined();
  });

  it('ignores unknown field names and keeps the rest', () => {
    expect(parseQueryGpuCsv('index, uuid, fancy.new_field [W]\n0, GPU-a, 12 W')).toStrictEqual([
      { index: 0, uuid: 'GPU-a', clocksHz: {}, maxClocksHz: {}, throttle: {}, throttleSeconds: {} },
    ]);
  });

  it('reads both bare N/A and [N/A] as absent, and an ERR! fan as absent', () => {
    const text =
      'index, uuid, fan.speed [%], temperature.gpu, temperature.memory, power.draw [W]\n0, GPU-a, ERR!, 45, N/A, [N/A]';
    const [gpu] = parseQueryGpuCsv(text);
    expect(gpu).toStrictEqual({
      index: 0,
      uuid: 'GPU-a',
      temperatureCelsius: 45,
      clocksHz: {},
      maxClocksHz: {},
      throttle: {},
      throttleSeconds: {},
    });
  });

  it('keeps an empty cell in the middle and at the end of a line', () => {
    const fields5 = ['index', 'uuid', 'name', 'pstate', 'serial'];
    expect(parseQueryGpuCsv('0, GPU-a, , P8, ', fields5)[0]).toMatchObject({ index: 0, pstate: 8 });
    // Trailing whitespace trimmed by whatever captured the line.
    expect(parseQueryGpuCsv('0, GPU-a, , P8,', fields5)[0]).toMatchObject({ index: 0, pstate: 8 });
    expect(parseQueryGpuCsv('0, GPU-a, , P8,', fields5)[0]).not.toHaveProperty('serial');
  });

  it('reads CRLF output and a header repeated mid-stream', () => {
    const text = 'index, uuid, pstate\r\n0, GPU-a, P0\r\nindex, uuid, pstate\r\n1, GPU-b, P8\r\n';
    expect(parseQueryGpuCsv(text).map((g) => [g.index, g.uuid, g.pstate])).toEqual([
      [0, 'GPU-a', 0],
      [1, 'GPU-b', 8],
    ]);
  });

  it('lets a header override the fields given, and takes legacy and short aliases', () => {
    const text = [
      'gpu_uuid, clocks.gr [MHz], clocks_throttle_reasons.active, clocks_throttle_reasons.supported, pcie.link.gen.current, retired_pages.sbe, remapped_rows.dbe, gpu.power.draw.instant [W], gpu.power.current_limit [W]',
      'GPU-a, 1410 MHz, 0x0000000000000044, 0x00000000000001FF, 4, 2, 1, 250.50 W, 300.00 W',
    ].join('\n');
    expect(parseQueryGpuCsv(text, ['index'])).toStrictEqual([
      {
        index: 0,
        uuid: 'GPU-a',
        clocksHz: { graphics: 1410 * MHz },
        maxClocksHz: {},
        throttle: throttle('sw_power_cap', 'hw_thermal_slowdown'),
        throttleSeconds: {},
        pcieLinkGen: 4,
        retiredPagesSingleBit: 2,
        remappedRowsUncorrectable: 1,
        powerDrawWatts: 250.5,
        enforcedPowerLimitWatts: 300,
      },
    ]);
  });

  it('prefers a column with a value when old and new names both appear', () => {
    const text =
      'uuid, clocks_event_reasons.gpu_idle, clocks_throttle_reasons.gpu_idle, pcie.link.gen.gpucurrent, pcie.link.gen.current\nGPU-a, [N/A], Active, 4, 1';
    expect(parseQueryGpuCsv(text)[0]).toMatchObject({
      throttle: { gpu_idle: true },
      pcieLinkGen: 4,
    });
  });

  it('decodes only the reasons the supported mask covers', () => {
    const text =
      'uuid, clocks_event_reasons.supported, clocks_event_reasons.active\nGPU-a, 0x0000000000000005, 0x0000000000000001';
    expect(parseQueryGpuCsv(text, undefined)[0]?.throttle).toEqual({
      gpu_idle: true,
      sw_power_cap: false,
    });
  });

  it('reads the remaining fields: retired pages, remapped rows, ECC, limits, memory', () => {
    const text = [
      'index, uuid, retired_pages.single_bit_ecc.count, retired_pages.double_bit.count, retired_pages.pending, remapped_rows.correctable, remapped_rows.uncorrectable, remapped_rows.pending, remapped_rows.failure, ecc.mode.current, power.limit [W], enforced.power.limit [W], utilization.encoder [%], utilization.decoder [%]',
      '3, GPU-a, 1, 2, Yes, 5, 0, Yes, No, Disabled, 149.00 W, 125.00 W, 12 %, 34 %',
    ].join('\n');
    expect(parseQueryGpuCsv(text)[0]).toStrictEqual({
      index: 3,
      uuid: 'GPU-a',
      retiredPagesSingleBit: 1,
      retiredPagesDoubleBit: 2,
      retiredPagesPending: true,
      remappedRowsCorrectable: 5,
      remappedRowsUncorrectable: 0,
      remappedRowsPending: true,
      remappedRowsFailure: false,
      ecc: { enabled: false },
      powerLimitWatts: 149,
      enforcedPowerLimitWatts: 125,
      encoderUtilizationRatio: 0.12,
      decoderUtilizationRatio: 0.34,
      clocksHz: {},
      maxClocksHz: {},
      throttle: {},
      throttleSeconds: {},
    });
  });

  it('refuses a value whose unit contradicts the field instead of scaling it wrongly', () => {
    expect(parseQueryGpuCsv('uuid, memory.used\nGPU-a, 2566 MB')[0]).not.toHaveProperty(
      'memoryUsedBytes',
    );
  });
});
