import {
  THROTTLE_REASONS,
  type ClockDomain,
  type GpuReading,
  type LostGpu,
  type ThrottleReason,
} from '../agent/core/facts.js';
import { counter, gauge, SampleBuilder } from '../agent/core/metric.js';
import type { Labels, Sample } from '../agent/core/types.js';

const GPU = ['gpu', 'uuid'] as const;

/** Per-GPU metric families shared by every GPU source (nvidia-smi, DCGM, tegrastats). */
export const gpuMetrics = {
  info: gauge('gpulse_gpu_info', 'GPU identity; always 1.', [
    ...GPU,
    'name',
    'driver_version',
    'cuda_version',
    'pci_bus_id',
    'vbios_version',
    'compute_capability',
  ]),
  up: gauge(
    'gpulse_gpu_up',
    'Whether the GPU answers its driver (1) or is attached but lost: fallen off the bus, stuck in a reset (0).',
    GPU,
  ),
  utilization: gauge(
    'gpulse_gpu_utilization_ratio',
    'Share of time a kernel ran on the GPU (0-1).',
    GPU,
  ),
  memoryUtilization: gauge(
    'gpulse_gpu_memory_utilization_ratio',
    'Share of time device memory was read or written (0-1).',
    GPU,
  ),
  encoderUtilization: gauge(
    'gpulse_gpu_encoder_utilization_ratio',
    'Video encoder utilization (0-1).',
    GPU,
  ),
  decoderUtilization: gauge(
    'gpulse_gpu_decoder_utilization_ratio',
    'Video decoder utilization (0-1).',
    GPU,
  ),
  memoryTotal: gauge('gpulse_gpu_memory_total_bytes', 'Total device (framebuffer) memory.', GPU),
  memoryUsed: gauge('gpulse_gpu_memory_used_bytes', 'Used device memory.', GPU),
  memoryFree: gauge('gpulse_gpu_memory_free_bytes', 'Free device memory.', GPU),
  memoryReserved: gauge(
    'gpulse_gpu_memory_reserved_bytes',
    'Device memory reserved by the driver.',
    GPU,
  ),
  temperature: gauge('gpulse_gpu_temperature_celsius', 'GPU core temperature.', GPU),
  memoryTemperature: gauge(
    'gpulse_gpu_memory_temperature_celsius',
    'GPU memory (HBM) temperature.',
    GPU,
  ),
  powerDraw: gauge('gpulse_gpu_power_draw_watts', 'Power drawn by the GPU.', GPU),
  powerLimit: gauge('gpulse_gpu_power_limit_watts', 'Power management limit.', GPU),
  enforcedPowerLimit: gauge(
    'gpulse_gpu_enforced_power_limit_watts',
    'Power limit the driver enforces (the lowest of all limits).',
    GPU,
  ),
  energy: counter(
    'gpulse_gpu_energy_joules_total',
    'Energy consumed since the driver loaded.',
    GPU,
  ),
  clock: gauge('gpulse_gpu_clock_hz', 'Current clock frequency per domain.', [...GPU, 'clock']),
  maxClock: gauge('gpulse_gpu_max_clock_hz', 'Maximum clock frequency per domain.', [
    ...GPU,
    'clock',
  ]),
  fanSpeed: gauge('gpulse_gpu_fan_speed_ratio', 'Fan speed as a share of its maximum (0-1).', GPU),
  pstate: gauge(
    'gpulse_gpu_pstate',
    'Performance state (0 = P0, maximum performance; 15 = P15).',
    GPU,
  ),
  throttleActive: gauge(
    'gpulse_gpu_throttle_active',
    'Whether a clock throttle (clock event) reason is active (0/1).',
    [...GPU, 'reason'],
  ),
  throttleSeconds: counter(
    'gpulse_gpu_throttle_seconds_total',
    "Time spent throttled per reason: the driver's own counter (clocks_event_reasons_counters) where it keeps one, else integrated by gpulse from the sampled reasons.",
    [...GPU, 'reason'],
  ),
  pcieLinkGen: gauge('gpulse_gpu_pcie_link_generation', 'Current PCIe link generation.', GPU),
  pcieLinkWidth: gauge('gpulse_gpu_pcie_link_width', 'Current PCIe link width (lanes).', GPU),
  persistenceMode: gauge('gpulse_gpu_persistence_mode', 'Persistence mode enabled (0/1).', GPU),
  migEnabled: gauge('gpulse_gpu_mig_enabled', 'MIG mode enabled (0/1).', GPU),
  eccEnabled: gauge('gpulse_gpu_ecc_enabled', 'ECC mode enabled (0/1).', GPU),
  eccErrors: counter(
    'gpulse_gpu_ecc_errors_total',
    'ECC errors by type and counter (volatile: since driver load; aggregate: lifetime).',
    [...GPU, 'error_type', 'counter'],
  ),
  retiredPages: counter('gpulse_gpu_retired_pages_total', 'Retired memory pages by cause.', [
    ...GPU,
    'cause',
  ]),
  retiredPagesPending: gauge(
    'gpulse_gpu_retired_pages_pending',
    'A page retirement waits for a reset (0/1).',
    GPU,
  ),
  remappedRows: counter('gpulse_gpu_remapped_rows_total', 'Remapped memory rows by kind.', [
    ...GPU,
    'kind',
  ]),
  remappedRowsPending: gauge(
    'gpulse_gpu_remapped_rows_pending',
    'A row remapping waits for a reset (0/1).',
    GPU,
  ),
  remappedRowsFailure: gauge(
    'gpulse_gpu_remapped_rows_failure',
    'A row remapping failed: the GPU needs service (0/1).',
    GPU,
  ),
  migInfo: gauge('gpulse_mig_info', 'MIG device identity; always 1.', [
    ...GPU,
    'gpu_instance_id',
    'compute_instance_id',
    'profile',
    'mig_uuid',
  ]),
  migMemoryUsed: gauge('gpulse_mig_memory_used_bytes', 'Memory used in a MIG device.', [
    ...GPU,
    'gpu_instance_id',
    'compute_instance_id',
  ]),
  migMemoryTotal: gauge('gpulse_mig_memory_total_bytes', 'Memory of a MIG device.', [
    ...GPU,
    'gpu_instance_id',
    'compute_instance_id',
  ]),
  migMultiprocessors: gauge(
    'gpulse_mig_multiprocessors',
    'Streaming multiprocessors of a MIG device.',
    [...GPU, 'gpu_instance_id', 'compute_instance_id'],
  ),
} as const;

