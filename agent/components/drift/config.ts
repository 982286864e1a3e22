import { z } from 'zod';
import { zBytes, zDuration, zInt, zInterval, setting } from '../../config-schema.js';
import { DEFAULT_THRESHOLDS, DRIFT_METHODS, MODEL_NAME_RE } from './methods.js';

/** A number in (min, max] (or (min, max) with `open`), also from a GPULSE_* string. */
function zDecimal(min: number, max: number, open = false) {
  return z.union([z.number(), z.string()]).transform((value, ctx) => {
    const n = typeof value === 'number' ? value : Number(value.trim());
    const inRange = n > min && (open ? n < max : n <= max);
    if (!Number.isFinite(n) || !inRange) {
      ctx.addIssue({
        code: 'custom',
        message: `expected a number greater than ${min} and ${open ? 'below' : 'at most'} ${max}, got ${JSON.stringify(value)}`,
      });
      return z.NEVER;
    }
    return n;
  });
}

const zShare = zDecimal(0, 1);
// Functions, not shared instances: each threshold carries its own setting() binding.
const zPValue = () => zDecimal(0, 1, true);
const zDistance = () => zDecimal(0, Number.MAX_VALUE);

const thresholdsShape = {
  /** KS p-value at or below which a numeric feature drifts (reference ≤ smallReference rows). */
  ks: setting(zPValue(), {
    env: 'GPULSE_DRIFT_THRESHOLD_KS',
    valueName: 'P',
    description: 'KS p-value at or below which drift (default 0.05)',
  }),
  /** Chi-square p-value for categorical features with more than two values (small reference). */
  chisquare: setting(zPValue(), {
    env: 'GPULSE_DRIFT_THRESHOLD_CHISQUARE',
    valueName: 'P',
    description: 'chi-square p-value at or below which drift (default 0.05)',
  }),
  /** Two-proportion Z-test p-value for binary features (small reference). */
  z: setting(zPValue(), {
    env: 'GPULSE_DRIFT_THRESHOLD_Z',
    valueName: 'P',
    description: 'Z-test p-value at or below which drift (default 0.05)',
  }),
  /** Wasserstein distance divided by the reference standard deviation (large reference). */
  wasserstein: setting(zDistance(), {
    env: 'GPULSE_DRIFT_THRESHOLD_WASSERSTEIN',
    valueName: 'DISTANCE',
    description: 'normed Wasserstein distance at or above which drift (default 0.1)',
  }),
  /** Jensen–Shannon distance, natural logarithm (large reference, categorical). */
  jensenshannon: setting(zDecimal(0, 1), {
    env: 'GPULSE_DRIFT_THRESHOLD_JENSENSHANNON',
    valueName: 'DISTANCE',
    description: 'Jensen-Shannon distance at or above which drift (default 0.1)',
  }),
  /** PSI at or above which the `psi` method reports drift ("major shift"). */
  psi: setting(zDistance(), {
    env: 'GPULSE_DRIFT_THRESHOLD_PSI',
    valueName: 'PSI',
    description: 'PSI alert level (default 0.25)',
  }),
  /** PSI at or above which the API marks a feature `warn` ("moderate shift"). */
  psiWarn: setting(zDistance(), {
    env: 'GPULSE_DRIFT_THRESHOLD_PSI_WARN',
    valueName: 'PSI',
    description: 'PSI warn level (default 0.1)',
  }),
};

/** Thresholds in force for a model. */
export type DriftThresholds = { readonly [K in keyof typeof thresholdsShape]: number };

const hysteresisShape = {
  /** Consecutive drifting evaluations before `drift_detected` turns 1. */
  raise: zInt({ min: 1, max: 100 }),
  /** Consecutive clean evaluations before it turns back to 0. */
  clear: zInt({ min: 1, max: 100 }),
};

const zMethodChoice = z.enum(['auto', ...DRIFT_METHODS]);

/** Per-feature overrides (`drift.models.<model>.features.<feature>`). */
export const featureOverrideSchema = z
  .object({
    /** monitor: judged and counted in the dataset share; ignore: not tracked at all. */
    mode: z.enum(['monitor', 'ignore']).default('monitor'),
    /** auto: Evidently's choice by reference size and type. */
    method: zMethodChoice.default('auto'),
    /** Threshold for the chosen method (default: the model's threshold for that method). */
    threshold: z.number().gt(0).optional(),
  })
  .strict();

/** Per-feature override settings. */
export type FeatureOverride = z.infer<typeof featureOverrideSchema>;

/** A JSON-lines prediction log followed for one model. */
export const followSchema = z
  .object({
    path: z.string().min(1),
    /** end: only lines written after start (like `tail -F`); start: read the file from byte 0. */
    from: z.enum(['end', 'start']).default('end'),
  })
  .strict();

/** Settings of one monitored model (`drift.models.<model>`). */
export const modelConfigSchema = z
  .object({
    /** Reference profile file written by `gpulse drift profile`. */
    profile: z.string().min(1).optional(),
    /** Without a profile, build the reference from the first N observed rows (0: off). */
    warmupRows: zInt({ min: 0, max: 100_000 }).default(0),
    /** JSON-lines prediction logs to follow (rotation and truncation safe). */
    follow: z.array(followSchema).max(16).default([]),
    method: zMethodChoice.default('auto'),
    minSamples: zInt({ min: 1 }).optional(),
    datasetShare: zShare.optional(),
    thresholds: z.object(thresholdsShape).partial().strict().default({}),
    hysteresis: z.object(hysteresisShape).partial().strict().default({}),
    features: z.record(z.string().min(1).max(128), featureOverrideSchema).default({}),
  })
  .strict();

