import {
  addMoment,
  MOMENT_FIELDS,
  MOMENT_MEAN,
  MOMENT_N,
  momentStd,
  pooledMoments,
} from './moments.js';
import type { FeatureValue } from './observations.js';
import { binIndex, type CategoricalFeatureProfile, type NumericFeatureProfile } from './profile.js';

// Per-bucket scalar statistics, laid out in one Float64Array per feature.
const N = 0;
const NULLS = 1;
const INVALID = 2;
const MIN = 3;
const MAX = 4;
/** Running mean and variance of the bucket's values (see addMoment). */
const MOMENTS = 5;
const STATS = MOMENTS + MOMENT_FIELDS;

/**
 * Per-bin sums are kept in units of 2^64 (each value times 2^-64, exact for normal doubles), so a
 * bucket of values near ±1.8e308 cannot sum to Infinity; MergedWindow.sumScale undoes it.
 */
const SUM_SCALE = 2 ** 64;
const SUM_UNIT = 2 ** -64;

/** A feature's current data merged over the live buckets of the window. */
export interface MergedWindow {
  /** Count per bin (numeric) or per reference category with `other` last (categorical). */
  readonly counts: Float64Array;
  /** Sum of the values per bin (numeric only; zeros for categorical), in units of `sumScale`. */
  readonly sums: Float64Array;
  /** True sum of a bin = sums[bin] · sumScale (a power of two). */
  readonly sumScale: number;
  /** Non-null values of the right type. */
  readonly n: number;
  /** Explicit nulls. */
  readonly nulls: number;
  /** Values of the wrong type (a string for a numeric feature, say). */
  readonly invalid: number;
  readonly min: number;
  readonly max: number;
  /** Mean and population standard deviation of the values (NaN for categorical features). */
  readonly mean: number;
  readonly std: number;
}

/** Size of a feature's window state; fixed when the feature is created, whatever the traffic. */
export interface WindowFootprint {
  readonly buckets: number;
  readonly binsPerBucket: number;
  /** Bytes of the typed arrays (and the category index) holding the state. */
  readonly bytes: number;
}

/**
 * The current window of one feature: a ring of `buckets` time buckets, each holding bin counts
 * (and per-bin sums for numbers) on the reference's fixed bins. Buckets with identical bins merge
 * by addition, so the window is the sum of its live buckets and its memory never grows.
 */
export interface FeatureWindow {
  readonly kind: 'numeric' | 'categorical';
  /** Counts one value into a bucket; returns false when its type does not fit the feature. */
  observe(slot: number, value: FeatureValue): boolean;
  /** Empties a bucket before it is reused for a new time slice. */
  clear(slot: number): void;
  /** Sum of the given buckets. */
  merge(slots: readonly number[]): MergedWindow;
  footprint(): WindowFootprint;
}

/** Window of a numeric feature on its reference's quantile bins. */
export class NumericWindow implements FeatureWindow {
  readonly kind = 'numeric';
  private readonly edges: Float64Array;
  private readonly bins: number;
  private readonly counts: Float64Array;
  private readonly sums: Float64Array;
  private readonly stats: Float64Array;

  constructor(
    profile: NumericFeatureProfile,
    private readonly buckets: number,
  ) {
    this.edges = Float64Array.from(profile.edges);
    this.bins = this.edges.length + 1;
    this.counts = new Float64Array(buckets * this.bins);
    this.sums = new Float64Array(buckets * this.bins);
    this.stats = new Float64Array(buckets * STATS);
    for (let s = 0; s < buckets; s++) this.clear(s);
  }

  observe(slot: number, value: FeatureValue): boolean {
    const s = slot * STATS;
    if (typeof value === 'number') {
      const o = slot * this.bins + binIndex(this.edges, value);
      this.counts[o] = (this.counts[o] as number) + 1;
      this.sums[o] = (this.sums[o] as number) + value * SUM_UNIT;
      const st = this.stats;
      st[s + N] = (st[s + N] as number) + 1;
      if (value < (st[s + MIN] as number)) st[s + MIN] = value;
      if (value > (st[s + MAX] as number)) st[s + MAX] = value;
      addMoment(st, s + MOMENTS, value, st[s + MIN] as number, st[s + MAX] as number);
      return true;
    }
    if (value === null) {
      this.stats[s + NULLS] = (this.stats[s + NULLS] as number) + 1;
      return true;
    }
    this.stats[s + INVALID] = (this.stats[s + INVALID] as number) + 1;
    return false;
  }

  clear(slot: number): void {
    this.counts.fill(0, slot * this.bins, (slot + 1) * this.bins);
    this.sums.fill(0, slot * this.bins, (slot + 1) * this.bins);
    this.stats.fill(0, slot * STATS, (slot + 1) * STATS);
    this.stats[slot * STATS + MIN] = Infinity;
    this.stats[slot * STATS + MAX] = -Infinity;
  }

