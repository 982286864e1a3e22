import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../agent/core/clock.js';
import { silentLogger } from '../../test/helpers/log-sink.js';
import { NotConnectedError, PublishRefusedError, type PublishOptions } from './delivery.js';
import { MqttStatus, type StatusConnection } from './status.js';
import { every } from './periodic.js';

const TOPIC = 'gpulse/v1/lab/n1/status';

/** A connection that records what is published and answers as the test says. */
class RecordingConnection implements StatusConnection {
  connected = true;
  answer: 'ack' | 'refuse' | 'offline' = 'ack';
  readonly published: { topic: string; json: unknown; options: PublishOptions }[] = [];

  publish(topic: string, payload: Buffer | string, options: PublishOptions): Promise<void> {
    this.published.push({ topic, json: JSON.parse(payload.toString()), options });
    if (this.answer === 'refuse')
      return Promise.reject(new PublishRefusedError(0x87, 'Not authorized'));
    if (this.answer === 'offline') return Promise.reject(new NotConnectedError());
    return Promise.resolve();
  }
}

/** `null`: the publisher is not open (no connection). */
function setup(given?: RecordingConnection | null) {
  const conn = given === null ? undefined : (given ?? new RecordingConnection());
  const clock = new FakeClock(1_700_000_000_000);
  const counts = { sent: 0, settled: 0 };
  const status = new MqttStatus({
    topic: TOPIC,
    clock,
    version: '9.9.9',
    telemetryIntervalMs: 5000,
    telemetryFlushMs: 30_000,
    connection: () => conn,
    onSent: () => counts.sent++,
    onSettled: () => counts.settled++,
    log: silentLogger(),
  });
  return { clock, status, conn, counts };
}

describe('MqttStatus', () => {
  it('publishes a retained online status with version, session and the telemetry timing', async () => {
    const t = setup();
    t.status.session = 42;
    t.status.publishOnline();
    await t.clock.advance(0);
    expect(t.conn?.published).toEqual([
      {
        topic: TOPIC,
        json: {
          v: 1,
          state: 'online',
          ts: 1_700_000_000_000,
          session: 42,
          version: '9.9.9',
          telemetry_interval_seconds: 5,
          telemetry_flush_seconds: 30,
        },
        options: { qos: 1, retain: true, contentType: 'application/json' },
      },
    ]);
    expect(t.counts).toEqual({ sent: 1, settled: 1 });
  });

  it('registers a last will and says farewell as retained offline messages with their reason', async () => {
    const t = setup();
    const will = t.status.will(7);
    expect(will.topic).toBe(TOPIC);
    expect(will.qos).toBe(1);
    expect(will.retain).toBe(true);
    expect(JSON.parse(will.payload.toString())).toEqual({
      v: 1,
      state: 'offline',
      ts: 1_700_000_000_000,
      session: 7,
      reason: 'will',
    });
    t.status.session = 8;
    await t.clock.advance(2500);
    const bye = t.status.farewell();
    expect(JSON.parse(bye.payload.toString())).toEqual({
      v: 1,
      state: 'offline',
      ts: 1_700_000_002_500,
      session: 8,
      reason: 'shutdown',
    });
    expect(bye.retain).toBe(true);
  });

  it('publishes nothing while offline or not open, and counts only acknowledged statuses', async () => {
    const conn = new RecordingConnection();
    conn.connected = false;
    const t = setup(conn);
    t.status.publishOnline();
    expect(conn.published).toHaveLength(0);
    conn.connected = true;
    conn.answer = 'refuse';
    t.status.publishOnline();
    conn.answer = 'offline';
    t.status.publishOnline();
    await t.clock.advance(0);
    expect(conn.published).toHaveLength(2);
    expect(t.counts).toEqual({ sent: 0, settled: 2 });

    const none = setup(null);
    none.status.publishOnline();
    await none.clock.advance(0);
    expect(none.counts).toEqual({ sent: 0, settled: 0 });
  });

  it('repeated every status interval, each carries the time it was sent', async () => {
    const t = setup();
    every(t.clock, 60_000, t.status.publishOnline, {
      active: () => true,
      onError: () => undefined,
    });
    await t.clock.advance(180_000);
    expect(t.conn?.published.map((p) => (p.json as { ts: number }).ts)).toEqual([
      1_700_000_060_000, 1_700_000_120_000, 1_700_000_180_000,
    ]);
    expect(t.counts.sent).toBe(3);
  });
});
