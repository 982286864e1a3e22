import type { Labels, MetricDesc, MetricType, Sample } from './types.js';

const NAME_RE = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

const declared = new Map<string, MetricDesc>();

/** Every metric family declared so far by the modules loaded (for the README reference and lint). */
export function declaredMetrics(): MetricDesc[] {
  return [...declared.values()].sort((a, b) => a.name.localeCompare(b.name));
}
const LABEL_RE = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Declares a metric family; throws at module load for a malformed name (a programmer error). */
export function metric(
  type: MetricType,
  name: string,
  help: string,
  labelNames: readonly string[] = [],
): MetricDesc {
  if (!NAME_RE.test(name)) throw new Error(`invalid metric name: ${name}`);
  if (type === 'counter' && !name.endsWith('_total')) {
    throw new Error(`counter ${name} must end in _total`);
  }
  for (const l of labelNames) {
    if (!LABEL_RE.test(l) || l.startsWith('__'))
      throw new Error(`invalid label name ${l} on ${name}`);
  }
  const desc = Object.freeze({ name, help, type, labelNames: Object.freeze([...labelNames]) });
  const prev = declared.get(name);
  if (
    prev &&
    (prev.type !== type || prev.help !== help || prev.labelNames.join() !== labelNames.join())
  ) {
    throw new Error(`metric ${name} declared twice with different type, help or labels`);
  }
  declared.set(name, desc);
  return desc;
}

/** Declares a gauge family. */
export function gauge(name: string, help: string, labelNames: readonly string[] = []): MetricDesc {
  return metric('gauge', name, help, labelNames);
}

/** Declares a counter family (name ends in `_total`). */
export function counter(
  name: string,
  help: string,
  labelNames: readonly string[] = [],
): MetricDesc {
  return metric('counter', name, help, labelNames);
}

/**
 * Collects samples, skipping absent values: a field the device does not report is no series,
 * never a misleading zero.
 */
export class SampleBuilder {
  private readonly out: Sample[] = [];

  /** Adds one sample when `value` is a finite number (booleans become 0/1). */
  add(desc: MetricDesc, labels: Labels, value: number | boolean | undefined): this {
    if (value === undefined) return this;
    const v = typeof value === 'boolean' ? (value ? 1 : 0) : value;
    if (!Number.isFinite(v)) return this;
    this.out.push({ desc, labels, value: v });
    return this;
  }

  /** The samples added so far. */
  build(): Sample[] {
    return this.out;
  }
}
