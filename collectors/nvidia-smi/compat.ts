/**
 * nvidia_gpu_exporter compatibility: gpulse's values served under nvidia_gpu_exporter's metric
 * names, units and labels (`--metrics-compat nvidia-gpu-exporter`), whichever source has them,
 * so its Grafana dashboards and the alerts written for it work unchanged.
 *
 * The exporter names each `--query-gpu` field after the header nvidia-smi prints for it: dots
 * become underscores and a unit becomes a suffix with the value scaled to base units
 * (`memory.used [MiB]` → `nvidia_smi_memory_used_bytes`, MiB × 1048576; `[%]` → `_ratio`, 0-1;
 * `[MHz]` → `_clock_hz`; `[us]` → `_seconds`); fields without a unit keep nvidia-smi's number
 * (`temperature.gpu`, `pstate`, 0/1 for Enabled/Active). Every per-GPU series has one label,
 * `uuid`, lower-cased without its `GPU-` prefix; identity sits on `nvidia_smi_gpu_info`.
 */
import {
  THROTTLE_REASON_BITS,
  THROTTLE_REASONS,
  type ComputeMode,
  type FabricState,
  type GpuProcess,
  type GpuReading,
  type RecoveryAction,
  type ThrottleReason,
} from '../../agent/core/facts.js';
import { counter, gauge, SampleBuilder } from '../../agent/core/metric.js';
import type { CollectorState, Labels, MetricDesc, Sample } from '../../agent/core/types.js';
import type { DcgmGpuFact } from '../dcgm/dcgm-reading.js';
import { exitCodeOf } from './exit-codes.js';

/** One GPU as the compat series need it. */
export interface ExporterGpu {
  readonly reading: GpuReading;
  /** DCGM's values for the GPU, where DCGM watches it (energy, PCIe throughput). */
  readonly dcgm?: DcgmGpuFact;
}

/** Xids counted on one GPU with one code, and when the latest of them happened (Unix ms). */
export interface ExporterXid {
  readonly uuid: string;
  readonly xid: number;
  readonly count: number;
  readonly lastAt?: number;
}

/** What the host-wide compat series (health, processes, Xids) are computed from. */
export interface ExporterHostInput {
  /** The served GPUs: the per-process count is zero-filled over them. */
  readonly gpus: readonly ExporterGpu[];
  /** The nvidia-smi collector's state; absent when it is turned off (no health series then). */
  readonly nvidiaSmi?: CollectorState;
  readonly xids: readonly ExporterXid[];
}

/** The exporter's GPU label value: `GPU-8f5e…` → `8f5e…` (and `MIG-…` → `…`), lower case. */
export function exporterUuid(uuid: string): string {
  return uuid
    .trim()
    .toLowerCase()
    .replace(/^(gpu|mig)-/, '');
}

const UUID = ['uuid'] as const;
const field = (name: string, help: string): MetricDesc => gauge(`nvidia_smi_${name}`, help, UUID);
const bit = (b: boolean | undefined): number | undefined =>
  b === undefined ? undefined : b ? 1 : 0;

/** The throttle reasons nvidia-smi prints a `clocks_event_reasons.<reason>` column for. */
const REASON_COLUMNS = THROTTLE_REASONS.filter((r) => r !== 'display_clock_setting');
/** The reasons the driver keeps a `clocks_event_reasons_counters.<reason>` counter for. */
const COUNTER_REASONS: readonly ThrottleReason[] = [
  'sw_power_cap',
  'sync_boost',
  'sw_thermal_slowdown',
  'hw_thermal_slowdown',
  'hw_power_brake_slowdown',
];

function reasonMask(r: GpuReading): number | undefined {
  if (!THROTTLE_REASONS.some((x) => r.throttle[x] !== undefined)) return undefined;
  let mask = 0;
  for (const x of THROTTLE_REASONS) if (r.throttle[x]) mask |= THROTTLE_REASON_BITS[x];
  return mask;
}

function computeCap(text: string | undefined): number | undefined {
  // The exporter parses "9.0" as a number like any other cell.
  const n = text === undefined ? NaN : Number(text);
  return Number.isFinite(n) ? n : undefined;
}

// The exporter serves these states as NVML's enum numbers (nvmlComputeMode_t,
// nvmlGpuRecoveryAction_t, nvmlGpuFabricState_t), which its dashboards and alerts compare with.
const COMPUTE_MODE_NUMBERS: Readonly<Record<ComputeMode, number>> = {
  default: 0,
  exclusive_thread: 1,
  prohibited: 2,
  exclusive_process: 3,
};
const RECOVERY_ACTION_NUMBERS: Readonly<Record<RecoveryAction, number>> = {
  none: 0,
  gpu_reset: 1,
  node_reboot: 2,
  drain_p2p: 3,
  drain_and_reset: 4,
};
const FABRIC_STATE_NUMBERS: Readonly<Record<FabricState, number>> = {
  not_supported: 0,
  not_started: 1,
  in_progress: 2,
  completed: 3,
};

