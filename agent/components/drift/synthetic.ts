import type { ObservationRow } from './observations.js';

/** A seeded uniform generator in [0, 1) (mulberry32): synthetic streams are reproducible. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A normal generator N(mean, sd²) over a uniform one (Box–Muller). */
export function normalGenerator(random: () => number): (mean?: number, sd?: number) => number {
  return (mean = 0, sd = 1) => {
    const u = 1 - random();
    const v = random();
    return mean + sd * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  };
}

/** Picks a category by weight. */
export function categoryPicker(
  random: () => number,
  weights: Readonly<Record<string, number>>,
): () => string {
  const entries = Object.entries(weights);
  const total = entries.reduce((s, [, w]) => s + w, 0);
  return () => {
    let r = random() * total;
    for (const [value, w] of entries) {
      r -= w;
      if (r < 0) return value;
    }
    return entries[entries.length - 1]?.[0] ?? '';
  };
}

/** Shape of a synthetic stream: numeric features N(mean, sd²) and categorical features by weight. */
export interface SyntheticShape {
  readonly numeric?: Readonly<Record<string, { readonly mean: number; readonly sd: number }>>;
  readonly categorical?: Readonly<Record<string, Readonly<Record<string, number>>>>;
}

/** `count` rows of the given shape from a seed (for tests, benches and demos). */
export function syntheticRows(
  shape: SyntheticShape,
  count: number,
  seed: number,
): ObservationRow[] {
  const random = seededRandom(seed);
  const normal = normalGenerator(random);
  const numeric = Object.entries(shape.numeric ?? {});
  const categorical = Object.entries(shape.categorical ?? {}).map(
    ([name, weights]) => [name, categoryPicker(random, weights)] as const,
  );
  const rows: ObservationRow[] = [];
  for (let i = 0; i < count; i++) {
    const row: Record<string, number | string> = {};
    for (const [name, { mean, sd }] of numeric) row[name] = normal(mean, sd);
    for (const [name, pick] of categorical) row[name] = pick();
    rows.push(row);
  }
  return rows;
}
