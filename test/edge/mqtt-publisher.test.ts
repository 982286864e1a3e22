// The MQTT publisher against a real Mosquitto: payload shapes, a broker outage with replay, the
// spool bound, and an agent killed with SIGKILL while the broker is down.
import type { MqttClient } from 'mqtt';
import { expect, it } from 'vitest';
import { buildAgent } from '../../agent/build-agent.js';
import { loadConfig } from '../../agent/config.js';
import { createEdgeComponents } from '../../edge/components.js';
import { expandTelemetry, parseTelemetry } from '../../exporters/mqtt/payloads.js';
import { silentLogger } from '../helpers/log-sink.js';
import { mqttArgs, spawnCliAgent, startEdgeAgent, type EdgeAgent } from '../helpers/edge-agent.js';
import { eventually, record, useMosquitto, type Received } from '../helpers/mosquitto.js';
import { describeWithTools, tools } from '../helpers/tools.js';

/**
 * Publishes a command (QoS 1) again and again until `arrived` says it got through: subscriptions
 * made after connect reach the broker asynchronously.
 */
async function resendUntil(
  client: MqttClient,
  topic: string,
  payload: string,
  arrived: () => boolean,
  timeoutMs: number,
  what: string,
): Promise<void> {
  await eventually(
    async () => {
      await client.publishAsync(topic, payload, { qos: 1 });
      return arrived();
    },
    timeoutMs,
    what,
  );
}

