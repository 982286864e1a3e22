import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { buildAgent, type Agent } from '../../build-agent.js';
import { FakeClock } from '../../core/clock.js';
import { loadConfig } from '../../config.js';
import { captureLogger } from '../../../test/helpers/log-sink.js';
import { DriftComponent } from './drift.js';
import { observationSubscription, observationTopic, parseObservationTopic } from './mqtt.js';
import { ProfileBuilder } from './profile-builder.js';
import { syntheticRows } from './synthetic.js';

const SHAPE = {
  numeric: { age: { mean: 40, sd: 10 }, score: { mean: 0, sd: 1 } },
  categorical: { country: { fr: 50, de: 30, es: 15, it: 5 } },
};

interface Setup {
  agent: Agent;
  drift: DriftComponent;
  clock: FakeClock;
  records: Record<string, unknown>[];
  dir: string;
}

let current: Setup | undefined;

afterEach(async () => {
  if (current) {
    await current.agent.stop();
    rmSync(current.dir, { recursive: true, force: true });
  }
  current = undefined;
});

async function setup(yaml = '', files: Record<string, string> = {}): Promise<Setup> {
  const dir = mkdtempSync(join(tmpdir(), 'gpulse-drift-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  const text = `listen: 127.0.0.1:0\n${yaml.replaceAll('$DIR', dir)}`;
  const { config } = loadConfig({ file: { name: 'gpulse.yaml', text } });
  const clock = new FakeClock(1_700_000_000_000);
  const { log, records } = captureLogger('info');
  const drift = new DriftComponent(config.drift);
  const agent = buildAgent(config, {
    log,
    version: 't',
    clock,
    collectors: [],
    components: [drift],
  });
  await agent.start();
  current = { agent, drift, clock, records, dir };
  return current;
}

const json = (payload: unknown) => ({
  headers: { 'content-type': 'application/json' },
  payload: JSON.stringify(payload),
});

/** POSTs a body, as it stands, to a model's observations. */
function observe(agent: Agent, model: string, payload: string, contentType = 'application/json') {
  return agent.app.inject({
    method: 'POST',
    url: `/api/v1/models/${model}/observations`,
    headers: { 'content-type': contentType },
    payload,
  });
}

describe('drift API: bad payloads get 400s that say what is wrong', () => {
  const yaml = 'drift:\n  limits:\n    features: 3\n    bodyBytes: 2KiB\n  models:\n    m: {}\n';

  it.each([
    ['a string', '"hello"', /expected a JSON array of row objects/],
    ['an empty array', '[]', /the array holds no rows/],
    [
      'a row that is a number',
      '[{"a":1}, 7]',
      /row 1: expected an object of feature values, got a number/,
    ],
    [
      'a nested object',
      '[{"a":{"b":1}}]',
      /row 0, feature "a": expected a number, a string, a boolean or null, got an object/,
    ],
    [
      'too many features',
      '[{"a":1,"b":2,"c":3,"d":4}]',
      /row 0: 4 features; the limit is drift.limits.features=3/,
    ],
    ['invalid JSON', '[{"a":1', /not valid JSON/],
    [
      'a number beyond the double range',
      '[{"a":1e999}]',
      /row 0, feature "a": Infinity is not a finite number/,
    ],
  ])('%s', async (_name, payload, message) => {
    const { agent } = await setup(yaml);
    const res = await observe(agent, 'm', payload);
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toBe('bad_request');
    expect(res.json().message).toMatch(message);
  });

  it('refuses a body over the limit (413), a wrong content type (415), a bad model name (400)', async () => {
    const { agent } = await setup(yaml);
    const big = JSON.stringify(Array.from({ length: 200 }, (_, i) => ({ a: i, b: 'xxxxxxxxxx' })));
    const cases: [
      model: string,
      payload: string,
      contentType: string,
      status: number,
      message: string,
    ][] = [
      ['m', big, 'application/json', 413, 'drift.limits.bodyBytes (2048 bytes)'],
      ['m', 'a=1', 'application/x-www-form-urlencoded', 415, 'application/json'],
      ['bad%20name', JSON.stringify([{ a: 1 }]), 'application/json', 400, 'invalid model name'],
      ['m', 'a=1', 'text/plain', 400, 'expected a JSON array of row objects'],
    ];
    for (const [model, payload, contentType, status, message] of cases) {
      const res = await observe(agent, model, payload, contentType);
      expect(res.statusCode).toBe(status);
      expect(res.json().message).toContain(message);
    }
  });

  it('answers 404 for an unknown model and 409 for a model without a reference', async () => {
    const { agent } = await setup(yaml);
    const unknown = await observe(agent, 'other', JSON.stringify([{ a: 1 }]));
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().message).toContain(
      'POST its reference to /api/v1/models/other/reference',
    );
    const noRef = await observe(agent, 'm', JSON.stringify([{ a: 1 }]));
    expect(noRef.statusCode).toBe(409);
    expect(noRef.json().error).toBe('no_reference');
    const drift = await agent.app.inject({ method: 'GET', url: '/api/v1/models/nope/drift' });
    expect(drift.statusCode).toBe(404);
    expect(drift.json().message).toContain('tracked: m');
  });

  it('rejects a malformed reference profile with the path of the problem', async () => {
    const { agent } = await setup(yaml);
    const res = await agent.app.inject({
      method: 'POST',
      url: '/api/v1/models/m/reference',
      ...json({
        format: 'gpulse.drift-profile',
        version: 1,
        rows: 10,
        features: {
          x: {
            kind: 'numeric',
            count: 10,
            nulls: 0,
            mean: 0,
            std: 1,
            min: 0,
            max: 1,
            edges: [0, 1],
            counts: [0, 10],
            sums: [0, 5, 0],
          },
        },
      }),
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().message).toContain('features.x.counts: expected 3 counts');
  });

  it('counts refused payloads in gpulse_drift_rejected_total', async () => {
    const { agent, drift } = await setup(yaml);
    await agent.app.inject({ method: 'POST', url: '/api/v1/models/m/observations', ...json('x') });
    drift.evaluateNow();
    const metrics = (await agent.app.inject('/metrics')).body;
    expect(metrics).toContain('gpulse_drift_rejected_total{model="m",reason="bad_payload"} 1');
  });
});

describe('drift component end to end', () => {
  it('detects a mean shift after 3 evaluations, exports it, emits drift.start, then drift.end', async () => {
    const { agent, clock } = await setup('drift:\n  interval: 60s\n');
    const reference = await agent.app.inject({
      method: 'POST',
      url: '/api/v1/models/fraud/reference',
      ...json(syntheticRows(SHAPE, 5000, 1)),
    });
    expect(reference.statusCode).toBe(201);
    expect(reference.json()).toMatchObject({ ok: true, model: 'fraud', features: 3, rows: 5000 });

    const post = (rows: unknown) =>
      agent.app.inject({ method: 'POST', url: '/api/v1/models/fraud/observations', ...json(rows) });
    const shifted = { ...SHAPE, numeric: { ...SHAPE.numeric, age: { mean: 55, sd: 10 } } };
    let seed = 100;
    for (let minute = 0; minute < 3; minute++) {
      const res = await post(syntheticRows(shifted, 500, seed++));
      expect(res.statusCode).toBe(202);
      expect(res.json()).toMatchObject({ model: 'fraud', accepted: 500, values: 1500 });
      await clock.advance(60_000);
    }
    const result = (await agent.app.inject('/api/v1/models/fraud/drift')).json();
    const byName: Record<string, { score: number }> = Object.fromEntries(
      (result.features as { feature: string; score: number }[]).map((f) => [f.feature, f]),
    );
    expect(byName.age).toMatchObject({
      method: 'wasserstein',
      detected: true,
      drift: true,
      psiLevel: 'alert',
    });
    expect(byName.age!.score).toBeGreaterThan(1.2); // 15 / 10 = 1.5 standard deviations
    expect(byName.score).toMatchObject({ detected: false, drift: false });
    expect(byName.country).toMatchObject({ method: 'jensenshannon', detected: false });
    expect(result.dataset).toMatchObject({ share: 1 / 3, detected: false, drifting: ['age'] });
    expect(result.window.rows).toBe(1500);

    const metrics = (await agent.app.inject('/metrics')).body.split('\n');
    expect(metrics).toContain('gpulse_drift_detected{model="fraud",feature="age"} 1');
    expect(metrics).toContain('gpulse_drift_detected{model="fraud",feature="score"} 0');
    expect(metrics).toContain(
      'gpulse_drift_threshold{model="fraud",feature="age",method="wasserstein"} 0.1',
    );
    expect(metrics).toContain(
      'gpulse_drift_threshold{model="fraud",feature="age",method="psi"} 0.25',
    );
    expect(metrics).toContain('gpulse_drift_window_samples{model="fraud"} 1500');
    expect(metrics).toContain('gpulse_drift_observations_total{model="fraud",source="http"} 1500');
    expect(metrics.some((l) => /^gpulse_drift_dataset_share\{model="fraud"\} 0\.333/.test(l))).toBe(
      true,
    );
    expect(
      metrics.some((l) =>
        l.startsWith('gpulse_drift_score{model="fraud",feature="age",method="ks"} '),
      ),
    ).toBe(true);
    expect(metrics).toContain('gpulse_collector_up{collector="drift"} 1');

    const starts = agent.events.list({ type: 'drift.start' });
    expect(starts).toHaveLength(1);
    expect(starts[0]).toMatchObject({
      severity: 'warning',
      source: 'drift',
      labels: { model: 'fraud', feature: 'age', scope: 'feature' },
    });

    // Clean traffic for more than the window (12 × 5 min): the shifted buckets age out.
    for (let minute = 0; minute < 70; minute++) {
      await post(syntheticRows(SHAPE, 100, seed++));
      await clock.advance(60_000);
    }
    const ends = agent.events.list({ type: 'drift.end' });
    expect(ends).toHaveLength(1);
    expect(ends[0]?.labels).toEqual({ model: 'fraud', feature: 'age', scope: 'feature' });
    const after = (await agent.app.inject('/api/v1/models/fraud/drift')).json<{
      features: { feature: string; detected: boolean }[];
    }>();
    expect(after.features.find((f) => f.feature === 'age')?.detected).toBe(false);
  });

  it('accepts JSON lines bodies and lists models at /api/v1/drift', async () => {
    const { agent } = await setup();
    const rows = syntheticRows(SHAPE, 300, 3);
    await agent.app.inject({ method: 'POST', url: '/api/v1/models/a/reference', ...json(rows) });
    const ndjson = rows
      .slice(0, 10)
      .map((r) => JSON.stringify(r))
      .join('\n');
    const res = await observe(agent, 'a', ndjson + '\n', 'application/x-ndjson');
    expect(res.statusCode).toBe(202);
    expect(res.json().accepted).toBe(10);
    const list = (await agent.app.inject('/api/v1/drift')).json();
    expect(list.models).toHaveLength(1);
    expect(list.models[0]).toMatchObject({ model: 'a', windowRows: 10 });
    const profile = (await agent.app.inject('/api/v1/models/a/reference')).json<{
      format: string;
      features: Record<string, unknown>;
    }>();
    expect(profile.format).toBe('gpulse.drift-profile');
    expect(Object.keys(profile.features)).toEqual(['age', 'country', 'score']);
  });

  it('warms up a reference from the first rows when configured', async () => {
    const { agent, drift } = await setup('drift:\n  models:\n    w:\n      warmupRows: 400\n');
    const rows = syntheticRows(SHAPE, 600, 4);
    const first = drift.handleObservations('w', JSON.stringify(rows.slice(0, 250)));
    expect(first).toEqual({ status: 'warmup', rows: 250, remaining: 150 });
    const second = drift.handleObservations('w', JSON.stringify(rows.slice(250, 450)));
    expect(second).toEqual({ status: 'warmup', rows: 200, remaining: 0 });
    const third = drift.handleObservations('w', Buffer.from(JSON.stringify(rows.slice(450))));
    expect(third).toMatchObject({ status: 'accepted', rows: 150, values: 450 });
    const result = (await agent.app.inject('/api/v1/models/w/drift')).json();
    expect(result.reference).toMatchObject({ source: 'warmup', rows: 400, features: 3 });
  });

  it('loads profile files at start and reports unreadable ones', async () => {
    const builder = new ProfileBuilder();
    for (const row of syntheticRows(SHAPE, 1000, 5)) builder.add(row);
    const good = JSON.stringify(builder.build({ model: 'good' }));
    const { agent, records } = await setup(
      'drift:\n  models:\n    good:\n      profile: $DIR/good.json\n    bad:\n      profile: $DIR/bad.json\n',
      { 'good.json': good, 'bad.json': '{"format":"gpulse.drift-profile","version":2}' },
    );
    const goodResult = (await agent.app.inject('/api/v1/models/good/drift')).json();
    expect(goodResult.reference).toMatchObject({ source: 'file', rows: 1000 });
    const badResult = (await agent.app.inject('/api/v1/models/bad/drift')).json();
    expect(badResult.reference).toBeUndefined();
    const error = records.find((r) => r.model === 'bad' && r.level === 50);
    expect(String(error?.err)).toContain('version');
    expect(String(error?.msg)).toContain('gpulse drift profile --input DATA');
    const metrics = (await agent.app.inject('/metrics')).body;
    expect(metrics).toContain(
      'gpulse_collector_errors_total{collector="drift",reason="profile_invalid"} 1',
    );
  });
});

describe('drift from a followed prediction log', () => {
  it('counts good lines into the window and bad or long lines as rejected', async () => {
    const builder = new ProfileBuilder();
    for (const row of syntheticRows(SHAPE, 1000, 5)) builder.add(row);
    const lines = [
      ...syntheticRows(SHAPE, 3, 6).map((r) => JSON.stringify(r)),
      '{"age": {"nested": 1}}',
      JSON.stringify({ age: 1, country: 'x'.repeat(300) }),
      `{"age": ${'1'.repeat(70_000)}}`,
    ];
    const { agent, drift } = await setup(
      'drift:\n  models:\n    m:\n      profile: $DIR/m.json\n      follow:\n        - path: $DIR/predictions.jsonl\n          from: start\n',
      { 'm.json': JSON.stringify(builder.build()), 'predictions.jsonl': `${lines.join('\n')}\n` },
    );
    await expect
      .poll(() => drift.driftMonitor?.result('m')?.window.rows, { timeout: 10_000 })
      .toBe(3);
    drift.evaluateNow();
    const metrics = (await agent.app.inject('/metrics')).body;
    expect(metrics).toContain('gpulse_drift_observations_total{model="m",source="file"} 3');
    expect(metrics).toContain('gpulse_drift_rejected_total{model="m",reason="bad_line"} 3');
  });
});

describe('drift entry points for MQTT and model updates', () => {
  it('maps observation topics to models', () => {
    expect(observationTopic('s1', 'n1', 'm')).toBe('gpulse/v1/s1/n1/models/m/observations');
    expect(observationSubscription('s1', 'n1')).toBe('gpulse/v1/s1/n1/models/+/observations');
    expect(parseObservationTopic('gpulse/v1/s1/n1/models/fraud-v2/observations')).toEqual({
      site: 's1',
      node: 'n1',
      model: 'fraud-v2',
    });
    expect(parseObservationTopic('gpulse/v1/s1/n1/models/a/b/observations')).toBeUndefined();
    expect(parseObservationTopic('gpulse/v1/s1/n1/telemetry')).toBeUndefined();
  });

  it('handleMqttMessage ingests good payloads and reports bad ones without throwing', async () => {
    const { drift } = await setup('drift:\n  limits:\n    bodyBytes: 1KiB\n');
    const ref = syntheticRows(SHAPE, 300, 6);
    const profile = new ProfileBuilder();
    for (const row of ref) profile.add(row);
    expect(drift.loadReferenceProfile('m', JSON.stringify(profile.build()))).toMatchObject({
      ok: true,
      features: 3,
    });
    const topic = observationTopic('s', 'n', 'm');
    expect(
      drift.handleMqttMessage(topic, Buffer.from(JSON.stringify(ref.slice(0, 3)))),
    ).toMatchObject({
      status: 'accepted',
      rows: 3,
    });
    expect(drift.handleMqttMessage(topic, Buffer.from('{"age": [1]}'))).toMatchObject({
      status: 'invalid',
      message: 'row 0, feature "age": expected a number, a string, a boolean or null, got an array',
    });
    expect(drift.handleMqttMessage(topic, Buffer.from('not json'))).toMatchObject({
      status: 'invalid',
    });
    expect(drift.handleMqttMessage(topic, Buffer.alloc(2048, 32))).toMatchObject({
      status: 'too_large',
    });
    expect(drift.handleMqttMessage('gpulse/v1/s/n/status', Buffer.from('[]'))).toMatchObject({
      status: 'invalid',
    });
    expect(drift.loadReferenceProfile('m', '{"format":"nope"}')).toMatchObject({ ok: false });
    expect(drift.loadReferenceProfile('m', 'not json')).toEqual({
      ok: false,
      error: expect.stringContaining('not valid JSON') as unknown,
    });
  });

  it('installManifestReference keeps the window for the same profile and refuses a bad one loudly', async () => {
    const { agent, drift, records } = await setup();
    const ref = syntheticRows(SHAPE, 300, 6);
    const builder = new ProfileBuilder();
    for (const row of ref) builder.add(row);
    const profile = builder.build();
    const first = drift.installManifestReference('m', '1.0.0 (release 1)', profile);
    expect(first).toMatchObject({ ok: true, features: 3, rows: 300 });
    expect(drift.handleObservations('m', ref.slice(0, 20))).toMatchObject({ status: 'accepted' });
    // A re-signed release with the same profile: the 20 rows stay in the window.
    expect(drift.installManifestReference('m', '1.0.0 (release 2)', profile)).toEqual(first);
    expect(drift.driftMonitor?.result('m')).toMatchObject({
      reference: { source: 'manifest', sha256: first.ok ? first.sha256 : '' },
      window: { rows: 20 },
    });
    // Not a profile: refused, logged, raised as an event; the previous reference stays.
    const bad = drift.installManifestReference('m', '2.0.0 (release 3)', { features: 42 });
    expect(bad).toMatchObject({ ok: false, error: expect.stringContaining('features') as unknown });
    expect(drift.driftMonitor?.result('m')?.reference?.sha256).toBe(first.ok ? first.sha256 : '');
    const events = agent.events.list({ type: 'drift.reference_invalid' });
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      severity: 'warning',
      labels: { model: 'm', source: 'manifest' },
      data: { version: '2.0.0 (release 3)' },
    });
    expect(records.some((r) => r.level === 40 && /was not installed/.test(String(r.msg)))).toBe(
      true,
    );
    const metrics = (await agent.app.inject('/metrics')).body;
    expect(metrics).toContain(
      'gpulse_collector_errors_total{collector="drift",reason="profile_invalid"} 1',
    );
  });

  it('receiveMqttMessage logs the first refused message and then every 1000th', async () => {
    const { agent, drift, records } = await setup('drift:\n  models:\n    m: {}\n');
    const topic = observationTopic('s', 'n', 'm');
    for (let i = 0; i < 1001; i++) drift.receiveMqttMessage(topic, Buffer.from('not json'));
    const warnings = records.filter((r) => String(r.msg).startsWith('MQTT observations refused'));
    expect(warnings.map((r) => r.refused)).toEqual([1, 1001]);
    expect(warnings[0]).toMatchObject({ topic, outcome: 'invalid' });
    drift.evaluateNow();
    expect((await agent.app.inject('/metrics')).body).toContain(
      'gpulse_drift_rejected_total{model="m",reason="bad_payload"} 1001',
    );
  });
});
