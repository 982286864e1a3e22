import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CollectorError } from '../../agent/core/errors.js';
import { THROTTLE_REASONS, type GpuReading, type ThrottleReason } from '../../agent/core/facts.js';
import {
  KNOWN_SCHEMA_VERSIONS,
  NEWEST_SCHEMA_VERSION,
  parseNvidiaSmiXml,
  type NvidiaSmiXml,
} from './parse-xml.js';
import { fixturesDir, readFixture } from './simulator/fixtures.js';

const fixture = (file: string): string => readFixture(`xml/${file}`);

const MiB = 1048576;
const MHz = 1e6;

function clocks(graphics: number, sm: number, memory: number, video: number) {
  return { graphics: graphics * MHz, sm: sm * MHz, memory: memory * MHz, video: video * MHz };
}

/** All nine reasons, false except `active` (what v10+ documents list). */
function throttle(...active: ThrottleReason[]): Record<ThrottleReason, boolean> {
  return Object.fromEntries(THROTTLE_REASONS.map((r) => [r, active.includes(r)])) as Record<
    ThrottleReason,
    boolean
  >;
}

function util(gpu: number, memory: number, encoder: number, decoder: number) {
  return {
    utilizationRatio: gpu / 100,
    memoryUtilizationRatio: memory / 100,
    encoderUtilizationRatio: encoder / 100,
    decoderUtilizationRatio: decoder / 100,
  };
}

function memory(total: number, used: number, free: number, reserved?: number) {
  return {
    memoryTotalBytes: total * MiB,
    memoryUsedBytes: used * MiB,
    memoryFreeBytes: free * MiB,
    ...(reserved !== undefined && { memoryReservedBytes: reserved * MiB }),
  };
}

function link(gen: number, genMax: number, width: number, widthMax: number) {
  return {
    pcieLinkGen: gen,
    pcieLinkGenMax: genMax,
    pcieLinkWidth: width,
    pcieLinkWidthMax: widthMax,
  };
}

const ZERO_ECC = {
  enabled: true,
  correctedVolatile: 0,
  uncorrectedVolatile: 0,
  correctedAggregate: 0,
  uncorrectedAggregate: 0,
};

// ---------------------------------------------------------------------------------------------

const A100_MIG_DEVICE = {
  computeInstanceId: 0,
  multiprocessorCount: 14,
  memoryTotalBytes: 19968 * MiB,
  memoryUsedBytes: 12 * MiB,
  memoryFreeBytes: 19955 * MiB,
};

const a100: NvidiaSmiXml = {
  schemaVersion: 12,
  schemaDeclared: true,
  driverVersion: '535.54.03',
  cudaVersion: '12.2',
  timestamp: 'Fri Aug  4 11:44:30 2023',
  gpus: [
    {
      // The other three GPUs of this host were trimmed from the sample: index is its position.
      index: 0,

      minorNumber: 1,
      uuid: 'GPU-513536b6-7d19-9063-b049-1e69664bb298',
      name: 'NVIDIA A100-SXM4-80GB',
      pciBusId: '00000000:01:00.0',
      driverVersion: '535.54.03',
      cudaVersion: '12.2',
      serial: '1650522003820',
      vbiosVersion: '92.00.36.00.02',
      // utilization "N/A" and fan "N/A" under MIG / on an SXM board
      ...memory(81920, 50, 80999, 869),
      temperatureCelsius: 27,
      memoryTemperatureCelsius: 44,
      // gpu_power_readings with requested_/current_power_limit but still <power_draw>
      powerDrawWatts: 67.03,
      powerLimitWatts: 500,
      enforcedPowerLimitWatts: 500,
      clocksHz: clocks(1275, 1275, 1593, 1275),
      maxClocksHz: clocks(1410, 1410, 1593, 1290),
      pstate: 0,
      throttle: throttle(),
      throttleSeconds: {},
      ...link(4, 4, 16, 16),
      persistenceMode: false,
      migEnabled: true,
      migDevices: [
        { index: 0, gpuInstanceId: 3, ...A100_MIG_DEVICE },
        { index: 1, gpuInstanceId: 4, ...A100_MIG_DEVICE },
        { index: 2, gpuInstanceId: 5, ...A100_MIG_DEVICE },
        { index: 3, gpuInstanceId: 6, ...A100_MIG_DEVICE },
      ],
      ecc: ZERO_ECC,
    },
  ],
  processes: [],
};

const a10gUuid = 'GPU-9a9a6c50-2a47-2f51-a902-b82c3b127e94';
const a10g: NvidiaSmiXml = {
  schemaVersion: 11,
  schemaDeclared: true,
  driverVersion: '515.105.01',
  cudaVersion: '11.7',
  timestamp: 'Mon Apr 24 16:11:51 2023',
  gpus: [
    {
      index: 0,

      minorNumber: 0,
      uuid: a10gUuid,
      name: 'NVIDIA A10G',
      pciBusId: '00000000:00:1E.0',
      driverVersion: '515.105.01',
      cudaVersion: '11.7',
      serial: '0000000000000',
      vbiosVersion: '94.02.75.00.01',
      ...util(0, 0, 0, 0),
      ...memory(23028, 22, 22569, 435),
      temperatureCelsius: 17,
      powerDrawWatts: 25.58,
      powerLimitWatts: 300,
      enforcedPowerLimitWatts: 300,
      clocksHz: clocks(210, 210, 405, 555),
      maxClocksHz: clocks(1710, 1710, 6251, 1500),
      fanSpeedRatio: 0,
      pstate: 8,
      throttle: throttle('gpu_idle'),
      throttleSeconds: {},
      ...link(1, 4, 8, 16),
      persistenceMode: false,
      ecc: ZERO_ECC,
      remappedRowsCorrectable: 0,
      remappedRowsUncorrectable: 0,
      remappedRowsPending: false,
      remappedRowsFailure: false,
    },
  ],
  processes: [
    {
      pid: 725,
      gpuUuid: a10gUuid,
      gpuIndex: 0,
      type: 'G',
      processName: '/usr/lib/xorg/Xorg',
      usedMemoryBytes: 22 * MiB,
    },
  ],
};

