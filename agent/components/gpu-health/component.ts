/**
 * GPU health: throttling seconds and episodes, Xid counters and events, series for GPUs only
 * DCGM sees, the optional dcgm-exporter names, and `GET /api/v1/gpus`. One deriver computes
 * everything from each snapshot and returns its events with the series: the store hands them to
 * the agent's EventLog once the snapshot is announced, never while a reader builds it.
 */
import { hostname } from 'node:os';
import { compatSamples, type CompatGpu } from '../../../collectors/dcgm/compat.js';
import { filledSamples } from '../../../collectors/dcgm/fill.js';
import { gpuReadingSamples, identityOf, lostGpuSamples } from '../../../collectors/gpu-series.js';
import {
  exporterGpuSamples,
  exporterHostSamples,
  exporterMetrics,
  type ExporterGpu,
} from '../../../collectors/nvidia-smi/compat.js';
import { normalizePciBusId } from '../../../collectors/xid.js';
import type { AgentContext, Component } from '../../core/component.js';
import type { AgentConfig } from '../../config.js';
import type { GpuReading } from '../../core/facts.js';
import type { Derivation, Deriver, Sample, Snapshot } from '../../core/types.js';
import {
  allocationsByGpu,
  attributionsByGpu,
  gpuViews,
  servedViews,
  type GpuView,
} from './gpu-views.js';
import { gpusJson } from './gpus-api.js';
import { LostGpuEvents } from './lost.js';
import { ThrottleTracker } from './throttle.js';
import { XidTracker } from './xids.js';

/** Options of the GPU health component. */
export interface GpuHealthOptions {
  /** Peer namings to serve besides gpulse's own (`metrics.compat`). */
  readonly compat: AgentConfig['metrics']['compat'];
  /** `Hostname` label of the dcgm-exporter series (default: this machine's host name). */
  readonly hostname?: string;
}

/** GPUs whose identity is remembered at most (a host has a handful; bound it anyway). */
const MAX_IDENTITIES = 1024;

interface CompatCacheEntry extends CompatGpu {
  readonly samples: readonly Sample[];
}

interface ExporterCacheEntry extends ExporterGpu {
  readonly gpuCount: number;
  readonly samples: readonly Sample[];
}

/** The deriver and its state, usable without the HTTP part (tests, other components). */
export class GpuHealth {
  readonly throttle = new ThrottleTracker();
  readonly xids = new XidTracker();
  readonly lost = new LostGpuEvents();
  private views: GpuView[] = [];
  private compatCache = new Map<string, CompatCacheEntry>();
  private exporterCache = new Map<string, ExporterCacheEntry>();
  /** Collectors that report `gpus` facts; nvidia-smi counts as one before its first result. */
  private readonly gpuSources = new Set<string>(['nvidia-smi']);
  private snapshot: Snapshot | undefined;
  /** Identity each GPU last had from a `gpus` source (nvidia-smi), by UUID. */
  private readonly identities = new Map<string, GpuReading>();

  constructor(private readonly options: GpuHealthOptions) {}

  /** The deriver to add to the state store. */
  readonly deriver: Deriver = {
    name: 'gpu-health',
    derive: (snapshot) => this.derive(snapshot),
  };

  private derive(snapshot: Snapshot): Derivation {
    const samples = this.samples(snapshot);
    return { samples, events: this.drainEvents() };
  }

  private samples(snapshot: Snapshot): Sample[] {
    const listed = this.keepIdentities(gpuViews(snapshot));
    this.lost.update(listed, snapshot.takenAt);
    // A lost GPU looks lost on every surface until its reporter says otherwise (lost.ts).
    const views = this.lost.hold(listed);
    this.views = views;
    this.snapshot = snapshot;
    this.throttle.update(views);
    this.xids.update(snapshot, views);
    const served = servedViews(snapshot, views, this.gpuSources);
    const out: Sample[] = [];
    // A GPU only DCGM reports still gets the standard series (utilization, memory, power ...).
    out.push(
      ...gpuReadingSamples(
        served.filter((v) => !v.lost && v.sources.every((s) => s === 'dcgm')).map((v) => v.reading),
      ),
    );
    // A lost GPU: up 0 and its info, under the identity every surface uses for it (DCGM's
    // where the source that lists it lost could not name it).
    out.push(
      ...lostGpuSamples(served.flatMap((v) => (v.lost ? [{ reading: v.reading, ...v.lost }] : []))),
    );
    // Values DCGM filled in where nvidia-smi has none (energy): nvidia-smi's collector lacks them.
    out.push(...filledSamples(served.filter((v) => !v.lost).map((v) => v.reading)));
    out.push(...this.throttle.samples(served));
    out.push(...this.xids.samples());
    if (this.options.compat.includes('dcgm')) {
      const watching = this.xids.watching(snapshot);
      const attributions = attributionsByGpu(snapshot);
      const allocations = allocationsByGpu(snapshot, views);
      // GPUs only DCGM still lists while nvidia-smi runs (one fell off the bus): their Xid only.
      const servedSet = new Set(served);
      const xidOnly = new Set(views.filter((v) => !servedSet.has(v) && v.dcgm !== undefined));
      const gpus = [...served, ...xidOnly].map((v): CompatGpu => {
        const users = new Map(
          (attributions.get(v.reading.uuid) ?? []).map((a) => [a.containerId ?? a.container, a]),
        );
        // As dcgm-exporter labels a GPU: the pod the kubelet gave it, where it gave it whole to
        // one container; else the one container whose processes use it.
        const given = (allocations.get(v.reading.uuid) ?? []).filter((a) => !a.migUuid);
        const pods = new Set(given.map((a) => `${a.namespace}/${a.pod}/${a.container}`));
        const only =
          pods.size === 1 && given[0]
            ? given[0]
            : users.size === 1
              ? [...users.values()][0]
              : undefined;
        const last = this.xids.lastXid(v.reading.uuid, normalizePciBusId(v.reading.pciBusId));
        return {
          reading: v.reading,
          ...(v.dcgm ? { dcgm: v.dcgm } : {}),
          ...(last !== undefined
            ? { lastXid: last.xid, lastXidAt: last.at }
            : watching
              ? { lastXid: 0 }
              : {}),
          ...(only ? { container: only } : {}),
          ...(xidOnly.has(v) || v.lost ? { xidOnly: true } : {}),
        };
      });
      const ctx = { hostname: this.options.hostname ?? hostname() };
      const cache = new Map<string, CompatCacheEntry>();
      for (const g of gpus) {
        // Most snapshots change nothing about a GPU (the kernel log ticks every second): reuse.
        const prev = this.compatCache.get(g.reading.uuid);
        const same =
          prev &&
          prev.reading === g.reading &&
          prev.dcgm === g.dcgm &&
          prev.lastXid === g.lastXid &&
          prev.lastXidAt === g.lastXidAt &&
          prev.xidOnly === g.xidOnly &&
          prev.container?.container === g.container?.container &&
          prev.container?.namespace === g.container?.namespace &&
          prev.container?.pod === g.container?.pod;
        const entry = same ? prev : { ...g, samples: compatSamples([g], ctx) };
        cache.set(g.reading.uuid, entry);
        out.push(...entry.samples);
      }
      this.compatCache = cache;
    }
    if (this.options.compat.includes('nvidia-gpu-exporter')) {
      out.push(...this.exporterSamples(snapshot, served));
    }
    return out;
  }

