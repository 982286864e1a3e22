/**
 * dcgm-exporter compatibility: gpulse's values served under dcgm-exporter's metric names,
 * units and labels, whether they came from DCGM or from nvidia-smi, so dashboards and alerts
 * written for dcgm-exporter work unchanged (`--metrics-compat dcgm`).
 */
import {
  THROTTLE_REASON_BITS,
  THROTTLE_REASONS,
  type GpuReading,
  type MigDeviceReading,
} from '../../agent/core/facts.js';
import { gauge, SampleBuilder } from '../../agent/core/metric.js';
import type { MetricDesc, Sample } from '../../agent/core/types.js';
import { dcgmCatalogue, type DcgmField } from './catalogue.js';
import type { DcgmGpuFact } from './dcgm-reading.js';
import { violationNanoseconds } from './violations.js';

/** dcgm-exporter's labels, in its order; `container`/`namespace`/`pod` come from attribution. */
export const COMPAT_LABELS = [
  'gpu',
  'UUID',
  'pci_bus_id',
  'device',
  'modelName',
  'GPU_I_PROFILE',
  'GPU_I_ID',
  'Hostname',
  'DCGM_FI_DRIVER_VERSION',
  'container',
  'namespace',
  'pod',
] as const;

/** One GPU as the compat series need it. */
export interface CompatGpu {
  readonly reading: GpuReading;
  readonly dcgm?: DcgmGpuFact;
  /** Last Xid counted for the GPU from any source (0 when an Xid source is read and saw none). */
  readonly lastXid?: number;
  /** Unix ms of that Xid (absent for the 0 of "none seen"). */
  readonly lastXidAt?: number;
  /**
   * Serve only DCGM_FI_DEV_XID_ERRORS, and only a non-zero one: a GPU DCGM still lists after its
   * primary source lost it (fallen off the bus), whose other values are gone; as with
   * dcgm-exporter, its last Xid (79) stays visible to alerts.
   */
  readonly xidOnly?: boolean;
  /** The one container using the GPU, when attribution knows exactly one. */
  readonly container?: {
    readonly container: string;
    readonly namespace?: string;
    readonly pod?: string;
  };
}

const MIB = 1024 * 1024;
const div = (v: number | undefined, d: number): number | undefined =>
  v === undefined ? undefined : v / d;
const mul = (v: number | undefined, m: number): number | undefined =>
  v === undefined ? undefined : v * m;
const bool = (b: boolean | undefined): number | undefined =>
  b === undefined ? undefined : b ? 1 : 0;

function throttleMask(r: GpuReading): number | undefined {
  if (!THROTTLE_REASONS.some((x) => r.throttle[x] !== undefined)) return undefined;
  let mask = 0;
  for (const x of THROTTLE_REASONS) if (r.throttle[x]) mask |= THROTTLE_REASON_BITS[x];
  return mask;
}

/**
 * The latest Xid of any source, as dcgm-exporter's XID_ERRORS means it ("value of the last Xid
 * error encountered"): DCGM's field, or the last Xid gpulse counted (kernel log or DCGM),
 * whichever changed last. DCGM's own value alone would hide a kernel-log Xid behind its 0.
 */
function latestXid(g: CompatGpu): number | undefined {
  const dcgm = g.dcgm?.fields.DCGM_FI_DEV_XID_ERRORS;
  if (dcgm === undefined || g.lastXid === undefined) return dcgm ?? g.lastXid;
  if (g.lastXidAt === undefined) return dcgm;
  return g.lastXidAt >= (g.dcgm?.xidSince ?? -Infinity) ? g.lastXid : dcgm;
}

/** Fields computed from every source rather than taken from DCGM's value as is. */
const ANY_SOURCE = new Set(['DCGM_FI_DEV_XID_ERRORS']);

/**
 * How each DCGM field is computed from a reading (in dcgm-exporter's units: MiB, MHz, mJ,
 * percent, nanoseconds). Fields missing here come only from DCGM itself (profiling, PCIe
 * replays, NVLink bandwidth).
 */