describeWithTools('MQTT publisher against Mosquitto', tools('mosquitto'), () => {
  const suite = useMosquitto({ restart: true });
  const { cleanups } = suite;
  const tempDir = () => suite.tempDir('gpulse-edge-');
  const recorder = () => suite.recorder();
  const agent = async (
    site: string,
    node: string,
    extra: Partial<Parameters<typeof startEdgeAgent>[0]> = {},
  ): Promise<EdgeAgent> => {
    const a = await startEdgeAgent({ url: suite.broker.url, site, node, dir: tempDir(), ...extra });
    cleanups.push(() => a.stop());
    return a;
  };

  const seqOf = (m: Received) => m.json.seq as number;
  /** Time of a message: its newest sample (telemetry: an array of sample times). */
  const tsOf = (m: Received) => {
    const ts = m.json.ts as number | number[];
    return Array.isArray(ts) ? (ts[ts.length - 1] as number) : ts;
  };

  it('publishes telemetry, events and a retained status with the documented shape', async () => {
    const rec = await recorder();
    const a = await agent('plant-1', 'cam-01');
    a.agent.events.emit({
      type: 'container.oom_kill',
      severity: 'critical',
      source: 'docker',
      message: 'container detector was killed by the OOM killer',
      labels: { container_name: 'detector' },
      data: { memory_limit_bytes: 16_777_216 },
    });
    await rec.waitFor(() => rec.on('telemetry').length >= 3 && rec.on('events').length >= 1);

    const [status] = rec.on('status');
    expect(status?.topic).toBe('gpulse/v1/plant-1/cam-01/status');
    expect(status?.json).toMatchObject({
      v: 1,
      state: 'online',
      version: '0.0.0-test',
      telemetry_interval_seconds: 0.2,
    });
    expect(status?.contentType).toBe('application/json');
    // Retained: a subscriber arriving later gets it at once.
    const late = await record(suite.broker.url, 'gpulse/v1/plant-1/cam-01/status');
    cleanups.push(() => late.close());
    await late.waitFor((m) => m.length === 1);
    expect(late.messages[0]).toMatchObject({ retain: true, json: { state: 'online' } });

    const telemetry = rec.on('telemetry');
    const parsed = telemetry.map((m) => parseTelemetry(m.json));
    for (const [i, m] of telemetry.entries()) {
      expect(parsed[i], m.text).toBeDefined();
      expect(parsed[i]?.replay).toBeUndefined();
      expect(m.contentType).toBe('application/json+deflate');
      expect(m.bytes).toBeLessThan(64 * 1024);
    }
    // The first message of the connection carries its schema; the next ones of the same
    // schema only its id (the schema of the first messages may still grow as collectors start).
    const first = parsed[0]!;
    expect(first.schema).toBeDefined();
    expect(first.ts[0]).toBeGreaterThan(Date.now() - 60_000);
    const known = new Set<string>();
    for (const t of parsed) {
      if (t?.schema) known.add(t.schema.id);
      else expect(known.has(t?.schema_id ?? '')).toBe(true);
    }
    expect(parsed.some((t) => t?.schema_id !== undefined)).toBe(true);
    const [sample] = expandTelemetry(first, first.schema!).slice(-1);
    const gpu0 = sample?.series.find(
      (g) => g.labels.gpu === '0' && Object.keys(g.labels).length === 2,
    );
    expect(gpu0?.metrics).toMatchObject({
      gpu_memory_total_bytes: 85_520_809_984,
      gpu_power_limit_watts: 700,
    });
    expect(
      sample?.series.some(
        (g) => g.metrics.mqtt_connected === 1 || g.metrics.collector_up !== undefined,
      ),
    ).toBe(true);
    // The current schema is retained for receivers that missed the inline copy.
    const schemas = await record(suite.broker.url, 'gpulse/v1/plant-1/cam-01/schema');
    cleanups.push(() => schemas.close());
    await schemas.waitFor((m) => m.length === 1);
    expect(schemas.messages[0]?.retain).toBe(true);
    const retained = schemas.messages[0]?.json as { v: number; schemas: { id: string }[] };
    expect(retained.v).toBe(2);
    expect(known.has(retained.schemas[0]?.id ?? '')).toBe(true);

    const [events] = rec.on('events');
    expect(events?.topic).toBe('gpulse/v1/plant-1/cam-01/events');
    expect(events?.json).toMatchObject({
      v: 1,
      events: [
        {
          type: 'container.oom_kill',
          severity: 'critical',
          source: 'docker',
          labels: { container_name: 'detector' },
          data: { memory_limit_bytes: 16_777_216 },
        },
      ],
    });
    // One sequence for the node across telemetry and events, each number once, in order.
    const seqs = rec.messages.filter((m) => !/\/(status|schema)$/.test(m.topic)).map(seqOf);
    expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
    expect(new Set(seqs).size).toBe(seqs.length);
    expect(await a.metric('gpulse_mqtt_connected')).toBe(1);
  });

  it('gives other components a link: commands in, events and replies out; offline on a clean stop', async () => {
    const rec = await recorder();
    const dir = tempDir();
    const a = await startEdgeAgent({ url: suite.broker.url, site: 'plant-1', node: 'cam-05', dir });
    const commands: string[] = [];
    a.mqtt.link.subscribe('cmd/model-update', (m) => void commands.push(m.payload.toString()));
    await eventually(() => a.mqtt.link.connected, 10_000, 'link connected');
    const operator = await record(suite.broker.url, 'none/#');
    cleanups.push(() => operator.close());
    await resendUntil(
      operator.client,
      'gpulse/v1/plant-1/cam-05/cmd/model-update',
      '{"model":"yolo","version":"8"}',
      () => commands.length > 0,
      10_000,
      'command delivered',
    );
    expect(commands[0]).toBe('{"model":"yolo","version":"8"}');
    a.mqtt.link.publishEvent({
      type: 'model.update_started',
      severity: 'info',
      source: 'models',
      message: 'updating yolo to 8',
      labels: { model: 'yolo' },
    });
    await a.mqtt.link.publish('models/yolo/update-status', '{"state":"downloading"}', { qos: 1 });
    await rec.waitFor(
      (m) =>
        m.some((x) => x.topic.endsWith('/events')) &&
        m.some((x) => x.topic.endsWith('/update-status')),
    );
    expect(rec.on('events')[0]?.json).toMatchObject({
      events: [{ type: 'model.update_started', labels: { model: 'yolo' } }],
    });
    // A second agent on the same state dir is refused: two agents with one client id would fight.
    const { log, records } = (await import('../helpers/log-sink.js')).captureLogger();
    const twin = await startEdgeAgent({
      url: suite.broker.url,
      site: 'plant-1',
      node: 'cam-05',
      dir,
      log,
    });
    cleanups.push(() => twin.stop());
    expect(
      records.some((r) =>
        /^MQTT publisher could not start: .*another gpulse \(pid \d+\)/.test(String(r.msg)),
      ),
    ).toBe(true);
    expect(await twin.metric('gpulse_collector_up{collector="mqtt"}')).toBe(0);
    // It keeps retrying (with backoff) while the first agent holds the state directory.
    await eventually(
      async () =>
        ((await twin.metric(
          'gpulse_collector_errors_total{collector="mqtt",reason="instance_locked"}',
        )) ?? 0) >= 2,
      10_000,
      'a second start attempt',
    );
    await twin.stop();
    // A clean stop replaces the retained status with offline/shutdown (no will needed).
    await a.stop();
    const late = await record(suite.broker.url, 'gpulse/v1/plant-1/cam-05/status');
    cleanups.push(() => late.close());
    await late.waitFor((m) => m.length === 1);
    expect(late.messages[0]?.json).toMatchObject({ state: 'offline', reason: 'shutdown' });
  });

  it('answers cmd/model-update with the model updater response on response/model-update', async () => {
    const dir = tempDir();
    const { config } = loadConfig({
      flags: {
        'mqtt-url': suite.broker.url,
        site: 'plant-1',
        node: 'cam-06',
        'mqtt-spool-dir': dir,
        listen: '127.0.0.1:0',
      },
    });
    const agent = buildAgent(config, {
      log: silentLogger(),
      version: 'test',
      collectors: [],
      components: createEdgeComponents(config),
    });
    await agent.start();
    cleanups.push(() => agent.stop());
    const operator = await record(suite.broker.url, 'gpulse/v1/plant-1/cam-06/response/#');
    cleanups.push(() => operator.close());
    await resendUntil(
      operator.client,
      'gpulse/v1/plant-1/cam-06/cmd/model-update',
      '{"transaction":"t-42","model":"detector"}',
      () => operator.messages.length > 0,
      15_000,
      'a response',
    );
    expect(operator.messages[0]).toMatchObject({
      topic: 'gpulse/v1/plant-1/cam-06/response/model-update',
      json: {
        transaction: 't-42',
        status: 'error',
        error: expect.stringMatching(/no models are configured/),
      },
    });
  });

  it('replays every seq from a broker outage exactly once, in order, marked replay', async () => {
    const rec = await recorder();
    const a = await agent('plant-1', 'cam-02');
    await rec.waitFor(() => rec.on('telemetry').length >= 3);
    const stoppedAt = Date.now();
    await suite.broker.stop();
    await eventually(
      async () => (await a.metric('gpulse_mqtt_connected')) === 0,
      5000,
      'disconnect',
    );
    a.agent.events.emit({
      type: 'gpu.xid',
      severity: 'critical',
      source: 'nvidia-smi',
      message: 'Xid 79',
      labels: { gpu: '0' },
    });
    // An outage long enough to spool at least ten telemetry messages, the oldest over 3 s old.
    const spooledTelemetry = async () =>
      (await a.metric('gpulse_mqtt_published_total{stream="telemetry",result="spooled"}')) ?? 0;
    await eventually(
      async () =>
        (await spooledTelemetry()) >= 10 &&
        ((await a.metric('gpulse_mqtt_spool_oldest_age_seconds')) ?? 0) > 3,
      30_000,
      'ten spooled telemetry messages, the oldest over 3 s old',
    );
    const spooled = await spooledTelemetry();
    expect(spooled).toBeGreaterThanOrEqual(10);
    expect(await a.metric('gpulse_mqtt_spool_bytes')).toBeGreaterThan(0);
    expect(await a.metric('gpulse_mqtt_spool_oldest_age_seconds')).toBeGreaterThan(3);
    const restartedAt = Date.now();
    await suite.broker.start();
    await eventually(
      async () => (await a.metric('gpulse_mqtt_spool_bytes')) === 0,
      30_000,
      'spool drained',
    );
    await rec.waitFor(
      (m) =>
        m.some(
          (x) =>
            x.topic.endsWith('/telemetry') &&
            tsOf(x) > restartedAt + 1000 &&
            x.json.replay === undefined,
        ),
      20_000,
      'live telemetry after the replay',
    );

    const numbered = rec.messages.filter((m) => !/\/(status|schema)$/.test(m.topic));
    const seqs = numbered.map(seqOf);
    const outage = numbered.filter((m) => tsOf(m) > stoppedAt && tsOf(m) < restartedAt);
    expect(outage.length).toBeGreaterThanOrEqual(spooled);
    // Every message made during the outage: marked replay, each seq once, in order.
    expect(outage.every((m) => m.json.replay === true)).toBe(true);
    // Replayed telemetry is self-contained: its schema travels with it.
    const replayedTelemetry = outage.filter((m) => m.topic.endsWith('/telemetry'));
    expect(replayedTelemetry.length).toBeGreaterThan(0);
    expect(replayedTelemetry.every((m) => parseTelemetry(m.json)?.schema !== undefined)).toBe(true);
    const outageSeqs = outage.map(seqOf);
    expect(outageSeqs).toEqual([...new Set(outageSeqs)].sort((x, y) => x - y));
    expect(outage.some((m) => m.topic.endsWith('/events'))).toBe(true);
    // Nothing missing and nothing out of order over the whole run (a message in flight at the
    // moment the broker stopped may legitimately arrive twice: at-least-once).
    const distinct = [...new Set(seqs)];
    expect(distinct).toEqual([...distinct].sort((x, y) => x - y));
    const lo = distinct[0] as number;
    const hi = distinct[distinct.length - 1] as number;
    expect(distinct).toEqual(Array.from({ length: hi - lo + 1 }, (_, i) => lo + i));
    expect(seqs.length - distinct.length).toBeLessThanOrEqual(1);
    expect(
      await a.metric('gpulse_mqtt_published_total{stream="telemetry",result="replayed"}'),
    ).toBeGreaterThanOrEqual(spooled);
    expect(await a.metric('gpulse_mqtt_reconnects_total')).toBeGreaterThanOrEqual(1);
  }, 90_000);

  it('over the spool bound drops the oldest telemetry, counts it, and keeps every event', async () => {
    const rec = await recorder();
    await suite.broker.stop();
    const a = await agent('plant-1', 'cam-03', {
      flags: {
        'mqtt-interval': '100ms',
        'mqtt-flush': '100ms',
        'mqtt-spool-max-bytes': '48KiB',
      },
    });
    const events: number[] = [];
    const spooledTelemetry = async () =>
      (await a.metric('gpulse_mqtt_published_total{stream="telemetry",result="spooled"}')) ?? 0;
    for (let i = 0; i < 6; i++) {
      const before = await spooledTelemetry();
      events.push(
        a.agent.events.emit({
          type: 'gpu.throttle_episode',
          severity: 'warning',
          source: 'nvidia-smi',
          message: `episode ${i}`,
          labels: { gpu: String(i) },
        }).id,
      );
      // Telemetry piles up between the events (eight ticks of 100 ms, what 800 ms gave).
      await eventually(
        async () => (await spooledTelemetry()) >= before + 8,
        10_000,
        `telemetry spooled after event ${i}`,
      );
    }
    const dropped = await eventually(
      async () => (await a.metric('gpulse_mqtt_spool_dropped_total{reason="size"}')) || undefined,
      10_000,
      'drops',
    );
    expect(await a.metric('gpulse_mqtt_spool_bytes')).toBeLessThanOrEqual(48 * 1024);
    const spooledBefore =
      (await a.metric('gpulse_mqtt_published_total{stream="telemetry",result="spooled"}')) ?? 0;
    await suite.broker.start();
    await eventually(
      async () => (await a.metric('gpulse_mqtt_spool_bytes')) === 0,
      30_000,
      'spool drained',
    );
    await rec.waitFor((m) => m.filter((x) => x.topic.endsWith('/events')).length > 0, 10_000);

    const received = rec.messages.filter((m) => !/\/(status|schema)$/.test(m.topic));
    // Every event arrived.
    const eventIds = rec
      .on('events')
      .flatMap((m) => (m.json.events as { id: number }[]).map((e) => e.id));
    expect(eventIds).toEqual(events);
    // What is missing is the oldest telemetry: the received seqs are a contiguous run ending at the
    // newest, starting after a gap, and the gap is exactly what was counted as dropped.
    const seqs = received.map(seqOf);
    expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
    const missing: number[] = [];
    for (let s = 1; s < (seqs[seqs.length - 1] as number); s++)
      if (!seqs.includes(s)) missing.push(s);
    const finalDropped = (await a.metric('gpulse_mqtt_spool_dropped_total{reason="size"}')) ?? 0;
    expect(finalDropped).toBeGreaterThanOrEqual(dropped);
    expect(missing.length).toBe(finalDropped);
    expect(missing[0]).toBe(1);
    expect(spooledBefore).toBeGreaterThan(finalDropped);
    expect(await a.metric('gpulse_mqtt_spool_dropped_total{reason="age"}')).toBe(0);
  }, 90_000);

  it('delivers what was spooled before a SIGKILL once the agent and the broker are back', async () => {
    const dir = tempDir();
    const rec = await recorder();
    await suite.broker.stop();
    const args = [
      ...mqttArgs({
        url: suite.broker.url,
        site: 'plant-2',
        node: 'box-9',
        every: '200ms',
        spoolDir: dir,
      }),
    ];
    const env = { GPULSE_MQTT_RECONNECT_MAX: '1s', GPULSE_HOST_INTERVAL: '1s' };
    const first = spawnCliAgent(args, env);
    cleanups.push(() => first.kill());
    const base = await first.address();
    const spooled = await eventually(
      async () => {
        const text = await (await fetch(`${base}/metrics`)).text();
        const m = /gpulse_mqtt_published_total\{stream="telemetry",result="spooled"\} (\d+)/.exec(
          text,
        );
        return m && Number(m[1]) >= 8 ? Number(m[1]) : undefined;
      },
      30_000,
      'spooled telemetry',
    );
    await first.kill();
    expect(first.child.signalCode).toBe('SIGKILL');

    await suite.broker.start();
    const second = spawnCliAgent(args, env);
    cleanups.push(() => second.stop());
    await second.address();
    // Everything the first process acknowledged as spooled (seq 1..spooled, nothing was sent).
    await rec.waitFor(
      (m) => {
        const s = new Set(m.filter((x) => x.topic.endsWith('/telemetry')).map(seqOf));
        return Array.from({ length: spooled }, (_, i) => i + 1).every((n) => s.has(n));
      },
      30_000,
      `replay of seq 1..${spooled}`,
    );
    const replayed = rec.on('telemetry').filter((m) => seqOf(m) <= spooled);
    expect(replayed.every((m) => m.json.replay === true)).toBe(true);
    // The restarted agent continues the sequence instead of starting over.
    await rec.waitFor(
      (m) => m.some((x) => x.topic.endsWith('/telemetry') && x.json.replay === undefined),
      20_000,
    );
    const live = rec.on('telemetry').find((m) => m.json.replay === undefined);
    expect(seqOf(live!)).toBeGreaterThan(spooled);
    expect(second.logs.some((l) => l.msg === 'spool: messages waiting to be sent')).toBe(true);
  }, 120_000);
});
