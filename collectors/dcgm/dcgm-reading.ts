/**
 * DCGM field values of one GPU turned into gpulse's normalised `GpuReading` (base units), and
 * the fact kind the DCGM collector reports.
 */
import {
  THROTTLE_REASON_BITS,
  THROTTLE_REASONS,
  type GpuReading,
  type ThrottleReason,
} from '../../agent/core/facts.js';
import type { DiscoveredGpu } from './parse-dcgmi.js';

/** What DCGM says about one GPU at one moment. */
export interface DcgmGpuFact {
  /** DCGM's GPU id (usually the NVML index). */
  readonly gpuId: number;
  /** Unix ms of the sample. */
  readonly at: number;
  readonly reading: GpuReading;
  /** Raw values by DCGM field name, in DCGM's units; N/A fields are absent. */
  readonly fields: Readonly<Record<string, number>>;
  /** Unix ms since which XID_ERRORS has held its current value (its first sample, if unchanged). */
  readonly xidSince?: number;
}

declare module '../../agent/core/facts.js' {
  interface Facts {
    /** GPUs as DCGM reports them (profiling fields included). */
    dcgmGpus: readonly DcgmGpuFact[];
  }
}

const MIB = 1024 * 1024;

const scale = (v: number | undefined, factor: number): number | undefined =>
  v === undefined ? undefined : v * factor;

function defined<T extends object>(record: T): T {
  return Object.fromEntries(Object.entries(record).filter(([, v]) => v !== undefined)) as T;
}

/** Decodes DCGM_FI_DEV_CLOCK_THROTTLE_REASONS (same bits as NVML) into one flag per reason. */
export function throttleFromMask(
  mask: number | undefined,
): Partial<Record<ThrottleReason, boolean>> {
  if (mask === undefined) return {};
  const out: Partial<Record<ThrottleReason, boolean>> = {};
  for (const reason of THROTTLE_REASONS) out[reason] = (mask & THROTTLE_REASON_BITS[reason]) !== 0;
  return out;
}

/** A GPU's DCGM values as a reading; identity comes from `dcgmi discovery -l`. */
export function dcgmReading(gpu: DiscoveredGpu, f: Readonly<Record<string, number>>): GpuReading {
  const get = (name: string): number | undefined => f[`DCGM_FI_${name}`];
  const eccKeys = ['SBE_VOL_TOTAL', 'DBE_VOL_TOTAL', 'SBE_AGG_TOTAL', 'DBE_AGG_TOTAL'];
  const hasEcc = eccKeys.some((k) => get(`DEV_ECC_${k}`) !== undefined);
  const flag = (v: number | undefined): boolean | undefined =>
    v === undefined ? undefined : v > 0;
  return defined<GpuReading>({
    index: get('DEV_NVML_INDEX') ?? gpu.gpuId,
    minorNumber: get('DEV_MINOR_NUMBER'),
    uuid: gpu.uuid ?? `dcgm:${gpu.gpuId}`,
    name: gpu.name,
    pciBusId: gpu.pciBusId,
    utilizationRatio: scale(get('DEV_GPU_UTIL'), 0.01),
    memoryUtilizationRatio: scale(get('DEV_MEM_COPY_UTIL'), 0.01),
    encoderUtilizationRatio: scale(get('DEV_ENC_UTIL'), 0.01),
    decoderUtilizationRatio: scale(get('DEV_DEC_UTIL'), 0.01),
    memoryTotalBytes: scale(get('DEV_FB_TOTAL'), MIB),
    memoryUsedBytes: scale(get('DEV_FB_USED'), MIB),
    memoryFreeBytes: scale(get('DEV_FB_FREE'), MIB),
    memoryReservedBytes: scale(get('DEV_FB_RESERVED'), MIB),
    temperatureCelsius: get('DEV_GPU_TEMP'),
    memoryTemperatureCelsius: get('DEV_MEMORY_TEMP'),
    powerDrawWatts: get('DEV_POWER_USAGE'),
    powerLimitWatts: get('DEV_POWER_MGMT_LIMIT'),
    enforcedPowerLimitWatts: get('DEV_ENFORCED_POWER_LIMIT'),
    energyJoules: scale(get('DEV_TOTAL_ENERGY_CONSUMPTION'), 1e-3),
    clocksHz: defined({
      sm: scale(get('DEV_SM_CLOCK'), 1e6),
      memory: scale(get('DEV_MEM_CLOCK'), 1e6),
    }),
    maxClocksHz: {},
    fanSpeedRatio: scale(get('DEV_FAN_SPEED'), 0.01),
    pstate: get('DEV_PSTATE'),
    throttle: throttleFromMask(get('DEV_CLOCK_THROTTLE_REASONS')),
    throttleSeconds: {},
    pcieLinkGen: get('DEV_PCIE_LINK_GEN'),
    pcieLinkWidth: get('DEV_PCIE_LINK_WIDTH'),
    ecc: hasEcc
      ? defined({
          correctedVolatile: get('DEV_ECC_SBE_VOL_TOTAL'),
          uncorrectedVolatile: get('DEV_ECC_DBE_VOL_TOTAL'),
          correctedAggregate: get('DEV_ECC_SBE_AGG_TOTAL'),
          uncorrectedAggregate: get('DEV_ECC_DBE_AGG_TOTAL'),
        })
      : undefined,
    retiredPagesSingleBit: get('DEV_RETIRED_SBE'),
    retiredPagesDoubleBit: get('DEV_RETIRED_DBE'),
    retiredPagesPending: flag(get('DEV_RETIRED_PENDING')),
    remappedRowsCorrectable: get('DEV_CORRECTABLE_REMAPPED_ROWS'),
    remappedRowsUncorrectable: get('DEV_UNCORRECTABLE_REMAPPED_ROWS'),
    remappedRowsFailure: flag(get('DEV_ROW_REMAP_FAILURE')),
  });
}
