// Mean, variance and histogram sums of doubles anywhere in ±1.8e308 without overflow: the plain
// formulas square deviations (up to 3.4e308, squared: Infinity) and add values, so reference data
// near the double range became `mean: null` / `std: null` in profiles the schema then rejected.
// Hand-written: no npm statistics package guards its running moments against overflow.

/** Offsets of a moments record (count, mean, scale, scaled sum of squares) in a Float64Array. */
export const MOMENT_N = 0;
export const MOMENT_MEAN = 1;
const MOMENT_SCALE = 2;
const MOMENT_SSQ = 3;
/** Doubles one moments record takes. */
export const MOMENT_FIELDS = 4;

/**
 * Adds a finite value to the moments record at `o` in `a`: Welford's update on halved deviations,
 * with the sum of squared deviations kept as scale² · ssq (scale: the largest half-deviation seen),
 * so nothing exceeds the double range. Equal to the textbook update up to rounding. `lo`/`hi`: the
 * smallest and largest value so far (this one included), which bound the mean.
 */
export function addMoment(a: Float64Array, o: number, v: number, lo: number, hi: number): void {
  const n = (a[o + MOMENT_N] as number) + 1;
  a[o + MOMENT_N] = n;
  if (n === 1) {
    a[o + MOMENT_MEAN] = v;
    return;
  }
  const m = a[o + MOMENT_MEAN] as number;
  // Half of v − mean: finite for any two finite doubles.
  const hd = v / 2 - m / 2;
  // mean += (v − mean)/n, as hd·(2/n) with 2/n ≤ 1 (n ≥ 2); kept inside [min, max].
  a[o + MOMENT_MEAN] = Math.min(hi, Math.max(lo, m + hd * (2 / n)));
  // m2 += (v − mean)·(v − mean') = 4·hd²·(n − 1)/n.
  const d = Math.abs(hd);
  if (d === 0) return;
  const w = (4 * (n - 1)) / n;
  const scale = a[o + MOMENT_SCALE] as number;
  if (d > scale) {
    const r = scale / d;
    a[o + MOMENT_SSQ] = (a[o + MOMENT_SSQ] as number) * r * r + w;
    a[o + MOMENT_SCALE] = d;
  } else {
    const r = d / scale;
    a[o + MOMENT_SSQ] = (a[o + MOMENT_SSQ] as number) + w * r * r;
  }
}

/** Population standard deviation of the moments record at `o` (0 below two values). */
export function momentStd(a: Float64Array, o: number): number {
  const n = a[o + MOMENT_N] as number;
  const scale = a[o + MOMENT_SCALE] as number;
  if (n < 2 || scale === 0) return 0;
  return Math.min(Number.MAX_VALUE, scale * Math.sqrt((a[o + MOMENT_SSQ] as number) / n));
}

/** Running mean and population variance of a stream of finite values, safe up to ±1.8e308. */
export class RunningMoments {
  private readonly a = new Float64Array(MOMENT_FIELDS);
  private lo = Infinity;
  private hi = -Infinity;

  /** Adds one finite value. */
  add(v: number): void {
    if (v < this.lo) this.lo = v;
    if (v > this.hi) this.hi = v;
    addMoment(this.a, 0, v, this.lo, this.hi);
  }

  /** Values added. */
  get n(): number {
    return this.a[MOMENT_N] as number;
  }

  /** Mean of the values (0 when there are none). */
  get mean(): number {
    return this.a[MOMENT_MEAN] as number;
  }

  /** Population standard deviation (numpy's default); 0 below two values. */
  get std(): number {
    return momentStd(this.a, 0);
  }
}

/**
 * Mean and population standard deviation of two groups pooled (counts `na`, `nb`): the weighted
 * means and the within- plus between-group variance, computed on scaled terms so that neither
 * squares nor products overflow.
 */
export function pooledMoments(
  na: number,
  meanA: number,
  stdA: number,
  nb: number,
  meanB: number,
  stdB: number,
): { mean: number; std: number } {
  const n = na + nb;
  if (!(n > 0)) return { mean: 0, std: 0 };
  const wa = na / n;
  const wb = nb / n;
  const lo = Math.min(meanA, meanB);
  const hi = Math.max(meanA, meanB);
  const mean = Math.min(hi, Math.max(lo, meanA * wa + meanB * wb));
  // Half-deviations of each mean from the pooled one, and half the stds: all finite.
  const terms = [stdA / 2, meanA / 2 - mean / 2, stdB / 2, meanB / 2 - mean / 2];
  const s = Math.max(...terms.map(Math.abs));
  if (s === 0) return { mean, std: 0 };
  const [sa, da, sb, db] = terms.map((t) => t / s) as [number, number, number, number];
  const v = wa * (sa * sa + da * da) + wb * (sb * sb + db * db);
  return { mean, std: Math.min(Number.MAX_VALUE, 2 * s * Math.sqrt(v)) };
}

/**
 * Power-of-two factor (1, or 1/2^k) by which the per-bin sums of `values` (binned by `bin`) times
 * `multiplier` all stay finite. A histogram's counts and sums scaled by the same factor give the
 * same shares, bin means and so drift statistics, which all normalise by the total count.
 */
export function safeSumScale(
  values: ArrayLike<number>,
  bins: number,
  bin: (v: number) => number,
  multiplier = 1,
): number {
  const sums = new Float64Array(bins);
  for (let i = 0; i < values.length; i++) {
    const v = values[i] as number;
    const b = bin(v);
    sums[b] = (sums[b] as number) + v;
  }
  if (sums.every((x) => Number.isFinite(x * multiplier))) return 1;
  // |sum · multiplier| ≤ count · multiplier · MAX: 2^-(⌈log2(count · multiplier)⌉ + 1) keeps it
  // at most MAX/2, and multiplying by a power of two is exact.
  return 2 ** -(Math.ceil(Math.log2(Math.max(2, values.length * multiplier))) + 1);
}
