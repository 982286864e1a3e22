import { describe, expect, it } from 'vitest';
import { FakeClock, type Clock } from '../../agent/core/clock.js';
import { gauge, SampleBuilder } from '../../agent/core/metric.js';
import { StateStore } from '../../agent/core/state-store.js';
import {
  expandTelemetry,
  MAX_MESSAGE_BYTES,
  type BuiltTelemetry,
  type SchemaPayload,
  type TelemetryPayload,
  type TelemetrySchema,
} from '../../exporters/mqtt/payloads.js';
import { silentLogger } from '../../test/helpers/log-sink.js';
import { NotConnectedError, type PublishOptions } from './delivery.js';
import type { StatusConnection } from './status.js';
import { RetainedSchema, TelemetryBatcher } from './telemetry.js';
import { every } from './periodic.js';

const power = gauge('gpulse_test_batch_power_watts', 'Power drawn (batching test).', ['gpu']);
const SCHEMA_TOPIC = 'gpulse/v1/lab/n1/schema';
const T0 = 1_700_000_000_000;

/** A connection that records what is published; `connected` and the answer are the test's. */
class RecordingConnection implements StatusConnection {
  connected = true;
  offline = false;
  readonly published: { topic: string; body: Buffer; options: PublishOptions }[] = [];

  publish(topic: string, payload: Buffer | string, options: PublishOptions): Promise<void> {
    this.published.push({ topic, body: Buffer.from(payload), options });
    return this.offline ? Promise.reject(new NotConnectedError()) : Promise.resolve();
  }

  schemas(): SchemaPayload[] {
    return this.published
      .filter((p) => p.topic === SCHEMA_TOPIC)
      .map((p) => JSON.parse(p.body.toString()) as SchemaPayload);
  }
}

interface Sent {
  readonly at: number;
  readonly payload: TelemetryPayload;
  readonly message: BuiltTelemetry;
}

function setup(
  options: { intervalMs?: number; flushMs?: number; gpus?: number; timersEarlyMs?: number } = {},
) {
  const intervalMs = options.intervalMs ?? 1000;
  const flushMs = options.flushMs ?? 5000;
  const clock = new FakeClock(T0);
  const store = new StateStore({ clock, log: silentLogger(), coalesceMs: 25 });
  const conn = new RecordingConnection();
  const sent: Sent[] = [];
  let seq = 10;
  let open = true;
  let active = true;
  let flushed = 0;
  const schema = new RetainedSchema({
    topic: SCHEMA_TOPIC,
    clock,
    compressAbove: Infinity,
    connection: () => conn,
    onSent: () => undefined,
    log: silentLogger(),
  });
  const batcher = new TelemetryBatcher({
    clock,
    store,
    version: '1.2.3',
    intervalMs,
    flushMs,
    compressAbove: Infinity,
    schema,
    seq: () => (open ? { next: () => ++seq } : undefined),
    submit: (messages) => {
      for (const m of messages)
        sent.push({ at: clock.now(), payload: JSON.parse(m.json) as TelemetryPayload, message: m });
      return messages.map(() => Promise.resolve('spooled' as const));
    },
    onFlushed: () => flushed++,
    active: () => active,
    log: silentLogger(),
  });
  // Node's timers may fire a little before Date.now() says the delay is over.
  const early = options.timersEarlyMs ?? 0;
  const tickClock: Clock = {
    now: () => clock.now(),
    setTimeout: (fn, ms) => clock.setTimeout(fn, ms - early),
    clearTimeout: (handle) => clock.clearTimeout(handle),
  };
  every(tickClock, intervalMs, batcher.tick, { active: () => active, onError: () => undefined });
  /** The collector's result: one power series per GPU. */
  const collect = (watts: number) => {
    const b = new SampleBuilder();
    for (let g = 0; g < (options.gpus ?? 1); g++) b.add(power, { gpu: String(g) }, watts + g / 8);
    store.ok('nvidia-smi', { samples: b.build() });
  };
  return {
    clock,
    store,
    conn,
    sent,
    batcher,
    schema,
    collect,
    flushes: () => flushed,
    close: () => (open = false),
    stop: () => (active = false),
  };
}

/** Power of GPU 0 at each sample time of a message. */
function powerOf(s: Sent): { ts: number; watts: number | undefined }[] {
  const schema = s.payload.schema as TelemetrySchema;
  return expandTelemetry(s.payload, schema).map((x) => ({
    ts: x.ts,
    watts: x.series.find((g) => g.labels.gpu === '0')?.metrics.test_batch_power_watts,
  }));
}