const CLOCK_DOMAINS: readonly ClockDomain[] = ['graphics', 'sm', 'memory', 'video'];

/** A GPU's identity without its values (what a lost GPU still has, what stays across sources). */
export function identityOf(r: GpuReading): GpuReading {
  return {
    index: r.index,
    uuid: r.uuid,
    ...(r.minorNumber !== undefined ? { minorNumber: r.minorNumber } : {}),
    ...(r.name !== undefined ? { name: r.name } : {}),
    ...(r.pciBusId !== undefined ? { pciBusId: r.pciBusId } : {}),
    ...(r.driverVersion !== undefined ? { driverVersion: r.driverVersion } : {}),
    ...(r.cudaVersion !== undefined ? { cudaVersion: r.cudaVersion } : {}),
    ...(r.serial !== undefined ? { serial: r.serial } : {}),
    ...(r.vbiosVersion !== undefined ? { vbiosVersion: r.vbiosVersion } : {}),
    ...(r.computeCapability !== undefined ? { computeCapability: r.computeCapability } : {}),
    clocksHz: {},
    maxClocksHz: {},
    throttle: {},
    throttleSeconds: {},
  };
}

/** Identity labels of a GPU's value series. */
export function gpuLabels(gpu: Pick<GpuReading, 'index' | 'uuid'>): Labels {
  return { gpu: String(gpu.index), uuid: gpu.uuid };
}