export const FROM_READING: Readonly<Record<string, (g: CompatGpu) => number | undefined>> = {
  DCGM_FI_DEV_SM_CLOCK: (g) => div(g.reading.clocksHz.sm, 1e6),
  DCGM_FI_DEV_MEM_CLOCK: (g) => div(g.reading.clocksHz.memory, 1e6),
  DCGM_FI_DEV_CLOCK_THROTTLE_REASONS: (g) => throttleMask(g.reading),
  DCGM_FI_DEV_MEMORY_TEMP: (g) => g.reading.memoryTemperatureCelsius,
  DCGM_FI_DEV_GPU_TEMP: (g) => g.reading.temperatureCelsius,
  DCGM_FI_DEV_POWER_USAGE: (g) => g.reading.powerDrawWatts,
  DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION: (g) => mul(g.reading.energyJoules, 1000),
  DCGM_FI_DEV_POWER_MGMT_LIMIT: (g) => g.reading.powerLimitWatts,
  DCGM_FI_DEV_ENFORCED_POWER_LIMIT: (g) => g.reading.enforcedPowerLimitWatts,
  DCGM_FI_DEV_PSTATE: (g) => g.reading.pstate,
  DCGM_FI_DEV_FAN_SPEED: (g) => mul(g.reading.fanSpeedRatio, 100),
  DCGM_FI_DEV_GPU_UTIL: (g) => mul(g.reading.utilizationRatio, 100),
  DCGM_FI_DEV_MEM_COPY_UTIL: (g) => mul(g.reading.memoryUtilizationRatio, 100),
  DCGM_FI_DEV_ENC_UTIL: (g) => mul(g.reading.encoderUtilizationRatio, 100),
  DCGM_FI_DEV_DEC_UTIL: (g) => mul(g.reading.decoderUtilizationRatio, 100),
  DCGM_FI_DEV_XID_ERRORS: (g) => latestXid(g),
  DCGM_FI_DEV_PCIE_LINK_GEN: (g) => g.reading.pcieLinkGen,
  DCGM_FI_DEV_PCIE_LINK_WIDTH: (g) => g.reading.pcieLinkWidth,
  DCGM_FI_DEV_POWER_VIOLATION: (g) =>
    violationNanoseconds(g.reading.throttleSeconds, 'DCGM_FI_DEV_POWER_VIOLATION'),
  DCGM_FI_DEV_THERMAL_VIOLATION: (g) =>
    violationNanoseconds(g.reading.throttleSeconds, 'DCGM_FI_DEV_THERMAL_VIOLATION'),
  DCGM_FI_DEV_SYNC_BOOST_VIOLATION: (g) =>
    violationNanoseconds(g.reading.throttleSeconds, 'DCGM_FI_DEV_SYNC_BOOST_VIOLATION'),
  DCGM_FI_DEV_FB_TOTAL: (g) => div(g.reading.memoryTotalBytes, MIB),
  DCGM_FI_DEV_FB_FREE: (g) => div(g.reading.memoryFreeBytes, MIB),
  DCGM_FI_DEV_FB_USED: (g) => div(g.reading.memoryUsedBytes, MIB),
  DCGM_FI_DEV_FB_RESERVED: (g) => div(g.reading.memoryReservedBytes, MIB),
  DCGM_FI_DEV_ECC_SBE_VOL_TOTAL: (g) => g.reading.ecc?.correctedVolatile,
  DCGM_FI_DEV_ECC_DBE_VOL_TOTAL: (g) => g.reading.ecc?.uncorrectedVolatile,
  DCGM_FI_DEV_ECC_SBE_AGG_TOTAL: (g) => g.reading.ecc?.correctedAggregate,
  DCGM_FI_DEV_ECC_DBE_AGG_TOTAL: (g) => g.reading.ecc?.uncorrectedAggregate,
  DCGM_FI_DEV_RETIRED_SBE: (g) => g.reading.retiredPagesSingleBit,
  DCGM_FI_DEV_RETIRED_DBE: (g) => g.reading.retiredPagesDoubleBit,
  DCGM_FI_DEV_RETIRED_PENDING: (g) => bool(g.reading.retiredPagesPending),
  DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS: (g) => g.reading.remappedRowsUncorrectable,
  DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS: (g) => g.reading.remappedRowsCorrectable,
  DCGM_FI_DEV_ROW_REMAP_FAILURE: (g) => bool(g.reading.remappedRowsFailure),
};

/** Fields that identify a GPU rather than measure it: labels already say it. */
const NOT_SERVED = new Set(['DCGM_FI_DEV_NVML_INDEX', 'DCGM_FI_DEV_MINOR_NUMBER']);

/** Fields of dcgm-exporter's default counters gpulse has no source for (vGPU licensing). */
export const NEVER_SUPPLIED = ['DCGM_FI_DEV_VGPU_LICENSE_STATUS'] as const;

/**
 * The compat families: one per catalogue field, typed gauge. dcgm-exporter types energy, PCIe
 * replays and NVLink bandwidth as counters, but their names lack `_total`, which promtool
 * rejects for a counter; PromQL ignores the TYPE line, so `rate()` works the same.
 */
