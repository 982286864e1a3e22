import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Sample } from '../../agent/core/types.js';
import type { JetsonIdentity } from './identity.js';
import { parseTegrastatsLine } from './parse.js';
import { gpuReadingOf, tegrastatsSamples } from './series.js';

const FIXTURES = join(import.meta.dirname, 'fixtures');
const MIB = 1024 * 1024;
const ID: JetsonIdentity = {
  uuid: 'GPU-11111111-2222-3333-4444-555555555555',
  model: 'NVIDIA Jetson Nano Developer Kit',
  l4tRelease: '32.7.1',
  uuidSource: 'config',
};
const GPU = { gpu: '0', uuid: ID.uuid };

function line(file: string, n = 0): string {
  const l = readFileSync(join(FIXTURES, file), 'utf8').split('\n').filter(Boolean)[n];
  if (l === undefined) throw new Error(`no line ${n} in ${file}`);
  return l;
}

function samplesOf(text: string): Sample[] {
  const r = parseTegrastatsLine(text);
  if (!r) throw new Error('no parse');
  return tegrastatsSamples(r, ID);
}

/** Value of the one series with exactly these labels (undefined when absent, throws on two). */
function value(samples: readonly Sample[], name: string, labels: Record<string, string> = {}) {
  const hits = samples.filter(
    (s) =>
      s.desc.name === name &&
      Object.keys(s.labels).length === Object.keys(labels).length &&
      Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  if (hits.length > 1) throw new Error(`${name} ${JSON.stringify(labels)} twice`);
  return hits[0]?.value;
}

/** Checks each series (name, labels) has the value given; undefined: the series is absent. */
function expectValues(
  samples: readonly Sample[],
  rows: readonly (readonly [
    name: string,
    labels: Record<string, string>,
    value: number | undefined,
  ])[],
): void {
  for (const [name, labels, v] of rows)
    expect(value(samples, name, labels), `${name} ${JSON.stringify(labels)}`).toBe(v);
}

describe('Jetson Nano (loaded line): the GPU under the shared discrete-GPU series', () => {
  const s = samplesOf(
    line('nano-4gb__l4t-32-jetpack4__pom-5v-rails__iram__nvdec-vic__jetson-inference-1206.log', 3),
  );

  it('maps load, clock, temperature, unified memory and the GPU rail', () => {
    expectValues(s, [
      ['gpulse_gpu_utilization_ratio', GPU, 0.99],
      ['gpulse_gpu_clock_hz', { ...GPU, clock: 'graphics' }, 921e6],
      ['gpulse_gpu_temperature_celsius', GPU, 43],
      ['gpulse_gpu_memory_total_bytes', GPU, 3956 * MIB],
      ['gpulse_gpu_memory_used_bytes', GPU, 1504 * MIB],
      ['gpulse_gpu_memory_free_bytes', GPU, (3956 - 1504) * MIB],
      ['gpulse_gpu_power_draw_watts', GPU, 1.256],
    ]);
    expect(
      value(s, 'gpulse_gpu_info', {
        ...GPU,
        name: ID.model,
        driver_version: '',
        cuda_version: '',
        pci_bus_id: '',
        vbios_version: '',
        compute_capability: '',
      }),
    ).toBe(1);
    expect(value(s, 'gpulse_jetson_info', { ...GPU, model: ID.model, l4t_release: '32.7.1' })).toBe(
      1,
    );
  });

  it('never invents what tegrastats does not print (no zeros for absent values)', () => {
    for (const name of [
      'gpulse_gpu_memory_utilization_ratio',
      'gpulse_gpu_fan_speed_ratio',
      'gpulse_gpu_pstate',
      'gpulse_gpu_power_limit_watts',
      'gpulse_gpu_throttle_active',
      'gpulse_gpu_ecc_enabled',
      'gpulse_jetson_swap_used_bytes',
      'gpulse_jetson_gpc_clock_hz',
    ]) {
      expect(s.filter((x) => x.desc.name === name)).toEqual([]);
    }
  });

  it('reports the rails, EMC, per-core CPU, sensors, engines and IRAM as Jetson series', () => {
    expectValues(s, [
      ['gpulse_power_rail_watts', { rail: 'POM_5V_IN' }, 4.531],
      ['gpulse_power_rail_average_watts', { rail: 'POM_5V_IN' }, 3.533],
      ['gpulse_power_rail_watts', { rail: 'POM_5V_CPU' }, 0.466],
      ['gpulse_jetson_emc_utilization_ratio', {}, 0.1],
      ['gpulse_jetson_emc_clock_hz', {}, 1600e6],
      ['gpulse_jetson_cpu_utilization_ratio', { cpu: '1' }, 0.36],
      ['gpulse_jetson_cpu_clock_hz', { cpu: '3' }, 1479e6],
      ['gpulse_jetson_cpu_online', { cpu: '0' }, 1],
      ['gpulse_jetson_temperature_celsius', { sensor: 'thermal' }, 43.25],
      ['gpulse_jetson_temperature_sensor_offline', { sensor: 'AO' }, 0],
      ['gpulse_jetson_engine_clock_hz', { engine: 'NVDEC' }, 716e6],
      ['gpulse_jetson_engine_utilization_ratio', { engine: 'VIC' }, 0],
      ['gpulse_jetson_engine_active', { engine: 'APE' }, 1],
      ['gpulse_jetson_iram_total_bytes', {}, 252 * 1024],
      ['gpulse_jetson_ram_largest_free_blocks', {}, 331],
      ['gpulse_jetson_ram_largest_free_block_bytes', {}, 4 * MIB],
    ]);
  });
});

describe('AGX Orin: offline GPU sensor, GPU+SoC rail, per-GPC clocks', () => {
  const s = samplesOf(
    line(
      'agx-orin-64gb__jetpack5-6__timestamp-prefix__gpc-array__sensor-minus-256C__jetson-exporter-14.log',
    ),
  );

  it('has no GPU temperature while its sensor reads -256 C, and says the sensor is offline', () => {
    expectValues(s, [
      ['gpulse_gpu_temperature_celsius', GPU, undefined],
      ['gpulse_jetson_temperature_celsius', { sensor: 'GPU' }, undefined],
      ['gpulse_jetson_temperature_sensor_offline', { sensor: 'GPU' }, 1],
      ['gpulse_jetson_temperature_sensor_offline', { sensor: 'CV0' }, 1],
      ['gpulse_jetson_temperature_celsius', { sensor: 'tj' }, 44.343],
    ]);
  });

  it('does not pass VDD_GPU_SOC (GPU and SoC together) off as the GPU power', () => {
    expectValues(s, [
      ['gpulse_gpu_power_draw_watts', GPU, undefined],
      ['gpulse_power_rail_watts', { rail: 'VDD_GPU_SOC' }, 2.34],
    ]);
    expect(s.filter((x) => x.desc.name === 'gpulse_power_rail_watts').length).toBe(4);
  });

  it('reports the idle GPU at 0 % and 0 Hz on both GPCs', () => {
    expectValues(s, [
      ['gpulse_gpu_utilization_ratio', GPU, 0],
      ['gpulse_gpu_clock_hz', { ...GPU, clock: 'graphics' }, 0],
      ['gpulse_jetson_gpc_clock_hz', { ...GPU, gpc: '0' }, 0],
      ['gpulse_jetson_gpc_clock_hz', { ...GPU, gpc: '1' }, 0],
      ['gpulse_jetson_swap_total_bytes', {}, 31400 * MIB],
      ['gpulse_gpu_memory_total_bytes', GPU, 62801 * MIB],
    ]);
  });
});

describe('TX2: offline Denver cores and the VDD_SYS_GPU rail', () => {
  const s = samplesOf(
    line('tx2__l4t-32-jetpack4__denver-off__vdd-sys-rails__onnxruntime-3240.log'),
  );

  it('marks offline cores and gives them no load or clock', () => {
    expectValues(s, [
      ['gpulse_jetson_cpu_online', { cpu: '1' }, 0],
      ['gpulse_jetson_cpu_utilization_ratio', { cpu: '1' }, undefined],
      ['gpulse_jetson_cpu_clock_hz', { cpu: '2' }, undefined],
      ['gpulse_jetson_cpu_utilization_ratio', { cpu: '4' }, 0.03],
    ]);
  });

  it('takes the GPU power from VDD_SYS_GPU', () => {
    expectValues(s, [
      ['gpulse_gpu_power_draw_watts', GPU, 0.229],
      ['gpulse_gpu_temperature_celsius', GPU, 38.5],
    ]);
  });
});

describe('gpuReadingOf', () => {
  it('is the facts twin of the series: same identity, the fields tegrastats gave', () => {
    const r = parseTegrastatsLine('RAM 100/200MB GR3D_FREQ 5%@300 gpu@50.5C VDD_GPU 1000/900')!;
    expect(gpuReadingOf(r, ID)).toEqual({
      index: 0,
      uuid: ID.uuid,
      name: ID.model,
      utilizationRatio: 0.05,
      memoryTotalBytes: 200 * MIB,
      memoryUsedBytes: 100 * MIB,
      memoryFreeBytes: 100 * MIB,
      temperatureCelsius: 50.5,
      powerDrawWatts: 1,
      clocksHz: { graphics: 300e6 },
      maxClocksHz: {},
      throttle: {},
      throttleSeconds: {},
    });
  });
});