/** The label sets of one GPU's series, built once per GPU identity and shared by its samples. */
interface GpuLabelSets {
  readonly gpu: Labels;
  readonly clock: Readonly<Record<ClockDomain, Labels>>;
  readonly reason: Readonly<Record<ThrottleReason, Labels>>;
  readonly ecc: Readonly<Record<'cv' | 'uv' | 'ca' | 'ua', Labels>>;
  readonly retired: Readonly<Record<'single' | 'double', Labels>>;
  readonly remapped: Readonly<Record<'correctable' | 'uncorrectable', Labels>>;
}

function byKey<K extends string>(keys: readonly K[], make: (key: K) => Labels): Record<K, Labels> {
  const out = {} as Record<K, Labels>;
  for (const key of keys) out[key] = make(key);
  return out;
}

// Samples are immutable and their labels are never changed after creation, so every snapshot can
// share a GPU's label objects instead of allocating some forty per GPU and second. Bounded: one
// entry per GPU identity seen, and a host has few.
const labelSets = new Map<string, GpuLabelSets>();
const MAX_LABEL_SETS = 1024;

function labelSetsOf(g: Pick<GpuReading, 'index' | 'uuid'>): GpuLabelSets {
  const key = `${g.index} ${g.uuid}`;
  let sets = labelSets.get(key);
  if (!sets) {
    const l = gpuLabels(g);
    sets = {
      gpu: l,
      clock: byKey(CLOCK_DOMAINS, (clock) => ({ ...l, clock })),
      reason: byKey(THROTTLE_REASONS, (reason) => ({ ...l, reason })),
      ecc: {
        cv: { ...l, error_type: 'corrected', counter: 'volatile' },
        uv: { ...l, error_type: 'uncorrected', counter: 'volatile' },
        ca: { ...l, error_type: 'corrected', counter: 'aggregate' },
        ua: { ...l, error_type: 'uncorrected', counter: 'aggregate' },
      },
      retired: {
        single: { ...l, cause: 'single_bit_ecc' },
        double: { ...l, cause: 'double_bit_ecc' },
      },
      remapped: {
        correctable: { ...l, kind: 'correctable' },
        uncorrectable: { ...l, kind: 'uncorrectable' },
      },
    };
    if (labelSets.size >= MAX_LABEL_SETS) labelSets.clear();
    labelSets.set(key, sets);
  }
  return sets;
}

function addInfo(b: SampleBuilder, l: Labels, g: GpuReading): void {
  b.add(
    gpuMetrics.info,
    {
      ...l,
      name: g.name ?? '',
      driver_version: g.driverVersion ?? '',
      cuda_version: g.cudaVersion ?? '',
      pci_bus_id: g.pciBusId ?? '',
      vbios_version: g.vbiosVersion ?? '',
      compute_capability: g.computeCapability ?? '',
    },
    1,
  );
}

/**
 * A lost GPU's series: `gpulse_gpu_up` 0 and, when its identity is known, its info series as
 * before (dashboards keep listing it); no value series, neither stale nor zero.
 */
export function lostGpuSamples(lost: readonly LostGpu[]): Sample[] {
  const b = new SampleBuilder();
  for (const { reading } of lost) {
    const l = labelSetsOf(reading).gpu;
    if (reading.uuid !== '') addInfo(b, l, reading);
    b.add(gpuMetrics.up, l, 0);
  }
  return b.build();
}

/**
 * Turns GPU readings into samples; absent values produce no series. `info: false` leaves the
 * info series out (a source still waiting for part of the identity, see the nvidia-smi collector).
 */
