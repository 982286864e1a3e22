import type { Clock, TimerHandle } from '../../agent/core/clock.js';
import type { AgentEvent } from '../../agent/core/events.js';
import { buildEvents, type BuiltMessage } from '../../exporters/mqtt/payloads.js';
import type { SubmitResult } from './outbox.js';

/** Most events in one message before it is sent without waiting for the window. */
export const MAX_EVENTS_PER_MESSAGE = 100;
/** Events kept in memory while the publisher cannot open (then dropped, oldest first). */
export const MAX_EVENTS_BEFORE_START = 1000;

/** Options of `EventBatcher`. */
export interface EventBatcherOptions {
  readonly clock: Clock;
  /** mqtt.eventsWindow: how long the first event waits for others to share its message. */
  readonly windowMs: number;
  readonly compressAbove: number;
  /** Sequence numbers of the open publisher; absent while it is not open (events wait). */
  readonly seq: () => { next(): number } | undefined;
  /** Hands built messages to the outbox. */
  readonly submit: (messages: readonly BuiltMessage[]) => Promise<SubmitResult>[];
  /** Called with the number of events given up while the publisher could not open. */
  readonly onDropped: (count: number) => void;
  /** Once false (the component stopped), new events are ignored. */
  readonly active: () => boolean;
}

/**
 * Event publishing: every agent event goes out on the `events` stream, in emission order,
 * gathered for one window (or until 100 wait) into one message per seq. While the publisher
 * cannot open, the newest 1000 wait in memory and older ones are counted as dropped.
 */
export class EventBatcher {
  private pending: AgentEvent[] = [];
  private timer: TimerHandle | undefined;

  constructor(private readonly options: EventBatcherOptions) {}

  /** Events waiting for their message. */
  get waiting(): number {
    return this.pending.length;
  }

  /** Takes one agent event (the EventLog listener). */
  readonly add = (event: AgentEvent): void => {
    const o = this.options;
    if (!o.active()) return;
    this.pending.push(event);
    if (this.pending.length >= (o.seq() ? MAX_EVENTS_PER_MESSAGE : MAX_EVENTS_BEFORE_START + 1)) {
      this.flush();
      return;
    }
    if (!this.timer) {
      this.timer = o.clock.setTimeout(this.flush, o.windowMs);
      this.timer.unref?.();
    }
  };

  /** Sends what waits now; while not open, only trims the wait to its bound. */
  readonly flush = (): void => {
    const o = this.options;
    if (this.timer) o.clock.clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pending.length === 0) return;
    const seq = o.seq();
    if (!seq) {
      // Not open (the start is being retried): keep the newest events for when it succeeds.
      const over = this.pending.length - MAX_EVENTS_BEFORE_START;
      if (over > 0) {
        this.pending.splice(0, over);
        o.onDropped(over);
      }
      return;
    }
    const batch = this.pending;
    this.pending = [];
    void Promise.all(
      o.submit(buildEvents(batch, () => seq.next(), { compressAbove: o.compressAbove })),
    );
  };
}
