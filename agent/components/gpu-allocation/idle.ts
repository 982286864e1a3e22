/**
 * Idle allocated GPUs: per container and whole GPU allocated to it, the seconds the GPU ran under
 * the idle threshold (a counter), whether it has stayed there for the idle window (0/1), and an
 * event each time that turns on or off.
 */
import type { NewEvent } from '../../core/events.js';
import type { Labels, Sample } from '../../core/types.js';
import { allocationMetrics as m } from './metrics.js';

/** What the tracker needs to know of each allocation, once per snapshot. */
export interface AllocationObservation {
  /** Stable key of the allocation (namespace, pod, container and device). */
  readonly key: string;
  /** `gpu`, `uuid`, `pod`, `namespace`, `container`; kept from the first observation. */
  readonly labels: Labels;
  /** GPU utilization (0–1), absent when unknown (GPU not seen, lost, or not reported). */
  readonly utilization?: number;
  readonly resource: string;
  readonly deviceId: string;
}

/** Thresholds and bounds of the tracker. */
export interface IdleTrackerOptions {
  /** Utilization (0–1) under which the GPU counts as idle. */
  readonly idleBelow: number;
  /** Milliseconds under `idleBelow` without a break before the allocation is idle. */
  readonly idleAfter: number;
  /** Longest step between two snapshots that counts whole, ms (a stalled agent adds no hours). */
  readonly maxStep: number;
  /** How long an allocation the kubelet no longer lists keeps its counter, ms. */
  readonly forgetAfter: number;
  /** Allocations tracked at most (the oldest absent ones go first). */
  readonly maxTracked: number;
}

interface Entry {
  readonly labels: Labels;
  /** The counter's value, seconds. */
  idleSeconds: number;
  /** The current run under the threshold, ms; 0 when the GPU is busy or unknown. */
  runMs: number;
  /** An idle event went out and no active event since. */
  announced: boolean;
  /** Length of the announced idle run, ms (what the active event reports). */
  episodeMs: number;
  /** Time of the last snapshot that had or lacked this allocation. */
  lastAt: number;
  /** Since when the kubelet no longer lists it; undefined while it does. */
  goneSince?: number;
  /** Whether the last observation was under the threshold for the whole window. */
  idle: boolean;
}

/** Follows allocations across snapshots; call `update` on each. */
export class IdleTracker {
  private readonly entries = new Map<string, Entry>();
  private pending: NewEvent[] = [];

  constructor(private readonly options: IdleTrackerOptions) {}

  /**
   * Takes the allocations of one snapshot at `now` (Unix ms). Only observations that are
   * trackable (a whole GPU the agent saw at least once) belong here; the rest are forgotten.
   */
  update(now: number, observations: readonly AllocationObservation[]): void {
    const o = this.options;
    const present = new Set<string>();
    for (const obs of observations) {
      if (present.has(obs.key)) continue;
      present.add(obs.key);
      let e = this.entries.get(obs.key);
      if (!e) {
        e = {
          labels: obs.labels,
          idleSeconds: 0,
          runMs: 0,
          announced: false,
          episodeMs: 0,
          lastAt: now,
          idle: false,
        };
        this.entries.set(obs.key, e);
      }
      // Back after a gap: the gap was not observed, so it is neither idle nor a step.
      const dt = e.goneSince === undefined ? Math.min(Math.max(now - e.lastAt, 0), o.maxStep) : 0;
      e.lastAt = now;
      delete e.goneSince;
      if (obs.utilization === undefined) {
        // Unknown is not idle; the run starts over once the GPU reports again.
        e.runMs = 0;
        e.idle = false;
      } else if (obs.utilization < o.idleBelow) {
        e.idleSeconds += dt / 1000;
        e.runMs += dt;
        e.idle = e.runMs >= o.idleAfter;
        if (e.idle) e.episodeMs = Math.max(e.episodeMs, e.runMs);
        if (e.idle && !e.announced) {
          e.announced = true;
          this.pending.push(idleEvent(e, obs, now, o.idleBelow));
        }
      } else {
        if (e.announced) this.pending.push(activeEvent(e, obs, now));
        e.announced = false;
        e.episodeMs = 0;
        e.runMs = 0;
        e.idle = false;
      }
    }
    for (const [key, e] of this.entries) {
      if (present.has(key)) continue;
      // The kubelet did not answer, or no longer lists it. A blip (a kubelet restart) keeps the
      // idle run: the GPU's own readings went on, and a returning allocation is the same one.
      e.goneSince ??= now;
      if (now - e.goneSince >= o.forgetAfter) this.entries.delete(key);
    }
    if (this.entries.size > o.maxTracked) {
      const absent = [...this.entries]
        .filter(([, e]) => e.goneSince !== undefined)
        .sort(([, a], [, b]) => (a.goneSince ?? 0) - (b.goneSince ?? 0));
      for (const [key] of absent.slice(0, this.entries.size - o.maxTracked)) {
        this.entries.delete(key);
      }
    }
  }

