import { counter, gauge, SampleBuilder } from '../../agent/core/metric.js';
import type { Sample } from '../../agent/core/types.js';
import { UPDATE_STATES, type ModelState } from './state.js';
import type { UpdateProgress } from './updater.js';

/** Metric families of the model updater. */
export const modelMetrics = {
  info: gauge('gpulse_model_info', 'Committed model version on this device; always 1.', [
    'model',
    'version',
    'release',
  ]),
  state: gauge(
    'gpulse_model_update_state',
    'State of the latest model update, one series per state (1 = current state).',
    ['model', 'state'],
  ),
  downloaded: counter(
    'gpulse_model_update_bytes_downloaded_total',
    'Bytes received from the model store (including retried bytes).',
    ['model'],
  ),
  reused: counter(
    'gpulse_model_update_bytes_reused_total',
    'Bytes of new versions copied from versions already on the device.',
    ['model'],
  ),
  chunksDownloaded: counter(
    'gpulse_model_update_chunks_downloaded_total',
    'Chunks downloaded and verified.',
    ['model'],
  ),
  chunksReused: counter(
    'gpulse_model_update_chunks_reused_total',
    'Chunks reused from installed versions.',
    ['model'],
  ),
  progress: gauge(
    'gpulse_model_update_progress_ratio',
    'Share (0–1) of the bytes the update must download (after reuse) that are downloaded and verified.',
    ['model'],
  ),
  toDownload: gauge(
    'gpulse_model_update_download_size_bytes',
    'Bytes the latest update had to download (after reuse).',
    ['model'],
  ),
  size: gauge('gpulse_model_update_size_bytes', 'Total size of the version of the latest update.', [
    'model',
  ]),
  rollbacks: counter(
    'gpulse_model_rollbacks_total',
    'Updates rolled back after a failed health check or trial, by reason.',
    ['model', 'reason'],
  ),
  failures: counter(
    'gpulse_model_update_failures_total',
    'Updates that failed before activation or checks that refused a manifest, by reason.',
    ['model', 'reason'],
  ),
  commits: counter('gpulse_model_updates_committed_total', 'Updates committed.', ['model']),
  checks: counter('gpulse_model_update_checks_total', 'Checks of the model store by result.', [
    'model',
    'result',
  ]),
  lastCheck: gauge(
    'gpulse_model_last_check_timestamp_seconds',
    'Unix time of the latest check of the store.',
    ['model'],
  ),
  lastUpdate: gauge(
    'gpulse_model_last_update_timestamp_seconds',
    'Unix time the latest update reached its current state.',
    ['model'],
  ),
  release: gauge(
    'gpulse_model_highest_release',
    'Highest release number accepted on this device (rollback protection).',
    ['model'],
  ),
  quarantined: gauge(
    'gpulse_model_quarantined_releases',
    'Releases refused after failing checks (never retried automatically).',
    ['model'],
  ),
} as const;

/** Process-lifetime counters of one model. */
export interface ModelCounters {
  downloaded: number;
  reused: number;
  chunksDownloaded: number;
  chunksReused: number;
  commits: number;
  rollbacks: Map<string, number>;
  failures: Map<string, number>;
  checks: Map<string, number>;
  lastCheckMs?: number;
}

/** Fresh counters. */
export function newCounters(): ModelCounters {
  return {
    downloaded: 0,
    reused: 0,
    chunksDownloaded: 0,
    chunksReused: 0,
    commits: 0,
    rollbacks: new Map(),
    failures: new Map(),
    checks: new Map(),
  };
}

/** Adds one to a labelled counter. */
export function bump(map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}

/** Samples of one model from its persisted state, live progress and counters. */
export function modelSamples(
  name: string,
  state: ModelState | undefined,
  progress: UpdateProgress | undefined,
  c: ModelCounters,
): Sample[] {
  const b = new SampleBuilder();
  const l = { model: name };
  if (state?.current)
    b.add(
      modelMetrics.info,
      { ...l, version: state.current.version, release: String(state.current.release) },
      1,
    );
  const current = progress?.state ?? state?.update?.state ?? 'idle';
  for (const s of UPDATE_STATES) b.add(modelMetrics.state, { ...l, state: s }, s === current);
  b.add(modelMetrics.downloaded, l, c.downloaded);
  b.add(modelMetrics.reused, l, c.reused);
  b.add(modelMetrics.chunksDownloaded, l, c.chunksDownloaded);
  b.add(modelMetrics.chunksReused, l, c.chunksReused);
  b.add(modelMetrics.commits, l, c.commits);
  for (const [reason, n] of c.rollbacks) b.add(modelMetrics.rollbacks, { ...l, reason }, n);
  for (const [reason, n] of c.failures) b.add(modelMetrics.failures, { ...l, reason }, n);
  for (const [result, n] of c.checks) b.add(modelMetrics.checks, { ...l, result }, n);
  if (progress) {
    b.add(modelMetrics.progress, l, progress.percent / 100);
    b.add(modelMetrics.toDownload, l, progress.bytes_to_download);
    b.add(modelMetrics.size, l, progress.bytes_total);
  } else if (state?.update) {
    b.add(modelMetrics.toDownload, l, state.update.bytes_to_download);
    b.add(modelMetrics.size, l, state.update.bytes_total);
  }
  if (c.lastCheckMs !== undefined) b.add(modelMetrics.lastCheck, l, c.lastCheckMs / 1000);
  if (state?.update) b.add(modelMetrics.lastUpdate, l, Date.parse(state.update.updated_at) / 1000);
  if (state) {
    b.add(modelMetrics.release, l, state.highest_release);
    b.add(modelMetrics.quarantined, l, state.quarantined.length);
  }
  return b.build();
}
