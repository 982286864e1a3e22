import { deflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import type { AgentEvent } from '../../agent/core/events.js';
import { gauge } from '../../agent/core/metric.js';
import { gpuMetrics, gpuReadingSamples } from '../../collectors/gpu-series.js';
import { h100Readings } from '../../test/helpers/gpu-readings.js';
import { adler32Of } from './adler32.js';
import { DICTIONARIES, DICTIONARY } from './deflate-dictionary.js';
import {
  buildEvents,
  buildTelemetry,
  CONTENT_TYPE_DEFLATE,
  CONTENT_TYPE_JSON,
  decodeBody,
  encodeBody,
  markReplay,
  MAX_MESSAGE_BYTES,
  PayloadError,
  expandTelemetry,
  parseTelemetry,
  seriesGroups,
  telemetryFits,
} from './payloads.js';
import {
  fleetFilter,
  levelsMatch,
  nodeFromHostname,
  nodeTopic,
  parseStreamTopic,
  segmentProblem,
  sharedFilter,
  streamTopic,
  subscriptionLevels,
  topicMatches,
} from './topics.js';

const temp = gpuMetrics.temperature;
const power = gpuMetrics.powerDraw;
const energy = gpuMetrics.energy;
// A family outside gpulse's namespace (declared once here; metric() keeps a global registry).
const foreign = gauge('node_load1', 'A family that is not gpulse_.');

function reasonOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof PayloadError) return err.reason;
    throw err;
  }
  return 'no error';
}

function counterSeq(start = 1) {
  let n = start;
  return () => n++;
}

