import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseTegrastatsLine, type TegrastatsReading } from './parse.js';

const FIXTURES = join(import.meta.dirname, 'fixtures');
const MIB = 1024 * 1024;
const MHZ = 1e6;

function lines(file: string): string[] {
  return readFileSync(join(FIXTURES, file), 'utf8').split('\n').filter(Boolean);
}

function parse(line: string): TegrastatsReading {
  const r = parseTegrastatsLine(line);
  if (!r) throw new Error(`did not parse: ${line}`);
  return r;
}

/** `[util%, MHz]` pairs or 'off' → the CpuCore list the parser should give. */
function cores(spec: readonly (readonly [number, number] | 'off')[]) {
  return spec.map((c, core) =>
    c === 'off'
      ? { core, online: false }
      : { core, online: true, utilizationRatio: c[0] / 100, frequencyHz: c[1] * MHZ },
  );
}

function temps(spec: Record<string, number | undefined>) {
  return Object.entries(spec).map(([sensor, celsius]) =>
    celsius === undefined ? { sensor } : { sensor, celsius },
  );
}

function rails(spec: Record<string, readonly [number, number]>) {
  return Object.entries(spec).map(([rail, [cur, avg]]) => ({
    rail,
    currentWatts: cur / 1000,
    averageWatts: avg / 1000,
  }));
}

describe('tegrastats fixture: Jetson TX2, L4T 32 (Denver cores off, VDD_SYS_* rails)', () => {
  const file = 'tx2__l4t-32-jetpack4__denver-off__vdd-sys-rails__onnxruntime-3240.log';
  const all = lines(file).map(parse);

  it('parses line 1 completely', () => {
    expect(all[0]).toEqual({
      ram: {
        usedBytes: 309 * MIB,
        totalBytes: 7852 * MIB,
        largestFreeBlocks: 1810,
        largestFreeBlockBytes: 4 * MIB,
      },
      swap: { usedBytes: 0, totalBytes: 3926 * MIB, cachedBytes: 0 },
      cpus: cores([[1, 345], 'off', 'off', [0, 345], [3, 345], [1, 345]]),
      emc: { name: 'EMC', active: true, utilizationRatio: 0.02, frequencyHz: 1331 * MHZ },
      gpu: { name: 'GR3D', active: true, utilizationRatio: 0, frequencyHz: 114 * MHZ },
      engines: [{ name: 'APE', active: true, frequencyHz: 150 * MHZ }],
      temperatures: temps({
        PLL: 40.5,
        MCPU: 40.5,
        PMIC: 100,
        Tboard: 37,
        GPU: 38.5,
        BCPU: 40.5,
        thermal: 39.4,
        Tdiode: 38.25,
      }),
      rails: rails({
        VDD_SYS_GPU: [229, 229],
        VDD_SYS_SOC: [765, 768],
        VDD_4V0_WIFI: [0, 0],
        VDD_IN: [3024, 3028],
        VDD_SYS_CPU: [153, 156],
        VDD_SYS_DDR: [537, 538],
      }),
      unknown: [],
    });
  });

  it('parses the later lines with their own values', () => {
    expect(all).toHaveLength(3);
    expect(all[1]!.ram?.usedBytes).toBe(310 * MIB);
    expect(all[1]!.cpus).toEqual(cores([[1, 345], 'off', 'off', [0, 345], [0, 345], [0, 345]]));
    expect(all[1]!.temperatures.find((t) => t.sensor === 'thermal')?.celsius).toBe(39.6);
    expect(all[1]!.rails.find((r) => r.rail === 'VDD_SYS_SOC')).toEqual({
      rail: 'VDD_SYS_SOC',
      currentWatts: 0.765,
      averageWatts: 0.767,
    });
    expect(all[2]!.ram?.usedBytes).toBe(309 * MIB);
    expect(all[2]!.temperatures.find((t) => t.sensor === 'BCPU')?.celsius).toBe(40);
    expect(all.every((r) => r.unknown.length === 0)).toBe(true);
  });
});

