/**
 * What the simulated host engine reports for one GPU at an instant. Device fields are read from
 * the very cells the simulated nvidia-smi prints at that instant (so both tools agree where they
 * overlap); profiling fields follow the world's load, which nvidia-smi cannot see.
 */
import {
  THROTTLE_REASON_BITS,
  THROTTLE_REASONS,
  type GpuReading,
} from '../../../agent/core/facts.js';
import { unitHash } from '../../simulation/load-curve.js';
import type { GpuState } from '../../simulation/world.js';
import { parseQueryGpuRow } from '../../nvidia-smi/parse-csv.js';
import type { GpuRow } from '../../nvidia-smi/simulator/source.js';
import { NVLINK_ERROR_FIELDS, type NvlinkErrorField } from '../nvlink-errors.js';
import { VIOLATION_REASONS, violationNanoseconds, type ViolationField } from '../violations.js';

const MIB = 1024 * 1024;

/** How a busy GPU's activity maps onto DCGM's profiling ratios (a training job on tensor cores). */
const PROFILE_SHARES = {
  DCGM_FI_PROF_GR_ENGINE_ACTIVE: 0.98,
  DCGM_FI_PROF_SM_ACTIVE: 0.92,
  DCGM_FI_PROF_SM_OCCUPANCY: 0.48,
  DCGM_FI_PROF_PIPE_TENSOR_ACTIVE: 0.62,
  DCGM_FI_PROF_DRAM_ACTIVE: 0.36,
  DCGM_FI_PROF_PIPE_FP64_ACTIVE: 0.002,
  DCGM_FI_PROF_PIPE_FP32_ACTIVE: 0.11,
  DCGM_FI_PROF_PIPE_FP16_ACTIVE: 0.27,
} as const;

/** Bytes per second at full activity: host → device loads dominate PCIe, all-reduce fills NVLink. */
const PCIE_RX_BPS = 6.4e9;
const PCIE_TX_BPS = 1.9e9;
const NVLINK_BPS = 92e9;

/** Inputs for one GPU's values. */
export interface GpuSample {
  readonly row: GpuRow;
  /** The world state behind the row; absent when replaying a capture. */
  readonly state?: GpuState;
  /** GPUs on the board: NVLink traffic needs peers. */
  readonly gpuCount: number;
  readonly nowMs: number;
  readonly startMs: number;
  readonly seed: number;
  /** Xid the GPU last reported (0 when none). */
  readonly lastXid: number;
  /** Joules drawn since the simulation started; absent when replaying a capture. */
  readonly energySinceStartJ?: number;
}

/** The nvidia-smi cells of a row read back as a reading (exactly what the agent would parse). */
export function rowReading(row: GpuRow): GpuReading | undefined {
  return parseQueryGpuRow([...row.cells.values()], [...row.cells.keys()], row.index);
}

