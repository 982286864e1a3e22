import { describe, expect, it } from 'vitest';
import {
  binIndex,
  mergeProfiles,
  parseReferenceProfile,
  profileSha256,
  ProfileError,
  type NumericFeatureProfile,
  type ReferenceProfile,
} from './profile.js';
import { ProfileBuilder, ProfileBuildError, quantileSorted } from './profile-builder.js';
import { normalGenerator, seededRandom, syntheticRows } from './synthetic.js';

function build(rows: Record<string, unknown>[], options = {}): ReferenceProfile {
  const builder = new ProfileBuilder(options);
  for (const row of rows) builder.add(row as Record<string, number | string | null>);
  return builder.build({ createdAt: '2026-01-01T00:00:00.000Z' });
}

function numeric(p: ReferenceProfile, name: string): NumericFeatureProfile {
  const f = p.features[name];
  if (f?.kind !== 'numeric') throw new Error(`${name} is not numeric`);
  return f;
}

describe('binIndex', () => {
  const edges = [0, 1, 2, 3];
  it.each([
    [-0.5, 0],
    [0, 1],
    [0.99, 1],
    [1, 2],
    [2.5, 3],
    [3, 3], // the maximum belongs to the last interior bin
    [3.01, 4],
  ])('puts %d in bin %d', (value, bin) => {
    expect(binIndex(edges, value)).toBe(bin);
  });
});

describe('ProfileBuilder', () => {
  it('puts numeric edges at the linear quantiles with min and max as the outer edges', () => {
    const rows = Array.from({ length: 101 }, (_, i) => ({ x: i }));
    const f = numeric(build(rows, { bins: 4 }), 'x');
    expect(f.edges).toEqual([0, 25, 50, 75, 100]);
    // [0,25) [25,50) [50,75) [75,100]: 25, 25, 25, 26 values; the tails are empty.
    expect(f.counts).toEqual([0, 25, 25, 25, 26, 0]);
    expect(f.sums.reduce((a, b) => a + b, 0)).toBe(5050);
    expect(f).toMatchObject({ count: 101, nulls: 0, min: 0, max: 100, mean: 50 });
    expect(f.std).toBeCloseTo(Math.sqrt(850), 10); // population std of 0..100
    expect(quantileSorted([1, 2, 3, 4], 0.5)).toBe(2.5);
  });

  it('counts missing keys and explicit nulls as nulls', () => {
    const p = build([{ x: 1, y: 'a' }, { x: null }, { y: 'b' }, { x: 2, y: null }, { x: 3, z: 1 }]);
    expect(p.rows).toBe(5);
    expect(p.features.x).toMatchObject({ count: 3, nulls: 2 });
    expect(p.features.y).toMatchObject({ kind: 'categorical', count: 2, nulls: 3 });
    // z seen once: a numeric feature with one distinct value is categorical.
    expect(p.features.z).toMatchObject({ kind: 'categorical', count: 1, nulls: 4 });
  });

  it('treats strings, booleans, forced columns and ≤ 5 distinct numbers as categories', () => {
    const rows = Array.from({ length: 60 }, (_, i) => ({
      level: i % 5,
      ok: i % 3 === 0,
      code: 1000 + i,
      name: `n${i % 40}`,
    }));
    const p = build(rows, { categorical: ['code'], topK: 32 });
    expect(p.features.level).toMatchObject({ kind: 'categorical', other: 0 });
    expect(p.features.ok).toMatchObject({
      kind: 'categorical',
      categories: [
        { value: 'false', count: 40 },
        { value: 'true', count: 20 },
      ],
    });
    expect(p.features.code?.kind).toBe('categorical');
    const name = p.features.name;
    if (name?.kind !== 'categorical') throw new Error('name should be categorical');
    expect(name.categories).toHaveLength(32);
    expect(name.other).toBe(60 - name.categories.reduce((s, c) => s + c.count, 0));
    // Ties in count are ordered by value, so profiles are reproducible.
    expect(name.categories[0]).toEqual({ value: 'n0', count: 2 });
  });

  it('estimates bins from a uniform sample beyond sampleRows, scaled to every value', () => {
    const rows = syntheticRows({ numeric: { x: { mean: 5, sd: 2 } } }, 50_000, 9);
    const exact = numeric(build(rows), 'x');
    const sampled = numeric(build(rows, { sampleRows: 5000 }), 'x');
    expect(sampled.count).toBe(50_000);
    expect(sampled.counts.reduce((a, b) => a + b, 0)).toBeCloseTo(50_000, 6);
    expect(sampled.mean).toBeCloseTo(exact.mean, 10); // running statistics see every value
    expect(sampled.min).toBe(exact.min);
    for (let i = 1; i < exact.edges.length - 1; i++) {
      expect(Math.abs((sampled.edges[i] ?? 0) - (exact.edges[i] ?? 0))).toBeLessThan(0.12);
    }
  });

  it('counts strings beyond maxDistinct as other', () => {
    const rows = Array.from({ length: 100 }, (_, i) => ({ id: `u${i}` }));
    const p = build(rows, { maxDistinct: 10, topK: 5 });
    expect(p.features.id).toMatchObject({ kind: 'categorical', count: 100, other: 95 });
  });

  it('refuses rows beyond maxFeatures and input without values', () => {
    const builder = new ProfileBuilder({ maxFeatures: 2 });
    expect(() => builder.add({ a: 1, b: 2, c: 3 })).toThrow(ProfileBuildError);
    expect(() => new ProfileBuilder().build()).toThrow('no rows');
    const empty = new ProfileBuilder();
    empty.add({ a: null });
    expect(() => empty.build()).toThrow('every feature is null');
  });

  it('leaves out excluded features', () => {
    const p = build(
      [
        { id: 1, x: 1 },
        { id: 2, x: 2 },
      ],
      { exclude: ['id'] },
    );
    expect(Object.keys(p.features)).toEqual(['x']);
  });
});

