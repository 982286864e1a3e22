import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../core/clock.js';
import { EventLog } from '../../core/events.js';
import { silentLogger } from '../../../test/helpers/log-sink.js';
import { driftConfigSchema } from './config.js';
import { DriftMonitor, type FeatureResult } from './monitor.js';
import type { ObservationRow } from './observations.js';
import { ProfileBuilder } from './profile-builder.js';
import { syntheticRows, type SyntheticShape } from './synthetic.js';

const MINUTE = 60_000;

function setup(raw: Record<string, unknown> = {}) {
  const clock = new FakeClock(1_700_000_000_000);
  const log = silentLogger();
  const events = new EventLog({ clock, log, capacity: 100_000 });
  const config = driftConfigSchema.parse(raw);
  const monitor = new DriftMonitor({ config, clock, log, events });
  return { clock, events, monitor };
}

function profileOf(rows: readonly ObservationRow[]) {
  const builder = new ProfileBuilder();
  for (const row of rows) builder.add(row);
  return builder.build();
}

function feature(monitor: DriftMonitor, model: string, name: string): FeatureResult {
  const f = monitor.result(model)?.features.find((r) => r.feature === name);
  if (!f) throw new Error(`no result for ${name}`);
  return f;
}

const BASE: SyntheticShape = {
  numeric: { a: { mean: 0, sd: 1 }, b: { mean: 10, sd: 2 } },
  categorical: { c: { x: 60, y: 30, z: 10 } },
};

describe('drift window memory', () => {
  it('keeps each feature state the same size as traffic grows (counted, not RSS)', async () => {
    const { clock, monitor } = setup();
    monitor.setReference('m', profileOf(syntheticRows(BASE, 5000, 1)), 'api');
    monitor.ingest('m', syntheticRows(BASE, 1000, 2), 'http');
    const small = monitor.footprint('m');
    // 100x the traffic over 3 hours, with values far outside the reference and new categories.
    let seed = 3;
    for (let minute = 0; minute < 180; minute++) {
      const rows = syntheticRows(BASE, 500, seed++).map((r, i) => ({
        ...r,
        a: (r.a as number) * 1000,
        c: `new-${minute}-${i}`,
      }));
      monitor.ingest('m', rows, 'http');
      await clock.advance(MINUTE);
    }
    const large = monitor.footprint('m');
    expect(large).toEqual(small);
    // 12 buckets × 22 bins (20 + 2 tails) × (count + sum) × 8 B, 12 × 9 scalars × 8 B, 21 edges.
    expect(small.get('a')).toEqual({
      buckets: 12,
      binsPerBucket: 22,
      bytes: 12 * 22 * 16 + 864 + 168,
    });
    // 3 categories + other; the index holds the reference's 3 names only.
    expect(small.get('c')).toMatchObject({ buckets: 12, binsPerBucket: 4 });
  });

  it('drops buckets older than the window', async () => {
    const { clock, monitor } = setup({ window: { buckets: 3, bucketPeriod: '1m' } });
    monitor.setReference('m', profileOf(syntheticRows(BASE, 2000, 1)), 'api');
    monitor.ingest('m', syntheticRows(BASE, 100, 2), 'http');
    await clock.advance(MINUTE);
    monitor.ingest('m', syntheticRows(BASE, 10, 3), 'http');
    expect(monitor.result('m')?.window.rows).toBe(110);
    await clock.advance(2 * MINUTE);
    expect(monitor.result('m')?.window.rows).toBe(10);
    await clock.advance(MINUTE);
    expect(monitor.result('m')?.window.rows).toBe(0);
  });
});

describe('drift hysteresis', () => {
  const shifted: SyntheticShape = { numeric: { a: { mean: 1, sd: 1 } } };
  const clean: SyntheticShape = { numeric: { a: { mean: 0, sd: 1 } } };

  it('does not flap on one noisy window: 3 drifting evaluations start drift, 3 clean ones end it', async () => {
    // One one-minute bucket: every evaluation sees only the last minute.
    const { clock, events, monitor } = setup({ window: { buckets: 1, bucketPeriod: '1m' } });
    monitor.setReference('m', profileOf(syntheticRows(clean, 5000, 1)), 'api');
    const minute = async (shape: SyntheticShape, seed: number) => {
      monitor.ingest('m', syntheticRows(shape, 400, seed), 'http');
      monitor.evaluate();
      await clock.advance(MINUTE);
      return feature(monitor, 'm', 'a');
    };
    const drift = (shape: SyntheticShape) => (shape === shifted ? 'D' : '.');
    const pattern = [shifted, clean, shifted, shifted, clean, shifted, shifted, shifted];
    const seen: string[] = [];
    for (const [i, shape] of pattern.entries()) {
      const r = await minute(shape, 10 + i);
      expect(r.drift).toBe(shape === shifted);
      seen.push(`${drift(shape)}${r.detected ? '1' : '0'}`);
    }
    expect(seen).toEqual(['D0', '.0', 'D0', 'D0', '.0', 'D0', 'D0', 'D1']);
    const featureEvents = (type: string) =>
      events.list({ type }).filter((e) => e.labels.scope === 'feature');
    expect(featureEvents('drift.start')).toHaveLength(1);
    // Clean again: two clean evaluations keep it, the third ends it.
    const clearing = [clean, clean, shifted, clean, clean, clean];
    const after: boolean[] = [];
    for (const [i, shape] of clearing.entries()) after.push((await minute(shape, 50 + i)).detected);
    expect(after).toEqual([true, true, true, true, true, false]);
    expect(featureEvents('drift.end')).toHaveLength(1);
  });

  it('waits for minSamples before judging and keeps the verdict meanwhile', () => {
    const { monitor } = setup({ minSamples: 500 });
    monitor.setReference('m', profileOf(syntheticRows(clean, 5000, 1)), 'api');
    monitor.ingest('m', syntheticRows(shifted, 499, 2), 'http');
    monitor.evaluate();
    const r = feature(monitor, 'm', 'a');
    expect(r.status).toBe('insufficient_data');
    expect(r.score).toBeUndefined();
    expect(r.detected).toBe(false);
    expect(monitor.samples().some((s) => s.desc.name === 'gpulse_drift_score')).toBe(false);
    monitor.ingest('m', syntheticRows(shifted, 1, 3), 'http');
    monitor.evaluate();
    expect(feature(monitor, 'm', 'a')).toMatchObject({ status: 'ok', drift: true });
  });
});

