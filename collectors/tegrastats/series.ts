import type { GpuReading } from '../../agent/core/facts.js';
import { counter, gauge, SampleBuilder } from '../../agent/core/metric.js';
import type { Sample } from '../../agent/core/types.js';
import { gpuLabels, gpuReadingSamples } from '../gpu-series.js';
import type { JetsonIdentity } from './identity.js';
import type { TegrastatsReading } from './parse.js';

const GPU = ['gpu', 'uuid'] as const;

/** Jetson series that have no discrete-GPU equivalent (board rails, SoC sensors, engines). */
export const jetsonMetrics = {
  info: gauge('gpulse_jetson_info', 'Jetson module identity; always 1.', [
    ...GPU,
    'model',
    'l4t_release',
  ]),
  railPower: gauge(
    'gpulse_power_rail_watts',
    'Instantaneous power of a board power rail (INA3221 channel).',
    ['rail'],
  ),
  railAverage: gauge(
    'gpulse_power_rail_average_watts',
    'Average power of a board power rail since the reader (tegrastats) started.',
    ['rail'],
  ),
  emcUtilization: gauge(
    'gpulse_jetson_emc_utilization_ratio',
    'External memory controller load: share of DRAM bandwidth in use at its current clock (0-1).',
  ),
  emcClock: gauge('gpulse_jetson_emc_clock_hz', 'External memory controller (DRAM) clock.'),
  cpuUtilization: gauge(
    'gpulse_jetson_cpu_utilization_ratio',
    'Load of a CPU core as tegrastats reports it (0-1).',
    ['cpu'],
  ),
  cpuClock: gauge('gpulse_jetson_cpu_clock_hz', 'Clock of a CPU core.', ['cpu']),
  cpuOnline: gauge(
    'gpulse_jetson_cpu_online',
    'Whether a CPU core is online (0 when tegrastats prints it "off").',
    ['cpu'],
  ),
  temperature: gauge(
    'gpulse_jetson_temperature_celsius',
    'Temperature of a SoC or board thermal zone.',
    ['sensor'],
  ),
  sensorOffline: gauge(
    'gpulse_jetson_temperature_sensor_offline',
    'A thermal zone reads -256 C: its block is power-gated or the sensor is off (0/1).',
    ['sensor'],
  ),
  engineUtilization: gauge(
    'gpulse_jetson_engine_utilization_ratio',
    'Load of a SoC engine (VIC, GR3D2 ...) where tegrastats prints one (0-1).',
    ['engine'],
  ),
  engineClock: gauge(
    'gpulse_jetson_engine_clock_hz',
    'Clock of a SoC engine (NVDEC, NVENC, VIC, APE ...).',
    ['engine'],
  ),
  engineActive: gauge(
    'gpulse_jetson_engine_active',
    'Whether a SoC engine is clocked (0 when tegrastats prints it "off").',
    ['engine'],
  ),
  gpcClock: gauge('gpulse_jetson_gpc_clock_hz', 'GPU clock of one GPC (JetPack 5 and later).', [
    ...GPU,
    'gpc',
  ]),
  ramLargestFreeBlock: gauge(
    'gpulse_jetson_ram_largest_free_block_bytes',
    'Size of the largest free block of RAM (fragmentation; large contiguous allocations need it).',
  ),
  ramLargestFreeBlocks: gauge(
    'gpulse_jetson_ram_largest_free_blocks',
    'Number of free RAM blocks of the largest free size.',
  ),
  swapUsed: gauge('gpulse_jetson_swap_used_bytes', 'Swap in use (zram or disk).'),
  swapTotal: gauge('gpulse_jetson_swap_total_bytes', 'Swap space.'),
  swapCached: gauge('gpulse_jetson_swap_cached_bytes', 'Swapped-out memory also cached in RAM.'),
  iramUsed: gauge('gpulse_jetson_iram_used_bytes', 'Internal RAM (IRAM) in use.'),
  iramTotal: gauge('gpulse_jetson_iram_total_bytes', 'Internal RAM (IRAM) size.'),
  iramLargestFreeBlock: gauge(
    'gpulse_jetson_iram_largest_free_block_bytes',
    'Largest free block of internal RAM.',
  ),
  mtsUtilization: gauge(
    'gpulse_jetson_mts_utilization_ratio',
    'Foreground/background load of the Denver cores (TX2 on L4T 28) (0-1).',
    ['kind'],
  ),
} as const;

/** Self-metrics of the tegrastats stream. */
export const tegrastatsHealthMetrics = {
  restarts: counter(
    'gpulse_tegrastats_restarts_total',
    'tegrastats restarted after an exit or a hang.',
  ),
  streamUp: gauge('gpulse_tegrastats_stream_up', 'Whether tegrastats is running (0/1).'),
  rejectedLines: counter(
    'gpulse_tegrastats_rejected_lines_total',
    'tegrastats output lines with no field this agent knows (garbage, error messages).',
  ),
  unknownFields: counter(
    'gpulse_tegrastats_unknown_fields_total',
    'tegrastats fields this agent does not know (a newer JetPack?); the rest of the line is kept.',
  ),
} as const;