  /** The idle series of the allocations present in the last update. */
  samples(): Sample[] {
    const out: Sample[] = [];
    const seen = new Set<string>();
    for (const e of this.entries.values()) {
      if (e.goneSince !== undefined) continue;
      // Two replicas of one shared GPU in one container are one series.
      const id = JSON.stringify(e.labels);
      if (seen.has(id)) continue;
      seen.add(id);
      out.push({ desc: m.idleSeconds, labels: e.labels, value: e.idleSeconds });
      out.push({ desc: m.idle, labels: e.labels, value: e.idle ? 1 : 0 });
    }
    return out;
  }

  /** Whether the allocation of this key is tracked (present, or gone for less than forgetAfter). */
  has(key: string): boolean {
    return this.entries.has(key);
  }

  /** Allocations tracked now (present or recently gone). */
  get size(): number {
    return this.entries.size;
  }

  /** Events produced since the last call, oldest first. */
  drainEvents(): NewEvent[] {
    const out = this.pending;
    this.pending = [];
    return out;
  }
}

/** A duration as a message says it: `45 s`, `10 min`, `2 h 5 min`. */
export function spoken(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s} s`;
  const min = Math.floor(s / 60);
  if (min < 60) return `${min} min`;
  return min % 60 === 0 ? `${min / 60} h` : `${Math.floor(min / 60)} h ${min % 60} min`;
}

function who(labels: Labels): string {
  return `${labels.namespace}/${labels.pod} (container ${labels.container})`;
}

function gpuName(labels: Labels): string {
  return `GPU ${labels.gpu}${labels.uuid ? ` (${labels.uuid})` : ''}`;
}

function idleEvent(e: Entry, obs: AllocationObservation, now: number, below: number): NewEvent {
  return {
    type: 'gpu.allocation_idle',
    severity: 'warning',
    source: 'gpu-allocation',
    ts: now,
    message:
      `${gpuName(e.labels)} is allocated to ${who(e.labels)} but has run under ` +
      `${Math.round(below * 100)} % utilization for ${spoken(e.runMs)}: ` +
      'the GPU is reserved and unused. Scale the workload down or free the GPU for another pod.',
    labels: e.labels,
    data: {
      idleSeconds: e.runMs / 1000,
      utilizationRatio: obs.utilization,
      resource: obs.resource,
      deviceId: obs.deviceId,
    },
  };
}

function activeEvent(e: Entry, obs: AllocationObservation, now: number): NewEvent {
  return {
    type: 'gpu.allocation_active',
    severity: 'info',
    source: 'gpu-allocation',
    ts: now,
    message: `${gpuName(e.labels)} allocated to ${who(e.labels)} is in use again after ${spoken(e.episodeMs)} idle`,
    labels: e.labels,
    data: {
      idleSeconds: e.episodeMs / 1000,
      utilizationRatio: obs.utilization,
      resource: obs.resource,
      deviceId: obs.deviceId,
    },
  };
}
