/**
 * One view per physical GPU across every GPU source of a snapshot: nvidia-smi (or any
 * collector reporting `gpus` facts) first, DCGM attached to the same UUID or standing in
 * alone where it is the only source.
 */
import type { DcgmGpuFact } from '../../../collectors/dcgm/dcgm-reading.js';
import { fillFromDcgm } from '../../../collectors/dcgm/fill.js';
import { normalizePciBusId } from '../../../collectors/xid.js';
import type { GpuReading } from '../../core/facts.js';
import { gpuAttributions, type GpuAttribution } from '../../attribution/gpu-processes.js';
import { collectFacts } from '../../core/state-store.js';
import type { Snapshot } from '../../core/types.js';
import { indexGpus, resolveDevice } from '../gpu-allocation/join.js';

/** A GPU as the agent knows it at one snapshot. */
export interface GpuView {
  readonly reading: GpuReading;
  /** Unix ms of the reading (the reporting collector's latest success). */
  readonly at: number;
  /** Collectors that report this GPU, primary first. */
  readonly sources: readonly string[];
  /** DCGM's values for this GPU, when DCGM watches it. */
  readonly dcgm?: DcgmGpuFact;
  /** Set when the GPU source lists the GPU as attached but unreachable; `reading` is identity only. */
  readonly lost?: { readonly reason: string; readonly since: number };
}

/** Every GPU of the snapshot, by index; a GPU seen by several sources appears once. */
export function gpuViews(snapshot: Snapshot): GpuView[] {
  const byUuid = new Map<string, GpuView>();
  for (const state of snapshot.collectors.values()) {
    const gpus = state.output.facts?.gpus;
    if (!gpus) continue;
    const at = state.lastSuccessAt ?? snapshot.takenAt;
    for (const reading of gpus) {
      const prev = byUuid.get(reading.uuid);
      if (prev) byUuid.set(reading.uuid, { ...prev, sources: [...prev.sources, state.collector] });
      else byUuid.set(reading.uuid, { reading, at, sources: [state.collector] });
    }
    for (const { reading, reason, since } of state.output.facts?.lostGpus ?? []) {
      // A GPU lost before anyone named it has no UUID: its bus (or index) keeps it apart.
      const key = reading.uuid || `lost:${reading.pciBusId ?? reading.index}`;
      if (!byUuid.has(key)) {
        byUuid.set(key, { reading, at, sources: [state.collector], lost: { reason, since } });
      }
    }
  }
  for (const state of snapshot.collectors.values()) {
    for (const fact of state.output.facts?.dcgmGpus ?? []) {
      // Same UUID, or (a GPU nvidia-smi could not name) the same PCI address.
      const bus = normalizePciBusId(fact.reading.pciBusId);
      const sameBus = [...byUuid.entries()].find(
        ([, v]) => bus !== undefined && normalizePciBusId(v.reading.pciBusId) === bus,
      );
      const key = byUuid.has(fact.reading.uuid)
        ? fact.reading.uuid
        : (sameBus?.[0] ?? fact.reading.uuid);
      const prev = byUuid.get(key);
      if (prev) {
        byUuid.set(key, {
          ...prev,
          // A GPU lost before nvidia-smi could name it: DCGM still knows who it is. Otherwise
          // what only DCGM has (energy) fills the primary's gaps, for every surface alike.
          reading:
            prev.lost && prev.reading.uuid === ''
              ? namedBy(prev.reading, fact.reading)
              : fillFromDcgm(prev.reading, fact),
          sources: [...prev.sources, state.collector],
          dcgm: fact,
        });
      } else {
        byUuid.set(fact.reading.uuid, {
          reading: fact.reading,
          at: fact.at,
          sources: [state.collector],
          dcgm: fact,
        });
      }
    }
  }
  return [...byUuid.values()].sort((a, b) => a.reading.index - b.reading.index);
}

/** A nameless (lost) GPU's identity completed from another source's reading of the same bus. */
function namedBy(nameless: GpuReading, other: GpuReading): GpuReading {
  return {
    ...nameless,
    uuid: other.uuid,
    ...(nameless.name === undefined && other.name !== undefined ? { name: other.name } : {}),
    ...(nameless.driverVersion === undefined && other.driverVersion !== undefined
      ? { driverVersion: other.driverVersion }
      : {}),
    ...(nameless.vbiosVersion === undefined && other.vbiosVersion !== undefined
      ? { vbiosVersion: other.vbiosVersion }
      : {}),
    ...(nameless.minorNumber === undefined && other.minorNumber !== undefined
      ? { minorNumber: other.minorNumber }
      : {}),
  };
}

/**
 * The views whose series are served. A GPU only DCGM reports is served from DCGM when no
 * `gpus` source answers on this host: none configured, each says "no data", or each has failed
 * (a hung nvidia-smi must not blank what DCGM still reports). While a `gpus` source starts,
 * DCGM does not stand in (its first snapshot would otherwise switch every series' source a few
 * seconds after start); while one answers, a GPU only DCGM lists is left to it.
 * `knownGpuSources` remembers collectors that reported `gpus` (seed it with `nvidia-smi`).
 */
export function servedViews(
  snapshot: Snapshot,
  views: readonly GpuView[],
  knownGpuSources: Set<string>,
): GpuView[] {
  for (const state of snapshot.collectors.values()) {
    if (state.output.facts?.gpus !== undefined) knownGpuSources.add(state.collector);
  }
  const gpuSourceAnswers = [...snapshot.collectors.values()].some(
    (s) => knownGpuSources.has(s.collector) && (s.status === 'ok' || s.status === 'starting'),
  );
  return views.filter((v) => !gpuSourceAnswers || !v.sources.every((s) => s === 'dcgm'));
}

/** Attributions of the snapshot (see `gpuAttributions`) by GPU UUID. */
export function attributionsByGpu(snapshot: Snapshot): Map<string, GpuAttribution[]> {
  const out = new Map<string, GpuAttribution[]>();
  for (const a of gpuAttributions(snapshot)) {
    const list = out.get(a.gpuUuid) ?? [];
    list.push(a);
    out.set(a.gpuUuid, list);
  }
  return out;
}

/** A device the kubelet gave a pod's container, as seen from the GPU it lives on. */
export interface GpuAllocationRef {
  readonly pod: string;
  readonly namespace: string;
  readonly container: string;
  readonly resource: string;
  /** The device plugin's id (`GPU-<uuid>`, `MIG-<uuid>`, `0`, `0:1` ...). */
  readonly device: string;
  /** The MIG device's UUID; absent for a whole GPU. */
  readonly migUuid?: string;
}

/**
 * The kubelet's allocations (`deviceAllocations`, from the pod-resources collector) by the UUID of
 * the GPU they name (a MIG device's parent), joined as the gpu-allocation component joins them.
 */
export function allocationsByGpu(
  snapshot: Snapshot,
  views: readonly GpuView[],
): Map<string, GpuAllocationRef[]> {
  const out = new Map<string, GpuAllocationRef[]>();
  const allocations = collectFacts(snapshot, 'deviceAllocations');
  if (allocations.length === 0) return out;
  const gpus = indexGpus(views);
  for (const a of allocations) {
    const d = resolveDevice(a.deviceId, gpus);
    if (!d.view) continue;
    const list = out.get(d.view.reading.uuid) ?? [];
    list.push({
      pod: a.pod,
      namespace: a.namespace,
      container: a.container,
      resource: a.resourceName,
      device: a.deviceId,
      ...(d.migUuid ? { migUuid: d.migUuid } : {}),
    });
    out.set(d.view.reading.uuid, list);
  }
  return out;
}