function numberOf<T extends string>(
  table: Readonly<Record<T, number>>,
  value: T | undefined,
): number | undefined {
  return value === undefined ? undefined : table[value];
}

type GpuValue = (g: ExporterGpu, gpuCount: number) => number | undefined;

/**
 * Per-GPU families, help text as the exporter gives it (the header nvidia-smi prints), and how
 * each value comes from gpulse's reading (base units already, as the exporter's are).
 */
const GPU_FIELDS: readonly (readonly [MetricDesc, GpuValue])[] = [
  [field('index', 'index'), (g) => g.reading.index],
  [field('count', 'count'), (_, n) => n],
  [field('compute_cap', 'compute_cap'), (g) => computeCap(g.reading.computeCapability)],
  [field('utilization_gpu_ratio', 'utilization.gpu [%]'), (g) => g.reading.utilizationRatio],
  [
    field('utilization_memory_ratio', 'utilization.memory [%]'),
    (g) => g.reading.memoryUtilizationRatio,
  ],
  [
    field('utilization_encoder_ratio', 'utilization.encoder [%]'),
    (g) => g.reading.encoderUtilizationRatio,
  ],
  [
    field('utilization_decoder_ratio', 'utilization.decoder [%]'),
    (g) => g.reading.decoderUtilizationRatio,
  ],
  [field('memory_total_bytes', 'memory.total [MiB]'), (g) => g.reading.memoryTotalBytes],
  [field('memory_used_bytes', 'memory.used [MiB]'), (g) => g.reading.memoryUsedBytes],
  [field('memory_free_bytes', 'memory.free [MiB]'), (g) => g.reading.memoryFreeBytes],
  [field('memory_reserved_bytes', 'memory.reserved [MiB]'), (g) => g.reading.memoryReservedBytes],
  [field('temperature_gpu', 'temperature.gpu'), (g) => g.reading.temperatureCelsius],
  [field('temperature_memory', 'temperature.memory'), (g) => g.reading.memoryTemperatureCelsius],
  [field('power_draw_watts', 'power.draw [W]'), (g) => g.reading.powerDrawWatts],
  [field('power_limit_watts', 'power.limit [W]'), (g) => g.reading.powerLimitWatts],
  [
    field('enforced_power_limit_watts', 'enforced.power.limit [W]'),
    (g) => g.reading.enforcedPowerLimitWatts,
  ],
  [
    field('power_default_limit_watts', 'power.default_limit [W]'),
    (g) => g.reading.powerDefaultLimitWatts,
  ],
  ...(['graphics', 'sm', 'memory', 'video'] as const).map((d): readonly [MetricDesc, GpuValue] => [
    field(`clocks_current_${d}_clock_hz`, `clocks.current.${d} [MHz]`),
    (g) => g.reading.clocksHz[d],
  ]),
  // nvidia-smi has no clocks.max.video field.
  ...(['graphics', 'sm', 'memory'] as const).map((d): readonly [MetricDesc, GpuValue] => [
    field(`clocks_max_${d}_clock_hz`, `clocks.max.${d} [MHz]`),
    (g) => g.reading.maxClocksHz[d],
  ]),
  [field('fan_speed_ratio', 'fan.speed [%]'), (g) => g.reading.fanSpeedRatio],
  [field('pstate', 'pstate'), (g) => g.reading.pstate],
  [
    field('clocks_event_reasons_active', 'clocks_event_reasons.active'),
    (g) => reasonMask(g.reading),
  ],
  ...REASON_COLUMNS.map((r): readonly [MetricDesc, GpuValue] => [
    field(`clocks_event_reasons_${r}`, `clocks_event_reasons.${r}`),
    (g) => bit(g.reading.throttle[r]),
  ]),
  ...COUNTER_REASONS.map((r): readonly [MetricDesc, GpuValue] => [
    field(`clocks_event_reasons_counters_${r}_seconds`, `clocks_event_reasons_counters.${r} [us]`),
    (g) => g.reading.throttleSeconds[r],
  ]),
  // Recent drivers list pcie.link.gen.current as the deprecated alias of gpucurrent: the
  // exporter, asking for every field, serves both.
  [field('pcie_link_gen_current', 'pcie.link.gen.current'), (g) => g.reading.pcieLinkGen],
  [field('pcie_link_gen_gpucurrent', 'pcie.link.gen.gpucurrent'), (g) => g.reading.pcieLinkGen],
  [field('pcie_link_gen_max', 'pcie.link.gen.max'), (g) => g.reading.pcieLinkGenMax],
  [field('pcie_link_width_current', 'pcie.link.width.current'), (g) => g.reading.pcieLinkWidth],
  [field('pcie_link_width_max', 'pcie.link.width.max'), (g) => g.reading.pcieLinkWidthMax],
  [field('persistence_mode', 'persistence_mode'), (g) => bit(g.reading.persistenceMode)],
  [field('mig_mode_current', 'mig.mode.current'), (g) => bit(g.reading.migEnabled)],
  [field('ecc_mode_current', 'ecc.mode.current'), (g) => bit(g.reading.ecc?.enabled)],
  [
    field('ecc_errors_corrected_volatile_total', 'ecc.errors.corrected.volatile.total'),
    (g) => g.reading.ecc?.correctedVolatile,
  ],
  [
    field('ecc_errors_corrected_aggregate_total', 'ecc.errors.corrected.aggregate.total'),
    (g) => g.reading.ecc?.correctedAggregate,
  ],
  [
    field('ecc_errors_uncorrected_volatile_total', 'ecc.errors.uncorrected.volatile.total'),
    (g) => g.reading.ecc?.uncorrectedVolatile,
  ],
  [
    field('ecc_errors_uncorrected_aggregate_total', 'ecc.errors.uncorrected.aggregate.total'),
    (g) => g.reading.ecc?.uncorrectedAggregate,
  ],
  [
    field('retired_pages_single_bit_ecc_count', 'retired_pages.single_bit_ecc.count'),
    (g) => g.reading.retiredPagesSingleBit,
  ],
  [
    field('retired_pages_double_bit_count', 'retired_pages.double_bit.count'),
    (g) => g.reading.retiredPagesDoubleBit,
  ],
  [
    field('retired_pages_pending', 'retired_pages.pending'),
    (g) => bit(g.reading.retiredPagesPending),
  ],
  [
    field('remapped_rows_correctable', 'remapped_rows.correctable'),
    (g) => g.reading.remappedRowsCorrectable,
  ],
  [
    field('remapped_rows_uncorrectable', 'remapped_rows.uncorrectable'),
    (g) => g.reading.remappedRowsUncorrectable,
  ],
  [
    field('remapped_rows_pending', 'remapped_rows.pending'),
    (g) => bit(g.reading.remappedRowsPending),
  ],
  [
    field('remapped_rows_failure', 'remapped_rows.failure'),
    (g) => bit(g.reading.remappedRowsFailure),
  ],
  [
    field('compute_mode', 'compute_mode'),
    (g) => numberOf(COMPUTE_MODE_NUMBERS, g.reading.computeMode),
  ],
  [
    field('gpu_recovery_action', 'gpu_recovery_action'),
    (g) => numberOf(RECOVERY_ACTION_NUMBERS, g.reading.recoveryAction),
  ],
  [
    field('fabric_state', 'fabric.state'),
    (g) => numberOf(FABRIC_STATE_NUMBERS, g.reading.fabricState),
  ],
];