  merge(slots: readonly number[]): MergedWindow {
    const counts = new Float64Array(this.bins);
    const sums = new Float64Array(this.bins);
    let n = 0;
    let nulls = 0;
    let invalid = 0;
    let min = Infinity;
    let max = -Infinity;
    let pooled = { n: 0, mean: 0, std: 0 };
    for (const slot of slots) {
      const o = slot * this.bins;
      for (let b = 0; b < this.bins; b++) {
        counts[b] = (counts[b] as number) + (this.counts[o + b] as number);
        sums[b] = (sums[b] as number) + (this.sums[o + b] as number);
      }
      const s = slot * STATS;
      n += this.stats[s + N] as number;
      nulls += this.stats[s + NULLS] as number;
      invalid += this.stats[s + INVALID] as number;
      min = Math.min(min, this.stats[s + MIN] as number);
      max = Math.max(max, this.stats[s + MAX] as number);
      const k = this.stats[s + MOMENTS + MOMENT_N] as number;
      if (k > 0) {
        const mean = this.stats[s + MOMENTS + MOMENT_MEAN] as number;
        const std = momentStd(this.stats, s + MOMENTS);
        pooled = {
          n: pooled.n + k,
          ...pooledMoments(pooled.n, pooled.mean, pooled.std, k, mean, std),
        };
      }
    }
    return {
      counts,
      sums,
      sumScale: SUM_SCALE,
      n,
      nulls,
      invalid,
      min,
      max,
      mean: n > 0 ? pooled.mean : NaN,
      std: n > 0 ? pooled.std : NaN,
    };
  }

  footprint(): WindowFootprint {
    return {
      buckets: this.buckets,
      binsPerBucket: this.bins,
      bytes:
        this.edges.byteLength +
        this.counts.byteLength +
        this.sums.byteLength +
        this.stats.byteLength,
    };
  }
}

/** A categorical bucket needs only n and nulls (the first two of the numeric layout). */
const CAT_STATS = 2;

// Rough heap cost of one Map entry holding a short string key; only used to report a footprint.
const MAP_ENTRY_BYTES = 80;

/** Window of a categorical feature: counts of the reference's top categories plus `other`. */
export class CategoricalWindow implements FeatureWindow {
  readonly kind = 'categorical';
  private readonly index = new Map<string, number>();
  private readonly bins: number;
  private readonly counts: Float64Array;
  private readonly stats: Float64Array;
  private readonly indexBytes: number;

  constructor(
    profile: CategoricalFeatureProfile,
    private readonly buckets: number,
  ) {
    let keyBytes = 0;
    for (const [i, c] of profile.categories.entries()) {
      this.index.set(c.value, i);
      keyBytes += c.value.length * 2 + MAP_ENTRY_BYTES;
    }
    this.indexBytes = keyBytes;
    // Categories the reference never saw, or saw outside its top list, share the last bin.
    this.bins = profile.categories.length + 1;
    this.counts = new Float64Array(buckets * this.bins);
    this.stats = new Float64Array(buckets * CAT_STATS);
  }

  observe(slot: number, value: FeatureValue): boolean {
    const s = slot * CAT_STATS;
    if (value === null) {
      this.stats[s + NULLS] = (this.stats[s + NULLS] as number) + 1;
      return true;
    }
    const key = typeof value === 'string' ? value : String(value);
    const b = this.index.get(key) ?? this.bins - 1;
    this.counts[slot * this.bins + b] = (this.counts[slot * this.bins + b] as number) + 1;
    this.stats[s + N] = (this.stats[s + N] as number) + 1;
    return true;
  }

  clear(slot: number): void {
    this.counts.fill(0, slot * this.bins, (slot + 1) * this.bins);
    this.stats.fill(0, slot * CAT_STATS, (slot + 1) * CAT_STATS);
  }

  merge(slots: readonly number[]): MergedWindow {
    const counts = new Float64Array(this.bins);
    let n = 0;
    let nulls = 0;
    for (const slot of slots) {
      const o = slot * this.bins;
      for (let b = 0; b < this.bins; b++)
        counts[b] = (counts[b] as number) + (this.counts[o + b] as number);
      n += this.stats[slot * CAT_STATS + N] as number;
      nulls += this.stats[slot * CAT_STATS + NULLS] as number;
    }
    return {
      counts,
      sums: new Float64Array(this.bins),
      sumScale: 1,
      n,
      nulls,
      invalid: 0,
      min: NaN,
      max: NaN,
      mean: NaN,
      std: NaN,
    };
  }

  footprint(): WindowFootprint {
    return {
      buckets: this.buckets,
      binsPerBucket: this.bins,
      bytes: this.counts.byteLength + this.stats.byteLength + this.indexBytes,
    };
  }
}