describe('TelemetryBatcher', () => {
  it('takes one sample per interval and sends them as one message per flush period', async () => {
    const t = setup();
    for (let i = 0; i < 10; i++) {
      t.collect(100 + i);
      await t.clock.advance(1000);
    }
    expect(t.sent.map((s) => s.at)).toEqual([T0 + 5000, T0 + 10_000]);
    expect(t.sent.map((s) => s.payload.seq)).toEqual([11, 12]);
    // Each sample carries the snapshot taken 25 ms (the store's coalescing) after the collection.
    expect(powerOf(t.sent[0] as Sent)).toEqual(
      [0, 1, 2, 3, 4].map((i) => ({ ts: T0 + i * 1000 + 25, watts: 100 + i })),
    );
    expect(powerOf(t.sent[1] as Sent)).toEqual(
      [5, 6, 7, 8, 9].map((i) => ({ ts: T0 + i * 1000 + 25, watts: 100 + i })),
    );
    // The agent's own series ride along: the collector is up.
    const series = (t.sent[0]?.payload.schema as TelemetrySchema).series;
    expect(series).toContainEqual({
      labels: { collector: 'nvidia-smi' },
      metrics: expect.arrayContaining(['collector_up']) as unknown,
    });
    expect(t.flushes()).toBe(2);
  });

  it('still sends every 5 samples when the timers fire a little early', async () => {
    const t = setup({ timersEarlyMs: 1 });
    for (let i = 0; i < 10; i++) {
      t.collect(100 + i);
      await t.clock.advance(1000);
    }
    expect(t.sent.map((s) => s.at)).toEqual([T0 + 4995, T0 + 9990]);
    expect(t.sent.map((s) => s.payload.ts.length)).toEqual([5, 5]);
  });

  it('takes one sample per batch of a snapshot that did not change', async () => {
    const t = setup();
    t.collect(250);
    await t.clock.advance(5000);
    expect(t.sent).toHaveLength(1);
    expect(t.sent[0]?.payload.ts).toEqual([T0 + 25]);
    // The next period starts an empty batch: the same snapshot again, once, not once per interval.
    await t.clock.advance(5000);
    expect(t.sent.map((s) => s.payload.ts)).toEqual([[T0 + 25], [T0 + 25]]);
  });

  it('sends the batch early when the next sample would push it over the message limit', async () => {
    const t = setup({ gpus: 400, flushMs: 60_000 });
    for (let i = 0; i < 60; i++) {
      t.collect(100 + i * 3.1);
      await t.clock.advance(1000);
    }
    expect(t.sent.length).toBeGreaterThan(2);
    for (const s of t.sent) expect(s.message.body.length).toBeLessThanOrEqual(MAX_MESSAGE_BYTES);
    // Every sample sent exactly once, in order, without gaps, under consecutive seqs.
    const times = t.sent.flatMap((s) => s.payload.ts);
    expect(times).toEqual(Array.from({ length: 60 }, (_, i) => T0 + i * 1000 + 25));
    expect(t.sent.map((s) => s.payload.seq)).toEqual(t.sent.map((_, i) => 11 + i));
    // Cut early: all but the last well before the 60 s flush period.
    expect(t.sent[0]?.at).toBeLessThan(T0 + 60_000);
    expect(t.sent.at(-1)?.payload.ts.length).toBeLessThan(60);
  });

  it('samples nothing while the publisher is not open or after the stop; flush sends what waits', async () => {
    const t = setup();
    t.close();
    t.collect(1);
    await t.clock.advance(5000);
    expect(t.sent).toHaveLength(0);
    expect(t.batcher.pending).toBe(0);

    const u = setup();
    u.collect(7);
    await u.clock.advance(2000);
    expect(u.batcher.pending).toBe(1);
    const results = await Promise.all(u.batcher.flush());
    expect(results).toEqual(['spooled']);
    expect(u.sent.map((s) => s.payload.ts)).toEqual([[T0 + 25]]);
    u.stop();
    u.collect(8);
    await u.clock.advance(10_000);
    expect(u.sent).toHaveLength(1);
    expect(u.batcher.flush()).toEqual([]);
  });
});

describe('RetainedSchema', () => {
  it('retains the schema when it changes and after each reconnect, not with every message', async () => {
    const t = setup();
    t.collect(1);
    await t.clock.advance(5000);
    t.collect(2);
    await t.clock.advance(5000);
    expect(t.sent).toHaveLength(2);
    const first = t.sent[0]?.payload.schema as TelemetrySchema;
    expect(t.sent[1]?.payload.schema?.id).toBe(first.id);
    expect(t.conn.schemas()).toEqual([{ v: 2, ts: T0 + 5000, schemas: [first] }]);
    expect(t.conn.published[0]?.options).toMatchObject({ qos: 1, retain: true });

    t.schema.reconnected();
    expect(t.conn.schemas().map((s) => s.ts)).toEqual([T0 + 5000, T0 + 10_000]);

    // A new series: a new schema, retained at once.
    t.store.ok('dcgm', { samples: new SampleBuilder().add(power, { gpu: '9' }, 5).build() });
    await t.clock.advance(5000);
    const third = t.sent[2]?.payload.schema as TelemetrySchema;
    expect(third.id).not.toBe(first.id);
    expect(t.conn.schemas().at(-1)?.schemas).toEqual([third]);
  });

  it('while offline waits for the next connect, and retries after a publish that failed', async () => {
    const t = setup();
    t.conn.connected = false;
    t.collect(1);
    await t.clock.advance(5000);
    expect(t.sent).toHaveLength(1);
    expect(t.conn.schemas()).toHaveLength(0);
    t.conn.connected = true;
    t.conn.offline = true;
    t.schema.reconnected();
    await t.clock.advance(0);
    t.conn.offline = false;
    t.schema.reconnected();
    expect(t.conn.schemas()).toHaveLength(2);
    expect(t.schema.current.map((s) => s.id)).toEqual([t.sent[0]?.payload.schema?.id]);
  });
});