export function gpuReadingSamples(
  readings: readonly GpuReading[],
  options: { readonly info?: boolean } = {},
): Sample[] {
  const b = new SampleBuilder();
  const m = gpuMetrics;
  for (const g of readings) {
    const sets = labelSetsOf(g);
    const l = sets.gpu;
    if (options.info !== false) addInfo(b, l, g);
    b.add(m.up, l, 1);
    b.add(m.utilization, l, g.utilizationRatio)
      .add(m.memoryUtilization, l, g.memoryUtilizationRatio)
      .add(m.encoderUtilization, l, g.encoderUtilizationRatio)
      .add(m.decoderUtilization, l, g.decoderUtilizationRatio)
      .add(m.memoryTotal, l, g.memoryTotalBytes)
      .add(m.memoryUsed, l, g.memoryUsedBytes)
      .add(m.memoryFree, l, g.memoryFreeBytes)
      .add(m.memoryReserved, l, g.memoryReservedBytes)
      .add(m.temperature, l, g.temperatureCelsius)
      .add(m.memoryTemperature, l, g.memoryTemperatureCelsius)
      .add(m.powerDraw, l, g.powerDrawWatts)
      .add(m.powerLimit, l, g.powerLimitWatts)
      .add(m.enforcedPowerLimit, l, g.enforcedPowerLimitWatts)
      .add(m.energy, l, g.energyJoules)
      .add(m.fanSpeed, l, g.fanSpeedRatio)
      .add(m.pstate, l, g.pstate)
      .add(m.pcieLinkGen, l, g.pcieLinkGen)
      .add(m.pcieLinkWidth, l, g.pcieLinkWidth)
      .add(m.persistenceMode, l, g.persistenceMode)
      .add(m.migEnabled, l, g.migEnabled);
    for (const clock of CLOCK_DOMAINS) {
      b.add(m.clock, sets.clock[clock], g.clocksHz[clock]);
      b.add(m.maxClock, sets.clock[clock], g.maxClocksHz[clock]);
    }
    const reportsThrottle = THROTTLE_REASONS.some((r) => g.throttle[r] !== undefined);
    for (const reason of THROTTLE_REASONS) {
      const rl = sets.reason[reason];
      // A GPU that reports any reason reports all of them: unknown ones read as inactive.
      b.add(m.throttleActive, rl, reportsThrottle ? (g.throttle[reason] ?? false) : undefined);
      b.add(m.throttleSeconds, rl, g.throttleSeconds[reason]);
    }
    if (g.ecc) {
      b.add(m.eccEnabled, l, g.ecc.enabled);
      b.add(m.eccErrors, sets.ecc.cv, g.ecc.correctedVolatile)
        .add(m.eccErrors, sets.ecc.uv, g.ecc.uncorrectedVolatile)
        .add(m.eccErrors, sets.ecc.ca, g.ecc.correctedAggregate)
        .add(m.eccErrors, sets.ecc.ua, g.ecc.uncorrectedAggregate);
    }
    b.add(m.retiredPages, sets.retired.single, g.retiredPagesSingleBit)
      .add(m.retiredPages, sets.retired.double, g.retiredPagesDoubleBit)
      .add(m.retiredPagesPending, l, g.retiredPagesPending)
      .add(m.remappedRows, sets.remapped.correctable, g.remappedRowsCorrectable)
      .add(m.remappedRows, sets.remapped.uncorrectable, g.remappedRowsUncorrectable)
      .add(m.remappedRowsPending, l, g.remappedRowsPending)
      .add(m.remappedRowsFailure, l, g.remappedRowsFailure);
    for (const mig of g.migDevices ?? []) {
      const ml = {
        ...l,
        gpu_instance_id: String(mig.gpuInstanceId),
        compute_instance_id: String(mig.computeInstanceId),
      };
      b.add(m.migInfo, { ...ml, profile: mig.profile ?? '', mig_uuid: mig.uuid ?? '' }, 1)
        .add(m.migMemoryUsed, ml, mig.memoryUsedBytes)
        .add(m.migMemoryTotal, ml, mig.memoryTotalBytes)
        .add(m.migMultiprocessors, ml, mig.multiprocessorCount);
    }
  }
  return b.build();
}
