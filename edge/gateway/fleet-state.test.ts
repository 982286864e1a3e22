import { spawnSync } from 'node:child_process';
import { deflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../agent/core/clock.js';
import { gpuReadingSamples } from '../../collectors/gpu-series.js';
import {
  buildEvents,
  buildSchema,
  buildTelemetry,
  markReplay,
  seriesGroups,
  statusJson,
  type SeriesGroup,
} from '../../exporters/mqtt/payloads.js';
import { captureLogger } from '../../test/helpers/log-sink.js';
import { itWithTools, tools } from '../../test/helpers/tools.js';
import { h100Readings } from '../../test/helpers/gpu-readings.js';
import type { IncomingMessage } from '../mqtt/publisher.js';
import { FleetState } from './fleet-state.js';

const T0 = 1_700_000_000_000;

function setup(
  limits: {
    maxDevices?: number;
    maxSeriesPerDevice?: number;
    maxDeviceBytes?: number;
    maxFleetBytes?: number;
    owns?: (site: string, node: string) => boolean;
  } = {},
) {
  const clock = new FakeClock(T0);
  const { log, records } = captureLogger();
  const fleet = new FleetState({
    clock,
    log,
    deviceTimeoutMs: 60_000,
    deviceTtlMs: 3_600_000,
    maxDevices: limits.maxDevices ?? 100,
    maxSeriesPerDevice: limits.maxSeriesPerDevice ?? 10_000,
    maxPayloadBytes: 256 * 1024,
    maxInflatedBytes: 4 * 1024 * 1024,
    maxDeviceBytes: limits.maxDeviceBytes ?? 4 * 1024 * 1024,
    maxFleetBytes: limits.maxFleetBytes ?? 64 * 1024 * 1024,
    owns: limits.owns,
  });
  return { clock, fleet, records, log };
}

function msg(
  topic: string,
  payload: Buffer | string,
  extra: Partial<IncomingMessage> = {},
): IncomingMessage {
  return { topic, payload: Buffer.from(payload), retain: false, ...extra };
}

function telemetry(
  site: string,
  node: string,
  series: SeriesGroup[],
  ts: number,
  seq = 1,
  replay = false,
  compact = false,
): IncomingMessage {
  const [m] = buildTelemetry([{ ts, series }], () => seq, { compressAbove: 512 });
  const body = replay ? Buffer.from(markReplay(m!.json)) : compact ? m!.compact.body : m!.body;
  return msg(`gpulse/v1/${site}/${node}/telemetry`, body, {
    contentType: replay ? 'application/json' : compact ? m!.compact.contentType : m!.contentType,
  });
}

function schemaMessage(site: string, node: string, series: SeriesGroup[], ts = T0, retain = true) {
  const [m] = buildTelemetry([{ ts, series }], () => 1, { compressAbove: 512 });
  const { body, contentType } = buildSchema([m!.schema], ts, 512);
  return msg(`gpulse/v1/${site}/${node}/schema`, body, { contentType, retain });
}

function status(
  site: string,
  node: string,
  state: 'online' | 'offline',
  session: number,
  ts = T0,
  retain = false,
) {
  return msg(
    `gpulse/v1/${site}/${node}/status`,
    statusJson({
      state,
      ts,
      session,
      ...(state === 'online' ? { version: '1.2.3' } : { reason: 'will' }),
    }),
    { retain },
  );
}

const temp = (value: number, gpu = '0'): SeriesGroup => ({
  labels: { gpu, uuid: `GPU-${gpu}` },
  metrics: { gpu_temperature_celsius: value, gpu_energy_joules_total: 1000 },
});

function lines(fleet: FleetState): string[] {
  return fleet.exposition().split('\n');
}

describe('FleetState', () => {
  it('relays device series labelled site and node, with up, last seen and version', () => {
    const { fleet } = setup();
    expect(fleet.ingest(status('plant', 'cam1', 'online', 1))).toBe('applied');
    expect(fleet.ingest(telemetry('plant', 'cam1', [temp(61)], T0))).toBe('applied');
    const out = lines(fleet);
    expect(out).toContain('gpulse_fleet_device_up{site="plant",node="cam1"} 1');
    expect(out).toContain(
      'gpulse_fleet_device_last_seen_timestamp_seconds{site="plant",node="cam1"} 1700000000',
    );
    expect(out).toContain('gpulse_fleet_device_info{site="plant",node="cam1",version="1.2.3"} 1');
    expect(out).toContain(
      'gpulse_gpu_temperature_celsius{site="plant",node="cam1",gpu="0",uuid="GPU-0"} 61',
    );
    expect(out).toContain('# TYPE gpulse_gpu_energy_joules_total counter');
    expect(out).toContain('# TYPE gpulse_gpu_temperature_celsius gauge');
    expect(out).toContain('gpulse_fleet_messages_total{stream="telemetry",result="applied"} 1');
  });

  it('replaces a device series on live telemetry; applies replays only when newer', () => {
    const { fleet, clock } = setup();
    fleet.ingest(telemetry('s', 'n', [temp(50)], T0 + 1000, 5));
    // An older replay arrives late: counted, not shown.
    expect(fleet.ingest(telemetry('s', 'n', [temp(40)], T0, 4, true))).toBe('stale');
    expect(lines(fleet)).toContain(
      'gpulse_gpu_temperature_celsius{site="s",node="n",gpu="0",uuid="GPU-0"} 50',
    );
    expect(fleet.ingest(telemetry('s', 'n', [temp(70)], T0 + 2000, 6, true))).toBe('applied');
    clock.now();
    expect(fleet.ingest(telemetry('s', 'n', [temp(71, '1')], T0 + 3000, 7))).toBe('applied');
    const out = lines(fleet);
    expect(out).toContain(
      'gpulse_gpu_temperature_celsius{site="s",node="n",gpu="1",uuid="GPU-1"} 71',
    );
    expect(out.some((l) => l.includes('gpu="0"'))).toBe(false);
  });

  it('merges the parts of one split snapshot', () => {
    const { fleet } = setup({ maxSeriesPerDevice: 20_000 });
    const groups = seriesGroups(gpuReadingSamples(h100Readings(200)));
    let seq = 1;
    const parts = buildTelemetry([{ ts: T0, series: groups }], () => seq++, {
      compressAbove: Infinity,
    });
    expect(parts.length).toBeGreaterThan(1);
    for (const p of parts)
      expect(
        fleet.ingest(msg('gpulse/v1/s/big/telemetry', p.body, { contentType: p.contentType })),
      ).toBe('applied');
    const temps = lines(fleet).filter((l) => l.startsWith('gpulse_gpu_temperature_celsius{'));
    expect(temps).toHaveLength(200);
  });

  it('goes down on the last will, withdraws the series, and ignores a will of an older session', () => {
    const { fleet } = setup();
    fleet.ingest(status('s', 'n', 'online', 7));
    fleet.ingest(telemetry('s', 'n', [temp(50)], T0));
    // The will of session 6 arrives after session 7 came online (takeover race): ignored.
    expect(fleet.ingest(status('s', 'n', 'offline', 6))).toBe('stale');
    expect(lines(fleet)).toContain('gpulse_fleet_device_up{site="s",node="n"} 1');
    expect(fleet.ingest(status('s', 'n', 'offline', 7))).toBe('applied');
    const out = lines(fleet);
    expect(out).toContain('gpulse_fleet_device_up{site="s",node="n"} 0');
    expect(out.some((l) => l.startsWith('gpulse_gpu_temperature_celsius{'))).toBe(false);
  });

  it('marks a silent device down after the timeout and forgets it after the TTL', async () => {
    const { fleet, clock } = setup();
    fleet.ingest(status('s', 'n', 'online', 1));
    fleet.ingest(telemetry('s', 'n', [temp(50)], T0));
    await clock.advance(60_001);
    let out = lines(fleet);
    expect(out).toContain('gpulse_fleet_device_up{site="s",node="n"} 0');
    expect(out.some((l) => l.startsWith('gpulse_gpu_temperature_celsius{'))).toBe(false);
    await clock.advance(3_600_000);
    out = lines(fleet);
    expect(out.some((l) => l.includes('node="n"'))).toBe(false);
    expect(out).toContain('gpulse_fleet_devices 0');
  });

  it('takes a retained status at its own time and skips devices retained past the TTL', () => {
    const { fleet } = setup();
    expect(fleet.ingest(status('s', 'gone', 'offline', 3, T0 - 7_200_000, true))).toBe('stale');
    expect(fleet.ingest(status('s', 'old', 'online', 3, T0 - 120_000, true))).toBe('applied');
    const out = lines(fleet);
    expect(out.some((l) => l.includes('node="gone"'))).toBe(false);
    // Online, but not heard for longer than the timeout: down until it speaks.
    expect(out).toContain('gpulse_fleet_device_up{site="s",node="old"} 0');
    expect(out).toContain(
      'gpulse_fleet_device_last_seen_timestamp_seconds{site="s",node="old"} 1699999880',
    );
  });

  it('counts events per device and type, folding unknown type floods into "other"', () => {
    const { fleet } = setup();
    const events = Array.from({ length: 70 }, (_, i) => ({
      id: i,
      ts: T0,
      type: i < 2 ? 'container.oom_kill' : `junk.${i}`,
      severity: 'critical' as const,
      source: 'docker',
      message: 'x',
      labels: {},
    }));
    const [m] = buildEvents(events, () => 1, { compressAbove: 1024 });
    expect(fleet.ingest(msg('gpulse/v1/s/n/events', m!.body))).toBe('applied');
    const out = lines(fleet);
    expect(out).toContain(
      'gpulse_fleet_events_total{site="s",node="n",type="container.oom_kill"} 2',
    );
    // 64 types kept (the OOM kills and 63 junk types), the remaining 5 events folded into "other".
    expect(out.filter((l) => l.startsWith('gpulse_fleet_events_total{'))).toHaveLength(65);
    expect(out).toContain('gpulse_fleet_events_total{site="s",node="n",type="other"} 5');
  });

  it('counts and drops hostile payloads, and keeps serving the others', () => {
    const { fleet, records } = setup({ maxDevices: 3, maxSeriesPerDevice: 50 });
    fleet.ingest(telemetry('s', 'good', [temp(50)], T0));
    const reasons: [IncomingMessage, string][] = [
      [msg('gpulse/v1/s/n/other', '{}'), 'bad_topic'],
      [msg('gpulse/v1/s/n/telemetry', Buffer.alloc(300 * 1024, 0x7b)), 'too_large'],
      [
        msg('gpulse/v1/s/n/telemetry', deflateSync(Buffer.alloc(20 * 1024 * 1024, 0x20))),
        'too_large',
      ],
      [msg('gpulse/v1/s/n/telemetry', Buffer.from([0x78, 0x9c, 0xff, 0x00])), 'bad_encoding'],
      [msg('gpulse/v1/s/n/telemetry', '{"v":1,"seq":'), 'bad_json'],
      [msg('gpulse/v1/s/n/telemetry', '{"v":1,"seq":1,"ts":1,"series":[]}'), 'bad_shape'],
      [
        msg('gpulse/v1/s/n/telemetry', '{"v":2,"seq":"1","ts":[1],"schema_id":"x","values":[]}'),
        'bad_shape',
      ],
      [
        msg(
          'gpulse/v1/s/n/telemetry',
          '{"v":2,"seq":1,"ts":[1],"schema":{"id":"x","series":[{"labels":{"gpu":0},"metrics":[]}]},"values":[]}',
        ),
        'bad_shape',
      ],
      [
        msg(
          'gpulse/v1/s/n/telemetry',
          '{"v":2,"seq":1,"ts":[1],"schema":{"id":"x","series":[{"labels":{},"metrics":["a"]}]},"values":[1,2]}',
        ),
        'bad_shape',
      ],
      [msg('gpulse/v1/s/n/schema', '{"v":2,"ts":1,"schemas":[{"id":1}]}'), 'bad_shape'],
      [msg('gpulse/v1/s/n/status', '{"v":1,"state":"dancing","ts":1,"session":1}'), 'bad_shape'],
      [telemetry('s', 'n', [{ labels: { 'bad-label': 'x' }, metrics: { a: 1 } }], T0), 'bad_name'],
      [telemetry('s', 'n', [{ labels: { __name__: 'x' }, metrics: { a: 1 } }], T0), 'bad_name'],
      [telemetry('s', 'n', [{ labels: {}, metrics: { 'a b': 1 } }], T0), 'bad_name'],
      [telemetry('s', 'n', [{ labels: {}, metrics: { fleet_device_up: 1 } }], T0), 'bad_name'],
      [
        telemetry(
          's',
          'n',
          [
            {
              labels: {},
              metrics: Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`m${i}`, i])),
            },
          ],
          T0,
        ),
        'series_limit',
      ],
    ];
    const expected = new Map<string, number>();
    for (const [m, reason] of reasons) {
      expect(fleet.ingest(m), reason).toBe('rejected');
      expected.set(reason, (expected.get(reason) ?? 0) + 1);
      expect(lines(fleet), reason).toContain(
        `gpulse_fleet_rejected_messages_total{reason="${reason}"} ${expected.get(reason)}`,
      );
    }
    // An unknown-device flood stops at the device limit.
    for (let i = 0; i < 5; i++) fleet.ingest(telemetry('s', `flood${i}`, [temp(1)], T0));
    const out = lines(fleet);
    expect(out).toContain('gpulse_fleet_devices 3');
    expect(out).toContain('gpulse_fleet_rejected_messages_total{reason="device_limit"} 3');
    expect(out).toContain(
      'gpulse_gpu_temperature_celsius{site="s",node="good",gpu="0",uuid="GPU-0"} 50',
    );
    // Logged once per reason and topic, not per message.
    const floodLogs = records.filter((r) => r.reason === 'device_limit');
    expect(floodLogs).toHaveLength(3);
  });

  it('keeps the last sample of a batch and applies a schema change mid-stream', () => {
    const { fleet } = setup();
    const a = { labels: { gpu: '0', uuid: 'GPU-0' } };
    const [first] = buildTelemetry(
      [
        { ts: T0, series: [{ ...a, metrics: { gpu_temperature_celsius: 40, x_total: 1 } }] },
        {
          ts: T0 + 10_000,
          series: [{ ...a, metrics: { gpu_temperature_celsius: 45, x_total: 2 } }],
        },
      ],
      () => 1,
      { compressAbove: 512 },
    );
    const topic = 'gpulse/v1/s/n/telemetry';
    expect(fleet.ingest(msg(topic, first!.body))).toBe('applied');
    expect(lines(fleet)).toContain(
      'gpulse_gpu_temperature_celsius{site="s",node="n",gpu="0",uuid="GPU-0"} 45',
    );
    // Values only: the schema is known from the inline copy.
    const [second] = buildTelemetry(
      [
        {
          ts: T0 + 20_000,
          series: [{ ...a, metrics: { gpu_temperature_celsius: 50, x_total: 3 } }],
        },
      ],
      () => 2,
      { compressAbove: 512 },
    );
    expect(second!.schema.id).toBe(first!.schema.id);
    expect(fleet.ingest(msg(topic, second!.compact.body))).toBe('applied');
    expect(lines(fleet)).toContain('gpulse_x_total{site="s",node="n",gpu="0",uuid="GPU-0"} 3');
    // A new series set: a new schema inline; the old series disappear, the new ones show.
    const [third] = buildTelemetry(
      [{ ts: T0 + 30_000, series: [{ ...a, metrics: { gpu_power_draw_watts: 300 } }] }],
      () => 3,
      { compressAbove: 512 },
    );
    expect(third!.schema.id).not.toBe(first!.schema.id);
    expect(fleet.ingest(msg(topic, third!.body))).toBe('applied');
    const out = lines(fleet);
    expect(out).toContain(
      'gpulse_gpu_power_draw_watts{site="s",node="n",gpu="0",uuid="GPU-0"} 300',
    );
    expect(out.some((l) => l.startsWith('gpulse_x_total{'))).toBe(false);
    expect(out).toContain('gpulse_fleet_messages_total{stream="telemetry",result="applied"} 3');
  });

  it('holds values of an unknown schema until the retained schema arrives, else drops them', async () => {
    const { fleet, clock } = setup();
    // Another gateway of the share group got the inline copy; this one only the values.
    expect(fleet.ingest(telemetry('s', 'late', [temp(66)], T0, 7, false, true))).toBe('pending');
    expect(lines(fleet).some((l) => l.startsWith('gpulse_gpu_temperature_celsius{'))).toBe(false);
    expect(fleet.ingest(schemaMessage('s', 'late', [temp(0)]))).toBe('applied');
    let out = lines(fleet);
    expect(out).toContain(
      'gpulse_gpu_temperature_celsius{site="s",node="late",gpu="0",uuid="GPU-0"} 66',
    );
    expect(out).toContain('gpulse_fleet_messages_total{stream="telemetry",result="applied"} 1');
    expect(out).toContain('gpulse_fleet_messages_total{stream="schema",result="applied"} 1');
    // Values whose schema never comes are dropped after a few seconds and counted.
    expect(fleet.ingest(telemetry('s', 'orphan', [temp(1, '5')], T0, 1, false, true))).toBe(
      'pending',
    );
    await clock.advance(6000);
    out = lines(fleet);
    expect(out).toContain('gpulse_fleet_rejected_messages_total{reason="unknown_schema"} 1');
    expect(out).toContain('gpulse_fleet_messages_total{stream="telemetry",result="rejected"} 1');
    // Too late: the schema arriving now does not apply the dropped values.
    fleet.ingest(schemaMessage('s', 'orphan', [temp(0, '5')]));
    expect(lines(fleet).some((l) => l.includes('node="orphan",gpu="5"'))).toBe(false);
  });

  it('applies a replayed message on its own (schema inline) and bounds the schemas per device', () => {
    const { fleet } = setup();
    // A fresh gateway: a replay from the spool carries its schema.
    expect(fleet.ingest(telemetry('s', 'r', [temp(33)], T0, 3, true))).toBe('applied');
    expect(lines(fleet)).toContain(
      'gpulse_gpu_temperature_celsius{site="s",node="r",gpu="0",uuid="GPU-0"} 33',
    );
    // Twenty schema changes: the oldest schemas are forgotten, the current one works.
    for (let i = 0; i < 20; i++)
      expect(fleet.ingest(telemetry('s', 'r', [temp(i, String(i))], T0 + i + 1, 10 + i))).toBe(
        'applied',
      );
    expect(fleet.ingest(telemetry('s', 'r', [temp(1, '0')], T0 + 100, 50, false, true))).toBe(
      'pending',
    );
    expect(fleet.ingest(telemetry('s', 'r', [temp(7, '19')], T0 + 101, 51, false, true))).toBe(
      'applied',
    );
    const temps = lines(fleet).filter((l) => l.startsWith('gpulse_gpu_temperature_celsius{'));
    expect(temps).toEqual([
      'gpulse_gpu_temperature_celsius{site="s",node="r",gpu="19",uuid="GPU-19"} 7',
    ]);
  });

  it('renames device labels that clash with site/node and escapes label values', () => {
    const { fleet } = setup();
    fleet.ingest(
      telemetry(
        's',
        'n',
        [{ labels: { node: 'inner', path: 'a"b\\c\nd' }, metrics: { x_info: 1 } }],
        T0,
      ),
    );
    expect(lines(fleet)).toContain(
      'gpulse_x_info{site="s",node="n",exported_node="inner",path="a\\"b\\\\c\\nd"} 1',
    );
  });

  itWithTools('produces an exposition promtool accepts', tools('promtool'), () => {
    const { fleet } = setup();
    fleet.ingest(status('s', 'a', 'online', 1));
    fleet.ingest(telemetry('s', 'a', seriesGroups(gpuReadingSamples(h100Readings(2))), T0));
    fleet.ingest(telemetry('s', 'b', seriesGroups(gpuReadingSamples(h100Readings(1, 2))), T0));
    const check = spawnSync('promtool', ['check', 'metrics'], {
      input: fleet.exposition(),
      encoding: 'utf8',
    });
    // promtool's lint complains about nothing but relayed families without units: it must not error.
    expect(check.status, check.stderr + check.stdout).toBe(0);
  });
});

