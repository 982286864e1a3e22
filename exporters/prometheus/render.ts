import { Counter, Gauge, Registry, type RegistryContentType } from 'prom-client';
import type { MetricDesc, Sample } from '../../agent/types.js';

/** Exposition formats gpulse serves. */
export type ExpositionFormat = 'prometheus' | 'openmetrics';

/** Content type of each format. */
export const CONTENT_TYPES: Readonly<Record<ExpositionFormat, RegistryContentType>> = {
  prometheus: Registry.PROMETHEUS_CONTENT_TYPE,
  openmetrics: Registry.OPENMETRICS_CONTENT_TYPE,
};

/** A sample that could not be rendered, with why (conflicting family, bad labels). */
export interface RenderProblem {
  readonly metric: string;
  readonly problem: string;
}

/**
 * Renders samples with a fresh prom-client registry. Fresh per render on purpose: a snapshot is
 * replaced whole, so families of vanished GPUs/containers disappear, and prom-client renames counter
 * objects in place for OpenMetrics, so objects cannot be shared between the two formats.
 */
export async function renderSamples(
  samples: readonly Sample[],
  format: ExpositionFormat,
  onProblem?: (p: RenderProblem) => void,
): Promise<string> {
  // The typings omit the constructor argument; setContentType is the typed equivalent.
  const registry = new Registry<RegistryContentType>();
  registry.setContentType(CONTENT_TYPES[format]);
  const families = new Map<string, { desc: MetricDesc; metric: Gauge | Counter }>();
  const seen = new Set<string>();
  for (const s of samples) {
    let family = families.get(s.desc.name);
    if (!family) {
      const config = {
        name: s.desc.name,
        help: s.desc.help,
        labelNames: [...s.desc.labelNames],
        registers: [registry],
      };
      family = {
        desc: s.desc,
        metric: s.desc.type === 'counter' ? new Counter(config) : new Gauge(config),
      };
      families.set(s.desc.name, family);
    } else if (family.desc !== s.desc && !sameDesc(family.desc, s.desc)) {
      onProblem?.({
        metric: s.desc.name,
        problem: 'declared twice with different help, type or labels',
      });
      continue;
    }
    // Two sources reporting the same series would make the exposition invalid: first one wins.
    const key = seriesKey(s);
    if (seen.has(key)) {
      onProblem?.({ metric: s.desc.name, problem: `duplicate series ${key}` });
      continue;
    }
    seen.add(key);
    try {
      if (family.metric instanceof Counter) {
        if (s.value < 0) {
          onProblem?.({ metric: s.desc.name, problem: 'negative counter value' });
          continue;
        }
        family.metric.inc(s.labels, s.value);
      } else {
        family.metric.set(s.labels, s.value);
      }
    } catch (err) {
      onProblem?.({
        metric: s.desc.name,
        problem: err instanceof Error ? err.message : String(err),
      });
    }
  }
  return registry.metrics();
}

function sameDesc(a: MetricDesc, b: MetricDesc): boolean {
  return (
    a.type === b.type &&
    a.help === b.help &&
    a.labelNames.length === b.labelNames.length &&
    a.labelNames.every((l, i) => l === b.labelNames[i])
  );
}

function seriesKey(s: Sample): string {
  let key = s.desc.name;
  for (const l of s.desc.labelNames) key += `\u0000${s.labels[l] ?? ''}`;
  return key;
}