describe('tegrastats fixture: Jetson Nano 4GB, L4T 32 (IRAM, POM_5V_* rails, NVDEC, no SWAP)', () => {
  const file =
    'nano-4gb__l4t-32-jetpack4__pom-5v-rails__iram__nvdec-vic__jetson-inference-1206.log';
  const all = lines(file).map(parse);

  it('parses line 1 completely', () => {
    expect(all[0]).toEqual({
      ram: {
        usedBytes: 1501 * MIB,
        totalBytes: 3956 * MIB,
        largestFreeBlocks: 332,
        largestFreeBlockBytes: 4 * MIB,
      },
      iram: { usedBytes: 0, totalBytes: 252 * 1024, largestFreeBlockBytes: 252 * 1024 },
      cpus: cores([
        [16, 1479],
        [13, 1479],
        [10, 1479],
        [4, 1479],
      ]),
      emc: { name: 'EMC', active: true, utilizationRatio: 0.04, frequencyHz: 1600 * MHZ },
      gpu: { name: 'GR3D', active: true, utilizationRatio: 0.28, frequencyHz: 76 * MHZ },
      engines: [
        { name: 'NVDEC', active: true, frequencyHz: 716 * MHZ },
        { name: 'VIC', active: true, utilizationRatio: 0, frequencyHz: 140 * MHZ },
        { name: 'APE', active: true, frequencyHz: 25 * MHZ },
      ],
      temperatures: temps({
        PLL: 39,
        CPU: 44,
        PMIC: 100,
        GPU: 41.5,
        AO: 47.5,
        thermal: 42.5,
      }),
      rails: rails({ POM_5V_IN: [4122, 3107], POM_5V_GPU: [109, 85], POM_5V_CPU: [1167, 748] }),
      unknown: [],
    });
    expect(all[0]!.swap).toBeUndefined();
  });

  it('parses the loaded lines (GR3D at 86-99 % and 921 MHz)', () => {
    expect(all).toHaveLength(4);
    expect(all.map((r) => r.gpu?.utilizationRatio)).toEqual([0.28, 0.86, 0.99, 0.99]);
    expect(all.map((r) => r.gpu?.frequencyHz)).toEqual([76, 921, 921, 921].map((f) => f * MHZ));
    expect(all.map((r) => r.emc?.utilizationRatio)).toEqual([0.04, 0.07, 0.09, 0.1]);
    expect(all[3]!.cpus.map((c) => c.utilizationRatio)).toEqual([0.29, 0.36, 0.18, 0.11]);
    expect(all[3]!.ram).toEqual({
      usedBytes: 1504 * MIB,
      totalBytes: 3956 * MIB,
      largestFreeBlocks: 331,
      largestFreeBlockBytes: 4 * MIB,
    });
    expect(all[3]!.temperatures.find((t) => t.sensor === 'thermal')?.celsius).toBe(43.25);
    expect(all[3]!.rails).toEqual(
      rails({ POM_5V_IN: [4531, 3533], POM_5V_GPU: [1256, 407], POM_5V_CPU: [466, 678] }),
    );
  });
});

describe('tegrastats fixture: AGX Orin 64GB, JetPack 5/6 (timestamp, GPC array, -256C, mW rails)', () => {
  const file =
    'agx-orin-64gb__jetpack5-6__timestamp-prefix__gpc-array__sensor-minus-256C__jetson-exporter-14.log';
  const all = lines(file).map(parse);

  it('parses the line completely', () => {
    expect(all).toHaveLength(1);
    expect(all[0]).toEqual({
      timestamp: '04-11-2025 10:36:27',
      ram: {
        usedBytes: 4321 * MIB,
        totalBytes: 62801 * MIB,
        largestFreeBlocks: 1759,
        largestFreeBlockBytes: 4 * MIB,
      },
      swap: { usedBytes: 19 * MIB, totalBytes: 31400 * MIB, cachedBytes: 0 },
      cpus: cores(Array.from({ length: 12 }, () => [0, 729] as const)),
      emc: { name: 'EMC', active: true, utilizationRatio: 0, frequencyHz: 2133 * MHZ },
      gpu: {
        name: 'GR3D',
        active: true,
        utilizationRatio: 0,
        frequencyHz: 0,
        frequenciesHz: [0, 0],
      },
      engines: [
        { name: 'VIC', active: true, frequencyHz: 729 * MHZ },
        { name: 'APE', active: true, frequencyHz: 174 * MHZ },
      ],
      // -256C: CV0/CV1/CV2 and the GPU sensor are offline; the sensor stays, its value does not.
      temperatures: temps({
        CV0: undefined,
        CPU: 44.562,
        Tboard: 32,
        SOC2: 40.093,
        Tdiode: 33,
        SOC0: 41.093,
        CV1: undefined,
        GPU: undefined,
        tj: 44.343,
        SOC1: 41.25,
        CV2: undefined,
      }),
      // The two NC (not connected) rails are dropped; the duplicate name would clash anyway.
      rails: rails({
        VDD_GPU_SOC: [2340, 2340],
        VDD_CPU_CV: [390, 390],
        VIN_SYS_5V0: [4025, 4025],
        VDDQ_VDD2_1V8AO: [301, 301],
      }),
      unknown: [],
    });
  });
});

