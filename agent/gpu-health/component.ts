/**
 * GPU health: throttling seconds and episodes, Xid counters and events, series for GPUs only
 * DCGM sees, the optional dcgm-exporter names, and `GET /api/v1/gpus`. One deriver computes
 * everything from each snapshot; events leave through the agent's EventLog after the snapshot
 * is published, never from inside the store.
 */
import { hostname } from 'node:os';
import { compatSamples, type CompatGpu } from '../../collectors/dcgm/compat.js';
import {
  exporterGpuSamples,
  exporterHostSamples,
  type ExporterGpu,
} from '../../collectors/nvidia-smi/compat.js';
import { gpuReadingSamples } from '../../collectors/gpu-series.js';
import { normalizePciBusId } from '../../collectors/xid.js';
import type { AgentContext, Component } from '../component.js';
import type { AgentConfig } from '../config.js';
import { errorMessage } from '../errors.js';
import type { Deriver, Sample, Snapshot } from '../types.js';
import { attributionsByGpu, gpuViews, servedViews, type GpuView } from './gpu-views.js';
import { gpusJson } from './gpus-api.js';
import { ThrottleTracker } from './throttle.js';
import { XidTracker } from './xids.js';

/** Options of the GPU health component. */
export interface GpuHealthOptions {
  /** Peer namings to serve besides gpulse's own (`metrics.compat`). */
  readonly compat: AgentConfig['metrics']['compat'];
  /** `Hostname` label of the dcgm-exporter series (default: this machine's host name). */
  readonly hostname?: string;
}

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
  private views: GpuView[] = [];
  private compatCache = new Map<string, CompatCacheEntry>();
  private exporterCache = new Map<string, ExporterCacheEntry>();
  /** Collectors that report `gpus` facts; nvidia-smi counts as one before its first result. */
  private readonly gpuSources = new Set<string>(['nvidia-smi']);
  private snapshot: Snapshot | undefined;

  constructor(private readonly options: GpuHealthOptions) {}

  /** The deriver to add to the state store. */
  readonly deriver: Deriver = {
    name: 'gpu-health',
    derive: (snapshot) => this.derive(snapshot),
  };

  private derive(snapshot: Snapshot): Sample[] {
    const views = gpuViews(snapshot);
    this.views = views;
    this.snapshot = snapshot;
    this.throttle.update(views);
    this.xids.update(snapshot, views);
    const served = servedViews(snapshot, views, this.gpuSources);
    const out: Sample[] = [];
    // A GPU only DCGM reports still gets the standard series (utilization, memory, power ...).
    out.push(
      ...gpuReadingSamples(
        served.filter((v) => v.sources.every((s) => s === 'dcgm')).map((v) => v.reading),
      ),
    );
    out.push(...this.throttle.samples(served));
    out.push(...this.xids.samples());
    if (this.options.compat.includes('dcgm')) {
      const watching = this.xids.watching(snapshot);
      const attributions = attributionsByGpu(snapshot);
      const gpus = served.map((v): CompatGpu => {
        const users = new Map(
          (attributions.get(v.reading.uuid) ?? []).map((a) => [a.containerId ?? a.container, a]),
        );
        const only = users.size === 1 ? [...users.values()][0] : undefined;
        const last = this.xids.lastXid(v.reading.uuid, normalizePciBusId(v.reading.pciBusId));
        return {
          reading: v.reading,
          ...(v.dcgm ? { dcgm: v.dcgm } : {}),
          ...(last !== undefined ? { lastXid: last } : watching ? { lastXid: 0 } : {}),
          ...(only ? { container: only } : {}),
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
          prev.container === g.container;
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
    for (const v of served) {
      // As for the dcgm names: a GPU whose reading did not change keeps its samples.
      const prev = this.exporterCache.get(v.reading.uuid);
      const same =
        prev?.reading === v.reading && prev.dcgm === v.dcgm && prev.gpuCount === served.length;
      const g = { reading: v.reading, ...(v.dcgm ? { dcgm: v.dcgm } : {}) };
      const entry =
        same && prev
          ? prev
          : { ...g, gpuCount: served.length, samples: exporterGpuSamples(g, served.length) };
      cache.set(v.reading.uuid, entry);
      out.push(...entry.samples);
    }
    this.exporterCache = cache;
    const nvidiaSmi = snapshot.collectors.get('nvidia-smi');
    out.push(
      ...exporterHostSamples({
        gpus: served,
        ...(nvidiaSmi ? { nvidiaSmi } : {}),
        xids: this.xids.perXid(),
      }),
    );
    return out;
  }

  /** `GET /api/v1/gpus` for the latest snapshot. */
  json(current: Snapshot) {
    // The store derives on every snapshot; before the first one there is nothing to show.
    const snapshot = this.snapshot ?? current;
    return gpusJson(snapshot, this.views, this.throttle, this.xids);
  }

  /** Events produced by the last snapshots, oldest first. */
  drainEvents() {
    return [...this.xids.drainEvents(), ...this.throttle.drainEvents()].sort(
      (a, b) => (a.ts ?? 0) - (b.ts ?? 0),
    );
  }
}

/** Creates the GPU health component for the agent. */
export function createGpuHealth(
  config: AgentConfig,
  options: Partial<GpuHealthOptions> = {},
): Component {
  const health = new GpuHealth({ compat: config.metrics.compat, ...options });
  let unsubscribe: (() => void) | undefined;
  return {
    name: 'gpu-health',
    register(ctx: AgentContext) {
      ctx.store.addDeriver(health.deriver);
      const flush = (): void => {
        for (const event of health.drainEvents()) {
          try {
            ctx.events.emit(event);
          } catch (err) {
            ctx.log.error({ err: errorMessage(err) }, 'GPU health event could not be recorded');
          }
        }
      };
      unsubscribe = ctx.store.onChange(flush);
      ctx.app.get('/api/v1/gpus', () => {
        ctx.store.current();
        flush();
        return health.json(ctx.store.current());
      });
    },
    start: () => Promise.resolve(),
    stop() {
      unsubscribe?.();
      unsubscribe = undefined;
      return Promise.resolve();
    },
  };
}