  /** nvidia_gpu_exporter's names (`collectors/nvidia-smi/compat.ts`). */
  private exporterSamples(snapshot: Snapshot, served: readonly GpuView[]): Sample[] {
    const out: Sample[] = [];
    const cache = new Map<string, ExporterCacheEntry>();
    const answering = served.filter((v) => !v.lost);
    for (const v of answering) {
      // As for the dcgm names: a GPU whose reading did not change keeps its samples.
      const prev = this.exporterCache.get(v.reading.uuid);
      const same =
        prev?.reading === v.reading && prev.dcgm === v.dcgm && prev.gpuCount === answering.length;
      const g = { reading: v.reading, ...(v.dcgm ? { dcgm: v.dcgm } : {}) };
      const entry =
        same && prev
          ? prev
          : { ...g, gpuCount: answering.length, samples: exporterGpuSamples(g, answering.length) };
      cache.set(v.reading.uuid, entry);
      out.push(...entry.samples);
    }
    this.exporterCache = cache;
    // A lost GPU has no values (the exporter, whose nvidia-smi run fails, serves none at all):
    // only its identity, so the dashboards still list it and chart its Xids.
    for (const v of served) {
      if (!v.lost || v.reading.uuid === '') continue;
      out.push(
        ...exporterGpuSamples({ reading: v.reading }, answering.length).filter(
          (x) => x.desc === exporterMetrics.info,
        ),
      );
    }
    const nvidiaSmi = snapshot.collectors.get('nvidia-smi');
    out.push(
      ...exporterHostSamples({
        gpus: answering,
        ...(nvidiaSmi ? { nvidiaSmi } : {}),
        xids: this.xids.perXid(),
      }),
    );
    return out;
  }

  /**
   * A GPU DCGM stands in for (nvidia-smi failing) keeps the identity nvidia-smi gave it: index,
   * name, versions. Its info series and labels stay the same series instead of a second one with
   * DCGM's sparser identity for as long as the fault lasts.
   */
  private keepIdentities(views: GpuView[]): GpuView[] {
    return views.map((v) => {
      const dcgmOnly = v.sources.every((s) => s === 'dcgm');
      if (!dcgmOnly) {
        if (!v.lost && v.reading.uuid !== '') {
          if (this.identities.size >= MAX_IDENTITIES) this.identities.clear();
          this.identities.set(v.reading.uuid, identityOf(v.reading));
        }
        return v;
      }
      const known = this.identities.get(v.reading.uuid);
      if (!known) return v;
      // Identity from what nvidia-smi said, values (clocks, throttle ...) from DCGM.
      const { clocksHz, maxClocksHz, throttle, throttleSeconds } = v.reading;
      return {
        ...v,
        reading: { ...v.reading, ...known, clocksHz, maxClocksHz, throttle, throttleSeconds },
      };
    });
  }

  /** `GET /api/v1/gpus` for the latest snapshot. */
  json(current: Snapshot) {
    // The store derives on every snapshot; before the first one there is nothing to show.
    const snapshot = this.snapshot ?? current;
    return gpusJson(snapshot, this.views, this.throttle, this.xids);
  }

  /** Events the trackers saw in the last snapshot, oldest first. */
  private drainEvents() {
    return [
      ...this.xids.drainEvents(),
      ...this.throttle.drainEvents(),
      ...this.lost.drainEvents(),
    ].sort((a, b) => (a.ts ?? 0) - (b.ts ?? 0));
  }
}

/** Creates the GPU health component for the agent. */
export function createGpuHealth(
  config: AgentConfig,
  options: Partial<GpuHealthOptions> = {},
): Component {
  const health = new GpuHealth({ compat: config.metrics.compat, ...options });
  return {
    name: 'gpu-health',
    register(ctx: AgentContext) {
      ctx.store.addDeriver(health.deriver);
      ctx.app.get('/api/v1/gpus', () => health.json(ctx.store.current()));
    },
    start: () => Promise.resolve(),
    stop: () => Promise.resolve(),
  };
}