// Rails that measure the GPU alone (module power at the input side on Nano/TX2). Orin's
// VDD_GPU_SOC and VDD_CPU_GPU_CV also feed the SoC or CPU, so they are not the GPU's power.
const GPU_RAILS = new Set(['POM_5V_GPU', 'VDD_SYS_GPU', 'VDD_GPU', 'GPU']);

/**
 * The integrated GPU as a GpuReading: the fields whose meaning is the same as on a discrete GPU
 * (load, graphics clock, GPU temperature, GPU-only rail) and the unified memory as its memory.
 */
export function gpuReadingOf(reading: TegrastatsReading, identity: JetsonIdentity): GpuReading {
  const ram = reading.ram;
  const gpuTemp = reading.temperatures.find((t) => t.sensor.toUpperCase() === 'GPU');
  const gpuRail = reading.rails.find((r) => GPU_RAILS.has(r.rail));
  const fields: Record<string, unknown> = {
    index: 0,
    uuid: identity.uuid,
    name: identity.model,
    utilizationRatio: reading.gpu?.utilizationRatio,
    memoryTotalBytes: ram?.totalBytes,
    memoryUsedBytes: ram?.usedBytes,
    memoryFreeBytes: ram === undefined ? undefined : ram.totalBytes - ram.usedBytes,
    temperatureCelsius: gpuTemp?.celsius,
    powerDrawWatts: gpuRail?.currentWatts,
    clocksHz: reading.gpu?.frequencyHz === undefined ? {} : { graphics: reading.gpu.frequencyHz },
    maxClocksHz: {},
    throttle: {},
    throttleSeconds: {},
  };
  return Object.fromEntries(
    Object.entries(fields).filter(([, v]) => v !== undefined),
  ) as unknown as GpuReading;
}

/** Every series of one tegrastats reading: shared GPU series plus the Jetson ones. */
export function tegrastatsSamples(
  reading: TegrastatsReading,
  identity: JetsonIdentity,
  gpu: GpuReading = gpuReadingOf(reading, identity),
): Sample[] {
  const m = jetsonMetrics;
  const b = new SampleBuilder();
  const l = gpuLabels(gpu);
  b.add(m.info, { ...l, model: identity.model, l4t_release: identity.l4tRelease ?? '' }, 1);
  (reading.gpu?.frequenciesHz ?? []).forEach((hz, gpc) =>
    b.add(m.gpcClock, { ...l, gpc: String(gpc) }, hz),
  );
  for (const r of reading.rails) {
    b.add(m.railPower, { rail: r.rail }, r.currentWatts);
    b.add(m.railAverage, { rail: r.rail }, r.averageWatts);
  }
  b.add(m.emcUtilization, {}, reading.emc?.utilizationRatio);
  b.add(m.emcClock, {}, reading.emc?.frequencyHz);
  for (const c of reading.cpus) {
    const cpu = { cpu: String(c.core) };
    b.add(m.cpuOnline, cpu, c.online)
      .add(m.cpuUtilization, cpu, c.utilizationRatio)
      .add(m.cpuClock, cpu, c.frequencyHz);
  }
  for (const t of reading.temperatures) {
    b.add(m.temperature, { sensor: t.sensor }, t.celsius);
    b.add(m.sensorOffline, { sensor: t.sensor }, t.celsius === undefined);
  }
  for (const e of reading.engines) {
    const engine = { engine: e.name };
    b.add(m.engineActive, engine, e.active)
      .add(m.engineUtilization, engine, e.utilizationRatio)
      .add(m.engineClock, engine, e.frequencyHz);
  }
  b.add(m.ramLargestFreeBlock, {}, reading.ram?.largestFreeBlockBytes)
    .add(m.ramLargestFreeBlocks, {}, reading.ram?.largestFreeBlocks)
    .add(m.swapUsed, {}, reading.swap?.usedBytes)
    .add(m.swapTotal, {}, reading.swap?.totalBytes)
    .add(m.swapCached, {}, reading.swap?.cachedBytes)
    .add(m.iramUsed, {}, reading.iram?.usedBytes)
    .add(m.iramTotal, {}, reading.iram?.totalBytes)
    .add(m.iramLargestFreeBlock, {}, reading.iram?.largestFreeBlockBytes)
    .add(m.mtsUtilization, { kind: 'foreground' }, reading.mts?.foregroundRatio)
    .add(m.mtsUtilization, { kind: 'background' }, reading.mts?.backgroundRatio);
  return [...gpuReadingSamples([gpu]), ...b.build()];
}