const gt730: NvidiaSmiXml = {
  schemaVersion: 9,
  schemaDeclared: true,
  driverVersion: '384.111',
  timestamp: 'Tue Jul 24 09:43:28 2018',
  gpus: [
    {
      index: 0,

      minorNumber: 0,
      uuid: 'GPU-09cb2925-9d01-5ca4-810b-6cdebe86b71a',
      name: 'GeForce GT 730',
      // No <pci> block in this fragment: the bus id comes from <gpu id="...">.
      pciBusId: '00000000:01:00.0',
      driverVersion: '384.111',
      persistenceMode: true,
      clocksHz: {},
      maxClocksHz: {},
      throttle: {},
      throttleSeconds: {},
    },
  ],
  processes: [],
};

const gtx1070ti: NvidiaSmiXml = {
  schemaVersion: 10,
  schemaDeclared: true,
  gpus: [
    {
      // No minor_number in this trimmed fragment: document order.
      index: 0,
      uuid: 'GPU-f9ba66fc-a7f5-94c5-da19-019ef2f9c665',
      name: 'GeForce GTX 1070 Ti',
      pciBusId: '00000000:01:00.0',
      utilizationRatio: 0,
      memoryUtilizationRatio: 0,
      ...memory(4096, 42, 4054),
      temperatureCelsius: 39,
      clocksHz: clocks(135, 135, 405, 405),
      maxClocksHz: {},
      fanSpeedRatio: 1,
      pstate: 8,
      throttle: {},
      throttleSeconds: {},
      pcieLinkGen: 1,
      pcieLinkWidth: 16,
    },
  ],
  processes: [],
};

// v9 lists five reasons only.
const V9_THROTTLE = {
  gpu_idle: false,
  applications_clocks_setting: false,
  sw_power_cap: false,
  hw_slowdown: false,
  sync_boost: false,
};
const gtx1070 = [
  'GPU-e511a7b2-f9d5-ba47-9b98-853732ca6c1b',
  'GPU-28daffaf-8abe-aaf8-c298-4bd13aecb5e6',
] as const;
const GTX_1070 = {
  name: 'GeForce GTX 1070',
  driverVersion: '384.66',
  vbiosVersion: '86.04.50.00.AB',
  powerLimitWatts: 180,
  enforcedPowerLimitWatts: 180,
  maxClocksHz: clocks(1961, 1961, 4004, 1708),
  pstate: 2,
  throttle: V9_THROTTLE,
  throttleSeconds: {},
  persistenceMode: false,
};
const gtx1070x2: NvidiaSmiXml = {
  schemaVersion: 9,
  schemaDeclared: true,
  driverVersion: '384.66',
  timestamp: 'Mon Sep 11 20:12:12 2017',
  gpus: [
    {
      ...GTX_1070,
      index: 0,

      minorNumber: 0,
      uuid: gtx1070[0],
      pciBusId: '00000000:01:00.0',
      ...util(100, 99, 0, 0),
      ...memory(8112, 2028, 6084),
      temperatureCelsius: 60,
      powerDrawWatts: 119.47,
      clocksHz: clocks(1923, 1923, 3802, 1721),
      fanSpeedRatio: 0.41,
      // A GTX 1070 mining on a PCIe x1 riser.
      ...link(3, 3, 1, 16),
    },
    {
      ...GTX_1070,
      index: 1,

      minorNumber: 1,
      uuid: gtx1070[1],
      pciBusId: '00000000:03:00.0',
      ...util(98, 97, 0, 0),
      ...memory(8114, 4057, 4057),
      temperatureCelsius: 59,
      powerDrawWatts: 139.3,
      clocksHz: clocks(1936, 1936, 3802, 1733),
      fanSpeedRatio: 0.39,
      ...link(2, 2, 1, 16),
    },
  ],
  processes: [
    {
      pid: 1357,
      gpuUuid: gtx1070[0],
      gpuIndex: 0,
      type: 'G',
      processName: '/usr/lib/xorg/Xorg',
      usedMemoryBytes: 99 * MiB,
    },
    {
      pid: 2384,
      gpuUuid: gtx1070[0],
      gpuIndex: 0,
      type: 'G',
      processName: '/usr/bin/gnome-shell',
      usedMemoryBytes: 79 * MiB,
    },
    {
      pid: 3093,
      gpuUuid: gtx1070[0],
      gpuIndex: 0,
      type: 'C',
      processName: './ethminer',
      usedMemoryBytes: 2283 * MiB,
    },
    // The same pid on both GPUs: one row per (process, GPU).
    {
      pid: 3093,
      gpuUuid: gtx1070[1],
      gpuIndex: 1,
      type: 'C',
      processName: './ethminer',
      usedMemoryBytes: 2283 * MiB,
    },
  ],
};

