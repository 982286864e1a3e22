/**
 * Throttling over time: seconds per reason integrated from samples where the driver keeps no
 * counter, and throttling episodes (start, end, reasons, peaks) as events.
 */
import { gpuLabels, gpuMetrics } from '../../../collectors/gpu-series.js';
import { THROTTLE_REASONS, type ThrottleReason } from '../../core/facts.js';
import type { EventSeverity, NewEvent } from '../../core/events.js';
import { SampleBuilder } from '../../core/metric.js';
import type { Sample } from '../../core/types.js';
import type { GpuView } from './gpu-views.js';

/**
 * Reasons that make an episode, and how bad they are. Idle, application clocks, sync boost,
 * display clocks and the software power cap (normal at full load) are not problems: no episode.
 */
export const PROBLEM_REASONS: Readonly<Partial<Record<ThrottleReason, EventSeverity>>> = {
  hw_slowdown: 'critical',
  hw_thermal_slowdown: 'critical',
  hw_power_brake_slowdown: 'critical',
  sw_thermal_slowdown: 'warning',
};

/** A throttling episode, open or closed. */
export interface ThrottleEpisode {
  /** Unix ms of the first sample that showed a problem reason. */
  readonly start: number;
  /** Unix ms of the first sample without one; absent while it lasts. */
  readonly end?: number;
  /** Every reason active at some sample of the episode (problem or not), sorted. */
  readonly reasons: readonly ThrottleReason[];
  readonly severity: EventSeverity;
  readonly peakTemperatureCelsius?: number;
  readonly peakPowerWatts?: number;
}

interface GpuThrottleState {
  index: number;
  lastAt: number;
  active: Set<ThrottleReason>;
  seconds: Partial<Record<ThrottleReason, number>>;
  lastEpisode?: ThrottleEpisode;
  episode?: {
    start: number;
    reasons: Set<ThrottleReason>;
    severity: EventSeverity;
    peakTemp?: number;
    peakPower?: number;
  };
}

const RANK: Readonly<Record<EventSeverity, number>> = { info: 0, warning: 1, critical: 2 };

/** Options of the tracker. */
export interface ThrottleTrackerOptions {
  /** Samples further apart than this are a gap (collector down): not integrated across. */
  readonly maxGapMs?: number;
}

/** Follows throttle reasons per GPU across snapshots; call `update` on each snapshot. */
export class ThrottleTracker {
  private readonly gpus = new Map<string, GpuThrottleState>();
  private pending: NewEvent[] = [];
  private readonly maxGapMs: number;

  constructor(options: ThrottleTrackerOptions = {}) {
    this.maxGapMs = options.maxGapMs ?? 60_000;
  }

  /** Takes the GPUs' latest samples; each sample is used once, however often it is seen. */
  update(views: readonly GpuView[]): void {
    for (const view of views) {
      const r = view.reading;
      const reports = THROTTLE_REASONS.some((reason) => r.throttle[reason] !== undefined);
      if (!reports) continue;
      const active = new Set(THROTTLE_REASONS.filter((reason) => r.throttle[reason] === true));
      let state = this.gpus.get(r.uuid);
      if (!state) {
        state = { index: r.index, lastAt: view.at, active, seconds: {} };
        this.gpus.set(r.uuid, state);
        this.track(state, view, active);
        continue;
      }
      if (view.at <= state.lastAt) continue;
      const dt = (view.at - state.lastAt) / 1000;
      if (view.at - state.lastAt <= this.maxGapMs) {
        // Trapezoid over on/off samples: a reason on at both ends counts the whole interval.
        for (const reason of THROTTLE_REASONS) {
          const share = (Number(state.active.has(reason)) + Number(active.has(reason))) / 2;
          if (share > 0) state.seconds[reason] = (state.seconds[reason] ?? 0) + share * dt;
        }
      }
      state.lastAt = view.at;
      state.active = active;
      state.index = r.index;
      this.track(state, view, active);
    }
  }