describe('drift thresholds and methods per model and feature', () => {
  it('applies model thresholds, feature methods, thresholds and ignore', () => {
    const { monitor } = setup({
      models: {
        m: {
          thresholds: { wasserstein: 0.6 },
          features: {
            b: { method: 'psi', threshold: 0.05 },
            c: { method: 'ks' },
            id: { mode: 'ignore' },
          },
        },
      },
    });
    const ref = syntheticRows(BASE, 5000, 1).map((r, i) => ({ ...r, id: i }));
    monitor.setReference('m', profileOf(ref), 'file');
    const cur = syntheticRows(
      { ...BASE, numeric: { a: { mean: 0.5, sd: 1 }, b: { mean: 10.6, sd: 2 } } },
      2000,
      2,
    );
    monitor.ingest('m', cur, 'http');
    monitor.evaluate();
    const a = feature(monitor, 'm', 'a');
    expect(a).toMatchObject({ method: 'wasserstein', threshold: 0.6, drift: false });
    expect(a.score).toBeGreaterThan(0.4);
    const b = feature(monitor, 'm', 'b');
    expect(b).toMatchObject({ method: 'psi', threshold: 0.05, drift: true });
    const c = feature(monitor, 'm', 'c');
    expect(c.method).toBe('jensenshannon');
    expect(c.methodNote).toContain('ks does not apply to this categorical feature');
    expect(monitor.result('m')?.features.map((f) => f.feature)).toEqual(['a', 'b', 'c']);
    expect(monitor.samples().filter((s) => s.labels.feature === 'id')).toEqual([]);
  });

  it('switches to p-value tests for references of at most smallReference rows', () => {
    const { monitor } = setup();
    const shape: SyntheticShape = {
      numeric: { a: { mean: 0, sd: 1 } },
      categorical: { c: { x: 60, y: 30, z: 10 }, flag: { yes: 70, no: 30 } },
    };
    monitor.setReference('m', profileOf(syntheticRows(shape, 1000, 1)), 'api');
    monitor.ingest('m', syntheticRows(shape, 500, 2), 'http');
    monitor.evaluate();
    expect(feature(monitor, 'm', 'a').method).toBe('ks');
    expect(feature(monitor, 'm', 'c').method).toBe('chisquare');
    expect(feature(monitor, 'm', 'flag').method).toBe('z');
    monitor.setReference('m', profileOf(syntheticRows(shape, 1001, 1)), 'api');
    monitor.ingest('m', syntheticRows(shape, 500, 2), 'http');
    monitor.evaluate();
    expect(feature(monitor, 'm', 'a').method).toBe('wasserstein');
    expect(feature(monitor, 'm', 'flag').method).toBe('jensenshannon');
  });
});

