/**
 * One view per physical GPU across every GPU source of a snapshot: nvidia-smi (or any
 * collector reporting `gpus` facts) first, DCGM attached to the same UUID or standing in
 * alone where it is the only source.
 */
import type { DcgmGpuFact } from '../../collectors/dcgm/dcgm-reading.js';
import { fillFromDcgm } from '../../collectors/dcgm/fill.js';
import { normalizePciBusId } from '../../collectors/xid.js';
import type { GpuReading } from '../facts.js';
import type { Snapshot } from '../types.js';

/** A GPU as the agent knows it at one snapshot. */
export interface GpuView {
  readonly reading: GpuReading;
  /** Unix ms of the reading (the reporting collector's latest success). */
  readonly at: number;
  /** Collectors that report this GPU, primary first. */
  readonly sources: readonly string[];
  /** DCGM's values for this GPU, when DCGM watches it. */
  readonly dcgm?: DcgmGpuFact;
}

/** Which container (or pod) uses a GPU: any collector doing attribution may report these. */
export interface GpuAttribution {
  readonly gpuUuid: string;
  readonly container: string;
  readonly containerId?: string;
  readonly namespace?: string;
  readonly pod?: string;
  /** Host PID of the process that holds the GPU, when attribution went through a process. */
  readonly pid?: number;
}

declare module '../facts.js' {
  interface Facts {
    /** GPU → container attribution (filled by the containers collector where present). */
    gpuAttributions: readonly GpuAttribution[];
  }
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
          // What only DCGM has (energy) fills the primary's gaps, for every surface alike.
          reading: fillFromDcgm(prev.reading, fact),
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

/**
 * The views whose series are served. A GPU only DCGM reports is served from DCGM when no
 * `gpus` source runs on this host (none configured, or each says "no data"); while nvidia-smi
 * starts or fails, its GPUs have no series (never stale ones, never a switch of source).
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
  const gpuSourceRuns = [...snapshot.collectors.values()].some(
    (s) => knownGpuSources.has(s.collector) && s.status !== 'no_data',
  );
  return views.filter((v) => !gpuSourceRuns || !v.sources.every((s) => s === 'dcgm'));
}

/** Attributions of the snapshot by GPU UUID. */
export function attributionsByGpu(snapshot: Snapshot): Map<string, GpuAttribution[]> {
  const out = new Map<string, GpuAttribution[]>();
  for (const state of snapshot.collectors.values()) {
    for (const a of state.output.facts?.gpuAttributions ?? []) {
      const list = out.get(a.gpuUuid) ?? [];
      list.push(a);
      out.set(a.gpuUuid, list);
    }
  }
  return out;
}
