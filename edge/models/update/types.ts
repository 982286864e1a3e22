import type Docker from 'dockerode';
import type { Logger } from 'pino';
import type { EventLog } from '../../../agent/core/events.js';
import type { SpawnFn } from '../../../agent/process/process.js';
import type { AssemblyStats } from '../assemble.js';
import type { FetchSettings } from '../fetcher.js';
import type { HealthSettings } from '../health.js';
import type { ReloadSettings } from '../reload.js';
import type { TrustedKey } from '../signing.js';
import type { UpdateRecord, UpdateState } from '../state.js';

/** Where a crash test may pause the process (the SIGKILL matrix kills it there). */
export type PausePoint =
  'downloading' | 'assembled' | 'verified' | 'activating' | 'activated' | 'trial' | 'rolling_back';

/** Every pause point, in the order an update passes them. */
export const PAUSE_POINTS: readonly PausePoint[] = [
  'downloading',
  'assembled',
  'verified',
  'activating',
  'activated',
  'trial',
  'rolling_back',
];

/** Everything one update of one model needs. */
export interface ApplyOptions {
  readonly name: string;
  readonly source: string;
  readonly dir: string;
  readonly trust: readonly TrustedKey[];
  readonly health: HealthSettings;
  readonly reload: ReloadSettings;
  readonly fetch: FetchSettings;
  /** Tolerated clock skew for the expiry check. */
  readonly clockSkewMs: number;
  /** A manifest describing more bytes than this is refused. */
  readonly maxBytes: number;
  readonly maxManifestBytes: number;
}

/** Progress of an update, for logs, `status`, metrics and MQTT. */
export interface UpdateProgress {
  readonly model: string;
  readonly state: UpdateState;
  readonly version?: string;
  readonly release?: number;
  readonly bytes_total: number;
  readonly bytes_to_download: number;
  readonly bytes_downloaded: number;
  readonly bytes_reused: number;
  readonly chunks_downloaded: number;
  readonly chunks_reused: number;
  readonly done_bytes: number;
  readonly percent: number;
  readonly rate_bytes_per_second: number;
  readonly updated_at: string;
}

/** Injected I/O of an update. */
export interface ApplyDeps {
  readonly log: Logger;
  readonly events?: EventLog;
  readonly now?: () => number;
  readonly docker?: () => Docker;
  readonly spawnFn?: SpawnFn;
  /** Test hook: awaited at each pause point. */
  readonly pause?: (point: PausePoint) => Promise<void>;
  readonly onProgress?: (p: UpdateProgress) => void;
  readonly onState?: (state: UpdateState, update: UpdateRecord | undefined) => void;
  readonly signal?: AbortSignal;
}

/** How an update ended. */
export type ApplyOutcome = 'committed' | 'up_to_date' | 'rolled_back' | 'failed' | 'refused';

/** Result of one apply. */
export interface ApplyResult {
  readonly outcome: ApplyOutcome;
  readonly model: string;
  readonly version?: string;
  readonly release?: number;
  /** Stable reason label when not committed/up to date. */
  readonly reason?: string;
  readonly message: string;
  readonly stats?: AssemblyStats;
}

/** Unwinds an update to its result from deep inside a step (a refusal, a failure that stops). */
export class Stop extends Error {
  constructor(readonly result: ApplyResult) {
    super(result.message);
  }
}
