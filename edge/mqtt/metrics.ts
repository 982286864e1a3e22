import { counter, gauge, SampleBuilder } from '../../agent/core/metric.js';
import type { Sample } from '../../agent/core/types.js';
import type { PublishResult } from './outbox.js';
import type { DropReason, SpoolStats } from './spool/spool.js';

/** Self-metrics of the MQTT publisher. */
export const mqttMetrics = {
  connected: gauge('gpulse_mqtt_connected', 'Whether the MQTT connection is up (1) or not (0).'),
  reconnects: counter(
    'gpulse_mqtt_reconnects_total',
    'MQTT connection attempts after the first (backoff retries included).',
  ),
  published: counter(
    'gpulse_mqtt_published_total',
    'MQTT messages by stream and outcome: sent live, replayed from the spool, spooled, or refused by the broker.',
    ['stream', 'result'],
  ),
  spoolBytes: gauge('gpulse_mqtt_spool_bytes', 'Bytes of spool segment files on disk.'),
  spoolOldestAge: gauge(
    'gpulse_mqtt_spool_oldest_age_seconds',
    'Age of the oldest message waiting in the spool; 0 when it is empty.',
  ),
  spoolDropped: counter(
    'gpulse_mqtt_spool_dropped_total',
    'Messages the spool gave up, by reason: size (byte bound), age, corrupt (damaged on disk), missing (deleted from disk), write_error.',
    ['reason'],
  ),
} as const;

const STREAMS = ['telemetry', 'events', 'status', 'schema'] as const;
const RESULTS: readonly PublishResult[] = ['sent', 'replayed', 'spooled', 'refused'];
const REASONS: readonly DropReason[] = ['size', 'age', 'corrupt', 'missing', 'write_error'];

/** Counters of the publisher; every label combination starts at 0 so rate() works from the start. */
export class MqttCounters {
  connected = false;
  reconnects = 0;
  private readonly published = new Map<string, number>();
  private readonly dropped = new Map<DropReason, number>();

  constructor() {
    for (const s of STREAMS) for (const r of RESULTS) this.published.set(`${s}\u0000${r}`, 0);
    for (const r of REASONS) this.dropped.set(r, 0);
  }

  /** Counts one message outcome. */
  countPublished(stream: (typeof STREAMS)[number], result: PublishResult, n = 1): void {
    const key = `${stream}\u0000${result}`;
    this.published.set(key, (this.published.get(key) ?? 0) + n);
  }

  /** Counts messages the spool gave up. */
  countDropped(reason: DropReason, n: number): void {
    this.dropped.set(reason, (this.dropped.get(reason) ?? 0) + n);
  }

  /** Samples of every publisher metric, given the spool's state now. */
  samples(spool: SpoolStats | undefined, now: number): Sample[] {
    const b = new SampleBuilder();
    const m = mqttMetrics;
    b.add(m.connected, {}, this.connected);
    b.add(m.reconnects, {}, this.reconnects);
    for (const [key, n] of this.published) {
      const [stream = '', result = ''] = key.split('\u0000');
      b.add(m.published, { stream, result }, n);
    }
    for (const [reason, n] of this.dropped) b.add(m.spoolDropped, { reason }, n);
    if (spool) {
      b.add(m.spoolBytes, {}, spool.bytes);
      b.add(
        m.spoolOldestAge,
        {},
        spool.oldestTs === undefined ? 0 : Math.max(0, (now - spool.oldestTs) / 1000),
      );
    }
    return b.build();
  }
}