/** Telemetry of a hand-made schema (what a hostile device can send), deflated. */
function raw(
  node: string,
  schema: unknown,
  values: unknown[],
  extra: object = {},
): IncomingMessage {
  const body = deflateSync(JSON.stringify({ v: 2, seq: 1, ts: [T0], schema, values, ...extra }));
  return msg(`gpulse/v1/s/${node}/telemetry`, body, { contentType: 'application/json+deflate' });
}

function valuesOnly(node: string, schemaId: string, values: unknown[], ts = [T0]): IncomingMessage {
  const body = deflateSync(JSON.stringify({ v: 2, seq: 1, ts, schema_id: schemaId, values }));
  return msg(`gpulse/v1/s/${node}/telemetry`, body, { contentType: 'application/json+deflate' });
}

const value = (fleet: FleetState, prefix: string) =>
  lines(fleet)
    .find((l) => l.startsWith(prefix))
    ?.split(' ')
    .pop();

describe('FleetState limits', () => {
  it('refuses values naming an unknown schema with more columns than any schema may have, holds the rest as received', () => {
    const { fleet } = setup({ maxSeriesPerDevice: 1000 });
    // 5,000 columns of 100 samples: half a million values in 40 KB of JSON.
    const column = Array.from({ length: 100 }, () => 0);
    const ts = Array.from({ length: 100 }, (_, i) => T0 + i);
    const flood = valuesOnly(
      'flood',
      'nope',
      Array.from({ length: 5000 }, () => column),
      ts,
    );
    expect(fleet.ingest(flood)).toBe('rejected');
    expect(lines(fleet)).toContain('gpulse_fleet_rejected_messages_total{reason="series_limit"} 1');
    // Within the column limit: held, but as the bytes received (a few hundred), not parsed.
    const held = valuesOnly(
      'held',
      'nope',
      Array.from({ length: 1000 }, () => column),
      ts,
    );
    expect(fleet.ingest(held)).toBe('pending');
    expect(fleet.bytes()).toBe(held.payload.length);
    expect(held.payload.length).toBeLessThan(2000);
  });

  it('refuses a schema whose exposition would pass the device limit, and keeps serving the others', () => {
    const { fleet, records } = setup({ maxDeviceBytes: 64 * 1024 });
    fleet.ingest(telemetry('s', 'good', [temp(50)], T0));
    // 16 labels of 1 KiB on 100 metrics: 1.6 MB of exposition from a 5 KB message.
    const labels = Object.fromEntries(
      Array.from({ length: 16 }, (_, i) => [`l${i}`, 'x'.repeat(1024)]),
    );
    const metrics = Array.from({ length: 100 }, (_, i) => `m${i}`);
    const big = { id: 'big', series: [{ labels, metrics }] };
    expect(
      fleet.ingest(
        raw(
          'evil',
          big,
          metrics.map(() => 1),
        ),
      ),
    ).toBe('rejected');
    expect(
      fleet.ingest(
        raw(
          'evil',
          big,
          metrics.map(() => 2),
        ),
      ),
    ).toBe('rejected');
    const out = lines(fleet);
    expect(out).toContain('gpulse_fleet_rejected_messages_total{reason="device_bytes"} 2');
    expect(out).toContain(
      'gpulse_gpu_temperature_celsius{site="s",node="good",gpu="0",uuid="GPU-0"} 50',
    );
    expect(out.some((l) => l.startsWith('gpulse_m0{'))).toBe(false);
    expect(fleet.exposition().length).toBeLessThan(10_000);
    // Once, not per message.
    expect(records.filter((r) => r.reason === 'device_bytes')).toHaveLength(1);
  });

  it('logs a device refused for its limit once, and again when it fits', () => {
    const { fleet, records } = setup({ maxSeriesPerDevice: 10 });
    fleet.ingest(telemetry('s', 'n', [temp(50)], T0));
    const many = Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`m${i}`, i]));
    for (let i = 0; i < 3; i++)
      expect(fleet.ingest(telemetry('s', 'n', [{ labels: {}, metrics: many }], T0 + i))).toBe(
        'rejected',
      );
    expect(fleet.ingest(telemetry('s', 'n', [temp(51)], T0 + 10))).toBe('applied');
    const messages = records.map((r) => r.msg as string);
    expect(messages.filter((m) => m.startsWith('fleet device over a gateway limit'))).toHaveLength(
      1,
    );
    expect(messages.filter((m) => m.startsWith('fleet device within'))).toHaveLength(1);
  });

  it('refuses what passes the fleet budget, counts it, and serves the devices it holds', async () => {
    const { fleet, clock } = setup({ maxFleetBytes: 20_000, maxDeviceBytes: 20_000 });
    const series = seriesGroups(gpuReadingSamples(h100Readings(1)));
    const results = Array.from({ length: 6 }, (_, i) =>
      fleet.ingest(telemetry('s', `d${i}`, series, T0)),
    );
    const applied = results.filter((r) => r === 'applied').length;
    expect(applied).toBeGreaterThan(0);
    expect(applied).toBeLessThan(6);
    expect(fleet.bytes()).toBeLessThanOrEqual(20_000);
    expect(lines(fleet)).toContain(
      `gpulse_fleet_rejected_messages_total{reason="fleet_bytes"} ${6 - applied}`,
    );
    expect(Number(value(fleet, 'gpulse_fleet_kept_bytes '))).toBe(fleet.bytes());
    // The exposition of the held devices stays within what was charged for them.
    const relayed = lines(fleet).filter((l) => /^gpulse_(?!fleet_)[a-z_]+\{/.test(l));
    expect(relayed.join('\n').length).toBeLessThanOrEqual(fleet.bytes());
    // Forgotten devices give their bytes back.
    await clock.advance(3_600_001);
    fleet.sweep();
    expect(fleet.bytes()).toBe(0);
  });

  it('shares one compiled schema among alike devices, and never with a schema forging its id', async () => {
    const { fleet, clock } = setup();
    const series = seriesGroups(gpuReadingSamples(h100Readings(1)));
    fleet.ingest(telemetry('s', 'a', series, T0));
    const one = fleet.bytes();
    fleet.ingest(telemetry('s', 'b', series, T0));
    const two = fleet.bytes();
    // The second device costs its exposition and values, not a second compiled schema.
    expect(two - one).toBeLessThan(one * 0.8);
    // A device that names a's schema id with other series gets its own schema, not a's.
    const [m] = buildTelemetry([{ ts: T0, series }], () => 1, { compressAbove: 1e9 });
    const forged = {
      v: 2,
      seq: 1,
      ts: [T0],
      schema: { id: m!.schema.id, series: [{ labels: { gpu: '9' }, metrics: ['forged_ratio'] }] },
      values: [0.9],
    };
    expect(fleet.ingest(msg('gpulse/v1/s/evil/telemetry', JSON.stringify(forged)))).toBe('applied');
    fleet.ingest(telemetry('s', 'c', series, T0 + 1, 2));
    const out = lines(fleet);
    expect(out).toContain('gpulse_forged_ratio{site="s",node="evil",gpu="9"} 0.9');
    expect(out.some((l) => l.startsWith('gpulse_forged_ratio{site="s",node="c"'))).toBe(false);
    expect(out.filter((l) => l.startsWith('gpulse_gpu_temperature_celsius{'))).toHaveLength(3);
    // Forgotten devices give the shared schema back with the last of them.
    await clock.advance(3_600_001);
    fleet.sweep();
    expect(fleet.bytes()).toBe(0);
  });

  it('renames device labels that clash with site, node, job or instance so that no name repeats', () => {
    const { fleet } = setup();
    const labels = { site: 'fake', exported_site: 'dup', job: 'j', instance: 'i', gpu: '0' };
    expect(fleet.ingest(telemetry('s', 'n', [{ labels, metrics: { x_ratio: 0.5 } }], T0))).toBe(
      'applied',
    );
    const out = lines(fleet);
    expect(out).toContain(
      'gpulse_x_ratio{site="s",node="n",exported_site="dup",gpu="0",exported_instance="i",exported_job="j",exported_exported_site="fake"} 0.5',
    );
    expect(out).toContain('gpulse_fleet_renamed_labels_total 3');
  });

  it('shows a series that two parts of one batch carry once, and counts it', () => {
    const { fleet } = setup();
    const a = { id: 'pa', series: [{ labels: { gpu: '0' }, metrics: ['x_ratio', 'y_ratio'] }] };
    const b = { id: 'pb', series: [{ labels: { gpu: '0' }, metrics: ['x_ratio', 'z_ratio'] }] };
    expect(fleet.ingest(raw('n', a, [0.1, 0.2], { part: 1, parts: 2 }))).toBe('applied');
    expect(fleet.ingest(raw('n', b, [0.9, 0.3], { part: 2, parts: 2 }))).toBe('applied');
    const out = lines(fleet);
    expect(out.filter((l) => l.startsWith('gpulse_x_ratio{'))).toEqual([
      'gpulse_x_ratio{site="s",node="n",gpu="0"} 0.1',
    ]);
    expect(out).toContain('gpulse_z_ratio{site="s",node="n",gpu="0"} 0.3');
    expect(out).toContain('gpulse_fleet_duplicate_series_total 1');
  });

  it("relays a family with the agent's HELP text and type; an unknown one with the gateway's", () => {
    const { fleet } = setup();
    fleet.ingest(
      telemetry(
        's',
        'n',
        [{ labels: { gpu: '0' }, metrics: { gpu_utilization_ratio: 0.5, brand_new_total: 3 } }],
        T0,
      ),
    );
    const out = lines(fleet);
    expect(out).toContain(
      '# HELP gpulse_gpu_utilization_ratio Share of time a kernel ran on the GPU (0-1).',
    );
    expect(out).toContain('# TYPE gpulse_gpu_utilization_ratio gauge');
    expect(out).toContain(
      '# HELP gpulse_brand_new_total Relayed from an edge device by the gpulse fleet gateway (labels site and node added).',
    );
    expect(out).toContain('# TYPE gpulse_brand_new_total counter');
  });
});

