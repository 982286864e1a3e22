import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeClock } from '../../core/clock.js';
import { EventLog } from '../../core/events.js';
import { silentLogger } from '../../../test/helpers/log-sink.js';
import { findPython, runPythonJson } from '../../../test/helpers/python.js';
import { describeWithTools, tools } from '../../../test/helpers/tools.js';
import { driftConfigSchema } from './config.js';
import { DriftMonitor, type FeatureResult } from './monitor.js';
import type { ObservationRow } from './observations.js';
import type { NumericFeatureProfile } from './profile.js';
import { ProfileBuilder } from './profile-builder.js';
import {
  chiSquareSurvival,
  chiSquareTest,
  jensenShannonDistance,
  kolmogorovSurvival,
  ksPValue,
  ksStatistic,
  populationStabilityIndex,
  wassersteinDistance,
  zTestPValue,
} from './statistics.js';
import { syntheticRows } from './synthetic.js';

describe('drift statistics on hand-checked values', () => {
  it('Jensen–Shannon distance is 0 for equal shares and √ln2 for disjoint ones', () => {
    expect(jensenShannonDistance([1, 2, 3], [2, 4, 6])).toBeCloseTo(0, 12);
    expect(jensenShannonDistance([5, 0], [0, 7])).toBeCloseTo(Math.sqrt(Math.LN2), 12);
  });

  it('PSI uses Evidently zero fill (0.0001) for empty bins', () => {
    // shares ref [0.5, 0.5, 0], cur [0.25, 0.25, 0.5]; the empty reference bin counts as 0.0001.
    const expected =
      2 * (0.5 - 0.25) * Math.log(0.5 / 0.25) + (0.0001 - 0.5) * Math.log(0.0001 / 0.5);
    expect(populationStabilityIndex([2, 2, 0], [1, 1, 2])).toBeCloseTo(expected, 12);
    expect(populationStabilityIndex([3, 3], [3, 3])).toBe(0);
  });

  it('chi-square upper tail matches the textbook critical values', () => {
    expect(chiSquareSurvival(3.841458820694124, 1)).toBeCloseTo(0.05, 10);
    expect(chiSquareSurvival(18.307038053275146, 10)).toBeCloseTo(0.05, 10);
    expect(chiSquareSurvival(Infinity, 3)).toBe(0);
    expect(chiSquareTest([10, 10, 0], [5, 5, 1]).pValue).toBe(0); // a category new to the window
  });

  it('Kolmogorov survival matches its table (Q(1.3581) = 0.05, Q(1.6276) = 0.01)', () => {
    expect(kolmogorovSurvival(1.3580986393225505)).toBeCloseTo(0.05, 6);
    expect(kolmogorovSurvival(1.6276236115189502)).toBeCloseTo(0.01, 6);
    expect(kolmogorovSurvival(0.1)).toBe(1);
    expect(ksPValue(NaN, 10, 10)).toBeNaN();
  });

  it('KS statistic and Wasserstein distance of identical histograms are 0', () => {
    const counts = [0, 5, 5, 0];
    const sums = [0, 2.5, 7.5, 0];
    expect(ksStatistic(counts, counts)).toBe(0);
    const s = { counts, sums, min: 0, max: 2 };
    expect(wassersteinDistance([0, 1, 2], s, s)).toBeCloseTo(0, 12);
  });

  it('Wasserstein distance of a point mass moved by 1 is 1', () => {
    // All reference values at 0.5 in bin [0, 1); all current values at 1.5 in bin [1, 2].
    const ref = { counts: [0, 4, 0, 0], sums: [0, 2, 0, 0], min: 0.5, max: 0.5 };
    const cur = { counts: [0, 0, 4, 0], sums: [0, 0, 6, 0], min: 1.5, max: 1.5 };
    expect(wassersteinDistance([0, 1, 2], ref, cur)).toBeCloseTo(1, 12);
  });

  it('Z-test p-value is 1 for one shared value and small for a swapped binary feature', () => {
    expect(zTestPValue([10, 0], [7, 0])).toBe(1);
    expect(zTestPValue([900, 100], [100, 900])).toBeLessThan(1e-12);
    expect(zTestPValue([1, 1, 1], [1, 1, 1])).toBeNaN();
  });
});

// ---- against scipy -------------------------------------------------------------------------

interface NumericCase {
  readonly name: string;
  readonly ref: ObservationRow[];
  readonly cur: ObservationRow[];
  /** What Evidently's rules say on the raw data (from scipy's values), checked below. */
  readonly method: 'ks' | 'wasserstein';
}

const N_BIG = 10_000;
const N_SMALL = 500;
const CUR = 5_000;