const gtx1660ti: NvidiaSmiXml = {
  schemaVersion: NEWEST_SCHEMA_VERSION,
  schemaDeclared: false,
  driverVersion: '418.43',
  cudaVersion: '10.1',
  timestamp: 'Fri Mar 29 19:19:44 2019',
  gpus: [
    {
      index: 0,

      minorNumber: 0,
      uuid: 'GPU-304a277d-3545-63b8-3a36-dfde3c992989',
      // A card newer than its driver.
      name: 'Graphics Device',
      pciBusId: '00000000:43:00.0',
      driverVersion: '418.43',
      cudaVersion: '10.1',
      vbiosVersion: '90.16.25.00.4C',
      ...util(0, 1, 0, 0),
      ...memory(5912, 0, 5912),
      temperatureCelsius: 40,
      powerDrawWatts: 8.93,
      powerLimitWatts: 130,
      enforcedPowerLimitWatts: 130,
      clocksHz: clocks(300, 300, 405, 540),
      maxClocksHz: clocks(2145, 2145, 4001, 1950),
      fanSpeedRatio: 0,
      pstate: 8,
      throttle: throttle('gpu_idle'),
      throttleSeconds: {},
      ...link(1, 3, 16, 16),
      persistenceMode: false,
    },
  ],
  processes: [],
};

const quadroP2000: NvidiaSmiXml = {
  schemaVersion: 12,
  schemaDeclared: true,
  driverVersion: '525.125.06',
  cudaVersion: '12.0',
  timestamp: 'Wed Sep 20 09:37:38 2023',
  gpus: [
    {
      index: 0,

      minorNumber: 0,
      uuid: 'GPU-396caaed-39ca-3199-2e68-717cdb786ec6',
      name: 'Quadro P2000',
      pciBusId: '00000000:17:00.0',
      driverVersion: '525.125.06',
      cudaVersion: '12.0',
      serial: '0322218049033',
      vbiosVersion: '86.06.3F.00.30',
      ...util(0, 0, 0, 0),
      ...memory(5120, 1, 5051, 66),
      temperatureCelsius: 34,
      // v12 document, pre-535 names: <power_readings>, <clocks_throttle_reasons>.
      powerDrawWatts: 4.61,
      powerLimitWatts: 75,
      enforcedPowerLimitWatts: 75,
      clocksHz: clocks(139, 139, 405, 544),
      maxClocksHz: clocks(1721, 1721, 3504, 1556),
      fanSpeedRatio: 0.46,
      pstate: 8,
      throttle: throttle('gpu_idle'),
      throttleSeconds: {},
      ...link(1, 3, 8, 16),
      persistenceMode: true,
    },
  ],
  processes: [],
};

const quadroP400: NvidiaSmiXml = {
  schemaVersion: NEWEST_SCHEMA_VERSION,
  schemaDeclared: false,
  driverVersion: '418.43',
  cudaVersion: '10.1',
  timestamp: 'Mon Mar 11 17:03:27 2019',
  gpus: [
    {
      index: 0,

      minorNumber: 0,
      uuid: 'GPU-8f750be4-dfbc-23b9-b33f-da729a536494',
      name: 'Quadro P400',
      pciBusId: '00000000:43:00.0',
      driverVersion: '418.43',
      cudaVersion: '10.1',
      serial: '0424418054852',
      vbiosVersion: '86.07.3B.00.4A',
      ...util(0, 3, 0, 0),
      ...memory(1998, 0, 1998),
      temperatureCelsius: 33,
      // power_draw, power_limit and enforced_power_limit all "N/A" on this board
      clocksHz: clocks(139, 139, 405, 544),
      maxClocksHz: clocks(1252, 1252, 2005, 1126),
      fanSpeedRatio: 0.34,
      pstate: 8,
      throttle: throttle('gpu_idle'),
      throttleSeconds: {},
      ...link(1, 3, 16, 16),
      persistenceMode: false,
    },
  ],
  processes: [],
};

const RTX_2080_TI = {
  name: 'GeForce RTX 2080 Ti',
  driverVersion: '410.73',
  cudaVersion: '10.0',
  vbiosVersion: '90.02.17.00.AD',
  ...util(0, 0, 0, 0),
  ...memory(10989, 0, 10989),
  temperatureCelsius: 24,
  powerLimitWatts: 250,
  enforcedPowerLimitWatts: 250,
  clocksHz: clocks(300, 300, 405, 540),
  maxClocksHz: clocks(2100, 2100, 7000, 1950),
  fanSpeedRatio: 0.22,
  pstate: 8,
  throttleSeconds: {},
  ...link(1, 3, 16, 16),
  persistenceMode: false,
};
const rtx2080tiX2: NvidiaSmiXml = {
  schemaVersion: 10,
  schemaDeclared: true,
  driverVersion: '410.73',
  cudaVersion: '10.0',
  timestamp: 'Thu Apr 11 14:36:26 2019',
  gpus: [
    {
      ...RTX_2080_TI,
      index: 0,

      minorNumber: 0,
      uuid: 'GPU-57567e11-0be2-381b-5132-2ad95c262e58',
      pciBusId: '00000000:02:00.0',
      powerDrawWatts: 2.12,
      throttle: throttle('gpu_idle'),
    },
    {
      ...RTX_2080_TI,
      index: 1,

      minorNumber: 1,
      uuid: 'GPU-ef1d0068-5bfd-f1e4-7e79-ff35d71d44b8',
      pciBusId: '00000000:03:00.0',
      // Capped by software at 19 W of 250 W while in P8.
      powerDrawWatts: 19.11,
      throttle: throttle('sw_power_cap'),
    },
  ],
  processes: [],
};

