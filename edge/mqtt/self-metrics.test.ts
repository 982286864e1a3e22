import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../agent/core/clock.js';
import type { CollectorOutput, Sample } from '../../agent/core/types.js';
import { MqttCounters } from './metrics.js';
import { MqttSelfMetrics, type PublisherState } from './self-metrics.js';

/** `name{label="v",...}` → value, for readable assertions. */
function series(samples: readonly Sample[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of samples) {
    const labels = Object.entries(s.labels)
      .map(([k, v]) => `${k}="${v}"`)
      .join(',');
    out[labels ? `${s.desc.name}{${labels}}` : s.desc.name] = s.value;
  }
  return out;
}

function setup(state: PublisherState = {}) {
  const clock = new FakeClock(1_000_000);
  const counters = new MqttCounters();
  const ok: { name: string; output: CollectorOutput; at: number }[] = [];
  const health: { name: string; samples: readonly Sample[] }[] = [];
  const fails: { name: string; reason: string; message: string }[] = [];
  /** Every write, in order. */
  const writes: string[] = [];
  let active = true;
  let current = state;
  // The publisher's channel as the agent binds it (selfMetricsChannel(store, 'mqtt')), recorded.
  const name = 'mqtt';
  const metrics = new MqttSelfMetrics({
    counters,
    clock,
    sink: {
      register: () => writes.push('register'),
      ok: (samples) => {
        writes.push('ok');
        ok.push({ name, output: { samples }, at: clock.now() });
      },
      health: (samples) => {
        writes.push(samples.length > 0 ? 'health' : 'health cleared');
        health.push({ name, samples });
      },
      fail: (reason, message) => {
        writes.push('fail');
        fails.push({ name, reason, message });
      },
      countError: () => writes.push('countError'),
    },
    state: () => current,
    active: () => active,
  });
  return {
    clock,
    counters,
    metrics,
    ok,
    health,
    fails,
    writes,
    stop: () => (active = false),
    set: (s: PublisherState) => (current = s),
  };
}

describe('MqttSelfMetrics', () => {
  it('pushes once per second however many changes are marked, with the counts of that moment', async () => {
    const t = setup({
      connection: { connected: true, reconnects: 3 },
      spool: { stats: () => ({ pending: 2, bytes: 4096, oldestTs: 1_000_000 - 30_000 }) },
    });
    t.counters.countPublished('telemetry', 'sent');
    t.metrics.mark();
    await t.clock.advance(500);
    t.counters.countPublished('telemetry', 'sent');
    t.counters.countPublished('events', 'spooled');
    t.counters.countDropped('age', 4);
    t.metrics.mark();
    t.metrics.mark();
    await t.clock.advance(499);
    expect(t.ok).toHaveLength(0);
    await t.clock.advance(1);
    expect(t.ok).toHaveLength(1);
    const [push] = t.ok;
    expect(push?.name).toBe('mqtt');
    expect(push?.at).toBe(1_001_000);
    const s = series(push?.output.samples ?? []);
    expect(s['gpulse_mqtt_connected']).toBe(1);
    expect(s['gpulse_mqtt_reconnects_total']).toBe(3);
    expect(s['gpulse_mqtt_published_total{stream="telemetry",result="sent"}']).toBe(2);
    expect(s['gpulse_mqtt_published_total{stream="events",result="spooled"}']).toBe(1);
    expect(s['gpulse_mqtt_published_total{stream="status",result="sent"}']).toBe(0);
    expect(s['gpulse_mqtt_spool_dropped_total{reason="age"}']).toBe(4);
    expect(s['gpulse_mqtt_spool_bytes']).toBe(4096);
    // 30 s before the start, pushed 1 s later.
    expect(s['gpulse_mqtt_spool_oldest_age_seconds']).toBe(31);
    await t.clock.advance(5000);
    expect(t.ok).toHaveLength(1);
  });

  it('schedules nothing once stopped, and cancel drops a pending push', async () => {
    const t = setup();
    t.metrics.mark();
    t.metrics.cancel();
    await t.clock.advance(2000);
    expect(t.ok).toHaveLength(0);
    t.stop();
    t.metrics.mark();
    expect(t.clock.pending()).toBe(0);
    // A direct push (a connection change) still goes out after the stop.
    t.metrics.push();
    expect(series(t.ok[0]?.output.samples ?? [])['gpulse_mqtt_connected']).toBe(0);
  });

  it('while the start is retried, reports connected 0 and the drops as health samples, without spool series', () => {
    const t = setup({ connection: { connected: true, reconnects: 0 } });
    t.counters.countDropped('write_error', 7);
    t.metrics.pushStartFailure();
    expect(t.health).toHaveLength(1);
    const s = series(t.health[0]?.samples ?? []);
    expect(s['gpulse_mqtt_connected']).toBe(0);
    expect(s['gpulse_mqtt_spool_dropped_total{reason="write_error"}']).toBe(7);
    expect(s['gpulse_mqtt_spool_bytes']).toBeUndefined();
    expect(t.ok).toHaveLength(0);
    // Once a spool is open the store gets the output instead.
    t.set({ spool: { stats: () => ({ pending: 0, bytes: 0, oldestTs: undefined }) } });
    t.metrics.pushStartFailure();
    expect(t.health).toHaveLength(1);
  });

  it('reports a failed start as status and health, and a start as output with the health cleared', () => {
    const t = setup();
    t.counters.countDropped('write_error', 2);
    t.metrics.startFailed('instance_locked', 'MQTT publisher could not start: lock held');
    expect(t.fails).toEqual([
      {
        name: 'mqtt',
        reason: 'instance_locked',
        message: 'MQTT publisher could not start: lock held',
      },
    ]);
    expect(
      series(t.health[0]?.samples ?? [])['gpulse_mqtt_spool_dropped_total{reason="write_error"}'],
    ).toBe(2);
    t.set({
      connection: { connected: false, reconnects: 0 },
      spool: { stats: () => ({ pending: 5, bytes: 100, oldestTs: undefined }) },
    });
    t.metrics.started();
    expect(t.writes).toEqual(['fail', 'health', 'health cleared', 'ok']);
    const s = series(t.ok[0]?.output.samples ?? []);
    expect(s['gpulse_mqtt_spool_bytes']).toBe(100);
    expect(s['gpulse_mqtt_spool_oldest_age_seconds']).toBe(0);
    expect(s['gpulse_mqtt_spool_dropped_total{reason="write_error"}']).toBe(2);
  });
});
