import type { Clock, TimerHandle } from '../../agent/core/clock.js';
import type { SelfMetricsChannel } from '../../agent/core/self-metrics-channel.js';
import type { MqttCounters } from './metrics.js';
import type { SpoolStats } from './spool/spool.js';

/** What the self-metrics read of the publisher when they are pushed. */
export interface PublisherState {
  readonly connection?: { readonly connected: boolean; readonly reconnects: number };
  readonly spool?: { stats(): SpoolStats };
}

/** Options of `MqttSelfMetrics`. */
export interface MqttSelfMetricsOptions {
  readonly counters: MqttCounters;
  readonly clock: Clock;
  /** The publisher's own channel (`collector="mqtt"`): its output, status and health samples. */
  readonly sink: SelfMetricsChannel;
  /** The connection and spool now (either may be absent while the publisher is not open). */
  readonly state: () => PublisherState;
  /** Once false (the component stopped), `mark` schedules nothing. */
  readonly active: () => boolean;
  /** Longest wait between a change and its push (default 1 s). */
  readonly everyMs?: number;
}

/** Self-metrics of the MQTT publisher, pushed at most once per second however often they change. */
export class MqttSelfMetrics {
  private timer: TimerHandle | undefined;

  constructor(private readonly options: MqttSelfMetricsOptions) {}

  /** Notes a change: one push follows within `everyMs`, carrying every change made until then. */
  readonly mark = (): void => {
    if (this.timer || !this.options.active()) return;
    this.timer = this.options.clock.setTimeout(() => {
      this.timer = undefined;
      this.push();
    }, this.options.everyMs ?? 1000);
    this.timer.unref?.();
  };

  /** Pushes the counters, the connection state and the spool's state now. */
  push(): void {
    const { counters, clock, sink } = this.options;
    const { connection, spool } = this.options.state();
    counters.reconnects = connection?.reconnects ?? 0;
    counters.connected = connection?.connected ?? false;
    sink.ok(counters.samples(spool?.stats(), clock.now()));
  }

  /**
   * While the start is retried (no spool open): the publisher's series (connected 0, drops) as
   * health samples, which the store keeps through the failure.
   */
  pushStartFailure(): void {
    const { counters, clock, sink } = this.options;
    if (this.options.state().spool) return;
    counters.connected = false;
    sink.health(counters.samples(undefined, clock.now()));
  }

  /** A start attempt failed: the status says why; the publisher's series stay as health samples. */
  startFailed(reason: string, message: string): void {
    this.options.sink.fail(reason, message);
    this.pushStartFailure();
  }

  /** The publisher started: its series now come with its output (health samples would duplicate them). */
  started(): void {
    this.options.sink.health([]);
    this.push();
  }

  /** Drops a pending push. */
  cancel(): void {
    if (this.timer) this.options.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }
}