/** The exporter's own families: identity, its NVML backend's extras, processes, health, Xids. */
export const exporterMetrics = {
  info: gauge(
    'nvidia_smi_gpu_info',
    "A metric with a constant '1' value labeled by gpu uuid, name, vbios_version, driver_version, pci_bus_id, serial, compute_cap, index, cuda_version.",
    [
      'compute_cap',
      'cuda_version',
      'driver_version',
      'index',
      'name',
      'pci_bus_id',
      'serial',
      'uuid',
      'vbios_version',
    ],
  ),
  energy: counter(
    'nvidia_smi_energy_joules_total',
    'Total energy consumed by the GPU in joules since the driver was last loaded. Resets on a driver reload; absent on GPUs that cannot report it.',
    UUID,
  ),
  pcieTx: gauge(
    'nvidia_smi_pcie_throughput_tx_bytes_per_second',
    'PCIe traffic transmitted by the GPU (DCGM PROF_PCIE_TX_BYTES, where DCGM watches the GPU).',
    UUID,
  ),
  pcieRx: gauge(
    'nvidia_smi_pcie_throughput_rx_bytes_per_second',
    'PCIe traffic received by the GPU (DCGM PROF_PCIE_RX_BYTES, where DCGM watches the GPU).',
    UUID,
  ),
  migInfo: gauge(
    'nvidia_smi_mig_info',
    "A metric with a constant '1' value labeled by the identity of a MIG device: the parent GPU's uuid, the MIG device's own uuid, its GPU instance and compute instance ids, and its profile.",
    ['compute_instance_id', 'gpu_instance_id', 'mig_uuid', 'profile', 'uuid'],
  ),
  ...(() => {
    const memory = (kind: string) =>
      gauge(
        `nvidia_smi_mig_memory_${kind}_bytes`,
        `Memory of the GPU instance (${kind}). The framebuffer belongs to the GPU instance and is shared by its compute instances.`,
        ['gpu_instance_id', 'uuid'],
      );
    return {
      migMemoryTotal: memory('total'),
      migMemoryUsed: memory('used'),
      migMemoryFree: memory('free'),
    };
  })(),
  appInfo: gauge(
    'nvidia_smi_compute_app_info',
    "A metric with a constant '1' value labeled by the identity of a process with a compute context on a GPU.",
    ['pid', 'process_name', 'uuid'],
  ),
  appMemory: gauge(
    'nvidia_smi_compute_app_used_memory_bytes',
    'GPU memory used by the process. Absent when the driver cannot report it (e.g. Windows WDDM).',
    ['pid', 'process_name', 'uuid'],
  ),
  apps: gauge(
    'nvidia_smi_compute_apps',
    'Number of processes with a compute context on the GPU.',
    UUID,
  ),
  appsSuccess: gauge(
    'nvidia_smi_compute_apps_last_collect_success',
    'Whether the most recent per-process collection succeeded (1) or not (0)',
  ),
  failedScrapes: counter('nvidia_smi_failed_scrapes_total', 'Number of failed collections'),
  success: gauge(
    'nvidia_smi_last_collect_success',
    'Whether the most recent collection succeeded (1) or not (0)',
  ),
  successTimestamp: gauge(
    'nvidia_smi_last_collect_success_timestamp_seconds',
    'Unix timestamp of the most recent successful collection',
  ),
  duration: gauge(
    'nvidia_smi_last_collect_duration_seconds',
    'Duration of the most recent collection',
  ),
  exitCode: gauge('nvidia_smi_command_exit_code', 'Exit code of the most recent nvidia-smi run'),
  xids: counter(
    'nvidia_smi_xid_errors_total',
    'Number of XID errors observed on the GPU since the exporter started. A series appears when its first event arrives; earlier history cannot be replayed.',
    ['uuid', 'xid'],
  ),
  xidLast: gauge(
    'nvidia_smi_xid_last_timestamp_seconds',
    'Unix timestamp of the most recently observed XID error (the kernel log time of the record).',
    ['uuid', 'xid'],
  ),
} as const;

