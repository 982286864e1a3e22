import { humanBytes } from '../../../agent/progress-line.js';
import type { AssemblyStats } from '../assemble.js';
import type { UpdateRecord } from '../state.js';
import type { UpdateProgress } from './types.js';

/** Human-readable bytes (binary units). */
export const fmtBytes = humanBytes;

/**
 * The one percentage an update shows everywhere (logs, `gpulse model apply`, `status`, the
 * progress metric): bytes downloaded and verified of the bytes it must download. Reused bytes are
 * not progress anyone waits for, so a delta update starts at 0 %, not at the share it reuses.
 */
export function downloadPercent(downloaded: number, toDownload: number): number {
  return toDownload > 0 ? Math.min(100, (100 * downloaded) / toDownload) : 100;
}

/** "2.6 MiB of 4.8 MiB needed (54.9%), 3.6 MiB/s, 28.6 MiB reused" */
export function downloadLine(p: UpdateProgress): string {
  const reused = p.bytes_reused > 0 ? `, ${fmtBytes(p.bytes_reused)} reused` : '';
  return `${fmtBytes(p.bytes_downloaded)} of ${fmtBytes(p.bytes_to_download)} needed (${p.percent.toFixed(1)}%), ${fmtBytes(p.rate_bytes_per_second)}/s${reused}`;
}

/**
 * The progress of update `u` at `now`: live assembly statistics `s` when downloading, else the
 * record's. `done` defaults to everything once past downloading; the rate counts from
 * `downloadStart` (0: no download in this run, rate 0).
 */
export function makeProgress(
  model: string,
  u: UpdateRecord,
  s: AssemblyStats | undefined,
  done: number | undefined,
  now: number,
  downloadStart: number,
): UpdateProgress {
  const total = s?.bytesTotal ?? u.bytes_total;
  const downloaded = s?.bytesDownloaded ?? u.bytes_downloaded;
  const elapsed = Math.max(1, now - (downloadStart || now)) / 1000;
  const d = done ?? (u.state !== 'downloading' ? total : 0);
  return {
    model,
    state: u.state,
    version: u.version,
    release: u.release,
    bytes_total: total,
    bytes_to_download: s?.bytesToDownload ?? u.bytes_to_download,
    bytes_downloaded: downloaded,
    bytes_reused: s?.bytesReused ?? u.bytes_reused,
    chunks_downloaded: s?.chunksDownloaded ?? u.chunks_downloaded,
    chunks_reused: s?.chunksReused ?? u.chunks_reused,
    done_bytes: d,
    percent: downloadPercent(downloaded, s?.bytesToDownload ?? u.bytes_to_download),
    rate_bytes_per_second: downloadStart ? Math.round(downloaded / elapsed) : 0,
    updated_at: new Date(now).toISOString(),
  };
}
