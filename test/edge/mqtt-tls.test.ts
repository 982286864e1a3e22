// TLS with per-device client certificates and the per-node ACL, using the shipped
// deploy/mosquitto config, ACL and certificate script against a real Mosquitto.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type IClientOptions, type IClientPublishOptions, type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { loadGatewayConfig } from '../../edge/gateway/command.js';
import { createGateway } from '../../edge/gateway/gateway.js';
import { startEdgeAgent } from '../helpers/edge-agent.js';
import { relayedByGateway } from '../helpers/gateway.js';
import { silentLogger } from '../helpers/log-sink.js';
import { eventually, removeDir, startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import { describeWithTools, tools } from '../helpers/tools.js';

const DEPLOY = new URL('../../deploy/mosquitto/', import.meta.url).pathname;

describeWithTools(
  'TLS, client certificates and ACL (deploy/mosquitto)',
  tools('mosquitto', 'openssl'),
  () => {
    let broker: Mosquitto;
    let certs: string;
    let url: string;
    const cleanups: (() => Promise<void> | void)[] = [];
    const tls = (cn: string): IClientOptions => ({
      ca: readFileSync(join(certs, 'ca.crt')),
      cert: readFileSync(join(certs, `${cn}.crt`)),
      key: readFileSync(join(certs, `${cn}.key`)),
      rejectUnauthorized: true,
    });
    /** An MQTT 5 client with `cn`'s certificate, ended after the test. */
    const connectAs = async (cn: string, clientId: string) => {
      const client = await mqtt.connectAsync(url, { ...tls(cn), protocolVersion: 5, clientId });
      cleanups.push(() => client.endAsync());
      return client;
    };
    /** The reason code a publish (QoS 1: acknowledged) was refused with; undefined when taken. */
    const refusal = (
      client: MqttClient,
      topic: string,
      payload: string,
      options: IClientPublishOptions,
    ): Promise<number | undefined> =>
      client.publishAsync(topic, payload, options).then(
        () => undefined,
        (err: { code?: number }) => err.code,
      );
    const issue = (...args: string[]) => {
      const r = spawnSync('sh', [join(DEPLOY, 'issue-certs.sh'), certs, ...args], {
        encoding: 'utf8',
      });
      if (r.status !== 0) throw new Error(`issue-certs.sh ${args.join(' ')}: ${r.stderr}`);
    };

    beforeAll(async () => {
      certs = mkdtempSync(join(tmpdir(), 'gpulse-certs-'));
      issue('ca');
      issue('server', 'localhost', '127.0.0.1');
      for (const cn of ['node-a', 'node-b', 'gpulse-gateway', 'gpulse-operator'])
        issue('client', cn);
      // The shipped config, with the paths and the port of this test.
      const conf = readFileSync(join(DEPLOY, 'mosquitto.conf'), 'utf8')
        .replaceAll('/etc/mosquitto/certs/', `${certs}/`)
        .replaceAll('/etc/mosquitto/gpulse.acl', join(DEPLOY, 'gpulse.acl'))
        .replace('/var/lib/mosquitto/', '{dir}/')
        .replace(/^listener 8883$/m, 'listener {port} 127.0.0.1');
      broker = await startMosquitto({ listener: conf, ownPersistence: true });
      url = `mqtts://127.0.0.1:${broker.port}`;
    });
    afterEach(async () => {
      for (const c of cleanups.splice(0).reverse()) await c();
    });
    afterAll(async () => {
      await broker?.destroy();
      removeDir(certs);
    });

    it('relays a device that authenticates with its client certificate to a TLS gateway', async () => {
      const { config } = loadGatewayConfig({
        flags: {
          'mqtt-url': url,
          'mqtt-ca': join(certs, 'ca.crt'),
          'mqtt-cert': join(certs, 'gpulse-gateway.crt'),
          'mqtt-key': join(certs, 'gpulse-gateway.key'),
          'share-group': 'tls',
          listen: '127.0.0.1:0',
        },
      });
      const gw = createGateway(config, { log: silentLogger(), version: 'test' });
      const address = await gw.start();
      cleanups.push(() => gw.stop());
      await eventually(
        async () => (await fetch(`${address}/readyz`)).status === 200,
        10_000,
        'gateway subscribed',
      );
      const dir = mkdtempSync(join(tmpdir(), 'gpulse-tls-agent-'));
      cleanups.push(() => removeDir(dir));
      const agent = await startEdgeAgent({
        url,
        site: 'factory',
        node: 'node-a',
        dir,
        flags: {
          'mqtt-ca': join(certs, 'ca.crt'),
          'mqtt-cert': join(certs, 'node-a.crt'),
          'mqtt-key': join(certs, 'node-a.key'),
        },
      });
      cleanups.push(() => agent.stop());
      await relayedByGateway(address, 'factory', 'node-a', 'node-a relayed over TLS');
      expect(
        await agent.metric('gpulse_mqtt_published_total{stream="telemetry",result="refused"}'),
      ).toBe(0);
    });

    it("lets a device publish and read its own models' observations, and no other node's", async () => {
      const device = await connectAs('node-a', 'node-a-observations');
      const other = await connectAs('node-b', 'node-b-observations');
      const seen: string[] = [];
      const seenBodies: string[] = [];
      device.on('message', (topic, body) => {
        seen.push(topic);
        seenBodies.push(body.toString());
      });
      // node-b reads its own observations (its markers below) and must get nothing of node-a's.
      const own: string[] = [];
      const stolen: string[] = [];
      other.on('message', (topic, body) =>
        topic.includes('/node-b/') ? own.push(body.toString()) : stolen.push(topic),
      );
      // What the agent subscribes to (models/+/observations under its node), and a try at node-b's.
      await device.subscribeAsync(
        [
          'gpulse/v1/factory/node-a/models/+/observations',
          'gpulse/v1/factory/node-b/models/+/observations',
        ],
        { qos: 1 },
      );
      await other.subscribeAsync(
        [
          'gpulse/v1/factory/node-a/models/+/observations',
          'gpulse/v1/factory/node-b/models/+/observations',
        ],
        { qos: 1 },
      );
      // The model server on node-a publishes with node-a's certificate.
      await device.publishAsync('gpulse/v1/factory/node-a/models/fraud/observations', '[{"x":1}]', {
        qos: 1,
      });
      const refused = await refusal(
        device,
        'gpulse/v1/factory/node-b/models/fraud/observations',
        '[{"x":1}]',
        {
          qos: 1,
        },
      );
      expect(refused).toBe(0x87);
      await other.publishAsync('gpulse/v1/factory/node-b/models/fraud/observations', '[{"x":2}]', {
        qos: 1,
      });
      // Markers published after that: the broker handles publishes in order and delivers in
      // order on a connection, so once a client has its marker, anything the earlier publishes
      // would have sent it has arrived too.
      await device.publishAsync('gpulse/v1/factory/node-a/models/fraud/observations', 'marker', {
        qos: 1,
      });
      await other.publishAsync('gpulse/v1/factory/node-b/models/fraud/observations', 'marker', {
        qos: 1,
      });
      await eventually(() => seenBodies.includes('marker'), 5000, "node-a's own observations");
      await eventually(() => own.includes('marker'), 5000, "node-b's own observations");
      expect(seen).toEqual([
        'gpulse/v1/factory/node-a/models/fraud/observations',
        'gpulse/v1/factory/node-a/models/fraud/observations',
      ]);
      expect(seenBodies).toEqual(['[{"x":1}]', 'marker']);
      expect(stolen).toEqual([]);
    });

    it('refuses a device writing outside its own node topic, and a client without a certificate', async () => {
      const reader = await connectAs('gpulse-gateway', 'reader');
      const seen: string[] = [];
      reader.on('message', (topic) => seen.push(topic));
      await reader.subscribeAsync('gpulse/v1/+/+/telemetry', { qos: 1 });

      const device = await connectAs('node-a', 'gpulse-factory-node-a');
      // Its own topic: accepted.
      await device.publishAsync('gpulse/v1/factory/node-a/telemetry', '{"v":1}', { qos: 1 });
      // Another node's topic: the broker answers PUBACK 0x87 (not authorized) and delivers nothing.
      const refused = await refusal(device, 'gpulse/v1/factory/node-b/telemetry', '{"v":1}', {
        qos: 1,
      });
      expect(refused).toBe(0x87);
      // Nor does it receive another node's commands (Mosquitto checks read access on delivery).
      const commands: string[] = [];
      device.on('message', (topic) => commands.push(topic));
      await device.subscribeAsync(
        ['gpulse/v1/factory/node-a/cmd/#', 'gpulse/v1/factory/node-b/cmd/#'],
        { qos: 1 },
      );
      const operator = await connectAs('gpulse-operator', 'operator');
      await operator.publishAsync('gpulse/v1/factory/node-b/cmd/model-update', '{}', { qos: 1 });
      await operator.publishAsync('gpulse/v1/factory/node-a/cmd/model-update', '{}', { qos: 1 });
      await eventually(
        () => commands.length > 0 && seen.includes('gpulse/v1/factory/node-a/telemetry'),
        5000,
        'own command and message',
      );
      // node-b's command was published first by the same client: had the broker delivered it,
      // it would have arrived before node-a's.
      expect(commands).toEqual(['gpulse/v1/factory/node-a/cmd/model-update']);
      // Command responses go under its own node, where the operator reads them.
      const responses: string[] = [];
      operator.on('message', (topic) => responses.push(topic));
      await operator.subscribeAsync('gpulse/v1/+/+/response/#', { qos: 1 });
      await device.publishAsync('gpulse/v1/factory/node-a/response/model-update', '{}', { qos: 1 });
      await eventually(() => responses.length === 1, 5000, 'the response');
      expect(seen).not.toContain('gpulse/v1/factory/node-b/telemetry');
      // The gateway identity may read but not write.
      const gatewayWrite = await refusal(reader, 'gpulse/v1/factory/node-a/cmd/x', '{}', {
        qos: 1,
      });
      expect(gatewayWrite).toBe(0x87);
      // Gateways of a share group talk under gpulse/gateway/v1/; a device may not pose as one.
      await reader.publishAsync('gpulse/gateway/v1/fleet/member/gw-1', '{}', { qos: 1 });
      const deviceAsGateway = await refusal(device, 'gpulse/gateway/v1/fleet/member/gw-1', '', {
        qos: 1,
        retain: true,
      });
      expect(deviceAsGateway).toBe(0x87);

      // No client certificate: the TLS handshake fails before MQTT starts.
      const anonymous = await mqtt
        .connectAsync(url, {
          ca: readFileSync(join(certs, 'ca.crt')),
          protocolVersion: 5,
          reconnectPeriod: 0,
          connectTimeout: 5000,
        })
        .then(
          async (c) => {
            await c.endAsync();
            return 'connected';
          },
          (err: Error) => err.message,
        );
      expect(anonymous).not.toBe('connected');
    });
  },
);