/** Every family this naming can serve (for the README's migration table and tests). */
export function exporterFamilies(): MetricDesc[] {
  return [...GPU_FIELDS.map(([desc]) => desc), ...Object.values(exporterMetrics)];
}

/** One GPU's series under the exporter's names; `gpuCount` is nvidia-smi's `count`. */
export function exporterGpuSamples(g: ExporterGpu, gpuCount: number): Sample[] {
  const r = g.reading;
  const b = new SampleBuilder();
  const uuid = exporterUuid(r.uuid);
  const l: Labels = { uuid };
  b.add(
    exporterMetrics.info,
    {
      compute_cap: r.computeCapability ?? '',
      cuda_version: r.cudaVersion ?? '',
      driver_version: r.driverVersion ?? '',
      index: String(r.index),
      name: r.name ?? '',
      pci_bus_id: r.pciBusId ?? '',
      serial: r.serial ?? '',
      uuid,
      vbios_version: r.vbiosVersion ?? '',
    },
    1,
  );
  for (const [desc, value] of GPU_FIELDS) b.add(desc, l, value(g, gpuCount));
  const dcgm = g.dcgm?.fields;
  const dcgmEnergyMj = dcgm?.['DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION'];
  b.add(
    exporterMetrics.energy,
    l,
    r.energyJoules ?? (dcgmEnergyMj === undefined ? undefined : dcgmEnergyMj / 1000),
  );
  b.add(exporterMetrics.pcieTx, l, dcgm?.['DCGM_FI_PROF_PCIE_TX_BYTES']);
  b.add(exporterMetrics.pcieRx, l, dcgm?.['DCGM_FI_PROF_PCIE_RX_BYTES']);
  const instances = new Set<number>();
  for (const mig of r.migDevices ?? []) {
    const gi = String(mig.gpuInstanceId);
    b.add(
      exporterMetrics.migInfo,
      {
        compute_instance_id: String(mig.computeInstanceId),
        gpu_instance_id: gi,
        mig_uuid: mig.uuid ? exporterUuid(mig.uuid) : '',
        profile: mig.profile ?? '',
        uuid,
      },
      1,
    );
    // The compute instances of a GPU instance share its memory: one series per GPU instance.
    if (instances.has(mig.gpuInstanceId)) continue;
    instances.add(mig.gpuInstanceId);
    const ml = { gpu_instance_id: gi, uuid };
    b.add(exporterMetrics.migMemoryTotal, ml, mig.memoryTotalBytes)
      .add(exporterMetrics.migMemoryUsed, ml, mig.memoryUsedBytes)
      .add(exporterMetrics.migMemoryFree, ml, mig.memoryFreeBytes);
  }
  return b.build();
}