/** DCGM field values of one GPU by field name; undefined where DCGM would print N/A. */
export function gpuFieldValues(sample: GpuSample): Map<string, number | undefined> {
  const v = new Map<string, number | undefined>();
  const r = rowReading(sample.row);
  const ratioPct = (x: number | undefined): number | undefined =>
    x === undefined ? undefined : Math.round(x * 100);
  const mib = (x: number | undefined): number | undefined =>
    x === undefined ? undefined : Math.round(x / MIB);
  const mhz = (x: number | undefined): number | undefined =>
    x === undefined ? undefined : Math.round(x / 1e6);
  v.set('DCGM_FI_DEV_NVML_INDEX', sample.row.index);
  v.set('DCGM_FI_DEV_MINOR_NUMBER', sample.row.index);
  v.set('DCGM_FI_DEV_SM_CLOCK', mhz(r?.clocksHz.sm));
  v.set('DCGM_FI_DEV_MEM_CLOCK', mhz(r?.clocksHz.memory));
  let mask = 0;
  for (const reason of THROTTLE_REASONS)
    if (r?.throttle[reason]) mask |= THROTTLE_REASON_BITS[reason];
  v.set(
    'DCGM_FI_DEV_CLOCK_THROTTLE_REASONS',
    r && Object.keys(r.throttle).length > 0 ? mask : undefined,
  );
  v.set('DCGM_FI_DEV_MEMORY_TEMP', r?.memoryTemperatureCelsius);
  v.set('DCGM_FI_DEV_GPU_TEMP', r?.temperatureCelsius);
  v.set('DCGM_FI_DEV_POWER_USAGE', r?.powerDrawWatts);
  v.set('DCGM_FI_DEV_POWER_MGMT_LIMIT', r?.powerLimitWatts);
  v.set('DCGM_FI_DEV_ENFORCED_POWER_LIMIT', r?.enforcedPowerLimitWatts);
  v.set('DCGM_FI_DEV_PSTATE', r?.pstate);
  v.set('DCGM_FI_DEV_FAN_SPEED', ratioPct(r?.fanSpeedRatio));
  v.set('DCGM_FI_DEV_PCIE_REPLAY_COUNTER', 0);
  v.set('DCGM_FI_DEV_GPU_UTIL', ratioPct(r?.utilizationRatio));
  v.set('DCGM_FI_DEV_MEM_COPY_UTIL', ratioPct(r?.memoryUtilizationRatio));
  v.set('DCGM_FI_DEV_ENC_UTIL', ratioPct(r?.encoderUtilizationRatio));
  v.set('DCGM_FI_DEV_DEC_UTIL', ratioPct(r?.decoderUtilizationRatio));
  v.set('DCGM_FI_DEV_XID_ERRORS', sample.lastXid);
  v.set('DCGM_FI_DEV_PCIE_LINK_GEN', r?.pcieLinkGen);
  v.set('DCGM_FI_DEV_PCIE_LINK_WIDTH', r?.pcieLinkWidth);
  // Violation counters: wall time each class of limiter held the clocks down (violations.ts).
  for (const field of Object.keys(VIOLATION_REASONS) as ViolationField[]) {
    v.set(field, r ? violationNanoseconds(r.throttleSeconds, field) : undefined);
  }
  v.set('DCGM_FI_DEV_FB_TOTAL', mib(r?.memoryTotalBytes));
  v.set('DCGM_FI_DEV_FB_FREE', mib(r?.memoryFreeBytes));
  v.set('DCGM_FI_DEV_FB_USED', mib(r?.memoryUsedBytes));
  v.set('DCGM_FI_DEV_FB_RESERVED', mib(r?.memoryReservedBytes));
  v.set('DCGM_FI_DEV_ECC_SBE_VOL_TOTAL', r?.ecc?.correctedVolatile);
  v.set('DCGM_FI_DEV_ECC_DBE_VOL_TOTAL', r?.ecc?.uncorrectedVolatile);
  v.set('DCGM_FI_DEV_ECC_SBE_AGG_TOTAL', r?.ecc?.correctedAggregate);
  v.set('DCGM_FI_DEV_ECC_DBE_AGG_TOTAL', r?.ecc?.uncorrectedAggregate);
  v.set('DCGM_FI_DEV_RETIRED_SBE', r?.retiredPagesSingleBit);
  v.set('DCGM_FI_DEV_RETIRED_DBE', r?.retiredPagesDoubleBit);
  v.set('DCGM_FI_DEV_RETIRED_PENDING', flag(r?.retiredPagesPending));
  v.set('DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS', r?.remappedRowsUncorrectable);
  v.set('DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS', r?.remappedRowsCorrectable);
  v.set('DCGM_FI_DEV_ROW_REMAP_FAILURE', flag(r?.remappedRowsFailure));

  // The world's activity (or, replaying a capture, its utilization) drives the profiling fields.
  const activity = sample.state
    ? sample.state.busy
      ? sample.state.activity
      : 0
    : (r?.utilizationRatio ?? 0);
  const jitter = (key: string): number =>
    1 +
    (unitHash(sample.seed, 'dcgm', key, sample.row.index, Math.floor(sample.nowMs / 1000)) - 0.5) *
      0.02;
  for (const [name, share] of Object.entries(PROFILE_SHARES)) {
    v.set(name, Math.min(1, Math.round(activity * share * jitter(name) * 1000) / 1000));
  }
  const idleBps = 2.5e5;
  v.set('DCGM_FI_PROF_PCIE_TX_BYTES', Math.round(idleBps + activity * PCIE_TX_BPS * jitter('ptx')));
  v.set('DCGM_FI_PROF_PCIE_RX_BYTES', Math.round(idleBps + activity * PCIE_RX_BPS * jitter('prx')));
  const nvlink = sample.gpuCount > 1 ? NVLINK_BPS : 0;
  v.set('DCGM_FI_PROF_NVLINK_TX_BYTES', Math.round(activity * nvlink * jitter('ntx')));
  v.set('DCGM_FI_PROF_NVLINK_RX_BYTES', Math.round(activity * nvlink * jitter('nrx')));

  // Running totals that nvidia-smi does not print: energy since driver load (the power drawn
  // since the simulation started, on top of what the board used before) and the NVLink counter.
  const elapsedS = Math.max(0, (sample.nowMs - sample.startMs) / 1000);
  const spec = sample.state?.spec;
  if (spec) {
    const baseJ = 4e7 + unitHash(sample.seed, 'energy', spec.index) * 1e7;
    if (sample.energySinceStartJ !== undefined) {
      v.set(
        'DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION',
        Math.round((baseJ + sample.energySinceStartJ) * 1000),
      );
    }
    const linkKiB = sample.state?.busy && sample.gpuCount > 1 ? (2 * NVLINK_BPS * 0.9) / 1024 : 0;
    v.set('DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL', Math.round(linkKiB * elapsedS));
    // Error counters exist where GPUs are linked to each other; a healthy fabric counts none.
    for (const name of Object.keys(NVLINK_ERROR_FIELDS) as NvlinkErrorField[]) {
      v.set(name, sample.gpuCount > 1 ? 0 : undefined);
    }
  }
  return v;
}

function flag(b: boolean | undefined): number | undefined {
  return b === undefined ? undefined : b ? 1 : 0;
}
