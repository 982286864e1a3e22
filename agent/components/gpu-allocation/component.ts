/**
 * GPU allocations: which GPU (or MIG device) the kubelet gave which container, how many devices
 * each resource has and has given out, and allocated GPUs left idle. One deriver joins the
 * `deviceAllocations` and `allocatableDevices` facts (the pod-resources collector) to the GPUs
 * of each snapshot and returns its series and its idle/active events.
 */
import type { AgentContext, Component } from '../../core/component.js';
import { collectFacts } from '../../core/state-store.js';
import type { Derivation, Deriver, Sample, Snapshot } from '../../core/types.js';
import { gpuViews } from '../gpu-health/gpu-views.js';
import { IdleTracker, type AllocationObservation } from './idle.js';
import { baseDeviceId, indexGpus, resolveDevice } from './join.js';
import { allocationMetrics as m } from './metrics.js';

/**
 * Options of the component: the pod-resources collector's `idleBelow` and `idleAfter` (its
 * config section can be passed as it is), and bounds tests may shorten.
 */
export interface GpuAllocationOptions {
  /** Utilization (0–1) under which an allocated GPU counts as idle. */
  readonly idleBelow: number;
  /** Milliseconds under `idleBelow` before an allocation is idle (gauge 1, event). */
  readonly idleAfter: number;
  /** Longest step between two snapshots counted whole, ms (default 60 s). */
  readonly maxStep?: number;
  /** How long an allocation the kubelet stopped listing keeps its counter, ms (default 5 min). */
  readonly forgetAfter?: number;
}

/** Allocations tracked at most: a node has a few dozen GPU containers; bound it anyway. */
const MAX_TRACKED = 4096;

/** The deriver and its state, usable without the agent (tests). */
export class GpuAllocation {
  private readonly idle: IdleTracker;

  constructor(options: GpuAllocationOptions) {
    this.idle = new IdleTracker({
      idleBelow: options.idleBelow,
      idleAfter: options.idleAfter,
      maxStep: options.maxStep ?? 60_000,
      forgetAfter: options.forgetAfter ?? 300_000,
      maxTracked: MAX_TRACKED,
    });
  }

  /** The deriver to add to the state store. */
  readonly deriver: Deriver = {
    name: 'gpu-allocation',
    derive: (snapshot) => this.derive(snapshot),
  };

  private derive(snapshot: Snapshot): Derivation {
    const reported = [...snapshot.collectors.values()].some(
      (s) => s.output.facts?.deviceAllocations !== undefined,
    );
    // Without the kubelet's answer (no collector, or it fails) nothing is known: no series.
    if (!reported) {
      if (this.idle.size > 0) this.idle.update(snapshot.takenAt, []);
      return { samples: [], events: this.idle.drainEvents() };
    }
    const gpus = indexGpus(gpuViews(snapshot));
    const out: Sample[] = [];
    const infos = new Set<string>();
    const allocated = new Map<string, Set<string>>();
    const unknown = new Map<string, Set<string>>();
    const observations: AllocationObservation[] = [];
    const add = (counts: Map<string, Set<string>>, resource: string, id: string) => {
      const ids = counts.get(resource) ?? new Set<string>();
      ids.add(id);
      counts.set(resource, ids);
    };
    for (const a of collectFacts(snapshot, 'deviceAllocations')) {
      const d = resolveDevice(a.deviceId, gpus);
      const labels = {
        gpu: d.gpu,
        uuid: d.uuid,
        mig_uuid: d.migUuid,
        device: a.deviceId,
        resource: a.resourceName,
        pod: a.pod,
        namespace: a.namespace,
        container: a.container,
      };
      const id = JSON.stringify(labels);
      if (!infos.has(id)) {
        infos.add(id);
        out.push({ desc: m.info, labels, value: 1 });
      }
      add(allocated, a.resourceName, a.deviceId);
      if (!d.view) add(unknown, a.resourceName, a.deviceId);
      if (d.kind !== 'gpu') continue;
      // Per-MIG utilization is not in the facts: a MIG allocation is never called idle.
      const key = JSON.stringify([a.namespace, a.pod, a.container, baseDeviceId(a.deviceId)]);
      // Tracked from the first time the agent sees the GPU; kept (as not idle) while it does not.
      if (!d.view && !this.idle.has(key)) continue;
      const utilization = d.view && !d.view.lost ? d.view.reading.utilizationRatio : undefined;
      observations.push({
        key,
        labels: {
          gpu: d.gpu,
          uuid: d.uuid,
          pod: a.pod,
          namespace: a.namespace,
          container: a.container,
        },
        ...(utilization !== undefined ? { utilization } : {}),
        resource: a.resourceName,
        deviceId: a.deviceId,
      });
    }
    const allocatable = new Map<string, Set<string>>();
    for (const d of collectFacts(snapshot, 'allocatableDevices')) {
      add(allocatable, d.resourceName, d.deviceId);
    }
    for (const [resource, ids] of allocatable) {
      out.push({ desc: m.allocatable, labels: { resource }, value: ids.size });
    }
    for (const resource of new Set([...allocatable.keys(), ...allocated.keys()])) {
      const labels = { resource };
      out.push({ desc: m.allocated, labels, value: allocated.get(resource)?.size ?? 0 });
      out.push({ desc: m.unknown, labels, value: unknown.get(resource)?.size ?? 0 });
    }
    this.idle.update(snapshot.takenAt, observations);
    out.push(...this.idle.samples());
    return { samples: out, events: this.idle.drainEvents() };
  }
}

/**
 * Creates the GPU allocation component. Wire it where the pod-resources collector runs:
 * `createGpuAllocation(config.collectors['pod-resources'])`.
 */
export function createGpuAllocation(options: GpuAllocationOptions): Component {
  const allocation = new GpuAllocation(options);
  return {
    name: 'gpu-allocation',
    register(ctx: AgentContext) {
      ctx.store.addDeriver(allocation.deriver);
    },
    start: () => Promise.resolve(),
    stop: () => Promise.resolve(),
  };
}