function numericCases(): NumericCase[] {
  const ref = syntheticRows({ numeric: { x: { mean: 0, sd: 1 } } }, N_BIG, 1);
  const small = syntheticRows({ numeric: { x: { mean: 0, sd: 1 } } }, N_SMALL, 2);
  const cur = (mean: number, sd: number, seed: number, n = CUR) =>
    syntheticRows({ numeric: { x: { mean, sd } } }, n, seed);
  return [
    { name: 'no-change', ref, cur: cur(0, 1, 11), method: 'wasserstein' },
    { name: 'mean-shift', ref, cur: cur(0.5, 1, 12), method: 'wasserstein' },
    { name: 'variance-change', ref, cur: cur(0, 1.5, 13), method: 'wasserstein' },
    { name: 'slight-shift', ref, cur: cur(0.05, 1, 14), method: 'wasserstein' },
    { name: 'small-ref-no-change', ref: small, cur: cur(0, 1, 15, 1000), method: 'ks' },
    { name: 'small-ref-mean-shift', ref: small, cur: cur(0.3, 1, 16, 1000), method: 'ks' },
  ];
}

interface CategoricalCase {
  readonly name: string;
  readonly ref: ObservationRow[];
  readonly cur: ObservationRow[];
  readonly method: 'chisquare' | 'jensenshannon' | 'z';
}

function categoricalCases(): CategoricalCase[] {
  const base = { a: 50, b: 30, c: 15, d: 5 };
  const swapped = { a: 5, b: 30, c: 15, d: 50 };
  const rows = (weights: Record<string, number>, n: number, seed: number) =>
    syntheticRows({ categorical: { c: weights } }, n, seed);
  return [
    {
      name: 'cat-no-change',
      ref: rows(base, N_BIG, 21),
      cur: rows(base, CUR, 22),
      method: 'jensenshannon',
    },
    {
      name: 'cat-swap',
      ref: rows(base, N_BIG, 21),
      cur: rows(swapped, CUR, 23),
      method: 'jensenshannon',
    },
    {
      name: 'cat-small-no-change',
      ref: rows(base, 800, 24),
      cur: rows(base, 1000, 25),
      method: 'chisquare',
    },
    {
      name: 'cat-small-swap',
      ref: rows(base, 800, 24),
      cur: rows(swapped, 1000, 26),
      method: 'chisquare',
    },
    {
      name: 'binary-small-no-change',
      ref: rows({ y: 70, n: 30 }, 600, 27),
      cur: rows({ y: 70, n: 30 }, 1000, 28),
      method: 'z',
    },
    {
      name: 'binary-small-swap',
      ref: rows({ y: 70, n: 30 }, 600, 27),
      cur: rows({ y: 50, n: 50 }, 1000, 29),
      method: 'z',
    },
  ];
}

/** Runs one case through the whole monitor: profile, window, three evaluations (hysteresis 3). */
function judge(ref: ObservationRow[], cur: ObservationRow[]) {
  const clock = new FakeClock(1_700_000_000_000);
  const log = silentLogger();
  const events = new EventLog({ clock, log });
  const config = driftConfigSchema.parse({ models: { m: {} } });
  const monitor = new DriftMonitor({ config, clock, log, events });
  const builder = new ProfileBuilder();
  for (const row of ref) builder.add(row);
  const profile = builder.build({ model: 'm' });
  expect(monitor.setReference('m', profile, 'api').ok).toBe(true);
  expect(monitor.ingest('m', cur, 'http').status).toBe('accepted');
  for (let i = 0; i < 3; i++) monitor.evaluate();
  const result = monitor.result('m')?.features[0] as FeatureResult;
  return { profile, result, events: events.list({ type: 'drift' }) };
}

const values = (rows: ObservationRow[], key: string) => rows.map((r) => r[key] as number);

