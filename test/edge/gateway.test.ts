// The fleet gateway against a real Mosquitto (and its embedded aedes broker): device liveness from
// the last will, shared subscriptions splitting devices between gateways, hostile payloads.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import mqtt from 'mqtt';
import { expect, it } from 'vitest';
import { gpuReadingSamples } from '../../collectors/gpu-series.js';
import { loadGatewayConfig } from '../../edge/gateway/command.js';
import { createGateway, type Gateway } from '../../edge/gateway/gateway.js';
import {
  buildSchema,
  buildTelemetry,
  seriesGroups,
  statusJson,
} from '../../exporters/mqtt/payloads.js';
import { builtCli, mqttArgs, spawnCliAgent, startEdgeAgent } from '../helpers/edge-agent.js';
import { relayedByGateway } from '../helpers/gateway.js';
import { h100Readings } from '../helpers/gpu-readings.js';
import { silentLogger } from '../helpers/log-sink.js';
import { eventually, freePort, useMosquitto } from '../helpers/mosquitto.js';
import { describeWithTools, tools } from '../helpers/tools.js';

describeWithTools('fleet gateway against Mosquitto', tools('mosquitto'), () => {
  const suite = useMosquitto();
  const { cleanups } = suite;
  const tempDir = () => suite.tempDir('gpulse-gw-');

  async function gateway(
    flags: Record<string, string> = {},
    url = suite.broker.url,
  ): Promise<{ gw: Gateway; metrics: () => Promise<string> }> {
    const { config } = loadGatewayConfig({
      flags: { 'mqtt-url': url, listen: '127.0.0.1:0', ...flags },
    });
    const gw = createGateway(config, { log: silentLogger(), version: '0.0.0-test' });
    const address = await gw.start();
    cleanups.push(() => gw.stop());
    // Ready = connected and every subscription acknowledged.
    await eventually(
      async () => (await fetch(`${address}/readyz`)).status === 200,
      10_000,
      'gateway ready',
    );
    return { gw, metrics: async () => (await fetch(`${address}/metrics`)).text() };
  }

  const line = (text: string, prefix: string) => text.split('\n').find((l) => l.startsWith(prefix));

  it('shows device_up 1 for a running agent and 0 within the keepalive window after SIGKILL', async () => {
    const { metrics } = await gateway();
    const agent = spawnCliAgent(
      [
        ...mqttArgs({
          url: suite.broker.url,
          site: 'store-4',
          node: 'till-2',
          every: '500ms',
          spoolDir: tempDir(),
        }),
      ],
      { GPULSE_MQTT_KEEPALIVE: '5s', GPULSE_HOST_INTERVAL: '1s' },
    );
    cleanups.push(() => agent.kill());
    await agent.address();
    const up = 'gpulse_fleet_device_up{site="store-4",node="till-2"}';
    await eventually(
      async () => {
        const text = await metrics();
        return (
          line(text, up) === `${up} 1` &&
          line(text, 'gpulse_host_memory_total_bytes{site="store-4",node="till-2"}')
        );
      },
      20_000,
      'device up with its host series',
    );
    const text = await metrics();
    const seen = Number(
      line(
        text,
        'gpulse_fleet_device_last_seen_timestamp_seconds{site="store-4",node="till-2"}',
      )?.split(' ')[1],
    );
    expect(Math.abs(seen - Date.now() / 1000)).toBeLessThan(30);
    expect(line(text, 'gpulse_mqtt_connected{site="store-4",node="till-2"}')).toMatch(/ 1$/);
    expect(line(text, 'gpulse_fleet_device_info{site="store-4",node="till-2"')).toMatch(
      /version="0\.1\.0"\} 1$/,
    );

    await agent.kill();
    const killedAt = Date.now();
    // Keepalive 5 s: the broker gives up after 1.5 × 5 s at most; a killed process closes its socket
    // at once, so the will comes sooner.
    await eventually(
      async () => line(await metrics(), up) === `${up} 0`,
      7_500,
      'device down after the will',
    );
    expect(Date.now() - killedAt).toBeLessThan(7_500);
    const after = await metrics();
    expect(
      line(after, 'gpulse_host_memory_total_bytes{site="store-4",node="till-2"}'),
    ).toBeUndefined();
  }, 60_000);

  it('two gateways in one share group serve each device on exactly one of them, batch after batch', async () => {
    const a = await gateway({ 'share-group': 'fleet' });
    const b = await gateway({ 'share-group': 'fleet' });
    // Each sees the other (retained presence) before the devices speak.
    for (const gw of [a, b])
      await eventually(
        async () =>
          line(await gw.metrics(), 'gpulse_fleet_group_members ') ===
          'gpulse_fleet_group_members 2',
        10_000,
        'both members seen',
      );
    const client = await mqtt.connectAsync(suite.broker.url, {
      protocolVersion: 5,
      clientId: 'simulated-fleet',
    });
    cleanups.push(() => client.endAsync());
    const series = seriesGroups(gpuReadingSamples(h100Readings(1)));
    const devices = Array.from({ length: 10 }, (_, i) => `dev-${i}`);
    const [m] = buildTelemetry([{ ts: Date.now(), series }], () => 1, { compressAbove: 1024 });
    for (const node of devices) {
      await client.publishAsync(
        `gpulse/v1/site-a/${node}/status`,
        statusJson({ state: 'online', ts: Date.now(), session: 1, version: '9.9.9' }),
        { qos: 1, retain: true },
      );
      // Values only (the inline copy went to some earlier receiver): the gateway that serves
      // the device learns the schema from the retained copy every gateway subscribes to.
      const schema = buildSchema([m!.schema], Date.now(), 1024);
      await client.publishAsync(`gpulse/v1/site-a/${node}/schema`, schema.body, {
        qos: 1,
        retain: true,
        properties: { contentType: schema.contentType },
      });
    }
    // Three batches per device: Mosquitto hands the messages of a shared subscription to its
    // members in turn, so each device's batches land on both gateways.
    for (let round = 0; round < 3; round++)
      for (const node of devices)
        await client.publishAsync(`gpulse/v1/site-a/${node}/telemetry`, m!.compact.body, {
          qos: 1,
          properties: { contentType: m!.compact.contentType },
        });
    const holders = async (metrics: () => Promise<string>, prefix: string) => {
      const text = await metrics();
      return devices.filter((d) => text.includes(`${prefix}{site="site-a",node="${d}"`));
    };
    const relayed = 'gpulse_gpu_temperature_celsius';
    await eventually(
      async () =>
        (await holders(a.metrics, relayed)).length + (await holders(b.metrics, relayed)).length ===
        10,
      10_000,
      'all devices relayed',
    );
    const counter = async (gw: { metrics: () => Promise<string> }, prefix: string) =>
      Number(line(await gw.metrics(), prefix)?.split(' ')[1]);
    // Every telemetry message counted once where it was decoded (applied, or superseded by the
    // device's next batch), and some were forwarded by the member the broker picked.
    const totals = async () => {
      const sum = { applied: 0, superseded: 0, forwarded: 0 };
      for (const gw of [a, b])
        for (const result of ['applied', 'superseded', 'forwarded'] as const)
          sum[result] += await counter(
            gw,
            `gpulse_fleet_messages_total{stream="telemetry",result="${result}"}`,
          );
      return sum;
    };
    await eventually(
      async () => {
        const t = await totals();
        return t.applied + t.superseded === 30;
      },
      10_000,
      'every batch taken once',
    );
    expect((await totals()).forwarded).toBeGreaterThan(0);
    for (const prefix of [relayed, 'gpulse_fleet_device_up']) {
      const onA = await holders(a.metrics, prefix);
      const onB = await holders(b.metrics, prefix);
      // Each device on exactly one gateway, relayed series and liveness alike; both take a share.
      expect(onA.filter((d) => onB.includes(d))).toEqual([]);
      expect([...onA, ...onB].sort()).toEqual(devices);
      expect(onA.length).toBeGreaterThan(0);
      expect(onB.length).toBeGreaterThan(0);
    }
    for (const gw of [a, b]) {
      const text = await gw.metrics();
      for (const d of devices) {
        const up = line(text, `gpulse_fleet_device_up{site="site-a",node="${d}"}`);
        if (up) expect(up).toMatch(/ 1$/);
      }
      expect(line(text, 'gpulse_fleet_rejected_messages_total{reason="unknown_schema"}')).toMatch(
        / 0$/,
      );
    }
    for (const node of devices)
      for (const stream of ['status', 'schema'])
        await client.publishAsync(`gpulse/v1/site-a/${node}/${stream}`, '', {
          qos: 1,
          retain: true,
        });
  });

  it('counts and drops hostile payloads sent through the broker, and keeps relaying', async () => {
    const { metrics } = await gateway();
    const client = await mqtt.connectAsync(suite.broker.url, {
      protocolVersion: 5,
      clientId: 'hostile',
    });
    cleanups.push(() => client.endAsync());
    await client.publishAsync('gpulse/v1/s/evil/telemetry', '{"v":1,"seq":', { qos: 1 });
    await client.publishAsync('gpulse/v1/s/evil/telemetry', Buffer.from([0x78, 0x9c, 0xde, 0xad]), {
      qos: 1,
    });
    await client.publishAsync(
      'gpulse/v1/s/evil/events',
      JSON.stringify({ v: 1, seq: 1, ts: 1, events: 'all of them' }),
      { qos: 1 },
    );
    await client.publishAsync('gpulse/v1/s/evil/telemetry', Buffer.alloc(2 * 1024 * 1024, 0x7b), {
      qos: 1,
    });
    const [m] = buildTelemetry(
      [{ ts: Date.now(), series: seriesGroups(gpuReadingSamples(h100Readings(1))) }],
      () => 1,
      { compressAbove: 1024 },
    );
    await client.publishAsync('gpulse/v1/s/good/telemetry', m!.body, { qos: 1 });
    await eventually(
      async () => line(await metrics(), 'gpulse_gpu_temperature_celsius{site="s",node="good"'),
      10_000,
      'good device relayed',
    );
    const text = await metrics();
    expect(line(text, 'gpulse_fleet_rejected_messages_total{reason="bad_json"}')).toMatch(/ 1$/);
    expect(line(text, 'gpulse_fleet_rejected_messages_total{reason="bad_encoding"}')).toMatch(
      / 1$/,
    );
    expect(line(text, 'gpulse_fleet_rejected_messages_total{reason="bad_shape"}')).toMatch(/ 1$/);
    expect(line(text, 'gpulse_fleet_rejected_messages_total{reason="too_large"}')).toMatch(/ 1$/);
    expect(line(text, 'gpulse_fleet_device_up{site="s",node="evil"}')).toBeUndefined();
  });

  it('embedded broker: `gpulse gateway --embedded-broker` relays an agent without any other broker', async () => {
    const brokerPort = await freePort();
    const gw = spawn(
      process.execPath,
      [
        builtCli(),
        'gateway',
        '--embedded-broker',
        `127.0.0.1:${brokerPort}`,
        '--listen',
        '127.0.0.1:0',
        '--log-format',
        'json',
      ],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const logs: Record<string, unknown>[] = [];
    createInterface({ input: gw.stdout }).on('line', (l) =>
      logs.push(JSON.parse(l) as Record<string, unknown>),
    );
    cleanups.push(async () => {
      if (gw.exitCode === null) {
        const exited = new Promise((r) => gw.once('exit', r));
        gw.kill('SIGTERM');
        await exited;
      }
    });
    const address = await eventually(
      () => logs.find((l) => typeof l.address === 'string')?.address as string | undefined,
      20_000,
      'gateway address',
    );
    // An agent with protocol "auto" meets a 3.1.1-only broker and falls back.
    const agent = await startEdgeAgent({
      url: `mqtt://127.0.0.1:${brokerPort}`,
      site: 'trial',
      node: 'laptop',
      dir: tempDir(),
    });
    cleanups.push(() => agent.stop());
    await relayedByGateway(address, 'trial', 'laptop', 'agent relayed through the embedded broker');
    expect(agent.mqtt.link.connected).toBe(true);
    const exited = new Promise<number | null>((r) => gw.once('exit', (code) => r(code)));
    gw.kill('SIGTERM');
    expect(await exited).toBe(0);
  }, 60_000);
});