  private track(state: GpuThrottleState, view: GpuView, active: ReadonlySet<ThrottleReason>): void {
    const r = view.reading;
    const problems = [...active].filter((reason) => PROBLEM_REASONS[reason] !== undefined);
    const labels = gpuLabels(r);
    if (problems.length === 0) {
      const ep = state.episode;
      if (!ep) return;
      state.episode = undefined;
      const seconds = (view.at - ep.start) / 1000;
      const reasons = [...ep.reasons].sort();
      state.lastEpisode = {
        start: ep.start,
        end: view.at,
        reasons,
        severity: ep.severity,
        ...(ep.peakTemp !== undefined ? { peakTemperatureCelsius: ep.peakTemp } : {}),
        ...(ep.peakPower !== undefined ? { peakPowerWatts: ep.peakPower } : {}),
      };
      this.pending.push({
        type: 'gpu.throttle_episode',
        severity: ep.severity,
        source: 'gpu-health',
        ts: view.at,
        message: `GPU ${r.index} was throttled for ${seconds.toFixed(1)} s (${reasons.join(', ')})${peaks(ep.peakTemp, ep.peakPower)}`,
        labels,
        data: {
          start: new Date(ep.start).toISOString(),
          end: new Date(view.at).toISOString(),
          durationSeconds: seconds,
          reasons,
          ...(ep.peakTemp !== undefined ? { peakTemperatureCelsius: ep.peakTemp } : {}),
          ...(ep.peakPower !== undefined ? { peakPowerWatts: ep.peakPower } : {}),
        },
      });
      return;
    }
    const severity = problems
      .map((reason) => PROBLEM_REASONS[reason] ?? 'info')
      .reduce((a, b) => (RANK[b] > RANK[a] ? b : a), 'info' as EventSeverity);
    if (!state.episode) {
      state.episode = { start: view.at, reasons: new Set(active), severity };
      this.pending.push({
        type: 'gpu.throttle_start',
        severity,
        source: 'gpu-health',
        ts: view.at,
        message: `GPU ${r.index} is throttled (${[...active].sort().join(', ')})`,
        labels,
        data: { start: new Date(view.at).toISOString(), reasons: [...active].sort() },
      });
    }
    const ep = state.episode;
    for (const reason of active) ep.reasons.add(reason);
    if (RANK[severity] > RANK[ep.severity]) ep.severity = severity;
    ep.peakTemp = max(ep.peakTemp, r.temperatureCelsius);
    ep.peakPower = max(ep.peakPower, r.powerDrawWatts);
  }

  /** Events produced since the last call (episode starts and ends), oldest first. */
  drainEvents(): NewEvent[] {
    const out = this.pending;
    this.pending = [];
    return out;
  }

  /** The open episode of a GPU. */
  episode(uuid: string): ThrottleEpisode | undefined {
    const ep = this.gpus.get(uuid)?.episode;
    if (!ep) return undefined;
    return {
      start: ep.start,
      reasons: [...ep.reasons].sort(),
      severity: ep.severity,
      ...(ep.peakTemp !== undefined ? { peakTemperatureCelsius: ep.peakTemp } : {}),
      ...(ep.peakPower !== undefined ? { peakPowerWatts: ep.peakPower } : {}),
    };
  }

  /** The latest finished episode of a GPU. */
  lastEpisode(uuid: string): ThrottleEpisode | undefined {
    return this.gpus.get(uuid)?.lastEpisode;
  }

  /** Seconds per reason gpulse integrated for a GPU. */
  integratedSeconds(uuid: string): Partial<Record<ThrottleReason, number>> {
    return { ...(this.gpus.get(uuid)?.seconds ?? {}) };
  }

  /**
   * `gpulse_gpu_throttle_seconds_total` for the reasons the driver keeps no counter for:
   * where it does (clocks_event_reasons_counters), the collector's own series is the truth.
   */
  samples(views: readonly GpuView[]): Sample[] {
    const b = new SampleBuilder();
    for (const view of views) {
      const state = this.gpus.get(view.reading.uuid);
      if (!state) continue;
      const labels = gpuLabels(view.reading);
      for (const reason of THROTTLE_REASONS) {
        if (view.reading.throttleSeconds[reason] !== undefined) continue;
        if (view.reading.throttle[reason] === undefined) continue;
        b.add(gpuMetrics.throttleSeconds, { ...labels, reason }, state.seconds[reason] ?? 0);
      }
    }
    return b.build();
  }
}

function max(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return Math.max(a, b);
}

function peaks(temp: number | undefined, power: number | undefined): string {
  const parts = [
    temp !== undefined ? `${temp} °C` : undefined,
    power !== undefined ? `${power.toFixed(0)} W` : undefined,
  ].filter(Boolean);
  return parts.length > 0 ? `; peak ${parts.join(', ')}` : '';
}