/** Settings of one monitored model. */
export type ModelConfig = z.infer<typeof modelConfigSchema>;

const limitsSchema = z
  .object({
    /** Models tracked at once (configured and created through the API). */
    models: setting(zInt({ min: 1, max: 1000 }).default(16), {
      env: 'GPULSE_DRIFT_MAX_MODELS',
      description: 'models tracked at once (default 16)',
    }),
    /** Features per model, and keys per observation row. */
    features: setting(zInt({ min: 1, max: 1000 }).default(100), {
      env: 'GPULSE_DRIFT_MAX_FEATURES',
      description: 'features per model and keys per row (default 100)',
    }),
    /** Largest observations request or MQTT message. */
    bodyBytes: setting(zBytes().default(1024 * 1024), {
      env: 'GPULSE_DRIFT_MAX_BODY',
      description: 'largest observations request or MQTT message (default 1MiB)',
    }),
    /** Largest reference upload (rows or a profile). */
    referenceBytes: setting(zBytes().default(16 * 1024 * 1024), {
      env: 'GPULSE_DRIFT_MAX_REFERENCE',
      description: 'largest reference upload or profile file (default 16MiB)',
    }),
    /** Longest line of a followed log; longer lines are skipped. */
    lineBytes: setting(zBytes().default(64 * 1024), {
      env: 'GPULSE_DRIFT_MAX_LINE',
      description: 'longest prediction-log line; longer ones are skipped (default 64KiB)',
    }),
    /** Longest string value of a categorical feature. */
    valueLength: setting(zInt({ min: 1, max: 65_536 }).default(256), {
      env: 'GPULSE_DRIFT_MAX_VALUE_LENGTH',
      description: 'longest categorical string value (default 256)',
    }),
  })
  .strict();

const DEFAULT_LIMITS = limitsSchema.parse({});

/** The `drift:` section: streaming data-drift detection for the models this host serves. */
export const driftConfigSchema = z
  .object({
    /** auto: serve the drift API and evaluate the models that have a reference; off: nothing. */
    mode: setting(z.enum(['auto', 'off']).default('auto'), {
      env: 'GPULSE_DRIFT_MODE',
      flag: 'drift-mode',
      description: 'model input drift API and evaluation (default auto)',
    }),
    /** How often the windows are evaluated. */
    interval: setting(zInterval(1000).default(60_000), {
      env: 'GPULSE_DRIFT_INTERVAL',
      description: 'drift evaluation interval (default 60s)',
    }),
    window: z
      .object({
        /** Time buckets in the sliding window (the window is buckets × bucket). */
        buckets: setting(zInt({ min: 1, max: 1440 }).default(12), {
          env: 'GPULSE_DRIFT_WINDOW_BUCKETS',
          description: 'time buckets in the drift window (default 12)',
        }),
        /** Length of one bucket. */
        bucketPeriod: setting(zDuration({ min: 1000 }).default(300_000), {
          env: 'GPULSE_DRIFT_WINDOW_BUCKET_PERIOD',
          description: 'length of one drift window bucket (default 5m)',
        }),
      })
      .strict()
      .default({ buckets: 12, bucketPeriod: 300_000 }),
    /** Rows in the window (and non-null values per feature) before a feature is judged. */
    minSamples: setting(zInt({ min: 1 }).default(200), {
      env: 'GPULSE_DRIFT_MIN_SAMPLES',
      description: 'rows in the window before drift is judged (default 200)',
    }),
    /** Reference rows at or below which p-value tests are chosen (Evidently: 1000). */
    smallReference: setting(zInt({ min: 0 }).default(1000), {
      env: 'GPULSE_DRIFT_SMALL_REFERENCE',
      description:
        'reference rows up to which p-value tests (KS, chi-square, Z) decide (default 1000)',
    }),
    /** Dataset drift when at least this share of the monitored features drift. */
    datasetShare: setting(zShare.default(0.5), {
      env: 'GPULSE_DRIFT_DATASET_SHARE',
      valueName: 'RATIO',
      description: 'share of drifting features for dataset drift (default 0.5)',
    }),
    // Each bound has its own default, so setting one (e.g. GPULSE_DRIFT_HYSTERESIS_RAISE) is enough.
    hysteresis: z
      .object({
        raise: setting(hysteresisShape.raise.default(3), {
          env: 'GPULSE_DRIFT_HYSTERESIS_RAISE',
          description: 'drifting evaluations in a row to start drift (default 3)',
        }),
        clear: setting(hysteresisShape.clear.default(3), {
          env: 'GPULSE_DRIFT_HYSTERESIS_CLEAR',
          description: 'clean evaluations in a row to end drift (default 3)',
        }),
      })
      .strict()
      .default({ raise: 3, clear: 3 }),
    thresholds: z
      .object(thresholdsShape)
      .partial()
      .strict()
      .default({})
      .transform((t): DriftThresholds => ({ ...DEFAULT_THRESHOLDS, ...t })),
    limits: limitsSchema.default(DEFAULT_LIMITS),
    models: z
      .record(
        z.string().regex(MODEL_NAME_RE, {
          message: 'model names use letters, digits, "_", "." and "-" (at most 128 characters)',
        }),
        modelConfigSchema,
      )
      .default({}),
  })
  .strict();

/** Parsed `drift:` settings. */
export type DriftConfig = z.infer<typeof driftConfigSchema>;