describe('tegrastats synthetic format variants (not captured; see fixtures/SOURCES.md)', () => {
  const all = lines('synthetic/format-variants.log').map(parse);

  it('L4T 28 (TX2): old rail names and the MTS field', () => {
    const r = all[0]!;
    expect(r.mts).toEqual({ foregroundRatio: 0, backgroundRatio: 0 });
    expect(r.rails.map((x) => x.rail)).toEqual([
      'VDD_IN',
      'VDD_CPU',
      'VDD_GPU',
      'VDD_SOC',
      'VDD_WIFI',
      'VDD_DDR',
    ]);
    expect(r.rails.find((x) => x.rail === 'VDD_IN')).toEqual({
      rail: 'VDD_IN',
      currentWatts: 2.823,
      averageWatts: 2.823,
    });
    expect(r.gpu).toEqual({
      name: 'GR3D',
      active: true,
      utilizationRatio: 0,
      frequencyHz: 1300 * MHZ,
    });
    expect(r.cpus[1]).toEqual({ core: 1, online: false });
    expect(r.unknown).toEqual([]);
  });

  it('JetPack 6 Orin Nano style: GR3D_FREQ and EMC_FREQ without a clock, engines off', () => {
    const r = all[1]!;
    expect(r.timestamp).toBe('11-28-2025 14:05:01');
    expect(r.gpu).toEqual({ name: 'GR3D', active: true, utilizationRatio: 0 });
    expect(r.emc).toEqual({ name: 'EMC', active: true, utilizationRatio: 0.01 });
    expect(r.engines).toEqual([
      { name: 'NVENC', active: false },
      { name: 'NVDEC', active: false },
      { name: 'NVJPG', active: false },
      { name: 'VIC', active: false },
      { name: 'OFA', active: false },
      { name: 'APE', active: true, frequencyHz: 200 * MHZ },
    ]);
    expect(r.temperatures.find((t) => t.sensor === 'gpu')).toEqual({ sensor: 'gpu' });
    expect(r.cpus.filter((c) => !c.online).map((c) => c.core)).toEqual([4, 5]);
    expect(r.rails.map((x) => x.rail)).toEqual(['VDD_IN', 'VDD_CPU_GPU_CV', 'VDD_SOC']);
  });

  it('Orin NX: GR3D2_FREQ, cores without a clock, one GPC in brackets, unknown fields kept', () => {
    const r = all[2]!;
    expect(r.gpu).toEqual({
      name: 'GR3D',
      active: true,
      utilizationRatio: 0.12,
      frequencyHz: 612 * MHZ,
      frequenciesHz: [612 * MHZ],
    });
    expect(r.engines).toEqual([
      { name: 'GR3D2', active: true, utilizationRatio: 0.1, frequencyHz: 612 * MHZ },
    ]);
    expect(r.cpus).toEqual([
      { core: 0, online: true, utilizationRatio: 0.05 },
      { core: 1, online: true, utilizationRatio: 0.03 },
      { core: 2, online: false },
      { core: 3, online: false },
    ]);
    expect(r.unknown).toEqual(['FUTURE_FIELD', 'x=1']);
    expect(r.rails).toEqual(rails({ VDD_IN: [7012, 6800] }));
  });
});

describe('parseTegrastatsLine on bad input', () => {
  it.each([
    ['empty line', ''],
    ['an error message', 'Error: tegrastats must be run as root'],
    ['binary garbage', '\u0000\u0001\u00ff garbage'],
  ])('returns undefined for %s', (_name, line) => {
    expect(parseTegrastatsLine(line)).toBeUndefined();
  });

  it('keeps the fields of a line cut off in the middle', () => {
    const r = parseTegrastatsLine('RAM 1501/3956MB (lfb 332x4MB) CPU [16%@1479,13%@14');
    expect(r?.ram?.usedBytes).toBe(1501 * MIB);
    expect(r?.cpus).toEqual([]);
    expect(r?.unknown).toEqual(['CPU', '[16%@1479,13%@14']);
  });

  it('drops a CPU entry it cannot read but keeps the core numbers of the others', () => {
    const r = parseTegrastatsLine('CPU [1%@345,??,3%@345]');
    expect(r?.cpus.map((c) => c.core)).toEqual([0, 2]);
  });

  it('keeps the first of two sensors or rails with the same name', () => {
    const r = parseTegrastatsLine('GPU@40C GPU@41C VDD_IN 1/1 VDD_IN 2/2');
    expect(r?.temperatures).toEqual([{ sensor: 'GPU', celsius: 40 }]);
    expect(r?.rails).toEqual([{ rail: 'VDD_IN', currentWatts: 0.001, averageWatts: 0.001 }]);
  });
});