const rtx3060: NvidiaSmiXml = {
  schemaVersion: 12,
  schemaDeclared: true,
  driverVersion: '570.124.04',
  cudaVersion: '12.8',
  timestamp: 'Sun Mar 2 15:02:02 2025',
  gpus: [
    {
      index: 0,

      minorNumber: 0,
      uuid: 'GPU-d6889ff6-2523-9142-ca3c-1ca3f396a625',
      name: 'NVIDIA GeForce RTX 3060',
      pciBusId: '00000000:2D:00.0',
      driverVersion: '570.124.04',
      cudaVersion: '12.8',
      vbiosVersion: '94.04.71.00.69',
      ...util(0, 0, 0, 0),
      ...memory(12288, 116, 11806, 368),
      temperatureCelsius: 42,
      // average_power_draw 11.60 W (instant 11.63 W): no <power_draw> any more.
      powerDrawWatts: 11.6,
      powerLimitWatts: 170,
      enforcedPowerLimitWatts: 170,
      clocksHz: clocks(210, 210, 405, 555),
      maxClocksHz: clocks(2145, 2145, 7501, 1995),
      fanSpeedRatio: 0,
      pstate: 8,
      throttle: throttle('gpu_idle'),
      throttleSeconds: {},
      ...link(1, 4, 16, 16),
      persistenceMode: true,
    },
  ],
  processes: [],
};

const rtx3080Uuid = 'GPU-19d6d965-2acc-f646-00f8-4c76979aabb4';
const RTX_3080_PROCESS = { gpuUuid: rtx3080Uuid, gpuIndex: 0, type: 'G' };
const rtx3080Windows: NvidiaSmiXml = {
  schemaVersion: 12,
  schemaDeclared: true,
  driverVersion: '536.40',
  cudaVersion: '12.2',
  timestamp: 'Thu Jul 20 17:00:50 2023',
  gpus: [
    {
      // minor_number "N/A" on Windows: document order.
      index: 0,
      uuid: rtx3080Uuid,
      name: 'NVIDIA GeForce RTX 3080',
      pciBusId: '00000000:04:00.0',
      driverVersion: '536.40',
      cudaVersion: '12.2',
      vbiosVersion: '94.02.71.40.72',
      ...util(0, 37, 0, 0),
      ...memory(10240, 1128, 8938, 173),
      temperatureCelsius: 31,
      powerDrawWatts: 22.78,
      powerLimitWatts: 336,
      enforcedPowerLimitWatts: 336,
      clocksHz: clocks(210, 210, 405, 555),
      maxClocksHz: clocks(2100, 2100, 9501, 1950),
      fanSpeedRatio: 0,
      pstate: 8,
      throttle: throttle('gpu_idle'),
      throttleSeconds: {},
      ...link(4, 4, 16, 16),
    },
  ],
  // Despite driver_model WDDM, used_memory is set and the names are Linux paths.
  processes: [
    { ...RTX_3080_PROCESS, pid: 835, processName: '/usr/lib/Xorg', usedMemoryBytes: 550 * MiB },
    {
      ...RTX_3080_PROCESS,
      pid: 1481,
      processName: '/usr/bin/gnome-shell',
      usedMemoryBytes: 18 * MiB,
    },
    {
      ...RTX_3080_PROCESS,
      pid: 2214,
      processName:
        '/opt/microsoft/msedge/msedge --type=gpu-process --crashpad-handler-pid=2176 --enable-crash-reporter=, --change-stack-guard-on-fork=enable --gpu-preferences=WAAAAAAAAAAgAAAEAAAAAAAAAAAAAAAAAABgAAAAAAA4AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAABAAAAGAAAAAAAAAAYAAAAAAAAAAgAAAAAAAAACAAAAAAAAAAIAAAAAAAAAA== --shared-files --field-trial-handle=0,i,3110290512380155730,7457693378709978105,262144 --variations-seed-version',
      usedMemoryBytes: 79 * MiB,
    },
    {
      ...RTX_3080_PROCESS,
      pid: 4044,
      processName: '/usr/lib/firefox/firefox',
      usedMemoryBytes: 541 * MiB,
    },
    {
      ...RTX_3080_PROCESS,
      pid: 42416,
      processName:
        '/opt/visual-studio-code/code --type=gpu-process --enable-crash-reporter=6f39585a-ecc4-42e2-b899-9456cbe56b44,no_channel --user-data-dir=/home/powersj/.config/Code --gpu-preferences=WAAAAAAAAAAgAAAEAAAAAAAAAAAAAAAAAABgAAAAAAA4AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAABAAAAGAAAAAAAAAAYAAAAAAAAAAgAAAAAAAAACAAAAAAAAAAIAAAAAAAAAA== --shared-files --field-trial-handle=0,i,685715063932313394,4769839452661094675,262144 --disable-features=CalculateNativeWinOcclusion,SpareRendererForSitePerProcess',
      usedMemoryBytes: 159 * MiB,
    },
  ],
};

const rtx3080v13: NvidiaSmiXml = {
  schemaVersion: 13,
  schemaDeclared: true,
  driverVersion: '595.58.03',
  cudaVersion: '13.2',
  timestamp: 'Fri Apr 10 10:23:01 2026',
  gpus: [
    {
      index: 0,

      minorNumber: 0,
      uuid: rtx3080Uuid,
      name: 'NVIDIA GeForce RTX 3080',
      pciBusId: '00000000:0C:00.0',
      driverVersion: '595.58.03',
      cudaVersion: '13.2',
      serial: 'REDACTED',
      vbiosVersion: '94.02.71.40.72',
      ...util(65, 9, 0, 0),
      ...memory(10240, 9184, 660, 397),
      temperatureCelsius: 27,
      // average 139.62 W, instant 142.33 W
      powerDrawWatts: 139.62,
      powerLimitWatts: 320,
      enforcedPowerLimitWatts: 320,
      clocksHz: clocks(1950, 1950, 9251, 1710),
      maxClocksHz: clocks(2100, 2100, 9501, 1950),
      fanSpeedRatio: 0,
      pstate: 2,
      throttle: throttle(),
      // <clocks_event_reasons_counters_sw_therm_slowdown> etc., all "0 us"
      throttleSeconds: {
        sw_power_cap: 0,
        sync_boost: 0,
        sw_thermal_slowdown: 0,
        hw_thermal_slowdown: 0,
        hw_power_brake_slowdown: 0,
      },
      ...link(4, 4, 16, 16),
      persistenceMode: false,
    },
  ],
  processes: [],
};