describe('FleetState in a share group', () => {
  it("exports only its own devices, keeps the others' schemas undecoded, and takes them over on reassign", () => {
    const mine = new Set(['a']);
    const { fleet } = setup({ owns: (_s, node) => mine.has(node) });
    fleet.brokerConnected = true;
    for (const node of ['a', 'b']) {
      expect(fleet.ingest(status('s', node, 'online', 1))).toBe('applied');
      // The schema of a device another gateway serves is not decoded (a garbage one neither).
      expect(fleet.ingest(schemaMessage('s', node, [temp(0)]))).toBe(
        node === 'a' ? 'applied' : 'kept',
      );
    }
    expect(fleet.ingest(values('a', [temp(61)], T0, 2))).toBe('applied');
    let out = lines(fleet);
    expect(out).toContain('gpulse_fleet_devices 1');
    expect(out).toContain('gpulse_fleet_device_up{site="s",node="a"} 1');
    expect(out.some((l) => l.includes('node="b"'))).toBe(false);
    expect(out).toContain('gpulse_fleet_messages_total{stream="schema",result="kept"} 1');
    // The member that served b is gone: b's values (schema id only) show at once.
    mine.add('b');
    fleet.reassign();
    expect(fleet.ingest(values('b', [temp(62)], T0, 2))).toBe('applied');
    out = lines(fleet);
    expect(out).toContain('gpulse_fleet_device_up{site="s",node="b"} 1');
    expect(out).toContain(
      'gpulse_gpu_temperature_celsius{site="s",node="b",gpu="0",uuid="GPU-0"} 62',
    );
    // a goes to another member: its series and compiled schemas are dropped, its schema kept.
    mine.delete('a');
    fleet.reassign();
    out = lines(fleet);
    expect(out.some((l) => l.includes('node="a"'))).toBe(false);
    mine.add('a');
    fleet.reassign();
    expect(fleet.ingest(values('a', [temp(63)], T0 + 1, 3))).toBe('applied');
    // Cut off from the broker, a member shows no device (the others took them over).
    fleet.brokerConnected = false;
    expect(lines(fleet)).toContain('gpulse_fleet_devices 0');
    expect(lines(fleet).some((l) => l.includes('node="a"'))).toBe(false);
    fleet.brokerConnected = true;

    expect(lines(fleet)).toContain(
      'gpulse_gpu_temperature_celsius{site="s",node="a",gpu="0",uuid="GPU-0"} 63',
    );
    // b away and back again: its kept schema is compiled a second time.
    mine.delete('b');
    fleet.reassign();
    mine.add('b');
    fleet.reassign();
    expect(fleet.ingest(values('b', [temp(64)], T0 + 1, 3))).toBe('applied');
    expect(lines(fleet)).toContain(
      'gpulse_gpu_temperature_celsius{site="s",node="b",gpu="0",uuid="GPU-0"} 64',
    );
  });

  it('counts a malformed kept schema when it is decoded, not before', () => {
    const mine = new Set<string>();
    const { fleet } = setup({ owns: (_s, node) => mine.has(node) });
    fleet.ingest(status('s', 'b', 'online', 1));
    expect(fleet.ingest(msg('gpulse/v1/s/b/schema', '{"v":2,"ts":1,"schemas":[{"id":1}]}'))).toBe(
      'kept',
    );
    expect(lines(fleet)).toContain('gpulse_fleet_rejected_messages_total{reason="bad_shape"} 0');
    mine.add('b');
    fleet.reassign();
    expect(lines(fleet)).toContain('gpulse_fleet_rejected_messages_total{reason="bad_shape"} 1');
    expect(lines(fleet)).toContain(
      'gpulse_fleet_messages_total{stream="schema",result="rejected"} 1',
    );
  });
});

