import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import type * as Zod from 'zod';
import { pooledMoments } from './moments.js';

/** Value of `format` in every reference profile. */
export const PROFILE_FORMAT = 'gpulse.drift-profile';

/** Largest number of edges of a numeric feature (bins + 1). */
export const MAX_EDGES = 1025;

/** Largest number of categories kept for a categorical feature. */
export const MAX_CATEGORIES = 1024;

/**
 * The profile schemas, built on first use: zod (about 3 MB of heap) loads only on a device that
 * actually receives a reference profile, not on every agent with drift in `auto`.
 */
function buildSchemas(z: typeof Zod.z) {
  const zCount = z.number().finite().nonnegative();
  const zFinite = z.number().finite();

  /**
   * A numeric feature: fixed edges at reference quantiles (the first edge is the reference minimum,
   * the last its maximum), the count and the sum of the values in each bin. Bin 0 is below the first
   * edge, bin i holds [edges[i-1], edges[i]) (the last interior bin includes the maximum), and bin
   * `edges.length` is above the last edge. Summing two profiles' counts and sums merges them.
   */
  const numericFeatureSchema = z
    .object({
      kind: z.literal('numeric'),
      /** Non-null values. */
      count: zCount,
      nulls: zCount,
      mean: zFinite,
      /** Population standard deviation (numpy's default, as Evidently normalises with it). */
      std: zFinite.nonnegative(),
      min: zFinite,
      max: zFinite,
      edges: z.array(zFinite).min(2).max(MAX_EDGES),
      counts: z.array(zCount),
      sums: z.array(zFinite),
    })
    .strict()
    .superRefine((f, ctx) => {
      for (let i = 1; i < f.edges.length; i++) {
        if (!((f.edges[i] ?? NaN) > (f.edges[i - 1] ?? NaN))) {
          ctx.addIssue({
            code: 'custom',
            path: ['edges', i],
            message: 'edges must be strictly ascending',
          });
          return;
        }
      }
      const bins = f.edges.length + 1;
      if (f.counts.length !== bins) {
        ctx.addIssue({
          code: 'custom',
          path: ['counts'],
          message: `expected ${bins} counts (edges + 1, tails included), got ${f.counts.length}`,
        });
      }
      if (f.sums.length !== bins) {
        ctx.addIssue({
          code: 'custom',
          path: ['sums'],
          message: `expected ${bins} sums (edges + 1, tails included), got ${f.sums.length}`,
        });
      }
    });

  /** A categorical feature: the top reference categories with counts, the rest summed in `other`. */
  const categoricalFeatureSchema = z
    .object({
      kind: z.literal('categorical'),
      count: zCount,
      nulls: zCount,
      categories: z
        .array(z.object({ value: z.string().max(65_536), count: zCount }).strict())
        .max(MAX_CATEGORIES),
      other: zCount,
    })
    .strict()
    .superRefine((f, ctx) => {
      const seen = new Set<string>();
      for (const [i, c] of f.categories.entries()) {
        if (seen.has(c.value)) {
          ctx.addIssue({
            code: 'custom',
            path: ['categories', i, 'value'],
            message: `category ${JSON.stringify(c.value)} appears twice`,
          });
        }
        seen.add(c.value);
      }
    });

  /** One feature of a reference profile. */
  const featureProfileSchema = z.discriminatedUnion('kind', [
    numericFeatureSchema,
    categoricalFeatureSchema,
  ]);

  /**
   * A reference profile: the compact, mergeable summary of a model's reference data (not the rows).
   * Built by `gpulse drift profile`, `POST /api/v1/models/{model}/reference`, or warm-up; shipped
   * opaquely inside model manifests.
   */
  const referenceProfileSchema = z
    .object({
      format: z.literal(PROFILE_FORMAT),
      version: z.literal(1),
      /** Reference rows the profile summarises. */
      rows: zCount,
      model: z.string().max(128).optional(),
      createdAt: z.string().max(64).optional(),
      /** Where the rows came from (file name, `api`, `warmup`). */
      source: z.string().max(512).optional(),
      features: z.record(z.string().min(1).max(128), featureProfileSchema),
    })
    .strict();
  return {
    numeric: numericFeatureSchema,
    categorical: categoricalFeatureSchema,
    feature: featureProfileSchema,
    reference: referenceProfileSchema,
  };
}

type Schemas = ReturnType<typeof buildSchemas>;
let schemas: Schemas | undefined;

function profileSchemas(): Schemas {
  schemas ??= buildSchemas((createRequire(import.meta.url)('zod') as typeof Zod).z);
  return schemas;
}

/** A validated reference profile. */
export type ReferenceProfile = Zod.infer<Schemas['reference']>;
/** One feature of a reference profile. */
export type FeatureProfile = Zod.infer<Schemas['feature']>;
/** A numeric feature of a reference profile. */
export type NumericFeatureProfile = Zod.infer<Schemas['numeric']>;
/** A categorical feature of a reference profile. */
export type CategoricalFeatureProfile = Zod.infer<Schemas['categorical']>;

/** Thrown when a profile is malformed; `problems` carry the JSON path of each. */
export class ProfileError extends Error {
  readonly code = 'GPULSE_DRIFT_PROFILE_INVALID';
  constructor(
    message: string,
    readonly problems: readonly string[] = [],
  ) {
    super(problems.length > 0 ? `${message}: ${problems.join('; ')}` : message);
    this.name = 'ProfileError';
  }
}

