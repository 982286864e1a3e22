/**
 * The local health summary behind `GET /api/v1/gpus`: per GPU its identity, latest values,
 * throttling, recent Xids and who uses it. The edge publisher and `gpulse doctor` reuse it.
 */
import { THROTTLE_REASONS, type GpuReading, type ThrottleReason } from '../../core/facts.js';
import { collectFacts } from '../../core/state-store.js';
import type { Snapshot } from '../../core/types.js';
import { normalizePciBusId, type XidSeverity } from '../../../collectors/xid.js';
import { allocationsByGpu, attributionsByGpu, type GpuView } from './gpu-views.js';
import type { ThrottleEpisode, ThrottleTracker } from './throttle.js';
import type { XidTracker } from './xids.js';

/** One process holding GPU memory, with the container it runs in when attribution knows. */
export interface GpuUserJson {
  readonly pid: number;
  readonly name: string;
  readonly usedMemoryBytes: number | null;
  readonly container: ContainerRefJson | null;
}

/** A container using a GPU. */
export interface ContainerRefJson {
  readonly name: string;
  readonly id: string | null;
  readonly namespace: string | null;
  readonly pod: string | null;
}

/** A throttling episode. */
export interface EpisodeJson {
  readonly start: string;
  /** Absent while the episode lasts. */
  readonly end: string | null;
  readonly durationSeconds: number | null;
  readonly reasons: readonly ThrottleReason[];
  readonly severity: string;
  readonly peakTemperatureCelsius: number | null;
  readonly peakPowerWatts: number | null;
}

/** One GPU in `GET /api/v1/gpus`. */
export interface GpuJson {
  readonly index: number;
  readonly uuid: string;
  readonly name: string | null;
  readonly pciBusId: string | null;
  readonly minorNumber: number | null;
  readonly driverVersion: string | null;
  readonly cudaVersion: string | null;
  readonly sources: readonly string[];
  /** False while the GPU is attached but lost (fallen off the bus): then `values` is empty. */
  readonly up: boolean;
  /** Why and since when the GPU is lost; null while it answers. */
  readonly lost: { readonly since: string; readonly reason: string } | null;
  /** ISO time of the latest reading. */
  readonly updatedAt: string;
  /** Latest values in base units (bytes, watts, hertz, ratios 0–1); absent ones are left out. */
  readonly values: Readonly<Record<string, number | Readonly<Record<string, number>>>>;
  readonly throttle: {
    readonly active: readonly ThrottleReason[];
    /** The episode going on now. */
    readonly episode: EpisodeJson | null;
    /** The latest finished episode (also sent as a `gpu.throttle_episode` event). */
    readonly lastEpisode: EpisodeJson | null;
    /** Seconds per reason: the driver's counters where it has them, else gpulse's integration. */
    readonly secondsTotal: Readonly<Partial<Record<ThrottleReason, number>>>;
  };
  readonly xids: {
    readonly total: Readonly<Partial<Record<XidSeverity, number>>>;
    readonly recent: readonly {
      readonly at: string;
      readonly xid: number;
      readonly severity: XidSeverity;
      readonly text: string;
      readonly source: string;
    }[];
  };
  readonly processes: readonly GpuUserJson[];
  readonly containers: readonly ContainerRefJson[];
  /** Pods the kubelet gave this GPU or one of its MIG devices (pod-resources), in or out of use. */
  readonly allocations: readonly AllocationJson[];
}

/** One device the kubelet allocated on a GPU. */
export interface AllocationJson {
  readonly pod: string;
  readonly namespace: string;
  readonly container: string;
  readonly resource: string;
  readonly device: string;
  readonly migUuid: string | null;
}

/** The whole response. */
export interface GpusJson {
  readonly generatedAt: string;
  readonly gpus: readonly GpuJson[];
}

const VALUE_KEYS: readonly (keyof GpuReading)[] = [
  'utilizationRatio',
  'memoryUtilizationRatio',
  'encoderUtilizationRatio',
  'decoderUtilizationRatio',
  'memoryTotalBytes',
  'memoryUsedBytes',
  'memoryFreeBytes',
  'memoryReservedBytes',
  'temperatureCelsius',
  'memoryTemperatureCelsius',
  'powerDrawWatts',
  'powerLimitWatts',
  'enforcedPowerLimitWatts',
  'energyJoules',
  'fanSpeedRatio',
  'pstate',
  'pcieLinkGen',
  'pcieLinkWidth',
];

const PROFILING_VALUES: readonly [string, string][] = [
  ['DCGM_FI_PROF_GR_ENGINE_ACTIVE', 'graphicsEngineActiveRatio'],
  ['DCGM_FI_PROF_SM_ACTIVE', 'smActiveRatio'],
  ['DCGM_FI_PROF_SM_OCCUPANCY', 'smOccupancyRatio'],
  ['DCGM_FI_PROF_PIPE_TENSOR_ACTIVE', 'tensorActiveRatio'],
  ['DCGM_FI_PROF_DRAM_ACTIVE', 'dramActiveRatio'],
  ['DCGM_FI_PROF_PIPE_FP64_ACTIVE', 'fp64ActiveRatio'],
  ['DCGM_FI_PROF_PIPE_FP32_ACTIVE', 'fp32ActiveRatio'],
  ['DCGM_FI_PROF_PIPE_FP16_ACTIVE', 'fp16ActiveRatio'],
  ['DCGM_FI_PROF_PCIE_TX_BYTES', 'pcieTxBytesPerSecond'],
  ['DCGM_FI_PROF_PCIE_RX_BYTES', 'pcieRxBytesPerSecond'],
  ['DCGM_FI_PROF_NVLINK_TX_BYTES', 'nvlinkTxBytesPerSecond'],
  ['DCGM_FI_PROF_NVLINK_RX_BYTES', 'nvlinkRxBytesPerSecond'],
];

