import { describe, expect, it } from 'vitest';
import { hash32, laggedMean, smoothNoise, trainingCurve, trainingLoad } from './load-curve.js';

const T0 = Date.UTC(2026, 6, 14, 8, 0, 0);

describe('hash32', () => {
  it('is stable and spreads neighbouring inputs', () => {
    expect(hash32('seed', 1)).toBe(hash32('seed', 1));
    expect(hash32('seed', 1)).not.toBe(hash32('seed', 2));
    expect(hash32(1, 23)).not.toBe(hash32(12, 3));
  });
});

describe('smoothNoise', () => {
  it('stays in [-1, 1] and moves little between close samples', () => {
    for (let x = 0; x < 50; x += 0.05) {
      const v = smoothNoise(7, 'c', x);
      expect(Math.abs(v)).toBeLessThanOrEqual(1);
      expect(Math.abs(smoothNoise(7, 'c', x + 0.01) - v)).toBeLessThan(0.1);
    }
  });
});

describe('trainingLoad', () => {
  it('gives the same value for the same instant, seed and GPU (separate processes agree)', () => {
    expect(trainingLoad(T0 + 12_345, 1, 3)).toBe(trainingLoad(T0 + 12_345, 1, 3));
  });

  it('is busy most of the period and dips once per period', () => {
    const curve = trainingCurve(1, 0);
    const samples: number[] = [];
    for (let t = 0; t < curve.periodMs; t += 500) samples.push(trainingLoad(T0 + t, 1, 0));
    const busy = samples.filter((v) => v > 0.85).length / samples.length;
    expect(busy).toBeGreaterThan(0.8);
    expect(Math.min(...samples)).toBeLessThan(0.35);
    expect(Math.max(...samples)).toBeLessThanOrEqual(1);
    expect(Math.min(...samples)).toBeGreaterThanOrEqual(0);
  });

  it('repeats with the period', () => {
    const { periodMs } = trainingCurve(5, 2);
    // The jitter noise is not periodic, but the dip is: compare the dip floor position.
    const dipAt = (base: number): number => {
      let best = base;
      for (let t = base; t < base + periodMs; t += 250) {
        if (trainingLoad(t, 5, 2) < trainingLoad(best, 5, 2)) best = t;
      }
      return best - base;
    };
    expect(Math.abs(dipAt(T0) - dipAt(T0 + periodMs))).toBeLessThanOrEqual(250);
  });

  it('offsets ranks by at most 3 s and differs between seeds', () => {
    const offsets = [0, 1, 2, 3, 4, 5, 6, 7].map((g) => trainingCurve(9, g).phaseOffsetMs);
    expect(new Set(offsets).size).toBeGreaterThan(1);
    for (const o of offsets) expect(o).toBeLessThan(3000);
    expect(trainingCurve(1, 0).periodMs).not.toBe(trainingCurve(2, 0).periodMs);
  });
});

describe('laggedMean', () => {
  it('lags a step: rises only gradually after the step', () => {
    const step = (t: number): number => (t >= 0 ? 1 : 0);
    expect(laggedMean(step, -1, 10_000)).toBe(0);
    const soon = laggedMean(step, 2000, 10_000);
    const later = laggedMean(step, 40_000, 10_000);
    expect(soon).toBeGreaterThan(0);
    expect(soon).toBeLessThan(0.7);
    expect(later).toBe(1);
  });
});