describe('dataset drift and reference changes', () => {
  it('raises dataset drift when at least half the features drift, and ends it on a new reference', () => {
    const { events, monitor } = setup({ hysteresis: { raise: 1, clear: 1 } });
    monitor.setReference('m', profileOf(syntheticRows(BASE, 5000, 1)), 'api');
    const cur = syntheticRows(
      { ...BASE, numeric: { a: { mean: 1, sd: 1 }, b: { mean: 14, sd: 2 } } },
      1000,
      2,
    );
    monitor.ingest('m', cur, 'http');
    monitor.evaluate();
    expect(monitor.result('m')?.dataset).toMatchObject({
      share: 2 / 3,
      detected: true,
      drifting: ['a', 'b'],
      judged: 3,
    });
    const start = events.list({ type: 'drift.start' }).find((e) => e.labels.scope === 'dataset');
    expect(start?.labels).toEqual({ model: 'm', scope: 'dataset' });
    const names = (samples: ReturnType<DriftMonitor['samples']>, name: string) =>
      samples.filter((s) => s.desc.name === name).map((s) => s.value);
    expect(names(monitor.samples(), 'gpulse_drift_dataset_detected')).toEqual([1]);

    monitor.setReference('m', profileOf(syntheticRows(BASE, 5000, 3)), 'manifest');
    const ends = events.list({ type: 'drift.end' });
    expect(ends.map((e) => e.labels.feature ?? 'dataset').sort()).toEqual(['a', 'b', 'dataset']);
    expect(ends.every((e) => String(e.message).includes('reference profile was replaced'))).toBe(
      true,
    );
    expect(monitor.result('m')?.window.rows).toBe(0);
    expect(monitor.result('m')?.reference?.source).toBe('manifest');
  });

  it('refuses references beyond the model and feature limits', () => {
    const { monitor } = setup({ limits: { models: 1, features: 2 } });
    expect(monitor.setReference('m', profileOf(syntheticRows(BASE, 100, 1)), 'api')).toMatchObject({
      ok: false,
      error: expect.stringContaining(
        'the profile has 3 features; drift.limits.features allows 2',
      ) as unknown,
    });
    const two = profileOf(syntheticRows({ numeric: BASE.numeric }, 100, 1));
    expect(monitor.setReference('m', two, 'api').ok).toBe(true);
    expect(monitor.setReference('n', two, 'api')).toMatchObject({
      ok: false,
      error: expect.stringContaining('1 models are tracked already') as unknown,
    });
    expect(monitor.setReference('bad name', two, 'api').ok).toBe(false);
  });

  it('counts unknown features and type mismatches without failing the rows', () => {
    const { monitor } = setup();
    monitor.setReference('m', profileOf(syntheticRows(BASE, 500, 1)), 'api');
    const result = monitor.ingest(
      'm',
      [{ a: 1, b: 'text', c: 'x', extra: 5 }, { a: null }],
      'mqtt',
    );
    expect(result).toMatchObject({
      status: 'accepted',
      rows: 2,
      values: 3,
      unknownFeatures: 1,
      typeMismatches: 1,
    });
    const rejected = monitor
      .samples()
      .filter((s) => s.desc.name === 'gpulse_drift_rejected_total')
      .map((s) => [s.labels.reason, s.value]);
    expect(rejected).toEqual([
      ['unknown_feature', 1],
      ['type_mismatch', 1],
    ]);
  });
});

describe('false alarms on a stream without drift', () => {
  // Simulated day, one evaluation a minute; the rates are printed in the bench note, not timed.
  async function day(
    refRows: number,
    features: number,
    rowsPerMinute: number,
    bucketPeriod: string,
  ) {
    const numeric: Record<string, { mean: number; sd: number }> = {};
    for (let i = 0; i < features; i++) numeric[`f${i}`] = { mean: i, sd: 1 + i / 10 };
    const shape: SyntheticShape = { numeric, categorical: { c: { x: 50, y: 30, z: 20 } } };
    const { clock, events, monitor } = setup({ window: { buckets: 12, bucketPeriod } });
    monitor.setReference('m', profileOf(syntheticRows(shape, refRows, 7)), 'api');
    let raw = 0;
    let judged = 0;
    let seed = 1000;
    for (let minute = 0; minute < 24 * 60; minute++) {
      monitor.ingest('m', syntheticRows(shape, rowsPerMinute, seed++), 'http');
      monitor.evaluate();
      for (const f of monitor.result('m')?.features ?? []) {
        if (f.status !== 'ok') continue;
        judged++;
        if (f.drift) raw++;
      }
      await clock.advance(MINUTE);
    }
    const starts = events.list({ type: 'drift.start' });
    return { raw, judged, starts };
  }

  it(
    'raises no alert over a day with a 10,000-row reference (Wasserstein and Jensen–Shannon)',
    { timeout: 180_000 },
    async () => {
      // Measured: 2 drifting verdicts in 15,840 (0.013 %, in the first minutes' small windows), 0 alerts.
      const { raw, judged, starts } = await day(10_000, 10, 300, '5m');
      expect(judged).toBeGreaterThan(11 * 23 * 60);
      expect(raw / judged).toBeLessThan(0.001);
      expect(starts).toEqual([]);
    },
  );

  // A simulated day of 41 features: CPU-bound, so a loaded machine needs more than the default.
  it(
    'keeps p-value verdicts at the 5 % level with a 500-row reference (KS, chi-square)',
    { timeout: 180_000 },
    async () => {
      // 40 numeric features and one categorical, each judged against its own 500-row reference
      // sample. Measured: 8.4 % drifting verdicts; 84 feature alerts on 10 of 41 features a day and
      // no dataset alert. Overlapping windows against one fixed small sample repeat the same test,
      // so hysteresis cannot remove these: the README recommends references above 1000 rows.
      const { raw, judged, starts } = await day(500, 40, 100, '5m');
      const rate = raw / judged;
      expect(rate).toBeGreaterThan(0.02);
      expect(rate).toBeLessThan(0.12);
      expect(starts.filter((e) => e.labels.scope === 'dataset')).toEqual([]);
    },
  );
});
