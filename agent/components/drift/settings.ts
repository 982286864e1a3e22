/** Environment variables and flags of these settings: plain data the CLI reads without loading zod. */
import type { SettingBinding } from '../../config-schema.js';

function binding(
  path: readonly string[],
  env: string,
  valueName: string,
  description: string,
): SettingBinding {
  return { path: ['drift', ...path], env: `GPULSE_DRIFT_${env}`, valueName, description };
}

/** Environment variables and flags of the drift monitor (every setting but the models). */
export const driftSettings: readonly SettingBinding[] = [
  {
    ...binding(['mode'], 'MODE', 'auto|off', 'model input drift API and evaluation (default auto)'),
    flag: 'drift-mode',
  },
  binding(['interval'], 'INTERVAL', 'DURATION', 'drift evaluation interval (default 60s)'),
  binding(
    ['window', 'buckets'],
    'WINDOW_BUCKETS',
    'N',
    'time buckets in the drift window (default 12)',
  ),
  binding(
    ['window', 'bucketPeriod'],
    'WINDOW_BUCKET_PERIOD',
    'DURATION',
    'length of one drift window bucket (default 5m)',
  ),
  binding(
    ['minSamples'],
    'MIN_SAMPLES',
    'N',
    'rows in the window before drift is judged (default 200)',
  ),
  binding(
    ['smallReference'],
    'SMALL_REFERENCE',
    'N',
    'reference rows up to which p-value tests (KS, chi-square, Z) decide (default 1000)',
  ),
  binding(
    ['datasetShare'],
    'DATASET_SHARE',
    'RATIO',
    'share of drifting features for dataset drift (default 0.5)',
  ),
  binding(
    ['hysteresis', 'raise'],
    'HYSTERESIS_RAISE',
    'N',
    'drifting evaluations in a row to start drift (default 3)',
  ),
  binding(
    ['hysteresis', 'clear'],
    'HYSTERESIS_CLEAR',
    'N',
    'clean evaluations in a row to end drift (default 3)',
  ),
  binding(
    ['thresholds', 'ks'],
    'THRESHOLD_KS',
    'P',
    'KS p-value at or below which drift (default 0.05)',
  ),
  binding(
    ['thresholds', 'chisquare'],
    'THRESHOLD_CHISQUARE',
    'P',
    'chi-square p-value at or below which drift (default 0.05)',
  ),
  binding(
    ['thresholds', 'z'],
    'THRESHOLD_Z',
    'P',
    'Z-test p-value at or below which drift (default 0.05)',
  ),
  binding(
    ['thresholds', 'wasserstein'],
    'THRESHOLD_WASSERSTEIN',
    'DISTANCE',
    'normed Wasserstein distance at or above which drift (default 0.1)',
  ),
  binding(
    ['thresholds', 'jensenshannon'],
    'THRESHOLD_JENSENSHANNON',
    'DISTANCE',
    'Jensen-Shannon distance at or above which drift (default 0.1)',
  ),
  binding(['thresholds', 'psi'], 'THRESHOLD_PSI', 'PSI', 'PSI alert level (default 0.25)'),
  binding(['thresholds', 'psiWarn'], 'THRESHOLD_PSI_WARN', 'PSI', 'PSI warn level (default 0.1)'),
  binding(['limits', 'models'], 'MAX_MODELS', 'N', 'models tracked at once (default 16)'),
  binding(
    ['limits', 'features'],
    'MAX_FEATURES',
    'N',
    'features per model and keys per row (default 100)',
  ),
  binding(
    ['limits', 'bodyBytes'],
    'MAX_BODY',
    'SIZE',
    'largest observations request or MQTT message (default 1MiB)',
  ),
  binding(
    ['limits', 'referenceBytes'],
    'MAX_REFERENCE',
    'SIZE',
    'largest reference upload or profile file (default 16MiB)',
  ),
  binding(
    ['limits', 'lineBytes'],
    'MAX_LINE',
    'SIZE',
    'longest prediction-log line; longer ones are skipped (default 64KiB)',
  ),
  binding(
    ['limits', 'valueLength'],
    'MAX_VALUE_LENGTH',
    'N',
    'longest categorical string value (default 256)',
  ),
];
