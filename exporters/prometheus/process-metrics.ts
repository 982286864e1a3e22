import type { Registry, RegistryContentType } from 'prom-client';
import { loadProcessMetrics } from '../../agent/process/lazy-require.js';
import type { ForeignFamily } from './render.js';

/**
 * Sampling period of the event-loop delay histogram (nodejs_eventloop_lag_*). prom-client's default,
 * 10 ms, wakes the agent 100 times a second for as long as it runs, about a third of its idle CPU;
 * at 100 ms a stall shorter than the period is seen with probability length/100 ms, and every
 * stall longer than that is measured.
 */
const EVENT_LOOP_SAMPLE_MS = 100;

/**
 * prom-client declares these as gauges ending in _total, which promtool rightly rejects; the
 * per-type nodejs_active_* gauges carry the same information.
 */
const DROPPED = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
];

/**
 * The agent's own process_* and nodejs_* metrics from one prom-client registry, created on first
 * use (its event-loop monitor and GC observer cost nothing until someone scrapes). One registry
 * serves both exposition formats: a registry per format counted GCs separately and printed a
 * histogram's TYPE line before its first sample.
 */
export class ProcessMetrics {
  private registry: Registry<RegistryContentType> | undefined;

  /**
   * Collects the families one at a time, so that the caller can let the event loop run between
   * two. A family holds prom-client's live value objects: format it before the next turn.
   */
  async *collect(): AsyncGenerator<ForeignFamily> {
    this.registry ??= createRegistry();
    for (const metric of this.registry.getMetricsAsArray()) {
      // prom-client's typings declare `type` as a numeric enum and leave out a histogram
      // sample's metricName; at run time the type is the string ('counter', 'histogram').
      yield (await (metric as unknown as { get(): Promise<unknown> }).get()) as ForeignFamily;
    }
  }
}

function createRegistry(): Registry<RegistryContentType> {
  const { Registry: PromRegistry, collectDefaultMetrics } = loadProcessMetrics();
  const registry = new PromRegistry<RegistryContentType>();
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
  for (const name of DROPPED) registry.removeSingleMetric(name);
  return registry;
}
