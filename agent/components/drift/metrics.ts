import { counter, gauge } from '../../core/metric.js';

/** Name of the drift pseudo-collector in the state store (and its `collector` label). */
export const DRIFT = 'drift';

/** Metric families of the drift monitor. */
export const driftMetrics = {
  score: gauge(
    'gpulse_drift_score',
    'Latest drift statistic of a feature per method: ks, chisquare and z are p-values (drift when low); ks_statistic, wasserstein (normed), jensenshannon and psi are distances (drift when high).',
    ['model', 'feature', 'method'],
  ),
  threshold: gauge(
    'gpulse_drift_threshold',
    'Threshold in force for the method that decides drift of a feature, and for psi (alert) and psi_warn.',
    ['model', 'feature', 'method'],
  ),
  detected: gauge(
    'gpulse_drift_detected',
    'Whether the feature drifts (1) or not (0), after hysteresis.',
    ['model', 'feature'],
  ),
  method: gauge('gpulse_drift_method_info', 'Method that decides drift of a feature; always 1.', [
    'model',
    'feature',
    'method',
  ]),
  datasetShare: gauge(
    'gpulse_drift_dataset_share',
    'Share (0-1) of the judged features of a model that drift.',
    ['model'],
  ),
  datasetDetected: gauge(
    'gpulse_drift_dataset_detected',
    'Whether the drifting share reached the dataset threshold (1) or not (0).',
    ['model'],
  ),
  windowSamples: gauge(
    'gpulse_drift_window_samples',
    'Rows in the current sliding window of a model.',
    ['model'],
  ),
  referenceRows: gauge(
    'gpulse_drift_reference_rows',
    'Rows summarised by the reference profile of a model.',
    ['model'],
  ),
  referenceInfo: gauge(
    'gpulse_drift_reference_info',
    'Reference profile in use (source: file, api, manifest, warmup; sha256 of the profile); always 1.',
    ['model', 'source', 'sha256'],
  ),
  observations: counter(
    'gpulse_drift_observations_total',
    'Observation rows accepted per ingest path (http, mqtt, file, warmup rows included).',
    ['model', 'source'],
  ),
  rejected: counter(
    'gpulse_drift_rejected_total',
    'Rows or values not counted: bad_payload and bad_line (rows), no_reference (rows), unknown_feature and type_mismatch (values).',
    ['model', 'reason'],
  ),
  evaluations: counter(
    'gpulse_drift_evaluations_total',
    'Evaluations of a model that judged at least one feature.',
    ['model'],
  ),
} as const;