describe('telemetry payload', () => {
  it('groups series by label set with snake_case keys that keep the unit', () => {
    const groups = seriesGroups([
      { desc: temp, labels: { uuid: 'GPU-a', gpu: '0' }, value: 61 },
      { desc: power, labels: { gpu: '0', uuid: 'GPU-a' }, value: 312.5 },
      { desc: energy, labels: { gpu: '0', uuid: 'GPU-a' }, value: 1e9 },
      { desc: temp, labels: { gpu: '1', uuid: 'GPU-b' }, value: 40 },
      { desc: temp, labels: { gpu: '1', uuid: 'GPU-b' }, value: 99 }, // duplicate: first wins
      { desc: foreign, labels: {}, value: 1 }, // outside gpulse_: not sent
      { desc: power, labels: { gpu: '2', uuid: 'GPU-c' }, value: NaN }, // not representable
    ]);
    expect(groups).toEqual([
      {
        labels: { gpu: '0', uuid: 'GPU-a' },
        metrics: {
          gpu_temperature_celsius: 61,
          gpu_power_draw_watts: 312.5,
          gpu_energy_joules_total: 1e9,
        },
      },
      { labels: { gpu: '1', uuid: 'GPU-b' }, metrics: { gpu_temperature_celsius: 40 } },
    ]);
  });

  const parse = (m: { body: Buffer; contentType: string }) =>
    parseTelemetry(JSON.parse(decodeBody(m.body, m.contentType, 1e7)));

  it('batches samples: constant series as one number, varying ones as arrays, deflated', () => {
    const series = (p: number, e: number) =>
      seriesGroups([
        { desc: temp, labels: { gpu: '0', uuid: 'GPU-a' }, value: 61 },
        { desc: power, labels: { gpu: '0', uuid: 'GPU-a' }, value: p },
        { desc: energy, labels: { gpu: '0', uuid: 'GPU-a' }, value: e },
      ]);
    const samples = [
      { ts: 1000, series: series(300, 1e9) },
      { ts: 11_000, series: series(310.5, 1e9 + 3000) },
      { ts: 21_000, series: series(300, 1e9 + 6000) },
    ];
    const [m, extra] = buildTelemetry(samples, counterSeq(41), { compressAbove: Infinity });
    expect(extra).toBeUndefined();
    expect(m?.contentType).toBe(CONTENT_TYPE_JSON);
    const t = parse(m!);
    expect(t).toMatchObject({ v: 2, seq: 41, ts: [1000, 11_000, 21_000] });
    expect(t?.schema?.series).toEqual([
      {
        labels: { gpu: '0', uuid: 'GPU-a' },
        metrics: ['gpu_temperature_celsius', 'gpu_power_draw_watts', 'gpu_energy_joules_total'],
      },
    ]);
    expect(t?.values).toEqual([61, [300, 310.5, 300], [1e9, 1e9 + 3000, 1e9 + 6000]]);
    expect(m?.ts).toBe(21_000);
    // Round trip: the receiver gets every sample back.
    expect(expandTelemetry(t!, t!.schema!)).toEqual(samples);
    // The compact form names the same schema by id and carries the same values.
    const compact = parse(m!.compact);
    expect(compact?.schema).toBeUndefined();
    expect(compact?.schema_id).toBe(m!.schema.id);
    expect(compact?.values).toEqual(t?.values);
  });

  it('marks a series absent from some samples with null and keeps its schema stable', () => {
    const a = { desc: temp, labels: { gpu: '0', uuid: 'GPU-a' }, value: 50 };
    const b = { desc: temp, labels: { gpu: '1', uuid: 'GPU-b' }, value: 40 };
    const samples = [
      { ts: 1, series: seriesGroups([a]) },
      { ts: 2, series: seriesGroups([a, b]) },
    ];
    const [m] = buildTelemetry(samples, counterSeq(1), { compressAbove: Infinity });
    const t = parse(m!);
    expect(t?.values).toEqual([50, [null, 40]]);
    expect(expandTelemetry(t!, t!.schema!)).toEqual(samples);
    // Same series, other values: same schema id. Other series: another id.
    const [same] = buildTelemetry(
      [{ ts: 3, series: seriesGroups([{ ...a, value: 1 }, b]) }],
      counterSeq(2),
      {
        compressAbove: Infinity,
      },
    );
    const [other] = buildTelemetry([{ ts: 3, series: seriesGroups([a]) }], counterSeq(3), {
      compressAbove: Infinity,
    });
    expect(same?.schema.id).toBe(m?.schema.id);
    expect(other?.schema.id).not.toBe(m?.schema.id);
    expect(m?.schema.id).toMatch(/^[A-Za-z0-9_-]{12}$/);
  });

  it('keeps the previous schema while a series comes and goes; rebuilds when most are gone', () => {
    const gA = { gpu: '0', uuid: 'GPU-a' };
    const gB = { gpu: '1', uuid: 'GPU-b' };
    const all = [
      { desc: temp, labels: gA, value: 50 },
      { desc: power, labels: gA, value: 300 },
      { desc: energy, labels: gA, value: 9 },
      { desc: temp, labels: gB, value: 40 },
      { desc: power, labels: gB, value: 200 },
    ];
    const opts = { compressAbove: Infinity };
    const [first] = buildTelemetry([{ ts: 1, series: seriesGroups(all) }], counterSeq(1), opts);
    const base = first!.schema.series;
    // GPU-b's temperature is missing from a whole batch: same schema, its column null.
    const fewer = seriesGroups(all.filter((_, i) => i !== 3));
    const [second] = buildTelemetry([{ ts: 2, series: fewer }], counterSeq(2), { ...opts, base });
    expect(second!.schema.id).toBe(first!.schema.id);
    const t = parseTelemetry(JSON.parse(second!.json));
    expect(t?.values).toEqual([50, 300, 9, null, 200]);
    expect(expandTelemetry(t!, t!.schema!)).toEqual([{ ts: 2, series: fewer }]);
    // Only GPU-a's temperature left (4 of 5 columns gone): a fresh schema of what is there.
    const one = seriesGroups(all.slice(0, 1));
    const [third] = buildTelemetry([{ ts: 3, series: one }], counterSeq(3), { ...opts, base });
    expect(third!.schema.id).not.toBe(first!.schema.id);
    expect(third!.schema.series).toEqual([{ labels: gA, metrics: ['gpu_temperature_celsius'] }]);
  });

  it('keeps a minute of 8-GPU samples well under the bandwidth goal once the schema is known', () => {
    const samples = Array.from({ length: 6 }, (_, i) => ({
      ts: 1_700_000_000_000 + i * 10_000,
      series: seriesGroups(gpuReadingSamples(h100Readings(8))),
    }));
    const [m] = buildTelemetry(samples, counterSeq(1), { compressAbove: 1024 });
    expect(m?.contentType).toBe(CONTENT_TYPE_DEFLATE);
    // Issue goal: <= 2 KB per minute per GPU at a 10 s interval; one message per minute.
    expect(m!.compact.body.length / 8).toBeLessThan(2048);
    expect(m!.compact.body.length).toBeLessThan(m!.body.length);
    expect(telemetryFits(samples, { compressAbove: 1024 })).toBe(true);
    expect(telemetryFits(samples, { compressAbove: 1024, maxBytes: 100 })).toBe(false);
  });

  it('splits a batch too big for one message into parts with their own seq and schema', () => {
    const groups = seriesGroups(gpuReadingSamples(h100Readings(200)));
    const messages = buildTelemetry([{ ts: 5, series: groups }], counterSeq(10), {
      compressAbove: Infinity,
    });
    expect(messages.length).toBeGreaterThan(1);
    const parts = messages.map((m) => parseTelemetry(JSON.parse(m.json)));
    expect(parts.map((p) => p?.seq)).toEqual(messages.map((_, i) => 10 + i));
    expect(parts.every((p) => p?.ts[0] === 5 && p.parts === messages.length)).toBe(true);
    expect(parts.map((p) => p?.part)).toEqual(messages.map((_, i) => i + 1));
    expect(new Set(parts.map((p) => p?.schema?.id)).size).toBe(messages.length);
    expect(parts.flatMap((p) => expandTelemetry(p!, p!.schema!)[0]?.series ?? [])).toEqual(groups);
    for (const m of messages) expect(m.body.length).toBeLessThanOrEqual(MAX_MESSAGE_BYTES);
  });

  it('marks a replay without touching the rest of the payload', () => {
    const [m] = buildTelemetry([{ ts: 9, series: [] }], counterSeq(3), { compressAbove: 1024 });
    const replayed = JSON.parse(markReplay(m!.json));
    expect(replayed).toEqual({
      replay: true,
      v: 2,
      seq: 3,
      ts: [9],
      schema: { id: m!.schema.id, series: [] },
      values: [],
    });
    expect(markReplay(markReplay(m!.json))).toBe(markReplay(m!.json));
  });

  it('rejects malformed telemetry shapes', () => {
    const ok = { v: 2, seq: 1, ts: [1, 2], schema_id: 'x', values: [1, [1, null]] };
    expect(parseTelemetry(ok)).toBe(ok);
    for (const bad of [
      null,
      [],
      { ...ok, v: 1 },
      { ...ok, seq: -1 },
      { ...ok, ts: [] },
      { ...ok, ts: ['1'] },
      { ...ok, schema_id: undefined },
      { ...ok, values: [[1]] },
      { ...ok, values: [[1, '2']] },
      { ...ok, ts: [1, -2] },
      { ...ok, values: [1, [1, null], [null, {}]] },
      { ...ok, values: [1, [1, null], 'x'] },
      { ...ok, values: [1, [1, 2, 3]] },
      { ...ok, values: {} },
      { ...ok, part: 2, parts: 1 },
      { ...ok, replay: 'yes' },
    ])
      expect(parseTelemetry(bad)).toBeUndefined();
  });
});