const rtx3090: NvidiaSmiXml = {
  schemaVersion: 12,
  schemaDeclared: true,
  driverVersion: '525.147.05',
  cudaVersion: '12.0',
  timestamp: 'Fri May  3 11:54:37 2024',
  gpus: [
    {
      index: 0,

      minorNumber: 0,
      uuid: 'GPU-12345678-aaaa-bbbb-cccc-0123456789ab',
      name: 'NVIDIA GeForce RTX 3090',
      pciBusId: '00000000:00:10.0',
      driverVersion: '525.147.05',
      cudaVersion: '12.0',
      vbiosVersion: '94.02.71.40.72',
      ...util(0, 0, 0, 0),
      ...memory(24576, 1, 24258, 316),
      temperatureCelsius: 37,
      powerDrawWatts: 27.23,
      // Limited to 200 W (default 350 W).
      powerLimitWatts: 200,
      enforcedPowerLimitWatts: 200,
      // The graphics clock reads "0 MHz" in P8.
      clocksHz: clocks(0, 0, 405, 555),
      maxClocksHz: clocks(2100, 2100, 9751, 1950),
      fanSpeedRatio: 0,
      pstate: 8,
      throttle: throttle('gpu_idle'),
      throttleSeconds: {},
      ...link(1, 4, 16, 16),
      persistenceMode: true,
    },
  ],
  processes: [],
};

// hw_thermal_slowdown and hw_power_brake_slowdown are "N/A" on the K80.
const { hw_thermal_slowdown: _t, hw_power_brake_slowdown: _b, ...K80_THROTTLE } = throttle();
const K80 = {
  name: 'Tesla K80',
  driverVersion: '430.26',
  powerLimitWatts: 149,
  enforcedPowerLimitWatts: 149,
  maxClocksHz: clocks(875, 875, 2505, 540),
  throttleSeconds: {},
  persistenceMode: false,
  // pending_retirement is absent; the older <pending_blacklist>No</pending_blacklist> stands in.
  retiredPagesPending: false,
};
const K80_BUSY = {
  ...K80,
  ...link(3, 3, 16, 16),
  clocksHz: clocks(810, 810, 2505, 540),
  pstate: 0,
  throttle: { ...K80_THROTTLE, applications_clocks_setting: true },
  retiredPagesSingleBit: 1,
  retiredPagesDoubleBit: 1,
};
const K80_IDLE = {
  ...K80,
  ...util(0, 0, 0, 0),
  ...memory(11441, 0, 11441),
  ...link(1, 3, 16, 16),
  clocksHz: clocks(324, 324, 324, 405),
  pstate: 8,
  throttle: { ...K80_THROTTLE, gpu_idle: true },
  ecc: ZERO_ECC,
  retiredPagesSingleBit: 0,
  retiredPagesDoubleBit: 0,
};
const k80Uuids = [
  'GPU-c3b26f7a-8dcb-619c-fa1b-8029265a4db0',
  'GPU-b01b80eb-0f18-1df0-cf88-0725bd90f1e1',
] as const;
const k80: NvidiaSmiXml = {
  schemaVersion: 10,
  schemaDeclared: true,
  driverVersion: '430.26',
  // cuda_version "Not Found"
  timestamp: 'Tue Dec  3 05:27:00 2019',
  // Minor numbers 1, 2, 3, 0 in document (NVML index) order.
  gpus: [
    {
      ...K80_BUSY,
      index: 0,

      minorNumber: 1,
      uuid: k80Uuids[0],
      pciBusId: '00001580:00:00.0',
      serial: '0322416026235',
      vbiosVersion: '80.21.1F.00.05',
      ...util(99, 29, 0, 0),
      ...memory(11441, 587, 10854),
      temperatureCelsius: 64,
      powerDrawWatts: 135.72,
      ecc: { ...ZERO_ECC, correctedAggregate: 7, uncorrectedAggregate: 7 },
    },
    {
      ...K80_BUSY,
      index: 1,

      minorNumber: 2,
      uuid: k80Uuids[1],
      pciBusId: '00002DF7:00:00.0',
      serial: '0322116081614',
      vbiosVersion: '80.21.1F.00.05',
      ...util(99, 36, 0, 0),
      ...memory(11441, 587, 10854),
      temperatureCelsius: 69,
      powerDrawWatts: 139.71,
      ecc: { ...ZERO_ECC, correctedAggregate: 34, uncorrectedAggregate: 4 },
    },
    {
      ...K80_IDLE,
      index: 2,

      minorNumber: 3,
      uuid: 'GPU-30bc2701-3bc2-5f35-0ebd-9867a077e138',
      pciBusId: '00004968:00:00.0',
      serial: '0322116081614',
      vbiosVersion: '80.21.1F.00.06',
      temperatureCelsius: 28,
      powerDrawWatts: 32.27,
    },
    {
      ...K80_IDLE,
      index: 3,

      minorNumber: 0,
      uuid: 'GPU-3341aba2-f01d-2c1f-7dd4-e389779faec2',
      pciBusId: '0000F8D6:00:00.0',
      serial: '0322416026235',
      vbiosVersion: '80.21.1F.00.06',
      temperatureCelsius: 26,
      powerDrawWatts: 34.44,
    },
  ],
  processes: [
    {
      pid: 58813,
      gpuUuid: k80Uuids[0],
      gpuIndex: 0,
      type: 'C',
      processName: 'python',
      usedMemoryBytes: 576 * MiB,
    },
    {
      pid: 58642,
      gpuUuid: k80Uuids[1],
      gpuIndex: 1,
      type: 'C',
      processName: 'python',
      usedMemoryBytes: 576 * MiB,
    },
  ],
};