describe('parseReferenceProfile', () => {
  const good = () =>
    JSON.parse(
      JSON.stringify(build(syntheticRows({ numeric: { x: { mean: 0, sd: 1 } } }, 500, 1))),
    ) as Record<string, unknown> & { features: { x: Record<string, unknown> } };

  it('accepts what the builder writes (text, bytes or parsed) and hashes it stably', () => {
    const p = good();
    const a = parseReferenceProfile(JSON.stringify(p));
    const b = parseReferenceProfile(Buffer.from(JSON.stringify(p)));
    expect(profileSha256(a)).toBe(profileSha256(b));
    expect(profileSha256(a)).toMatch(/^[0-9a-f]{64}$/);
  });

  it.each([
    ['format', (p: ReturnType<typeof good>) => (p.format = 'other'), 'format:'],
    [
      'unsorted edges',
      (p: ReturnType<typeof good>) => (p.features.x.edges = [1, 0, 2]),
      'features.x.edges.1: edges must be strictly ascending',
    ],
    [
      'short counts',
      (p: ReturnType<typeof good>) => (p.features.x.counts = [1]),
      'features.x.counts: expected 22 counts',
    ],
    [
      'negative count',
      (p: ReturnType<typeof good>) => (p.features.x.count = -1),
      'features.x.count',
    ],
    ['unknown key', (p: ReturnType<typeof good>) => (p.extra = 1), 'extra'],
  ])('rejects a profile with %s, naming the path', (_name, mutate, message) => {
    const p = good();
    mutate(p);
    expect(() => parseReferenceProfile(p)).toThrow(ProfileError);
    expect(() => parseReferenceProfile(p)).toThrow(message);
  });

  it('rejects text that is not JSON', () => {
    expect(() => parseReferenceProfile('{')).toThrow('not valid JSON');
  });
});

