import type { FeatureValue, ObservationRow } from './observations.js';
import {
  binIndex,
  PROFILE_FORMAT,
  type CategoricalFeatureProfile,
  type FeatureProfile,
  type NumericFeatureProfile,
  type ReferenceProfile,
} from './profile.js';
import { RunningMoments, safeSumScale } from './moments.js';
import { seededRandom } from './synthetic.js';

/** How a profile is built; the defaults follow research §3.6. */
export interface ProfileBuilderOptions {
  /** Quantile bins per numeric feature (edges at 0, 1/bins, …, 1). Default 20. */
  readonly bins?: number;
  /** Categories kept per categorical feature; the rest count as `other`. Default 32. */
  readonly topK?: number;
  /** Features always treated as categorical (e.g. numeric codes). */
  readonly categorical?: Iterable<string>;
  /** Features left out of the profile (ids, timestamps). */
  readonly exclude?: Iterable<string>;
  /** Numeric values kept per feature for the quantiles; beyond, a uniform sample. Default 100,000. */
  readonly sampleRows?: number;
  /** Distinct strings counted per feature; later new strings count as `other`. Default 10,000. */
  readonly maxDistinct?: number;
  /** Features accepted; a row bringing more is refused. Default 1000. */
  readonly maxFeatures?: number;
  /** Numeric features with at most this many distinct values are categorical (Evidently: 5). */
  readonly maxNumericCategories?: number;
  /** Seed of the sampling generator (profiles are reproducible). */
  readonly seed?: number;
}

/** Thrown when rows cannot make a profile (too many features, no usable values). */
export class ProfileBuildError extends Error {
  readonly code = 'GPULSE_DRIFT_PROFILE_BUILD';
}

class FeatureAccumulator {
  nulls = 0;
  numbers = 0;
  strings = 0;
  sample: Float64Array = new Float64Array(64);
  sampled = 0;
  readonly moments = new RunningMoments();
  min = Infinity;
  max = -Infinity;
  readonly distinctNumbers = new Set<number>();
  readonly stringCounts = new Map<string, number>();
  overflow = 0;

  constructor(
    private readonly sampleRows: number,
    private readonly maxDistinct: number,
    private readonly distinctCap: number,
    private readonly random: () => number,
  ) {}

  add(value: FeatureValue): void {
    if (value === null) {
      this.nulls++;
      return;
    }
    if (typeof value === 'number') {
      this.addNumber(value);
      return;
    }
    this.strings++;
    const key = typeof value === 'boolean' ? String(value) : value;
    const seen = this.stringCounts.get(key);
    if (seen !== undefined) this.stringCounts.set(key, seen + 1);
    else if (this.stringCounts.size < this.maxDistinct) this.stringCounts.set(key, 1);
    else this.overflow++;
  }

  private addNumber(v: number): void {
    this.numbers++;
    // Running mean and variance over every value, sampled or not, safe up to ±1.8e308.
    this.moments.add(v);
    if (v < this.min) this.min = v;
    if (v > this.max) this.max = v;
    if (this.distinctNumbers.size <= this.distinctCap) this.distinctNumbers.add(v);
    if (this.sampled < this.sampleRows) {
      if (this.sampled === this.sample.length) {
        const grown = new Float64Array(Math.min(this.sampleRows, this.sample.length * 2));
        grown.set(this.sample);
        this.sample = grown;
      }
      this.sample[this.sampled++] = v;
    } else {
      // Reservoir sampling (Algorithm R): every value seen so far is kept with equal probability.
      const j = Math.floor(this.random() * this.numbers);
      if (j < this.sampleRows) this.sample[j] = v;
    }
  }

  sorted(): Float64Array {
    return this.sample.slice(0, this.sampled).sort();
  }
}

/** numpy's default (linear) quantile of sorted values. */
export function quantileSorted(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  const h = (n - 1) * q;
  const lo = Math.floor(h);
  const a = sorted[lo] as number;
  const b = sorted[Math.min(lo + 1, n - 1)] as number;
  const t = h - lo;
  const d = b - a;
  // b − a overflows for values of opposite sign near ±1.8e308: interpolate without it there.
  return Number.isFinite(d) ? a + t * d : a * (1 - t) + b * t;
}

/**
 * Builds a reference profile from rows in one pass with bounded memory: numeric values up to
 * `sampleRows` per feature (a uniform reservoir beyond), counts of distinct strings up to
 * `maxDistinct`. Used by `gpulse drift profile`, the reference API and warm-up.
 */
export class ProfileBuilder {
  private readonly features = new Map<string, FeatureAccumulator>();
  private readonly random: () => number;
  private readonly categorical: ReadonlySet<string>;
  private readonly exclude: ReadonlySet<string>;
  private rowCount = 0;

  constructor(private readonly options: ProfileBuilderOptions = {}) {
    this.random = seededRandom(options.seed ?? 0x5eed);
    this.categorical = new Set(options.categorical ?? []);
    this.exclude = new Set(options.exclude ?? []);
  }

