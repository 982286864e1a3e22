import { counter, gauge, SampleBuilder } from './metric.js';
import type { Sample, Snapshot } from './types.js';

/** Families describing the agent's own collectors. */
export const selfMetrics = {
  up: gauge('gpulse_collector_up', "Whether the collector's latest run succeeded (1) or not (0).", [
    'collector',
  ]),
  status: gauge(
    'gpulse_collector_status',
    'Current status of each collector with the reason when not ok; always 1.',
    ['collector', 'status', 'reason'],
  ),
  lastSuccess: gauge(
    'gpulse_collector_last_success_timestamp_seconds',
    "Unix time of the collector's latest successful result.",
    ['collector'],
  ),
  duration: gauge(
    'gpulse_collector_duration_seconds',
    "Wall time of the collector's latest run (for streams: time to read one sample).",
    ['collector'],
  ),
  errors: counter('gpulse_collector_errors_total', 'Collector errors by reason.', [
    'collector',
    'reason',
  ]),
  build: gauge('gpulse_build_info', 'gpulse build; always 1.', ['version', 'node_version']),
} as const;

/** Samples for every collector's health, from a snapshot. */
export function collectorHealthSamples(snapshot: Snapshot, version: string): Sample[] {
  const b = new SampleBuilder();
  b.add(selfMetrics.build, { version, node_version: process.versions.node }, 1);
  for (const state of snapshot.collectors.values()) {
    const l = { collector: state.collector };
    b.add(selfMetrics.up, l, state.status === 'ok');
    b.add(selfMetrics.status, { ...l, status: state.status, reason: state.reason ?? '' }, 1);
    if (state.lastSuccessAt !== undefined)
      b.add(selfMetrics.lastSuccess, l, state.lastSuccessAt / 1000);
    if (state.durationMs !== undefined) b.add(selfMetrics.duration, l, state.durationMs / 1000);
    for (const [reason, count] of state.errors) b.add(selfMetrics.errors, { ...l, reason }, count);
  }
  const out = b.build();
  for (const state of snapshot.collectors.values()) out.push(...state.health);
  return out;
}

/** Every sample of a snapshot: collectors' outputs, derived series and self-metrics. */
export function snapshotSamples(snapshot: Snapshot, version: string): Sample[] {
  const out: Sample[] = [];
  for (const state of snapshot.collectors.values()) out.push(...state.output.samples);
  out.push(...snapshot.derived);
  out.push(...collectorHealthSamples(snapshot, version));
  return out;
}
