import type { Logger } from 'pino';
import type { Clock } from '../../agent/core/clock.js';
import { errorMessage } from '../../agent/core/errors.js';
import { snapshotSamples } from '../../agent/core/self-metrics.js';
import type { Snapshot } from '../../agent/core/types.js';
import {
  buildSchema,
  buildTelemetry,
  seriesGroups,
  telemetryFits,
  type BuiltTelemetry,
  type SchemaGroup,
  type TelemetrySample,
  type TelemetrySchema,
} from '../../exporters/mqtt/payloads.js';
import { NotConnectedError } from './delivery.js';
import type { SubmitResult } from './outbox.js';
import type { StatusConnection } from './status.js';

/** Options of `RetainedSchema`. */
export interface RetainedSchemaOptions {
  /** `<node>/schema`. */
  readonly topic: string;
  readonly clock: Clock;
  readonly compressAbove: number;
  /** The connection now (absent while the publisher is not open). */
  readonly connection: () => StatusConnection | undefined;
  /** Called when the broker acknowledged a schema. */
  readonly onSent: () => void;
  readonly log: Logger;
}

/**
 * The schemas (one per part) of the latest telemetry, retained on `<node>/schema` for receivers
 * that missed the inline copy: published when they change and again after every connect.
 */
export class RetainedSchema {
  private schemas: readonly TelemetrySchema[] = [];
  /** Whether the retained copy on the broker is the current one. */
  private retained = true;

  constructor(private readonly options: RetainedSchemaOptions) {}

  /** The current schemas. */
  get current(): readonly TelemetrySchema[] {
    return this.schemas;
  }

  /** Takes the schemas of the telemetry just built; publishes them when they changed. */
  update(schemas: readonly TelemetrySchema[]): void {
    if (schemas.map((x) => x.id).join(',') === this.schemas.map((x) => x.id).join(',')) return;
    this.schemas = schemas;
    this.retained = false;
    this.publish();
  }

  /** A new connection: the retained schema may predate what this run sends. */
  reconnected(): void {
    this.retained = false;
    this.publish();
  }

  private publish(): void {
    const o = this.options;
    const conn = o.connection();
    if (!conn?.connected || this.retained || this.schemas.length === 0) return;
    this.retained = true;
    const current = this.schemas;
    const { body, contentType } = buildSchema(current, o.clock.now(), o.compressAbove);
    conn
      .publish(o.topic, body, { qos: 1, retain: true, contentType })
      .then(o.onSent, (err: unknown) => {
        // Published again after the next connect (or with the next change).
        if (this.schemas === current) this.retained = false;
        if (!(err instanceof NotConnectedError))
          o.log.debug({ err: errorMessage(err) }, 'schema not published');
      });
  }
}

/** Options of `TelemetryBatcher`. */
export interface TelemetryBatcherOptions {
  readonly clock: Clock;
  /** The agent's state store (each sample reads its current snapshot). */
  readonly store: { current(): Snapshot };
  /** Agent version (the `gpulse_build_info`-style series carry it). */
  readonly version: string;
  /** mqtt.telemetry.interval: one sample each. */
  readonly intervalMs: number;
  /** mqtt.telemetry.flush: one message (or parts) each. */
  readonly flushMs: number;
  readonly compressAbove: number;
  readonly schema: RetainedSchema;
  /** Sequence numbers of the open publisher; absent while it is not open (nothing is sampled). */
  readonly seq: () => { next(): number } | undefined;
  /** Hands built messages to the outbox. */
  readonly submit: (messages: readonly BuiltTelemetry[]) => Promise<SubmitResult>[];
  /** Called after every flush that built messages. */
  readonly onFlushed: () => void;
  /** Once false (the component stopped), nothing more is sampled. */
  readonly active: () => boolean;
  readonly log: Logger;
}

/**
 * Telemetry batching: one sample of every series per interval (none when the snapshot did not
 * change), sent as one message per flush period, or earlier when the next sample would push the
 * message over the size limit. Backpressure is the outbox's: it spools what the broker does not
 * take.
 */
export class TelemetryBatcher {
  /** Samples taken since the last telemetry message. */
  private batch: TelemetrySample[] = [];
  private flushedAt: number;

  constructor(private readonly options: TelemetryBatcherOptions) {
    this.flushedAt = options.clock.now();
  }

  /** Samples taken and not sent yet. */
  get pending(): number {
    return this.batch.length;
  }

  /**
   * One interval: takes a sample, and sends the batch when the flush period is over. One timer
   * for both: a separate flush timer drifts against the sample timer and would cut batches at 5
   * or 6 samples. Half an interval of slack absorbs that drift.
   */
  readonly tick = (): void => {
    const { clock, flushMs, intervalMs } = this.options;
    this.sample();
    if (clock.now() - this.flushedAt < flushMs - intervalMs / 2) return;
    this.flushedAt = clock.now();
    void Promise.all(this.flush());
  };

  /** Takes one sample of every series into the batch; sends the batch first when it would not fit. */
  sample(): void {
    const o = this.options;
    if (!o.seq() || !o.active()) return;
    const snapshot = o.store.current();
    // No new snapshot since the last sample: nothing new to carry.
    if (this.batch.length > 0 && this.batch[this.batch.length - 1]?.ts === snapshot.takenAt) return;
    const sample = {
      ts: snapshot.takenAt,
      series: seriesGroups(snapshotSamples(snapshot, o.version)),
    };
    if (this.batch.length > 0 && !telemetryFits([...this.batch, sample], this.buildOptions()))
      void Promise.all(this.flush());
    this.batch.push(sample);
  }

  /** Sends the samples taken so far as one message (or parts); nothing when there are none. */
  flush(): Promise<SubmitResult>[] {
    const o = this.options;
    const seq = o.seq();
    if (this.batch.length === 0 || !seq) return [];
    const samples = this.batch;
    this.batch = [];
    const messages = buildTelemetry(samples, () => seq.next(), {
      ...this.buildOptions(),
      onOversize: (g: SchemaGroup, bytes: number) =>
        o.log.warn(
          { labels: g.labels, bytes },
          'one label set alone exceeds the MQTT message limit; left out of telemetry',
        ),
    });
    o.schema.update(messages.map((m) => m.schema));
    const results = o.submit(messages);
    o.onFlushed();
    return results;
  }

  /** The series of the current schemas: the next batch keeps them when it can. */
  private buildOptions() {
    return {
      compressAbove: this.options.compressAbove,
      base: this.options.schema.current.flatMap((x) => x.series),
    };
  }
}