  /** Rows added so far. */
  get rows(): number {
    return this.rowCount;
  }

  /** Adds one validated row; a value absent from a row counts as null for that feature. */
  add(row: ObservationRow): void {
    this.rowCount++;
    for (const name in row) {
      if (this.exclude.has(name)) continue;
      let acc = this.features.get(name);
      if (!acc) {
        const max = this.options.maxFeatures ?? 1000;
        if (this.features.size >= max) {
          throw new ProfileBuildError(
            `row ${this.rowCount - 1} brings feature ${JSON.stringify(name)}, beyond the limit of ${max} features; leave some out (--exclude) or raise the limit`,
          );
        }
        acc = new FeatureAccumulator(
          this.options.sampleRows ?? 100_000,
          this.options.maxDistinct ?? 10_000,
          this.options.maxNumericCategories ?? 5,
          this.random,
        );
        // A feature first seen in a later row was null in every row before it.
        acc.nulls = this.rowCount - 1;
        this.features.set(name, acc);
      }
      acc.add(row[name] ?? null);
    }
    for (const [name, acc] of this.features) {
      if (!(name in row)) acc.nulls++;
    }
  }

  /** The profile of the rows added so far. */
  build(meta: { model?: string; source?: string; createdAt?: string } = {}): ReferenceProfile {
    if (this.rowCount === 0) throw new ProfileBuildError('no rows: a profile needs reference data');
    const features: Record<string, FeatureProfile> = {};
    for (const [name, acc] of [...this.features].sort(([a], [b]) => (a < b ? -1 : 1))) {
      if (acc.numbers + acc.strings === 0) continue; // only nulls: nothing to compare against
      const cap = this.options.maxNumericCategories ?? 5;
      const categorical =
        this.categorical.has(name) ||
        acc.strings > 0 ||
        acc.distinctNumbers.size <= cap ||
        !(acc.max > acc.min);
      features[name] = categorical ? this.categoricalOf(acc) : this.numericOf(acc);
    }
    if (Object.keys(features).length === 0) {
      throw new ProfileBuildError('every feature is null in every row: nothing to profile');
    }
    return {
      format: PROFILE_FORMAT,
      version: 1,
      rows: this.rowCount,
      ...(meta.model !== undefined ? { model: meta.model } : {}),
      createdAt: meta.createdAt ?? new Date().toISOString(),
      ...(meta.source !== undefined ? { source: meta.source } : {}),
      features,
    };
  }

  private numericOf(acc: FeatureAccumulator): NumericFeatureProfile {
    const sorted = acc.sorted();
    const bins = this.options.bins ?? 20;
    const edges: number[] = [];
    for (let i = 0; i <= bins; i++) {
      const e = i === 0 ? acc.min : i === bins ? acc.max : quantileSorted(sorted, i / bins);
      // Repeated values give equal quantiles; equal edges would make empty zero-width bins.
      if (edges.length === 0 || e > (edges[edges.length - 1] as number)) edges.push(e);
    }
    const slots = edges.length + 1;
    const bin = (v: number) => binIndex(edges, v);
    // Above the sample size the bins come from a uniform sample, scaled to every value seen.
    const sampleScale = acc.numbers / Math.max(sorted.length, 1);
    // Values near ±1.8e308 would sum to Infinity: such a histogram is kept at a power-of-two
    // fraction (same shares and bin means, so the same statistics; `count` stays the true count).
    const fraction = safeSumScale(sorted, slots, bin, sampleScale);
    const counts = new Array<number>(slots).fill(0);
    const sums = new Array<number>(slots).fill(0);
    for (const v of sorted) {
      const b = bin(v);
      counts[b] = (counts[b] ?? 0) + 1;
      sums[b] = (sums[b] ?? 0) + v * fraction;
    }
    const scale = sampleScale * fraction;
    return {
      kind: 'numeric',
      count: acc.numbers,
      nulls: acc.nulls,
      mean: acc.moments.mean,
      std: acc.moments.std,
      min: acc.min,
      max: acc.max,
      edges,
      counts: scale === 1 ? counts : counts.map((c) => c * scale),
      sums: sampleScale === 1 ? sums : sums.map((s) => s * sampleScale),
    };
  }

  private categoricalOf(acc: FeatureAccumulator): CategoricalFeatureProfile {
    const counts = new Map(acc.stringCounts);
    if (acc.numbers > 0) {
      const sample = acc.sorted();
      const scale = acc.numbers / sample.length;
      for (const v of sample) {
        const key = String(v);
        counts.set(key, (counts.get(key) ?? 0) + scale);
      }
    }
    const sorted = [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
    const topK = this.options.topK ?? 32;
    const top = sorted.slice(0, topK);
    const other = sorted.slice(topK).reduce((s, [, c]) => s + c, 0) + acc.overflow;
    return {
      kind: 'categorical',
      count: acc.numbers + acc.strings,
      nulls: acc.nulls,
      categories: top.map(([value, count]) => ({ value, count })),
      other,
    };
  }
}