/** Validates a reference profile (parsed JSON or JSON text); throws ProfileError with every problem. */
export function parseReferenceProfile(input: unknown): ReferenceProfile {
  let value = input;
  if (typeof input === 'string' || Buffer.isBuffer(input)) {
    try {
      value = JSON.parse(input.toString()) as unknown;
    } catch (err) {
      throw new ProfileError(`reference profile is not valid JSON (${(err as Error).message})`);
    }
  }
  const result = profileSchemas().reference.safeParse(value);
  if (!result.success) {
    const problems = result.error.issues.slice(0, 10).map((i) => {
      const path = i.path.map(String).join('.');
      return `${path || '(top level)'}: ${i.message}`;
    });
    throw new ProfileError('invalid reference profile', problems);
  }
  return result.data;
}

/** SHA-256 (hex) of a profile's JSON, to tell reference versions apart. */
export function profileSha256(profile: ReferenceProfile): string {
  return createHash('sha256').update(JSON.stringify(profile)).digest('hex');
}

/**
 * Bin of a value in a numeric feature's bins (see numericFeatureSchema): 0 below the first edge,
 * `edges.length` above the last, else the interior bin.
 */
export function binIndex(edges: ArrayLike<number>, value: number): number {
  const last = edges.length - 1;
  if (!(value >= (edges[0] as number))) return 0;
  const top = edges[last] as number;
  if (value > top) return last + 1;
  if (value === top) return last;
  // Invariant: edges[lo] <= value < edges[hi].
  let lo = 0;
  let hi = last;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if ((edges[mid] as number) <= value) lo = mid;
    else hi = mid;
  }
  return lo + 1;
}

/**
 * Merges two profiles of the same features (e.g. several sites' reference data): numeric features
 * must share their edges; categories are summed, those outside a profile's top list stay in `other`.
 */
export function mergeProfiles(a: ReferenceProfile, b: ReferenceProfile): ReferenceProfile {
  const features: Record<string, FeatureProfile> = {};
  const names = new Set([...Object.keys(a.features), ...Object.keys(b.features)]);
  for (const name of names) {
    const fa = a.features[name];
    const fb = b.features[name];
    if (!fa || !fb) {
      throw new ProfileError(
        `cannot merge: feature ${JSON.stringify(name)} is in only one profile`,
      );
    }
    features[name] = mergeFeature(name, fa, fb);
  }
  return {
    format: PROFILE_FORMAT,
    version: 1,
    rows: a.rows + b.rows,
    ...(a.model !== undefined ? { model: a.model } : {}),
    createdAt: new Date().toISOString(),
    source: 'merge',
    features,
  };
}

/** log2 of the fraction of its count a numeric histogram is kept at: 0 unless it was scaled down. */
function histogramExponent(f: NumericFeatureProfile): number {
  const total = f.counts.reduce((n, c) => n + c, 0);
  if (!(f.count > 0) || !(total > 0)) return 0;
  return Math.round(Math.log2(total / f.count));
}

function mergeFeature(name: string, a: FeatureProfile, b: FeatureProfile): FeatureProfile {
  if (a.kind === 'numeric' && b.kind === 'numeric') {
    const same = a.edges.length === b.edges.length && a.edges.every((e, i) => e === b.edges[i]);
    if (!same) {
      throw new ProfileError(
        `cannot merge: numeric feature ${JSON.stringify(name)} has different edges in the two profiles (build both with the same edges)`,
      );
    }
    const count = a.count + b.count;
    const { mean, std } = pooledMoments(a.count, a.mean, a.std, b.count, b.mean, b.std);
    // A histogram may be kept at a power-of-two fraction of its count (values near ±1.8e308; see
    // safeSumScale): bring both to the smaller fraction, then halve until every sum is finite.
    const ka = histogramExponent(a);
    const kb = histogramExponent(b);
    const k = Math.min(ka, kb);
    let fa = 2 ** (k - ka);
    let fb = 2 ** (k - kb);
    const sumOf = (i: number) => (a.sums[i] ?? 0) * fa + (b.sums[i] ?? 0) * fb;
    while (!a.sums.every((_, i) => Number.isFinite(sumOf(i))) && fa > 0) {
      fa /= 2;
      fb /= 2;
    }
    return {
      kind: 'numeric',
      count,
      nulls: a.nulls + b.nulls,
      mean,
      std,
      min: Math.min(a.min, b.min),
      max: Math.max(a.max, b.max),
      edges: [...a.edges],
      counts: a.counts.map((c, i) => c * fa + (b.counts[i] ?? 0) * fb),
      sums: a.sums.map((_, i) => sumOf(i)),
    };
  }
  if (a.kind === 'categorical' && b.kind === 'categorical') {
    const counts = new Map<string, number>();
    for (const c of [...a.categories, ...b.categories])
      counts.set(c.value, (counts.get(c.value) ?? 0) + c.count);
    const keep = Math.max(a.categories.length, b.categories.length);
    const sorted = [...counts].sort((x, y) => y[1] - x[1] || (x[0] < y[0] ? -1 : 1));
    const top = sorted.slice(0, keep);
    const dropped = sorted.slice(keep).reduce((s, [, c]) => s + c, 0);
    return {
      kind: 'categorical',
      count: a.count + b.count,
      nulls: a.nulls + b.nulls,
      categories: top.map(([value, count]) => ({ value, count })),
      other: a.other + b.other + dropped,
    };
  }
  throw new ProfileError(
    `cannot merge: feature ${JSON.stringify(name)} is numeric in one profile and categorical in the other`,
  );
}