const t4Uuid = 'GPU-d37e67a5-91dd-3774-a5cb-99096249601a';
const teslaT4: NvidiaSmiXml = {
  schemaVersion: 11,
  schemaDeclared: true,
  driverVersion: '515.105.01',
  cudaVersion: '11.7',
  timestamp: 'Mon Apr 24 16:22:39 2023',
  gpus: [
    {
      index: 0,

      minorNumber: 0,
      uuid: t4Uuid,
      name: 'Tesla T4',
      pciBusId: '00000000:00:1E.0',
      driverVersion: '515.105.01',
      cudaVersion: '11.7',
      serial: '0000000000000',
      vbiosVersion: '90.04.84.00.06',
      ...util(0, 0, 0, 0),
      ...memory(15360, 1032, 13939, 388),
      temperatureCelsius: 40,
      powerDrawWatts: 26.78,
      powerLimitWatts: 70,
      enforcedPowerLimitWatts: 70,
      clocksHz: clocks(585, 585, 5000, 810),
      maxClocksHz: clocks(1590, 1590, 5001, 1470),
      pstate: 0,
      throttle: throttle(),
      throttleSeconds: {},
      ...link(3, 3, 8, 16),
      persistenceMode: false,
      ecc: ZERO_ECC,
      retiredPagesSingleBit: 0,
      retiredPagesDoubleBit: 0,
      retiredPagesPending: false,
    },
  ],
  processes: [
    {
      pid: 675,
      gpuUuid: t4Uuid,
      gpuIndex: 0,
      type: 'G',
      processName: '/usr/lib/xorg/Xorg',
      usedMemoryBytes: 22 * MiB,
    },
    {
      pid: 5762,
      gpuUuid: t4Uuid,
      gpuIndex: 0,
      type: 'C',
      processName: 'python',
      usedMemoryBytes: 1005 * MiB,
    },
  ],
};

const v100: NvidiaSmiXml = {
  schemaVersion: 10,
  schemaDeclared: true,
  driverVersion: '410.104',
  cudaVersion: '10.0',
  timestamp: 'Tue Aug 27 01:29:36 2019',
  gpus: [
    {
      index: 0,

      minorNumber: 0,
      uuid: 'GPU-ef23ffa6-c9fd-93d5-aeb8-612c087255ff',
      name: 'Tesla V100-SXM3-32GB',
      pciBusId: '00000000:34:00.0',
      driverVersion: '410.104',
      cudaVersion: '10.0',
      serial: '0323218034307',
      vbiosVersion: '88.00.6B.00.01',
      ...util(0, 0, 0, 0),
      ...memory(32480, 0, 32480),
      temperatureCelsius: 33,
      memoryTemperatureCelsius: 33,
      powerDrawWatts: 50.6,
      powerLimitWatts: 350,
      enforcedPowerLimitWatts: 350,
      clocksHz: clocks(135, 135, 958, 555),
      maxClocksHz: clocks(1597, 1597, 958, 1432),
      pstate: 0,
      throttle: throttle('gpu_idle'),
      throttleSeconds: {},
      ...link(3, 3, 16, 16),
      persistenceMode: true,
      // single_bit/double_bit <total>: 1/1 volatile, 291/7627 aggregate.
      ecc: {
        enabled: true,
        correctedVolatile: 1,
        uncorrectedVolatile: 1,
        correctedAggregate: 291,
        uncorrectedAggregate: 7627,
      },
      retiredPagesSingleBit: 0,
      retiredPagesDoubleBit: 2,
      retiredPagesPending: true,
    },
  ],
  processes: [],
};

const XML_FIXTURES: [file: string, expected: NvidiaSmiXml][] = [
  ['a100-sxm4-80gb-mig-enabled__535.54.03__v12__telegraf.xml', a100],
  ['a10g__515.105.01__v11__telegraf.xml', a10g],
  ['geforce-gt-730-fragment__384.111__v9__pai.xml', gt730],
  ['gtx-1070-ti-fragment__unknown__v10__telegraf.xml', gtx1070ti],
  ['gtx-1070-x2-processes__384.66__v9__pai.xml', gtx1070x2],
  ['gtx-1660-ti-graphics-device__418.43__nodtd__telegraf.xml', gtx1660ti],
  ['quadro-p2000__525.125.06__v12__telegraf.xml', quadroP2000],
  ['quadro-p400__418.43__nodtd__telegraf.xml', quadroP400],
  ['rtx-2080-ti-x2-ecc-unsupported__410.73__v10__pai.xml', rtx2080tiX2],
  ['rtx-3060__570.124.04__v12__telegraf.xml', rtx3060],
  ['rtx-3080-windows-processes__536.40__v12__telegraf.xml', rtx3080Windows],
  ['rtx-3080__595.58.03__v13__telegraf.xml', rtx3080v13],
  ['rtx-3090__525.147.05__v12__telegraf.xml', rtx3090],
  ['tesla-k80-x4-processes__430.26__v10__pai.xml', k80],
  ['tesla-t4-processes__515.105.01__v11__telegraf.xml', teslaT4],
  ['tesla-v100-sxm3-32gb-retired-pages__410.104__v10__pai.xml', v100],
];