describeWithTools('drift statistics against scipy', tools('python3'), () => {
  let dir = '';
  let python = '';
  const ours = new Map<string, ReturnType<typeof judge>>();
  let reference: Record<string, Record<string, number | number[]>> = {};

  beforeAll(() => {
    const found = findPython(['scipy', 'numpy']);
    if (!found) {
      throw new Error(
        'python3 cannot import scipy and numpy: apt-get install python3-scipy (Debian)',
      );
    }
    python = found;
    dir = mkdtempSync(join(tmpdir(), 'gpulse-drift-scipy-'));
    const cases: unknown[] = [];
    for (const c of numericCases()) {
      const run = judge(c.ref, c.cur);
      ours.set(c.name, run);
      const f = run.profile.features.x as NumericFeatureProfile;
      cases.push({
        name: c.name,
        kind: 'numeric',
        ref: values(c.ref, 'x'),
        cur: values(c.cur, 'x'),
        edges: f.edges,
        bins: 20,
        gpulse_d: run.result.scores.ks_statistic,
      });
    }
    for (const c of categoricalCases()) {
      const run = judge(c.ref, c.cur);
      ours.set(c.name, run);
      const f = run.profile.features.c;
      if (f?.kind !== 'categorical') throw new Error('expected a categorical feature');
      const index = new Map(f.categories.map((cat, i) => [cat.value, i]));
      const refCounts = [...f.categories.map((cat) => cat.count), f.other];
      const curCounts = new Array<number>(refCounts.length).fill(0);
      for (const row of c.cur) {
        const i = index.get(row.c as string) ?? refCounts.length - 1;
        curCounts[i] = (curCounts[i] ?? 0) + 1;
      }
      cases.push({
        name: c.name,
        kind: 'categorical',
        ref_counts: refCounts,
        cur_counts: curCounts,
      });
    }
    const input = join(dir, 'cases.json');
    writeFileSync(input, JSON.stringify(cases));
    const script = fileURLToPath(new URL('./scipy-reference.py', import.meta.url));
    reference = runPythonJson(python, script, [input]) as typeof reference;
  }, 120_000);

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const num = (name: string, key: string) => reference[name]?.[key] as number;

  it.each(numericCases().map((c) => [c.name, c] as const))(
    'numeric %s: edges, KS, Wasserstein, JS and PSI agree with scipy',
    (name, c) => {
      const { profile, result } = ours.get(name)!;
      const f = profile.features.x as NumericFeatureProfile;
      // Edges are numpy's linear quantiles of the reference (deduplicated: none repeat here).
      const q = reference[name]?.quantiles as number[];
      expect(f.edges).toHaveLength(q.length);
      f.edges.forEach((e, i) => expect(e).toBeCloseTo(q[i] as number, 9));
      expect(f.counts).toEqual(reference[name]?.ref_counts);
      // KS D on 20 quantile bins is a lower bound of the exact statistic: within 0.01.
      const d = result.scores.ks_statistic as number;
      expect(d).toBeLessThanOrEqual(num(name, 'ks_statistic') + 1e-12);
      expect(Math.abs(d - num(name, 'ks_statistic'))).toBeLessThan(0.01);
      // p-value of our D: within 2 % of scipy's kstwo.sf(D, round(n_e)) (or 0.002 absolute).
      const p = result.scores.ks as number;
      const sp = num(name, 'kstwo_at_gpulse_d');
      expect(Math.abs(p - sp)).toBeLessThanOrEqual(Math.max(0.02 * sp, 0.002));
      // Wasserstein from per-bin sums: within 0.003 + 1 % of scipy on the raw values with a
      // 10,000-row reference, 0.01 with 500 rows (25 per bin: CDFs cross inside bins more).
      const w = result.scores.wasserstein as number;
      const sw = num(name, 'wasserstein_normed');
      const tolerance = c.ref.length >= N_BIG ? 0.003 + 0.01 * sw : 0.01;
      expect(Math.abs(w - sw)).toBeLessThan(tolerance);
      // JS and PSI on the same bins: the same numbers up to rounding.
      expect(result.scores.jensenshannon).toBeCloseTo(num(name, 'jensenshannon'), 10);
      expect(result.scores.psi).toBeCloseTo(num(name, 'psi'), 10);
      // Verdict: Evidently's rule on scipy's raw-data value agrees with ours.
      expect(result.method).toBe(c.method);
      const expected =
        c.method === 'ks' ? num(name, 'ks_pvalue') <= 0.05 : num(name, 'wasserstein_normed') >= 0.1;
      expect(result.drift).toBe(expected);
      expect(result.detected).toBe(expected);
    },
  );

  it.each(categoricalCases().map((c) => [c.name, c] as const))(
    'categorical %s: chi-square, Z, JS and PSI agree with scipy',
    (name, c) => {
      const { result } = ours.get(name)!;
      expect(result.scores.jensenshannon).toBeCloseTo(num(name, 'jensenshannon'), 10);
      expect(result.scores.psi).toBeCloseTo(num(name, 'psi'), 10);
      const chi = num(name, 'chisquare_pvalue');
      expect(Math.abs((result.scores.chisquare as number) - chi)).toBeLessThanOrEqual(
        1e-9 * Math.max(chi, 1e-300) + 1e-15,
      );
      if (c.method === 'z') {
        expect(result.scores.z as number).toBeCloseTo(num(name, 'z_pvalue'), 9);
      }
      expect(result.method).toBe(c.method);
      const score = result.score as number;
      const expected =
        c.method === 'jensenshannon'
          ? num(name, 'jensenshannon') >= 0.1
          : num(name, c.method === 'z' ? 'z_pvalue' : 'chisquare_pvalue') <= 0.05;
      expect(result.drift).toBe(expected);
      expect(result.drift).toBe(name.includes('swap'));
      expect(Number.isFinite(score)).toBe(true);
    },
  );

  it('gives the expected verdict for every known shift, and drift.start only for shifts', () => {
    const shifted = new Set(['mean-shift', 'variance-change', 'small-ref-mean-shift']);
    for (const c of numericCases()) {
      const run = ours.get(c.name)!;
      expect(run.result.detected, c.name).toBe(shifted.has(c.name));
      const starts = run.events.filter((e) => e.type === 'drift.start');
      expect(starts.length > 0, c.name).toBe(shifted.has(c.name));
    }
  });
});