export function compatFamilies(): ReadonlyMap<string, { field: DcgmField; desc: MetricDesc }> {
  // Built on first use: an agent without `metrics.compat: dcgm` never reads the catalogue.
  families ??= new Map(
    dcgmCatalogue()
      .filter((f) => !NOT_SERVED.has(f.name) && f.promType !== 'label')
      .map((f) => [f.name, { field: f, desc: gauge(f.name, f.help, COMPAT_LABELS) }]),
  );
  return families;
}

let families: ReadonlyMap<string, { field: DcgmField; desc: MetricDesc }> | undefined;

/** What the compat series need besides the GPUs. */
export interface CompatContext {
  readonly hostname: string;
}

/**
 * The GPU instance profile of a MIG device's profile: a compute instance smaller than its GPU
 * instance is listed as `<n>c.<gpu instance profile>` (`1c.3g.71gb` → `3g.71gb`).
 */
export function gpuInstanceProfile(profile: string): string {
  return profile.replace(/^\d+c\./, '');
}

/** One MIG GPU instance as dcgm-exporter labels and measures it. */
interface GpuInstance {
  readonly id: number;
  readonly profile: string;
  readonly memory: MigDeviceReading;
}

/**
 * The GPU instances of a MIG GPU whose profile is known (`nvidia-smi -L`): dcgm-exporter puts
 * GPU_I_PROFILE and GPU_I_ID on a series only together, and without them an instance's series
 * would collide with the GPU's. Compute instances of one GPU instance share its memory.
 */
function gpuInstances(r: GpuReading): GpuInstance[] {
  const byId = new Map<number, GpuInstance>();
  for (const m of r.migDevices ?? []) {
    if (m.profile === undefined || byId.has(m.gpuInstanceId)) continue;
    byId.set(m.gpuInstanceId, {
      id: m.gpuInstanceId,
      profile: gpuInstanceProfile(m.profile),
      memory: m,
    });
  }
  return [...byId.values()].sort((a, b) => a.id - b.id);
}

/**
 * A field's value for one GPU instance, as DCGM gives it for a GPU_I entity: memory is the
 * instance's own; profiling fields are per instance too, and gpulse watches GPUs only, so they
 * are left out; every other (device-level) field is the parent GPU's value, which DCGM returns
 * for an instance (DcgmCacheManager remaps GPU-level fields to the parent GPU).
 */
function instanceValue(
  name: string,
  gi: GpuInstance,
  parent: number | undefined,
): number | undefined {
  switch (name) {
    case 'DCGM_FI_DEV_FB_TOTAL':
      return div(gi.memory.memoryTotalBytes, MIB);
    case 'DCGM_FI_DEV_FB_USED':
      return div(gi.memory.memoryUsedBytes, MIB);
    case 'DCGM_FI_DEV_FB_FREE':
      return div(gi.memory.memoryFreeBytes, MIB);
    case 'DCGM_FI_DEV_FB_RESERVED':
      return undefined;
    default:
      return name.startsWith('DCGM_FI_PROF_') ? undefined : parent;
  }
}

/** dcgm-exporter-named samples for the GPUs: DCGM's own value where DCGM watches, else derived. */
export function compatSamples(gpus: readonly CompatGpu[], ctx: CompatContext): Sample[] {
  const b = new SampleBuilder();
  for (const g of gpus) {
    const r = g.reading;
    const labels = {
      gpu: String(r.index),
      UUID: r.uuid,
      pci_bus_id: r.pciBusId ?? '',
      device: `nvidia${r.minorNumber ?? r.index}`,
      modelName: r.name ?? '',
      GPU_I_PROFILE: '',
      GPU_I_ID: '',
      Hostname: ctx.hostname,
      DCGM_FI_DRIVER_VERSION: r.driverVersion ?? '',
      container: g.container?.container ?? '',
      namespace: g.container?.namespace ?? '',
      pod: g.container?.pod ?? '',
    };
    const instances = gpuInstances(r);
    // The one container of the GPU is not known to use every instance: instances carry none.
    const instanceLabels = instances.map((gi) => ({
      ...labels,
      GPU_I_PROFILE: gi.profile,
      GPU_I_ID: String(gi.id),
      container: '',
      namespace: '',
      pod: '',
    }));
    if (g.xidOnly) {
      const xid = latestXid(g);
      const family = compatFamilies().get('DCGM_FI_DEV_XID_ERRORS');
      if (family && xid) b.add(family.desc, labels, xid);
      continue;
    }
    for (const [name, { desc }] of compatFamilies()) {
      const fromDcgm = ANY_SOURCE.has(name) ? undefined : g.dcgm?.fields[name];
      const value = fromDcgm ?? FROM_READING[name]?.(g);
      b.add(desc, labels, value);
      instances.forEach((gi, i) => b.add(desc, instanceLabels[i]!, instanceValue(name, gi, value)));
    }
  }
  return b.build();
}