describe('mergeProfiles', () => {
  it('adds counts of profiles with the same edges and pools mean and std', () => {
    const rows = syntheticRows(
      { numeric: { x: { mean: 3, sd: 2 } }, categorical: { c: { a: 2, b: 1 } } },
      2000,
      4,
    );
    const a = build(rows);
    const merged = mergeProfiles(a, a);
    const fa = numeric(a, 'x');
    const fm = numeric(merged, 'x');
    expect(merged.rows).toBe(4000);
    expect(fm.counts).toEqual(fa.counts.map((c) => c * 2));
    expect(fm.mean).toBeCloseTo(fa.mean, 12);
    expect(fm.std).toBeCloseTo(fa.std, 12);
    expect(merged.features.c).toMatchObject({ count: 4000 });
    expect(parseReferenceProfile(merged)).toBeTruthy();
  });

  it('refuses profiles whose numeric edges differ', () => {
    const a = build(syntheticRows({ numeric: { x: { mean: 0, sd: 1 } } }, 500, 1));
    const b = build(syntheticRows({ numeric: { x: { mean: 0, sd: 1 } } }, 500, 2));
    expect(() => mergeProfiles(a, b)).toThrow('different edges');
  });
});

describe('profiles of values near the limits of a double', () => {
  const BIG = 1.7e308;

  it('keep mean, std, edges and sums finite and pass the schema (they were null)', () => {
    // Half at +1.7e308, half at −1.7e308, and a spread in between.
    const rows = Array.from({ length: 2000 }, (_, i) => ({
      x: i % 4 === 0 ? BIG : i % 4 === 1 ? -BIG : (i - 1000) * 1e305,
    }));
    const p = parseReferenceProfile(JSON.parse(JSON.stringify(build(rows))));
    const f = numeric(p, 'x');
    expect(f.min).toBe(-BIG);
    expect(f.max).toBe(BIG);
    // The exact mean is 1e302 (the spread's own mean), far below the ±1.7e308 of either half.
    expect(Math.abs(f.mean)).toBeLessThan(1e306);
    // Population std: half the values at |1.7e308|, the rest spread within ±1e308.
    expect(f.std).toBeGreaterThan(1.2e308);
    expect(f.std).toBeLessThan(1.7e308);
    expect([...f.edges, ...f.sums, ...f.counts].every(Number.isFinite)).toBe(true);
    // The histogram is kept at a power-of-two fraction: its bin means are the data's.
    const total = f.counts.reduce((a, b) => a + b, 0);
    expect(Math.log2(f.count / total) % 1).toBe(0);
    const top = f.counts.length - 2; // the last interior bin holds the maximum
    expect((f.sums[top] as number) / (f.counts[top] as number)).toBeGreaterThan(0);
  });

  it('agree with the textbook formulas wherever those do not overflow', () => {
    const normal = normalGenerator(seededRandom(7));
    const xs = Array.from({ length: 5000 }, () => normal(3, 2));
    const f = numeric(build(xs.map((a) => ({ a }))), 'a');
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    const std = Math.sqrt(xs.reduce((s, x) => s + (x - mean) ** 2, 0) / xs.length);
    expect(f.mean).toBeCloseTo(mean, 12);
    expect(f.std).toBeCloseTo(std, 12);
  });

  it('merge without overflow, into a profile that passes the schema', () => {
    const rows = Array.from({ length: 400 }, (_, i) => ({
      x: i % 4 === 0 ? BIG : i % 4 === 1 ? -BIG : (i - 200) * 1e305,
    }));
    const a = build(rows);
    const merged = mergeProfiles(a, a);
    const f = numeric(parseReferenceProfile(JSON.parse(JSON.stringify(merged))), 'x');
    expect(f.count).toBe(800);
    expect(f.mean).toBe(numeric(a, 'x').mean);
    expect(f.std / 1e308).toBeCloseTo(numeric(a, 'x').std / 1e308, 12);
    expect(quantileSorted([-BIG, BIG], 0.5)).toBe(0);
  });
});