/** nvidia-smi's self-metric of its streams (matched by name: importing the collector costs memory). */
const STREAM_UP = 'gpulse_nvidia_smi_stream_up';
/** Error reasons of nvidia-smi's extra streams, which the exporter does not count as failures. */
const EXTRA_STREAM_ERROR = /^(compute-apps|xml|pmon)_/;

/**
 * The exporter's collection health, per-process series and Xid counters. Health follows the
 * nvidia-smi collector: a failed run of the GPU query counts in `failed_scrapes_total` and its
 * exit code is served as nvidia-smi gave it (-1 where it never exited with one), never a zero
 * standing for "unknown"; before the first attempt there is no exit code or duration, as there.
 */
export function exporterHostSamples(input: ExporterHostInput): Sample[] {
  const b = new SampleBuilder();
  const m = exporterMetrics;
  const smi = input.nvidiaSmi;
  if (smi) {
    let failures = 0;
    for (const [reason, count] of smi.errors)
      if (!EXTRA_STREAM_ERROR.test(reason)) failures += count;
    b.add(m.failedScrapes, {}, failures);
    b.add(m.success, {}, smi.status === 'ok');
    if (smi.lastSuccessAt !== undefined)
      b.add(m.successTimestamp, {}, Math.floor(smi.lastSuccessAt / 1000));
    if (smi.status !== 'starting') {
      b.add(m.exitCode, {}, smi.status === 'ok' ? 0 : exitCodeOf(smi.reason ?? ''));
      if (smi.durationMs !== undefined) b.add(m.duration, {}, smi.durationMs / 1000);
    }
    const appsStream = smi.health.find(
      (s) => s.desc.name === STREAM_UP && s.labels.stream === 'compute-apps',
    );
    // As the exporter: nothing per process without a GPU reading; only the success gauge while
    // the process list cannot be read, so "no processes" stays apart from "cannot tell".
    if (smi.status === 'ok' && appsStream) {
      b.add(m.appsSuccess, {}, appsStream.value === 1);
      if (appsStream.value === 1) processSamples(b, input.gpus, smi.output.facts?.gpuProcesses);
    }
  }
  for (const x of input.xids) {
    const l = { uuid: exporterUuid(x.uuid), xid: String(x.xid) };
    b.add(m.xids, l, x.count);
    if (x.lastAt !== undefined) b.add(m.xidLast, l, x.lastAt / 1000);
  }
  return b.build();
}

function processSamples(
  b: SampleBuilder,
  gpus: readonly ExporterGpu[],
  processes: readonly GpuProcess[] = [],
): void {
  const counts = new Map<string, number>(gpus.map((g) => [exporterUuid(g.reading.uuid), 0]));
  // A process in two MIG instances of one GPU is listed twice under the GPU's uuid: one series.
  const byProcess = new Map<string, { labels: Labels; memory?: number }>();
  for (const p of processes) {
    const uuid = exporterUuid(p.gpuUuid);
    const key = `${uuid}|${p.pid}`;
    const prev = byProcess.get(key);
    if (prev) {
      if (p.usedMemoryBytes !== undefined) prev.memory = (prev.memory ?? 0) + p.usedMemoryBytes;
      continue;
    }
    counts.set(uuid, (counts.get(uuid) ?? 0) + 1);
    byProcess.set(key, {
      labels: { pid: String(p.pid), process_name: p.processName, uuid },
      ...(p.usedMemoryBytes !== undefined ? { memory: p.usedMemoryBytes } : {}),
    });
  }
  for (const { labels, memory } of byProcess.values()) {
    b.add(exporterMetrics.appInfo, labels, 1);
    b.add(exporterMetrics.appMemory, labels, memory);
  }
  for (const [uuid, n] of counts) b.add(exporterMetrics.apps, { uuid }, n);
}
