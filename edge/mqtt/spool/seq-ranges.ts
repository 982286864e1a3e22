/** Most ranges kept; past it the two oldest merge (a loss inside them may then go uncounted). */
const MAX_RANGES = 1024;

/**
 * A set of seqs as sorted, disjoint, non-adjacent inclusive ranges: the seqs the spool has counted
 * as lost already, so that recovery never counts one twice. Hand-written: 60 lines, and the npm
 * interval-set packages found were unmaintained or keep every member.
 */
export class SeqRanges {
  private ranges: [number, number][] = [];

  /** Ranges read back from cursor.json; anything malformed is left out. */
  static from(value: unknown): SeqRanges {
    const set = new SeqRanges();
    if (!Array.isArray(value)) return set;
    for (const r of value.slice(0, MAX_RANGES)) {
      if (!Array.isArray(r) || r.length !== 2) continue;
      const [a, b] = r as unknown[];
      if (Number.isSafeInteger(a) && Number.isSafeInteger(b) && (a as number) <= (b as number))
        set.add(a as number, b as number);
    }
    return set;
  }

  /** Number of ranges. */
  get size(): number {
    return this.ranges.length;
  }

  /** Adds [lo, hi], merging with the ranges it touches. */
  add(lo: number, hi: number): void {
    if (hi < lo) return;
    const out: [number, number][] = [];
    let a = lo;
    let b = hi;
    let placed = false;
    for (const r of this.ranges) {
      if (r[1] < a - 1) out.push(r);
      else if (r[0] > b + 1) {
        if (!placed) out.push([a, b]);
        placed = true;
        out.push(r);
      } else {
        a = Math.min(a, r[0]);
        b = Math.max(b, r[1]);
      }
    }
    if (!placed) out.push([a, b]);
    while (out.length > MAX_RANGES) {
      const [first, second] = out as [[number, number], [number, number]];
      out.splice(0, 2, [first[0], second[1]]);
    }
    this.ranges = out;
  }

  /** True when every seq of [lo, hi] is in the set. */
  covers(lo: number, hi: number): boolean {
    if (hi < lo) return true;
    return this.ranges.some(([a, b]) => a <= lo && hi <= b);
  }

  /**
   * How many seqs of [lo, hi] are outside the set and not counted by `present(a, b)` (the seqs of
   * [a, b] held elsewhere).
   */
  countOutside(lo: number, hi: number, present: (a: number, b: number) => number): number {
    let n = 0;
    let from = lo;
    for (const [a, b] of this.ranges) {
      if (b < from) continue;
      if (a > hi) break;
      if (a > from) n += a - from - present(from, a - 1);
      from = b + 1;
      if (from > hi) return n;
    }
    if (from <= hi) n += hi - from + 1 - present(from, hi);
    return n;
  }

  /** Forgets the seqs below `seq`. */
  pruneBelow(seq: number): void {
    this.ranges = this.ranges.filter(([, b]) => b >= seq);
  }

  /** The ranges, for cursor.json. */
  toJSON(): [number, number][] {
    return this.ranges.map(([a, b]) => [a, b]);
  }
}