describe('events payload', () => {
  const event = (id: number, data?: Record<string, unknown>): AgentEvent => ({
    id,
    ts: 1000 + id,
    type: 'container.oom_kill',
    severity: 'critical',
    source: 'docker',
    message: 'container web was killed by the OOM killer',
    labels: { container_name: 'web' },
    data,
  });

  it('carries the agent events unchanged, with seq and the newest event time', () => {
    const [m] = buildEvents([event(1, { limit_bytes: 1024 }), event(2)], counterSeq(7), {
      compressAbove: 1e9,
    });
    expect(JSON.parse(m!.json)).toEqual({
      v: 1,
      seq: 7,
      ts: 1002,
      events: [
        {
          id: 1,
          ts: 1001,
          type: 'container.oom_kill',
          severity: 'critical',
          source: 'docker',
          message: 'container web was killed by the OOM killer',
          labels: { container_name: 'web' },
          data: { limit_bytes: 1024 },
        },
        {
          id: 2,
          ts: 1002,
          type: 'container.oom_kill',
          severity: 'critical',
          source: 'docker',
          message: 'container web was killed by the OOM killer',
          labels: { container_name: 'web' },
        },
      ],
    });
  });

  it('keeps each message under the limit: an oversized event loses its data, marked truncated', () => {
    const huge = event(1, { log: 'x'.repeat(200_000) });
    const many = Array.from({ length: 300 }, (_, i) => event(i + 2, { note: 'y'.repeat(500) }));
    const messages = buildEvents([huge, ...many], counterSeq(1), { compressAbove: Infinity });
    for (const m of messages) expect(m.body.length).toBeLessThanOrEqual(MAX_MESSAGE_BYTES);
    const events = messages.flatMap((m) => (JSON.parse(m.json) as { events: AgentEvent[] }).events);
    expect(events).toHaveLength(301);
    expect(events[0]?.data).toEqual({ truncated: true });
    expect(messages.map((m) => m.seq)).toEqual(messages.map((_, i) => i + 1));
  });
});

