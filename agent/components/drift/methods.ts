/** Drift methods, their default thresholds and the model-name rule: plain values, without zod. */

/** Statistical tests and distances a feature can be judged by (Evidently's stattest names). */
export const DRIFT_METHODS = [
  'ks',
  'chisquare',
  'z',
  'wasserstein',
  'jensenshannon',
  'psi',
] as const;

/** One drift method. */
export type DriftMethod = (typeof DRIFT_METHODS)[number];

/** Methods whose score is a p-value: drift when the score is at or below the threshold. */
export const P_VALUE_METHODS: ReadonlySet<DriftMethod> = new Set(['ks', 'chisquare', 'z']);

/** Model names: also used in URLs, topics and label values, so kept to a safe alphabet. */
export const MODEL_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/** Evidently's default thresholds (research §3.1) plus the PSI rule of thumb. */
export const DEFAULT_THRESHOLDS = {
  ks: 0.05,
  chisquare: 0.05,
  z: 0.05,
  wasserstein: 0.1,
  jensenshannon: 0.1,
  psi: 0.25,
  psiWarn: 0.1,
} as const;
