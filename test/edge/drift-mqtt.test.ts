// Observations over MQTT reach the drift monitor of a running `gpulse run`: a real Mosquitto, the
// built CLI, a real MQTT client publishing what a model server would.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { seriesValue, startCli, type CliProcess } from '../helpers/cli.js';
import { eventually, removeDir, startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import { describeWithTools, tools } from '../helpers/tools.js';
import { mqttArgs } from '../helpers/edge-agent.js';

const SITE = 'lab';
const NODE = 'n1';
const topic = (node: string, model: string) =>
  `gpulse/v1/${SITE}/${node}/models/${model}/observations`;

/** Rows of the reference and of the observations: the same distribution (no drift). */
function rows(n: number, offset = 0): Record<string, unknown>[] {
  return Array.from({ length: n }, (_, i) => ({
    age: 20 + ((i + offset) % 50),
    country: ['fr', 'de', 'it'][(i + offset) % 3],
  }));
}

describeWithTools('drift observations over MQTT', tools('mosquitto'), () => {
  let broker: Mosquitto;
  let dir: string;
  let agent: CliProcess;
  let client: MqttClient;

  beforeAll(async () => {
    broker = await startMosquitto();
    dir = mkdtempSync(join(tmpdir(), 'gpulse-drift-mqtt-'));
    agent = await startCli(
      [
        'run',
        '--nvidia-smi-mode',
        'off',
        ...mqttArgs({ url: broker.url, site: SITE, node: NODE, spoolDir: join(dir, 'spool') }),
      ],
      { GPULSE_DRIFT_INTERVAL: '1s', GPULSE_MQTT_INTERVAL: '5s' },
    );
    // QoS 1 messages published before the node's subscription exists would not reach it: wait
    // until the broker logged the subscription.
    await eventually(
      () =>
        readFileSync(join(broker.dir, 'mosquitto.log'), 'utf8').includes(
          `gpulse/v1/${SITE}/${NODE}/models/+/observations`,
        ),
      20_000,
      'the node subscribing to its observations',
    );
    client = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clientId: 'model-server' });
  }, 60_000);

  afterAll(async () => {
    await client?.endAsync();
    await agent?.stop();
    await broker?.destroy();
    if (dir) removeDir(dir);
  });

  it('counts accepted rows into the window and refuses bad payloads without stopping', async () => {
    const ref = await fetch(`${agent.base}/api/v1/models/fraud/reference`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(rows(2000)),
    });
    expect(ref.status).toBe(201);

    const send = (t: string, payload: string) => client.publishAsync(t, payload, { qos: 1 });
    for (let i = 0; i < 3; i++) await send(topic(NODE, 'fraud'), JSON.stringify(rows(50, i)));
    // Not JSON, and a value of the wrong shape: the whole message is refused.
    await send(topic(NODE, 'fraud'), 'age=31');
    await send(topic(NODE, 'fraud'), JSON.stringify([{ age: { years: 31 } }]));
    // A model nobody gave a reference: refused row by row as unknown_model.
    await send(topic(NODE, 'ghost'), JSON.stringify(rows(4)));
    // Another node's observations: not subscribed, never counted here.
    await send(topic('n2', 'fraud'), JSON.stringify(rows(7)));
    // One more good message after the bad ones: the subscription still works.
    await send(topic(NODE, 'fraud'), JSON.stringify(rows(10)));

    const body = await agent.waitForMetrics(
      (text) =>
        seriesValue(text, 'gpulse_drift_observations_total', { model: 'fraud', source: 'mqtt' }) ===
          160 &&
        seriesValue(text, 'gpulse_drift_rejected_total', { model: '', reason: 'unknown_model' }) ===
          4,
      20_000,
    );
    expect(
      seriesValue(body, 'gpulse_drift_rejected_total', { model: 'fraud', reason: 'bad_payload' }),
    ).toBe(2);
    expect(seriesValue(body, 'gpulse_drift_window_samples', { model: 'fraud' })).toBe(160);
    expect(
      seriesValue(body, 'gpulse_drift_observations_total', { model: 'fraud', source: 'http' }),
    ).toBeUndefined();
    const drift = (await (await fetch(`${agent.base}/api/v1/models/fraud/drift`)).json()) as {
      window: { rows: number };
      reference: { source: string; rows: number };
    };
    expect(drift.window.rows).toBe(160);
    expect(drift.reference).toMatchObject({ source: 'api', rows: 2000 });
    // The refusals were logged (the first of them), and the agent kept running.
    expect(
      agent.logs.some(
        (l) => typeof l.msg === 'string' && l.msg.startsWith('MQTT observations refused'),
      ),
    ).toBe(true);
    expect(agent.proc.exitCode).toBeNull();
    expect((await agent.get('/healthz')).status).toBe(200);
  });
});