function values(view: GpuView): Record<string, number | Record<string, number>> {
  const r = view.reading;
  const out: Record<string, number | Record<string, number>> = {};
  for (const key of VALUE_KEYS) {
    const v = r[key];
    if (typeof v === 'number') out[key] = v;
  }
  const clocks = Object.fromEntries(Object.entries(r.clocksHz).filter(([, v]) => v !== undefined));
  if (Object.keys(clocks).length > 0) out.clocksHz = clocks;
  for (const [field, key] of PROFILING_VALUES) {
    const v = view.dcgm?.fields[field];
    if (v !== undefined) out[key] = v;
  }
  return out;
}

/** Builds the response from a snapshot and the trackers' state. */
export function gpusJson(
  snapshot: Snapshot,
  views: readonly GpuView[],
  throttle: ThrottleTracker,
  xids: XidTracker,
): GpusJson {
  const processes = collectFacts(snapshot, 'gpuProcesses');
  const attributions = attributionsByGpu(snapshot);
  const allocations = allocationsByGpu(snapshot, views);
  return {
    generatedAt: new Date(snapshot.takenAt).toISOString(),
    gpus: views.map((view): GpuJson => {
      const r = view.reading;
      const users = attributions.get(r.uuid) ?? [];
      const containerOf = (pid: number): ContainerRefJson | null => {
        const a = users.find((u) => u.pid === pid);
        return a ? containerRef(a) : null;
      };
      const containers = new Map<string, ContainerRefJson>();
      for (const a of users) containers.set(a.containerId ?? a.container, containerRef(a));
      const integrated = throttle.integratedSeconds(r.uuid);
      const seconds: Partial<Record<ThrottleReason, number>> = {};
      for (const reason of THROTTLE_REASONS) {
        const v =
          r.throttleSeconds[reason] ??
          (r.throttle[reason] !== undefined ? (integrated[reason] ?? 0) : undefined);
        if (v !== undefined) seconds[reason] = v;
      }
      const episode = throttle.episode(r.uuid);
      return {
        index: r.index,
        uuid: r.uuid,
        name: r.name ?? null,
        pciBusId: r.pciBusId ?? null,
        minorNumber: r.minorNumber ?? null,
        driverVersion: r.driverVersion ?? null,
        cudaVersion: r.cudaVersion ?? null,
        sources: view.sources,
        up: view.lost === undefined,
        lost: view.lost
          ? { since: new Date(view.lost.since).toISOString(), reason: view.lost.reason }
          : null,
        updatedAt: new Date(view.at).toISOString(),
        values: values(view),
        throttle: {
          active: THROTTLE_REASONS.filter((reason) => r.throttle[reason] === true),
          episode: episodeJson(episode),
          lastEpisode: episodeJson(throttle.lastEpisode(r.uuid)),
          secondsTotal: seconds,
        },
        xids: {
          total: xids.totals(r.uuid),
          recent: xids.recent(r.uuid, normalizePciBusId(r.pciBusId)).map((x) => ({
            at: new Date(x.at).toISOString(),
            xid: x.xid,
            severity: x.severity,
            text: x.text,
            source: x.source,
          })),
        },
        processes: processes
          .filter((p) => p.gpuUuid === r.uuid)
          .map((p) => ({
            pid: p.pid,
            name: p.processName,
            usedMemoryBytes: p.usedMemoryBytes ?? null,
            container: containerOf(p.pid),
          })),
        containers: [...containers.values()],
        allocations: (allocations.get(r.uuid) ?? []).map((a) => ({
          pod: a.pod,
          namespace: a.namespace,
          container: a.container,
          resource: a.resource,
          device: a.device,
          migUuid: a.migUuid ?? null,
        })),
      };
    }),
  };
}

function episodeJson(e: ThrottleEpisode | undefined): EpisodeJson | null {
  if (!e) return null;
  return {
    start: new Date(e.start).toISOString(),
    end: e.end !== undefined ? new Date(e.end).toISOString() : null,
    durationSeconds: e.end !== undefined ? (e.end - e.start) / 1000 : null,
    reasons: e.reasons,
    severity: e.severity,
    peakTemperatureCelsius: e.peakTemperatureCelsius ?? null,
    peakPowerWatts: e.peakPowerWatts ?? null,
  };
}

function containerRef(a: {
  container: string;
  containerId?: string;
  namespace?: string;
  pod?: string;
}): ContainerRefJson {
  return {
    name: a.container,
    id: a.containerId ?? null,
    namespace: a.namespace ?? null,
    pod: a.pod ?? null,
  };
}
