/**
 * Deterministic GPU load as a pure function of wall-clock time and a seed.
 *
 * Every simulated tool (nvidia-smi, dcgmi, tegrastats) is a separate short-lived or looping
 * process; they agree on what the GPUs are doing at an instant only because nothing here keeps
 * state: the same (time, seed, gpu) always gives the same value.
 */

/** 32-bit FNV-1a hash of the parts, for seeding; stable across processes and platforms. */
export function hash32(...parts: readonly (string | number)[]): number {
  let h = 0x811c9dc5;
  for (const part of parts) {
    const text = `${part}\u0000`;
    for (let i = 0; i < text.length; i++) {
      h ^= text.charCodeAt(i);
      h = Math.imul(h, 0x01000193) >>> 0;
    }
  }
  // Final avalanche (murmur3 fmix32): FNV alone leaves neighbouring inputs correlated.
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  h ^= h >>> 16;
  return h >>> 0;
}

/** A value in [0, 1) derived from the parts. */
export function unitHash(...parts: readonly (string | number)[]): number {
  return hash32(...parts) / 0x1_0000_0000;
}

/**
 * Smooth value noise in [-1, 1]: random values on integer lattice points of `x`, joined by a
 * cosine ease, so successive samples one interval apart drift instead of jumping.
 */
export function smoothNoise(seed: number, channel: string, x: number): number {
  const i = Math.floor(x);
  const f = x - i;
  const a = unitHash(seed, channel, i) * 2 - 1;
  const b = unitHash(seed, channel, i + 1) * 2 - 1;
  const w = (1 - Math.cos(Math.PI * f)) / 2;
  return a + (b - a) * w;
}

/** Shape of the training-like load. */
export interface TrainingCurve {
  /** One training "epoch": busy steps, then an evaluation/checkpoint dip. */
  readonly periodMs: number;
  /** Fraction of the period spent in the dip at the end. */
  readonly dipFraction: number;
  /** Activity at the bottom of the dip. */
  readonly dipFloor: number;
  /** Per-GPU phase offset: data-parallel ranks are nearly, not exactly, in step. */
  readonly phaseOffsetMs: number;
}

/** The curve for a seed and GPU: period 90–150 s, a dip of ~12 % of it, ranks within 3 s. */
export function trainingCurve(seed: number, gpuIndex: number): TrainingCurve {
  return {
    periodMs: 90_000 + Math.floor(unitHash(seed, 'period') * 60_000),
    dipFraction: 0.1 + unitHash(seed, 'dip') * 0.05,
    dipFloor: 0.12 + unitHash(seed, 'floor') * 0.15,
    phaseOffsetMs: Math.floor(unitHash(seed, 'phase', gpuIndex) * 3000),
  };
}

/**
 * Activity of a busy GPU at wall-clock time `tMs`, in [0, 1]: ~0.9–1.0 during training steps
 * with slow jitter, then a smooth dip (evaluation, checkpoint write) once per period.
 */
export function trainingLoad(tMs: number, seed: number, gpuIndex: number): number {
  const curve = trainingCurve(seed, gpuIndex);
  const shifted = tMs + curve.phaseOffsetMs;
  const position =
    (((shifted % curve.periodMs) + curve.periodMs) % curve.periodMs) / curve.periodMs;
  const busy =
    0.95 +
    0.035 * smoothNoise(seed, `slow${gpuIndex}`, shifted / 7000) +
    0.015 * smoothNoise(seed, `fast${gpuIndex}`, shifted / 900);
  const dipStart = 1 - curve.dipFraction;
  if (position < dipStart) return clamp01(busy);
  const inDip = (position - dipStart) / curve.dipFraction;
  const depth = Math.sin(Math.PI * inDip);
  return clamp01(busy - (busy - curve.dipFloor) * depth);
}

/**
 * Exponentially weighted mean of `sample` over the past (time constant `tauMs`), evaluated at a
 * few fixed points so that a stateless caller gets the lag of a thermal mass.
 */
export function laggedMean(
  sample: (tMs: number) => number,
  tMs: number,
  tauMs: number,
  points = 8,
): number {
  const step = (tauMs * 3) / points;
  let sum = 0;
  let weights = 0;
  for (let k = 0; k < points; k++) {
    const w = Math.exp((-k * step) / tauMs);
    sum += w * sample(tMs - k * step);
    weights += w;
  }
  return sum / weights;
}

/** Clamps to [0, 1]. */
export function clamp01(x: number): number {
  return x < 0 ? 0 : x > 1 ? 1 : x;
}
