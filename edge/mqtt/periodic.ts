import type { Clock, TimerHandle } from '../../agent/core/clock.js';

/** A repeating task started by `every`; `cancel` stops it for good. */
export interface Periodic {
  cancel(): void;
}

/** Options of `every`. */
export interface EveryOptions {
  /** Checked before each run: once false, the task neither runs nor schedules another run. */
  readonly active: () => boolean;
  /** Called with what a run threw; the next run still comes. */
  readonly onError: (err: unknown) => void;
}

/**
 * Runs `fn` every `ms` on `clock`, the first time `ms` from now. Each run schedules the next
 * after it finished, so a slow run delays its successors instead of piling them up.
 */
export function every(clock: Clock, ms: number, fn: () => void, options: EveryOptions): Periodic {
  let timer: TimerHandle | undefined;
  const schedule = () => {
    timer = clock.setTimeout(tick, ms);
    timer.unref?.();
  };
  const tick = () => {
    if (!options.active()) return;
    try {
      fn();
    } catch (err) {
      options.onError(err);
    }
    schedule();
  };
  schedule();
  return {
    cancel() {
      if (timer) clock.clearTimeout(timer);
      timer = undefined;
    },
  };
}
