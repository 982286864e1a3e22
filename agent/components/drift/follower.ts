import { stat } from 'node:fs/promises';
import TailFile from '@logdna/tail-file';
import type { Logger } from 'pino';
import split2 from 'split2';
import { backoffDelay, type Clock, type TimerHandle } from '../../core/clock.js';
import { errorMessage } from '../../core/errors.js';

/** Options of a log follower. */
export interface FollowerOptions {
  readonly path: string;
  /** end: only lines written after start; start: the whole file first. */
  readonly from: 'end' | 'start';
  /** Lines longer than this are skipped (a runaway line must not fill memory). */
  readonly lineBytes: number;
  readonly onLine: (line: string) => void;
  /** Called for each line skipped for being longer than `lineBytes`. */
  readonly onLongLine?: () => void;
  readonly log: Logger;
  readonly clock: Clock;
  /** How often the file is polled for new bytes, rotation and truncation (default 1 s). */
  readonly pollMs?: number;
  readonly random?: () => number;
}

/** Where a follower is: reading the file, or waiting for it to (re)appear. */
export type FollowerState = 'following' | 'waiting' | 'stopped';

/**
 * Follows a JSON-lines log like `tail -F`: survives rename rotation (the rest of the old file is
 * read first), truncation (copytruncate: reading restarts at byte 0) and the file vanishing
 * (retried with backoff; a file that appears later is read from its start).
 * Polling and rotation handling come from @logdna/tail-file; this adds restarts and line limits.
 */
export class JsonLinesFollower {
  private tail: TailFile | undefined;
  private timer: TimerHandle | undefined;
  private attempts = 0;
  private stopped = false;
  private inode: number | undefined;
  private position = 0;
  private current: FollowerState = 'waiting';
  /** Rotations and truncations seen (for health metrics and tests). */
  readonly counts = { rotations: 0, truncations: 0, restarts: 0, longLines: 0 };

  constructor(private readonly options: FollowerOptions) {}

  /** Current state. */
  get state(): FollowerState {
    return this.current;
  }

  /** Starts following; never throws (a missing file is waited for). */
  start(): void {
    void this.open(this.options.from === 'start' ? 0 : null);
  }

  private async open(startPos: number | null): Promise<void> {
    if (this.stopped) return;
    const { path, log } = this.options;
    const tail = new TailFile(path, {
      startPos,
      pollFileIntervalMs: this.options.pollMs ?? 1000,
      pollFailureRetryMs: 200,
      maxPollFailures: 10,
    });
    this.tail = tail;
    tail.on('renamed', () => {
      this.counts.rotations++;
      this.position = 0;
      log.info({ path }, 'prediction log rotated; reading the new file from its start');
    });
    tail.on('truncated', () => {
      this.counts.truncations++;
      this.position = 0;
      log.info({ path }, 'prediction log truncated; reading again from its start');
    });
    tail.on('flush', ({ lastReadPosition }: { lastReadPosition: number }) => {
      this.position = lastReadPosition;
    });
    tail.on('tail_error', (err: Error) => {
      log.debug({ path, err: err.message }, 'prediction log read error (retrying)');
    });
    // tail-file ends its stream with 'error' when the file stays gone; restart and wait for it.
    tail.on('error', (err: Error) => {
      if (this.stopped || this.tail !== tail) return;
      this.tail = undefined;
      this.current = 'waiting';
      log.warn({ path, err: err.message }, 'prediction log unavailable; waiting for it to return');
      this.schedule();
    });
    // skipOverflow (split2 ≥ 3.1) drops an over-long line instead of failing the stream; the
    // DefinitelyTyped options lack it, hence the widened type.
    const splitOptions: split2.Options & { skipOverflow: boolean } = {
      maxLength: this.options.lineBytes,
      skipOverflow: true,
    };
    tail.pipe(split2(splitOptions)).on('data', (line: string) => {
      // split2 bounds the partial line it buffers; a complete long line within one chunk still
      // arrives whole, so the limit is applied here too.
      if (line.length > this.options.lineBytes) {
        this.counts.longLines++;
        this.options.onLongLine?.();
      } else if (line.length > 0) {
        this.options.onLine(line);
      }
    });
    try {
      await tail.start();
      const info = await stat(path);
      this.inode = info.ino;
      this.attempts = 0;
      this.current = 'following';
      log.info({ path, from: startPos === null ? 'end' : startPos }, 'following prediction log');
    } catch (err) {
      if (this.tail === tail) this.tail = undefined;
      // A tail that never opened has no timers; quit() would wait for a flush that never comes.
      tail.removeAllListeners('error');
      tail.on('error', () => undefined);
      tail.destroy();
      if (this.stopped) return;
      if (this.current !== 'waiting' || this.attempts === 0) {
        log.warn(
          { path, err: errorMessage(err) },
          'cannot open the prediction log yet; retrying (check drift.models.*.follow paths and the volume mount)',
        );
      }
      this.current = 'waiting';
      this.schedule();
    }
  }

  private schedule(): void {
    if (this.stopped) return;
    this.counts.restarts++;
    const delay = Math.max(250, backoffDelay(this.attempts++, 1000, 30_000, this.options.random));
    this.timer = this.options.clock.setTimeout(() => void this.reopen(), delay);
    this.timer.unref?.();
  }

  private async reopen(): Promise<void> {
    // Resume where we were if it is still the same file; a new file is read from its start.
    let startPos = 0;
    try {
      const info = await stat(this.options.path);
      if (info.ino === this.inode && info.size >= this.position) startPos = this.position;
    } catch {
      // Still missing: open() fails and schedules the next try.
    }
    await this.open(startPos);
  }

  /** Stops following; idempotent. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.current = 'stopped';
    if (this.timer) this.options.clock.clearTimeout(this.timer);
    const tail = this.tail;
    this.tail = undefined;
    if (!tail) return;
    // quit() reads what is left, but waits forever if the file vanished meanwhile: bound it.
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, 1000);
      timer.unref();
    });
    tail.on('error', () => undefined);
    await Promise.race([tail.quit().catch(() => undefined), limit]);
    clearTimeout(timer);
    tail.destroy();
  }
}
