import { backoffDelay, type Clock, type TimerHandle } from '../../agent/core/clock.js';

/** Options of `StartRetry`. */
export interface StartRetryOptions {
  readonly clock: Clock;
  /** One attempt; throws when it cannot start. */
  readonly attempt: () => Promise<void>;
  /** Releases what a failed attempt opened; its own failure is ignored (the next attempt retries). */
  readonly cleanup: () => Promise<void>;
  /** A failed attempt (not called once stopped). */
  readonly onFailure: (err: unknown) => void;
  /** The attempt that succeeded, after `failures` failed ones. */
  readonly onStarted: (failures: number) => void;
  /** Backoff bounds: full jitter between 0 and min·2ⁿ capped at max, never below `floorMs`. */
  readonly minMs: number;
  readonly maxMs: number;
  readonly floorMs: number;
  readonly random?: () => number;
}

/**
 * Starts something that may fail for a while (a state directory not writable yet, a lock another
 * process holds): retried with full-jitter backoff until it starts or `stop` is called.
 */
export class StartRetry {
  private timer: TimerHandle | undefined;
  private failures = 0;
  private stopped = false;
  /** The attempt in progress (stop waits for it, so nothing it opens outlives the stop). */
  private running: Promise<void> | undefined;

  constructor(private readonly options: StartRetryOptions) {}

  /** Makes the first attempt; resolves once it settled (later attempts run on the clock). */
  start(): Promise<void> {
    this.stopped = false;
    this.running = this.attempt();
    return this.running;
  }

  /** No further attempt; resolves once the one in progress, if any, settled. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) this.options.clock.clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
  }

  private async attempt(): Promise<void> {
    const o = this.options;
    this.timer = undefined;
    if (this.stopped) return;
    try {
      await o.attempt();
    } catch (err) {
      await o.cleanup().catch(() => undefined);
      if (this.stopped) return;
      o.onFailure(err);
      const delay = Math.max(o.floorMs, backoffDelay(this.failures++, o.minMs, o.maxMs, o.random));
      this.timer = o.clock.setTimeout(() => {
        this.running = this.attempt();
      }, delay);
      this.timer.unref?.();
      return;
    }
    o.onStarted(this.failures);
    this.failures = 0;
  }
}