describe('parseNvidiaSmiXml on every XML fixture', () => {
  it.each(XML_FIXTURES)('%s', (file, expected) => {
    expect(parseNvidiaSmiXml(fixture(file))).toStrictEqual(expected);
  });

  it('covers every XML fixture', () => {
    expect(XML_FIXTURES.map(([file]) => file).sort()).toEqual(
      readdirSync(join(fixturesDir(), 'xml')).sort(),
    );
  });

  it('sees every known schema version among the fixtures', () => {
    const declared = XML_FIXTURES.map(([, x]) => x)
      .filter((x) => x.schemaDeclared)
      .map((x) => x.schemaVersion);
    expect([...new Set(declared)].sort((a, b) => a - b)).toEqual(KNOWN_SCHEMA_VERSIONS);
  });
});

// ---------------------------------------------------------------------------------------------
// Synthetic documents for what no fixture carries

const log = (body: string, doctype = '<!DOCTYPE nvidia_smi_log SYSTEM "nvsmi_device_v14.dtd">') =>
  `<?xml version="1.0" ?>\n${doctype}\n<nvidia_smi_log>\n${body}\n</nvidia_smi_log>\n`;
const gpu = (body: string, id = '00000000:01:00.0') => `<gpu id="${id}">${body}</gpu>`;
const only = (xml: string): GpuReading => {
  const { gpus } = parseNvidiaSmiXml(xml);
  expect(gpus).toHaveLength(1);
  return gpus[0]!;
};

describe('parseNvidiaSmiXml beyond the fixtures', () => {
  it('parses an unknown schema version like the newest', () => {
    const parsed = parseNvidiaSmiXml(log(gpu('<uuid>GPU-a</uuid><fan_speed>50 %</fan_speed>')));
    expect(parsed.schemaVersion).toBe(14);
    expect(parsed.schemaDeclared).toBe(true);
    expect(parsed.gpus[0]).toMatchObject({ uuid: 'GPU-a', fanSpeedRatio: 0.5 });
  });

  it('returns no GPUs for an empty log', () => {
    expect(parseNvidiaSmiXml('<nvidia_smi_log></nvidia_smi_log>')).toStrictEqual({
      schemaVersion: NEWEST_SCHEMA_VERSION,
      schemaDeclared: false,
      gpus: [],
      processes: [],
    });
  });

  it('keeps the CUDA version number of driver 610 and drops "Not Found"', () => {
    const deprecated =
      '<cuda_version>13.3 [Deprecated; will be removed in CUDA 14.0. Use CUDA UMD Version instead]</cuda_version>';
    expect(parseNvidiaSmiXml(log(deprecated)).cudaVersion).toBe('13.3');
    expect(parseNvidiaSmiXml(log('<cuda_version>CUDA 13</cuda_version>')).cudaVersion).toBe(
      'CUDA 13',
    );
    expect(parseNvidiaSmiXml(log('<cuda_version>Not Found</cuda_version>'))).not.toHaveProperty(
      'cudaVersion',
    );
  });

  it('stands the bus id in for a missing uuid and drops a GPU with neither', () => {
    const parsed = parseNvidiaSmiXml(
      log(
        gpu(
          '<uuid>[GPU requires reset]</uuid><pci><pci_bus_id>00000000:0C:00.0</pci_bus_id></pci>',
        ) +
          gpu('<uuid>N/A</uuid>', 'N/A') +
          gpu('<uuid>GPU-c</uuid>'),
      ),
    );
    expect(parsed.gpus.map((g) => [g.index, g.uuid])).toEqual([
      [0, 'pci:00000000:0C:00.0'],
      [2, 'GPU-c'],
    ]);
    expect(parseNvidiaSmiXml(log('<gpu></gpu><gpu>N/A</gpu>')).gpus).toEqual([]);
  });

  it('reads total_energy_consumption with its unit, under the GPU or its power readings', () => {
    expect(
      only(
        log(gpu('<uuid>a</uuid><total_energy_consumption>123456 mJ</total_energy_consumption>')),
      ),
    ).toMatchObject({
      energyJoules: 123.456,
    });
    const underPower =
      '<uuid>a</uuid><gpu_power_readings><total_energy_consumption>42.5 J</total_energy_consumption></gpu_power_readings>';
    expect(only(log(gpu(underPower)))).toMatchObject({ energyJoules: 42.5 });
    // A bare number could be J or mJ: not reported rather than off by 1000.
    expect(
      only(log(gpu('<uuid>a</uuid><total_energy_consumption>42</total_energy_consumption>'))),
    ).not.toHaveProperty('energyJoules');
  });

  it('falls back to the instant power draw when the average is N/A', () => {
    const readings =
      '<gpu_power_readings><average_power_draw>N/A</average_power_draw><instant_power_draw>88.10 W</instant_power_draw></gpu_power_readings>';
    expect(only(log(gpu(`<uuid>a</uuid>${readings}`))).powerDrawWatts).toBe(88.1);
  });

  it('sums v13 SRAM parity and SECDED counts and leaves the threshold flag out', () => {
    const errors = `<ecc_mode><current_ecc>Enabled</current_ecc></ecc_mode><ecc_errors>
      <volatile><sram_correctable>3</sram_correctable><sram_uncorrectable_parity>1</sram_uncorrectable_parity>
        <sram_uncorrectable_secded>2</sram_uncorrectable_secded><dram_correctable>4</dram_correctable>
        <dram_uncorrectable>5</dram_uncorrectable></volatile>
      <aggregate><sram_correctable>N/A</sram_correctable><dram_correctable>7</dram_correctable>
        <dram_uncorrectable>N/A</dram_uncorrectable><sram_threshold_exceeded>No</sram_threshold_exceeded></aggregate>
    </ecc_errors>`;
    expect(only(log(gpu(`<uuid>a</uuid>${errors}`))).ecc).toStrictEqual({
      enabled: true,
      correctedVolatile: 7,
      uncorrectedVolatile: 8,
      correctedAggregate: 7,
    });
  });

  it('sums the per-location counts of an old schema when <total> is N/A', () => {
    const errors = `<ecc_errors><volatile>
      <single_bit><device_memory>2</device_memory><l2_cache>1</l2_cache><total>N/A</total></single_bit>
      <double_bit><device_memory>N/A</device_memory><total>N/A</total></double_bit>
    </volatile></ecc_errors>`;
    expect(only(log(gpu(`<uuid>a</uuid>${errors}`))).ecc).toStrictEqual({ correctedVolatile: 3 });
    const doubleOnly =
      '<ecc_errors><aggregate><double_bit><total>4</total></double_bit></aggregate></ecc_errors>';
    expect(only(log(gpu(`<uuid>a</uuid>${doubleOnly}`))).ecc).toStrictEqual({
      uncorrectedAggregate: 4,
    });
  });

  it('reads MIG placement of processes and skips entries without ids', () => {
    const body = `<uuid>GPU-a</uuid><minor_number>5</minor_number>
      <mig_devices>
        <mig_device><index>0</index><gpu_instance_id>1</gpu_instance_id><compute_instance_id>0</compute_instance_id>
          <uuid>MIG-1</uuid></mig_device>
        <mig_device><index>1</index><gpu_instance_id>N/A</gpu_instance_id><compute_instance_id>0</compute_instance_id></mig_device>
      </mig_devices>
      <processes>
        <process_info><gpu_instance_id>1</gpu_instance_id><compute_instance_id>0</compute_instance_id>
          <pid>4242</pid><type>C</type><process_name>train &amp; eval</process_name><used_memory>N/A</used_memory></process_info>
        <process_info><pid>N/A</pid><process_name>ghost</process_name></process_info>
        <process_info><pid>77</pid><process_name>[Insufficient Permissions]</process_name></process_info>
      </processes>`;
    const parsed = parseNvidiaSmiXml(log(gpu(body)));
    expect(parsed.gpus[0]?.migDevices).toStrictEqual([
      { index: 0, gpuInstanceId: 1, computeInstanceId: 0, uuid: 'MIG-1' },
    ]);
    expect(parsed.processes).toStrictEqual([
      {
        pid: 4242,
        gpuUuid: 'GPU-a',
        gpuIndex: 0,
        type: 'C',
        processName: 'train & eval',
        gpuInstanceId: 1,
        computeInstanceId: 0,
      },
      { pid: 77, gpuUuid: 'GPU-a', gpuIndex: 0, processName: '' },
    ]);
  });

  it('reads remapped rows with pending and failure flags set', () => {
    const rows =
      '<remapped_rows><remapped_row_corr>3</remapped_row_corr><remapped_row_unc>1</remapped_row_unc><remapped_row_pending>Yes</remapped_row_pending><remapped_row_failure>Yes</remapped_row_failure></remapped_rows>';
    expect(only(log(gpu(`<uuid>a</uuid>${rows}`)))).toMatchObject({
      remappedRowsCorrectable: 3,
      remappedRowsUncorrectable: 1,
      remappedRowsPending: true,
      remappedRowsFailure: true,
    });
  });

  it('prefers clocks_event_reasons over clocks_throttle_reasons and ignores unknown reasons', () => {
    const body = `<uuid>a</uuid>
      <clocks_event_reasons><clocks_event_reason_hw_slowdown>Active</clocks_event_reason_hw_slowdown>
        <clocks_event_reason_future_reason>Active</clocks_event_reason_future_reason>
        <clocks_event_reason_constructor>Active</clocks_event_reason_constructor>
        <clocks_event_reason_sync_boost><nested>x</nested></clocks_event_reason_sync_boost></clocks_event_reasons>
      <clocks_throttle_reasons><clocks_throttle_reason_gpu_idle>Active</clocks_throttle_reason_gpu_idle></clocks_throttle_reasons>`;
    expect(only(log(gpu(body))).throttle).toStrictEqual({ hw_slowdown: true });
  });
});

