import type { Logger } from 'pino';
import type { EventSeverity } from '../../../agent/core/events.js';
import type { AssemblyStats } from '../assemble.js';
import { writeFileReplace } from '../durable-fs.js';
import type { SignedManifest } from '../manifest.js';
import { writeState, type ModelPaths, type ModelState, type UpdateRecord } from '../state.js';
import { downloadLine, makeProgress } from './progress.js';
import { nextState, type UpdateEvent } from './transitions.js';
import { Stop, type ApplyDeps, type ApplyOptions, type PausePoint } from './types.js';

/** ISO timestamp of a clock reading. */
export const iso = (ms: number): string => new Date(ms).toISOString();

/**
 * What every state of one update shares: its options and I/O, the persisted model state, and the
 * one way to change the update's state (`transition`, checked against the transition table).
 */
export class UpdateContext {
  readonly now: () => number;
  readonly log: Logger;
  /** Download statistics once the files are assembled (reported in the result). */
  stats: AssemblyStats | undefined;
  /** When the download of this run started (0: not downloading in this run). */
  downloadStart = 0;
  private lastProgressWrite = 0;
  private lastProgressLog = 0;

  constructor(
    readonly opts: ApplyOptions,
    readonly deps: ApplyDeps,
    readonly paths: ModelPaths,
    public state: ModelState,
  ) {
    this.now = deps.now ?? Date.now;
    this.log = deps.log.child({ model: opts.name });
  }

  /**
   * Moves the update to the state the table gives for `event` (IllegalTransitionError, nothing
   * written, when it has none), with `record`'s fields and `patch` applied to the model state,
   * and persists it durably.
   */
  async transition(
    event: UpdateEvent,
    record: UpdateRecord,
    patch: Partial<Omit<ModelState, 'update'>> = {},
  ): Promise<UpdateRecord> {
    const to = nextState(this.state.update?.state ?? 'idle', event);
    const next: UpdateRecord = { ...record, state: to, updated_at: iso(this.now()) };
    this.state = { ...this.state, ...patch, update: next };
    await writeState(this.paths, this.state);
    this.deps.onState?.(next.state, next);
    const p = makeProgress(
      this.opts.name,
      next,
      undefined,
      undefined,
      this.now(),
      this.downloadStart,
    );
    this.deps.onProgress?.(p);
    await writeFileReplace(this.paths.progress, `${JSON.stringify(p)}\n`).catch(() => undefined);
    return next;
  }

  /** Persists model state that is not the update's state (current after a refresh, quarantine). */
  async saveState(patch: Partial<Omit<ModelState, 'update'>>): Promise<void> {
    this.state = { ...this.state, ...patch };
    await writeState(this.paths, this.state);
  }

  /**
   * Download progress: reported on every call, logged every 5 s, written to progress.json every
   * 1 s. The download does not wait for that write; it is returned (undefined when throttled) so a
   * test can.
   */
  progress(u: UpdateRecord, s: AssemblyStats, done: number): Promise<void> | undefined {
    const now = this.now();
    const p = makeProgress(this.opts.name, u, s, done, now, this.downloadStart);
    this.deps.onProgress?.(p);
    if (now - this.lastProgressLog >= 5000 || done === s.bytesTotal) {
      this.lastProgressLog = now;
      this.log.info(
        {
          version: u.version,
          bytes_downloaded: p.bytes_downloaded,
          bytes_to_download: s.bytesToDownload,
          percent: p.percent,
          rate_bytes_per_second: p.rate_bytes_per_second,
        },
        `downloading ${u.version}: ${downloadLine(p)}`,
      );
    }
    if (now - this.lastProgressWrite >= 1000) {
      this.lastProgressWrite = now;
      return writeFileReplace(this.paths.progress, `${JSON.stringify(p)}\n`).catch(() => undefined);
    }
    return undefined;
  }

  /** Emits a `model.*` event about update `u`. */
  emit(
    type: string,
    severity: EventSeverity,
    message: string,
    u: UpdateRecord,
    data: Record<string, unknown>,
  ): void {
    this.deps.events?.emit({
      type,
      severity,
      source: 'models',
      message,
      labels: { model: this.opts.name, version: u.version },
      data: { release: u.release, state: u.state, ...data },
    });
  }

  /** Waits at a pause point (crash tests). */
  async pause(point: PausePoint): Promise<void> {
    await this.deps.pause?.(point);
  }

  /** Refuses the manifest `m` (nothing changed on disk): unwinds to the `refused` result. */
  refuse(reason: string, message: string, m?: SignedManifest): never {
    this.log.warn({ reason, version: m?.version, release: m?.release }, message);
    throw new Stop({
      outcome: 'refused',
      model: this.opts.name,
      version: m?.version,
      release: m?.release,
      reason,
      message,
    });
  }
}
