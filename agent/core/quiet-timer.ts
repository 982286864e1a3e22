import type { Clock, TimerHandle } from './clock.js';

/**
 * Calls `fn` once input has been quiet for `quietMs` after the last `poke()`. One timer serves a
 * whole burst: a poke only notes the time, and the timer, when it fires early, waits out the
 * rest. (Clearing and setting a timer per line cost a timer object per process line a second.)
 */
export class QuietTimer {
  private timer: TimerHandle | undefined;
  private lastPoke = 0;

  constructor(
    private readonly clock: Clock,
    private readonly quietMs: number,
    private readonly fn: () => void,
  ) {}

  /** Input arrived: (re)starts the quiet period. */
  poke(): void {
    this.lastPoke = this.clock.now();
    if (!this.timer) this.arm(this.quietMs);
  }

  /** Stops waiting; `fn` is not called for the input so far. */
  cancel(): void {
    if (this.timer) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private arm(ms: number): void {
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      const left = this.lastPoke + this.quietMs - this.clock.now();
      if (left > 0) this.arm(left);
      else this.fn();
    }, ms);
    this.timer.unref?.();
  }
}