describe('parseNvidiaSmiXml refuses what is not an nvidia-smi document', () => {
  const v13 = fixture('rtx-3080__595.58.03__v13__telegraf.xml');

  it.each([
    ['truncated mid-document', v13.slice(0, 5000)],
    ['truncated before the closing root tag', v13.slice(0, v13.lastIndexOf('</nvidia_smi_log>'))],
    [
      'an NVML error instead of XML',
      'Failed to initialize NVML: Driver/library version mismatch\n',
    ],
    ['empty output', ''],
    ['mismatched tags', '<nvidia_smi_log><gpu></nvidia_smi_log>'],
  ])('%s → CollectorError parse_error', (_what, text) => {
    let error: unknown;
    try {
      parseNvidiaSmiXml(text);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(CollectorError);
    expect(error).toMatchObject({
      reason: 'parse_error',
      message: expect.stringMatching(/^nvidia-smi XML/),
    });
  });

  it('names the line of the first error', () => {
    expect(() => parseNvidiaSmiXml(v13.slice(0, 5000))).toThrow(/not well-formed at line \d+: /);
  });

  it('refuses a well-formed document of another kind', () => {
    expect(() => parseNvidiaSmiXml('<html><body>502 Bad Gateway</body></html>')).toThrow(
      new CollectorError('parse_error', 'nvidia-smi XML has no <nvidia_smi_log> element'),
    );
  });

  it('refuses external entities (well-formed, but never from nvidia-smi)', () => {
    const xxe =
      '<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><nvidia_smi_log><timestamp>&e;</timestamp></nvidia_smi_log>';
    expect(() => parseNvidiaSmiXml(xxe)).toThrow(CollectorError);
    expect(() => parseNvidiaSmiXml(xxe)).toThrow(/^nvidia-smi XML: External entities/);
  });
});