/** Values-only telemetry (the schema must be known), deflated as the agent sends it. */
function values(node: string, series: SeriesGroup[], ts: number, seq: number): IncomingMessage {
  const [m] = buildTelemetry([{ ts, series }], () => seq, { compressAbove: 64 });
  return msg(`gpulse/v1/s/${node}/telemetry`, m!.compact.body, {
    contentType: m!.compact.contentType,
  });
}

function counted(fleet: FleetState, result: string): number {
  const line = lines(fleet).find((l) =>
    l.startsWith(`gpulse_fleet_messages_total{stream="telemetry",result="${result}"}`),
  );
  return Number(line?.split(' ')[1]);
}

const TEMP_0 = 'gpulse_gpu_temperature_celsius{site="s",node="n",gpu="0",uuid="GPU-0"}';

describe('FleetState.receive (telemetry of known devices decoded when settled)', () => {
  it('decodes only the newest message of a backlog and counts the others superseded', async () => {
    const { fleet, clock } = setup();
    expect(fleet.ingest(schemaMessage('s', 'n', [temp(0)]))).toBe('applied');
    await clock.advance(5000);
    for (let i = 0; i < 10; i++)
      expect(fleet.receive(values('n', [temp(40 + i)], T0 + i * 1000, i + 1))).toBe('queued');
    expect(fleet.queued()).toBe(10);
    const out = lines(fleet);
    expect(out).toContain(`${TEMP_0} 49`);
    // Heard when the messages came, not when they were decoded.
    expect(out).toContain(
      'gpulse_fleet_device_last_seen_timestamp_seconds{site="s",node="n"} 1700000005',
    );
    expect(counted(fleet, 'applied')).toBe(1);
    expect(counted(fleet, 'superseded')).toBe(9);
    expect(fleet.queued()).toBe(0);
  });

  it('decodes back past a newest message that cannot replace the values on its own', () => {
    const { fleet } = setup();
    fleet.ingest(schemaMessage('s', 'n', [temp(0)]));
    fleet.receive(values('n', [temp(41)], T0 + 1000, 1));
    fleet.receive(values('n', [temp(42)], T0 + 2000, 2));
    fleet.receive(msg('gpulse/v1/s/n/telemetry', '{"v":2,"seq":'));
    // An older replay, after the live message it must not replace.
    fleet.receive(telemetry('s', 'n', [temp(30)], T0, 3, true));
    const out = lines(fleet);
    expect(out).toContain(`${TEMP_0} 42`);
    expect(out).toContain('gpulse_fleet_rejected_messages_total{reason="bad_json"} 1');
    expect(counted(fleet, 'applied')).toBe(1);
    expect(counted(fleet, 'stale')).toBe(1);
    expect(counted(fleet, 'rejected')).toBe(1);
    expect(counted(fleet, 'superseded')).toBe(1);
  });

  it('still learns a schema carried inline by an older message a newer one needs', () => {
    const { fleet } = setup();
    fleet.ingest(schemaMessage('s', 'n', [temp(0)]));
    const b = (v: number, ts: number, seq: number) =>
      buildTelemetry([{ ts, series: [temp(v, '1')] }], () => seq, { compressAbove: 64 })[0]!;
    const first = b(70, T0 + 1000, 1);
    fleet.receive(msg('gpulse/v1/s/n/telemetry', first.body, { contentType: first.contentType }));
    fleet.receive(values('n', [temp(50)], T0 + 2000, 2));
    // Values only, of the schema only the first message carried.
    fleet.receive(values('n', [temp(72, '1')], T0 + 3000, 3));
    const out = lines(fleet);
    expect(out).toContain(
      'gpulse_gpu_temperature_celsius{site="s",node="n",gpu="1",uuid="GPU-1"} 72',
    );
    expect(out.some((l) => l.startsWith(TEMP_0))).toBe(false);
    expect(counted(fleet, 'applied')).toBe(3);
    expect(counted(fleet, 'superseded')).toBe(0);
  });

  it('settles a device before its status or events take effect', () => {
    const { fleet } = setup();
    fleet.ingest(status('s', 'n', 'online', 1));
    fleet.ingest(schemaMessage('s', 'n', [temp(0)]));
    expect(fleet.receive(values('n', [temp(55)], T0, 1))).toBe('queued');
    expect(fleet.receive(status('s', 'n', 'offline', 1))).toBe('applied');
    expect(fleet.queued()).toBe(0);
    const out = lines(fleet);
    expect(out).toContain('gpulse_fleet_device_up{site="s",node="n"} 0');
    expect(out.some((l) => l.startsWith(TEMP_0))).toBe(false);
    expect(counted(fleet, 'applied')).toBe(1);
  });

  it('decodes at once what it cannot queue: unknown devices, devices without a schema', () => {
    const { fleet } = setup();
    expect(fleet.receive(telemetry('s', 'new', [temp(60)], T0))).toBe('applied');
    fleet.ingest(status('s', 'st', 'online', 1));
    expect(fleet.receive(telemetry('s', 'st', [temp(61)], T0))).toBe('applied');
    // Malformed from an unknown device: rejected, and no device is added for it.
    expect(fleet.receive(msg('gpulse/v1/s/bad/telemetry', 'nope'))).toBe('rejected');
    expect(fleet.size()).toBe(2);
  });

  it('settles by itself once the stream is quiet, within a second under a steady stream, and at a full inbox', async () => {
    const { fleet, clock } = setup();
    fleet.ingest(schemaMessage('s', 'n', [temp(0)]));
    fleet.receive(values('n', [temp(40)], T0, 1));
    await clock.advance(19);
    expect(fleet.queued()).toBe(1);
    await clock.advance(1);
    expect(fleet.queued()).toBe(0);
    // A message every 10 ms never leaves 20 ms of quiet: the oldest waits at most a second.
    for (const node of ['n1', 'n2', 'n3']) fleet.ingest(schemaMessage('s', node, [temp(0)]));
    const nodes = ['n', 'n1', 'n2', 'n3'];
    let most = 0;
    for (let i = 0; i < 150; i++) {
      fleet.receive(values(nodes[i % 4]!, [temp(i)], T0 + i, i + 2));
      most = Math.max(most, fleet.queued());
      await clock.advance(10);
    }
    expect(most).toBe(100);
    await clock.advance(20);
    expect(fleet.queued()).toBe(0);
    // 32 queued at once: the 33rd settles them first.
    for (let i = 0; i < 33; i++) fleet.receive(values('n', [temp(i)], T0, 200 + i));
    expect(fleet.queued()).toBe(1);
    expect(lines(fleet)).toContain(`${TEMP_0} 32`);
  });

  it('ends in the state that applying every message on arrival gives (random streams)', async () => {
    let supersededInAll = 0;
    const rand = seeded(7);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
    const shapes = [[temp(0)], [temp(0, '1')], [temp(0), temp(0, '1')]];
    for (let trial = 0; trial < 150; trial++) {
      const eager = setup();
      const deferred = setup();
      const ops: { m: IncomingMessage; dt: number }[] = [];
      let seq = 1;
      let ts = T0;
      // As the agent does: a schema goes inline with the first message of it on a connection and
      // to the retained schema topic, which every gateway reads in full (values of a schema only
      // inline elsewhere would wait for it there, whichever path took them).
      const announced = new Set<string>();
      const announce = (node: string, shape: number) => {
        if (announced.has(`${node}/${shape}`)) return;
        announced.add(`${node}/${shape}`);
        ops.push({ m: schemaMessage('s', node, shapes[shape]!), dt: 0 });
      };
      for (const node of ['a', 'b']) announce(node, 0);
      for (let k = 0; k < 24; k++) {
        const node = pick(['a', 'b']);
        const shape = Math.floor(rand() * shapes.length);
        const series = shapes[shape]!.map((g) => temp(Math.round(rand() * 100), g.labels.gpu));
        ts += 1000;
        const kind = rand();
        const dt = Math.floor(rand() * 30);
        if (kind < 0.45) ops.push({ m: values(node, series, ts, seq++), dt });
        else if (kind < 0.8) {
          const replay = kind >= 0.65;
          const at = replay ? ts - Math.round(rand() * 8000) : ts;
          ops.push({ m: telemetry('s', node, series, at, seq++, replay), dt });
          announce(node, shape);
        } else if (kind < 0.87)
          ops.push({ m: msg(`gpulse/v1/s/${node}/telemetry`, '{"v":2,"values":['), dt });
        else if (kind < 0.94)
          ops.push({ m: status('s', node, pick(['online', 'offline'] as const), 1, ts), dt });
        else ops.push({ m: msg(`gpulse/v1/s/${node}/events`, xidEvent(ts)), dt });
      }
      for (const { m, dt } of ops) {
        await eager.clock.advance(dt);
        await deferred.clock.advance(dt);
        eager.fleet.ingest(m);
        deferred.fleet.receive(m);
      }
      // Message counters differ by design (superseded), and so do the bytes kept (the inline
      // schemas of superseded messages are never compiled); everything else must not.
      const state = (f: FleetState) =>
        lines(f).filter(
          (l) => !/^(# |gpulse_fleet_(messages_total|rejected_messages_total|kept_bytes))/.test(l),
        );
      expect(state(deferred.fleet), `trial ${trial}`).toEqual(state(eager.fleet));
      const superseded = counted(deferred.fleet, 'superseded');
      supersededInAll += superseded;
    }
    // The streams did exercise the skipping (not only the decode-everything fallbacks).
    expect(supersededInAll).toBeGreaterThan(100);
  });
});

function xidEvent(ts: number): Buffer {
  const event = { id: 1, ts, type: 'gpu.xid', severity: 'critical' as const, source: 'kmsg' };
  const [m] = buildEvents([{ ...event, message: 'Xid 79', labels: {} }], () => 1, {
    compressAbove: 1024,
  });
  return m!.body;
}

function seeded(seed: number): () => number {
  let s = seed;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
}