describe('payload decoding (gateway side)', () => {
  it('decodes by MQTT 5 content type, and by the first byte on MQTT 3.1.1', () => {
    const json = JSON.stringify({ v: 1, series: 'x'.repeat(5000) });
    const deflated = encodeBody(json, 100);
    expect(deflated.contentType).toBe(CONTENT_TYPE_DEFLATE);
    expect(decodeBody(deflated.body, CONTENT_TYPE_DEFLATE, 1e6)).toBe(json);
    expect(decodeBody(deflated.body, undefined, 1e6)).toBe(json);
    expect(decodeBody(Buffer.from(json), undefined, 1e6)).toBe(json);
    expect(decodeBody(Buffer.from(json), CONTENT_TYPE_JSON, 1e6)).toBe(json);
  });

  it('inflates output far larger than its input (several output chunks), up to the limit exactly', () => {
    const json = JSON.stringify({ v: 1, values: Array.from({ length: 20_000 }, (_, i) => i % 7) });
    const body = deflateSync(Buffer.from(json), { dictionary: DICTIONARY });
    expect(json.length).toBeGreaterThan(body.length * 16);
    expect(decodeBody(body, CONTENT_TYPE_DEFLATE, json.length)).toBe(json);
    expect(reasonOf(() => decodeBody(body, CONTENT_TYPE_DEFLATE, json.length - 1))).toBe(
      'too_large',
    );
  });

  it('refuses a deflate bomb before inflating it whole, and unknown encodings', () => {
    const bomb = deflateSync(Buffer.alloc(50 * 1024 * 1024));
    expect(bomb.length).toBeLessThan(100_000);
    expect(reasonOf(() => decodeBody(bomb, undefined, 1024 * 1024))).toBe('too_large');
    expect(reasonOf(() => decodeBody(Buffer.from([0x78, 0x9c, 1, 2, 3]), undefined, 1e6))).toBe(
      'bad_encoding',
    );
    expect(() => decodeBody(Buffer.from('{}'), 'application/cbor', 1e6)).toThrow(/content type/);
  });
});

describe('preset deflate dictionary', () => {
  it('is frozen: receivers know it by its Adler-32, so its bytes must never change', () => {
    // Changing the dictionary breaks every gateway that does not know the new one: add a v2
    // to DICTIONARIES instead and update this test for the new one only.
    expect(adler32Of(DICTIONARY).toString(16)).toBe('5017916f');
    expect(DICTIONARIES.get(0x5017916f)).toBe(DICTIONARY);
  });

  it('halves a single-GPU message, and payloads name it in their zlib header', () => {
    const groups = seriesGroups(gpuReadingSamples(h100Readings(1)));
    const json = JSON.stringify({ v: 1, seq: 1, ts: 1, series: groups });
    const withDict = encodeBody(json, 0).body;
    const without = deflateSync(Buffer.from(json), { level: 9 });
    expect(withDict.length * 1.7).toBeLessThan(without.length);
    expect(withDict.readUInt32BE(2)).toBe(adler32Of(DICTIONARY));
    expect(decodeBody(withDict, undefined, 1e6)).toBe(json);
    // Plain deflate (another producer, no dictionary) still decodes.
    expect(decodeBody(without, CONTENT_TYPE_DEFLATE, 1e6)).toBe(json);
  });

  it('refuses a payload naming a dictionary it does not know', () => {
    const foreign = deflateSync(Buffer.from('{"v":1}'), { dictionary: Buffer.from('another one') });
    expect(reasonOf(() => decodeBody(foreign, undefined, 1e6))).toBe('bad_encoding');
  });

  it('computes Adler-32 as zlib does', () => {
    for (const n of [1, 3799, 3800, 3801, 100_000]) {
      const data = Buffer.alloc(n, 0xff);
      const z = deflateSync(Buffer.from('x'), { dictionary: data });
      expect(adler32Of(data)).toBe(z.readUInt32BE(2));
    }
  });
});

describe('topics', () => {
  it('builds and parses the fleet topic map', () => {
    const id = { site: 'plant-7', node: 'cam_03' };
    expect(streamTopic(id, 'telemetry')).toBe('gpulse/v1/plant-7/cam_03/telemetry');
    expect(nodeTopic(id, 'cmd/model-update')).toBe('gpulse/v1/plant-7/cam_03/cmd/model-update');
    expect(fleetFilter('status')).toBe('gpulse/v1/+/+/status');
    expect(sharedFilter('gw', fleetFilter('events'))).toBe('$share/gw/gpulse/v1/+/+/events');
    expect(parseStreamTopic('gpulse/v1/plant-7/cam_03/events')).toEqual({
      site: 'plant-7',
      node: 'cam_03',
      stream: 'events',
    });
    for (const bad of [
      'gpulse/v1/a/b/other',
      'gpulse/v1/a/b/c/telemetry',
      'gpulse/v2/a/b/telemetry',
      'gpulse/v1/$a/b/telemetry',
      'gpulse/v1/a//telemetry',
    ])
      expect(parseStreamTopic(bad), bad).toBeUndefined();
  });

  it('rejects site and node names that would break the topic tree', () => {
    expect(segmentProblem('node', 'cam-03.lab_1')).toBeUndefined();
    for (const bad of ['', 'a/b', 'a+b', '#', '$SYS', '-x', 'x'.repeat(65)])
      expect(segmentProblem('node', bad), bad).toMatch(/topic level/);
    expect(nodeFromHostname('Jetson Orin #2')).toBe('Jetson-Orin--2');
    expect(nodeFromHostname('...')).toBe('node');
  });

  it('matches MQTT wildcards', () => {
    expect(topicMatches('a/+/c', 'a/b/c')).toBe(true);
    expect(topicMatches('a/#', 'a')).toBe(true);
    expect(topicMatches('a/#', 'a/b/c')).toBe(true);
    expect(topicMatches('a/+', 'a/b/c')).toBe(false);
    expect(topicMatches('a/b', 'a/b/c')).toBe(false);
    expect(topicMatches('a/b/c', 'a/b')).toBe(false);
  });

  it('matches the filter of a shared subscription without its $share/<group>/ prefix', () => {
    const shared = subscriptionLevels(sharedFilter('gw', fleetFilter('telemetry')));
    expect(shared).toEqual(['gpulse', 'v1', '+', '+', 'telemetry']);
    expect(levelsMatch(shared, 'gpulse/v1/s/n/telemetry'.split('/'))).toBe(true);
    expect(levelsMatch(shared, 'gpulse/v1/s/n/status'.split('/'))).toBe(false);
    expect(levelsMatch(shared, '$share/gw/gpulse/v1/s/n/telemetry'.split('/'))).toBe(false);
    expect(subscriptionLevels('a/#')).toEqual(['a', '#']);
    expect(levelsMatch(subscriptionLevels('a/#'), ['a'])).toBe(true);
    expect(levelsMatch(subscriptionLevels('a/+'), ['a', 'b', 'c'])).toBe(false);
  });
});
