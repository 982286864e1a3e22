// Three `gpulse-gateway` processes in one share group on a real Mosquitto: every device is served
// by exactly one of them (none twice, none missing) while Mosquitto spreads each device's batches
// over all three, and when one gateway is killed (SIGKILL) its devices move to the other two
// without any being reported down.
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { gpuReadingSamples } from '../../collectors/gpu-series.js';
import {
  buildSchema,
  buildTelemetry,
  seriesGroups,
  statusJson,
} from '../../exporters/mqtt/payloads.js';
import { spawnGateway, type GatewayProcess } from '../helpers/gateway.js';
import { h100Readings } from '../helpers/gpu-readings.js';
import { eventually, startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import { describeWithTools, tools } from '../helpers/tools.js';

const DEVICES = Array.from({ length: 12 }, (_, i) => `dev-${String(i).padStart(2, '0')}`);
/** A "batch interval", short: the test checks who serves what, not how fast. */
const BATCH_MS = 400;

/** Which devices a scrape shows, by a family's series (relayed or fleet). */
function shown(text: string, family: string): Map<string, string> {
  const out = new Map<string, string>();
  const re = new RegExp(`^${family}\\{site="s",node="([^"]+)"[^}]*\\} (\\S+)$`, 'gm');
  for (const m of text.matchAll(re)) out.set(m[1] as string, m[2] as string);
  return out;
}

describeWithTools('three gateways in one share group', tools('mosquitto'), () => {
  let broker: Mosquitto;
  let client: MqttClient;
  const gateways: GatewayProcess[] = [];
  let batch = 0;
  let timer: NodeJS.Timeout | undefined;

  beforeAll(async () => {
    broker = await startMosquitto();
    for (let i = 0; i < 3; i++)
      gateways.push(
        spawnGateway([
          '--mqtt-url',
          broker.url,
          '--share-group',
          'fleet',
          '--gateway-client-id',
          `gw-${i}`,
        ]),
      );
    client = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clientId: 'devices' });
    const series = seriesGroups(gpuReadingSamples(h100Readings(1)));
    const build = (n: number) =>
      buildTelemetry(
        [
          {
            ts: Date.now(),
            series: series.map((g) =>
              'gpu_temperature_celsius' in g.metrics
                ? { ...g, metrics: { ...g.metrics, gpu_temperature_celsius: n } }
                : g,
            ),
          },
        ],
        () => n,
        { compressAbove: 1024 },
      )[0]!;
    const schema = buildSchema([build(0).schema], Date.now(), 1024);
    for (const node of DEVICES) {
      await client.publishAsync(`gpulse/v1/s/${node}/schema`, schema.body, {
        qos: 1,
        retain: true,
        properties: { contentType: schema.contentType },
      });
    }
    for (const gw of gateways)
      await eventually(
        async () => (await gw.metrics()).includes('gpulse_fleet_group_members 3'),
        20_000,
        'every gateway sees the three members',
      );
    // Every batch interval each device sends values only (schema_id) and refreshes its status,
    // as an agent does (there every minute).
    const send = () => {
      batch++;
      const m = build(batch);
      for (const node of DEVICES) {
        void client.publishAsync(
          `gpulse/v1/s/${node}/status`,
          statusJson({ state: 'online', ts: Date.now(), session: 1, version: '9.9.9' }),
          { qos: 1, retain: true },
        );
        void client.publishAsync(`gpulse/v1/s/${node}/telemetry`, m.compact.body, {
          qos: 1,
          properties: { contentType: m.compact.contentType },
        });
      }
      timer = setTimeout(send, BATCH_MS);
    };
    send();
  }, 60_000);

  afterAll(async () => {
    clearTimeout(timer);
    for (const node of DEVICES)
      for (const stream of ['status', 'schema'])
        await client
          .publishAsync(`gpulse/v1/s/${node}/${stream}`, '', { qos: 1, retain: true })
          .catch(() => undefined);
    await client?.endAsync();
    for (const gw of gateways) await gw.stop();
    await broker?.destroy();
  });

  /** Each gateway's view: devices with relayed series, and with device_up. */
  const views = async (alive: readonly GatewayProcess[]) =>
    Promise.all(
      alive.map(async (gw) => {
        const text = await gw.metrics();
        return {
          relayed: shown(text, 'gpulse_gpu_temperature_celsius'),
          up: shown(text, 'gpulse_fleet_device_up'),
        };
      }),
    );

  /** True when every device shows on exactly one of `alive`, series and liveness alike. */
  const exactlyOnce = async (alive: readonly GatewayProcess[]) => {
    const v = await views(alive);
    return DEVICES.every(
      (d) =>
        v.filter((x) => x.relayed.has(d)).length === 1 && v.filter((x) => x.up.has(d)).length === 1,
    );
  };

  it('serves every device on exactly one gateway, then moves a killed gateway’s devices to the others', async () => {
    await eventually(() => exactlyOnce(gateways), 20_000, 'each device on one gateway');
    // Stays so batch after batch, though Mosquitto hands each batch to the next member.
    const before = batch;
    await eventually(() => batch >= before + 3, 10_000, 'three more batches');
    expect(await exactlyOnce(gateways)).toBe(true);
    const v = await views(gateways);
    // All three take a share, and the devices are up where they are served.
    for (const x of v) {
      expect(x.relayed.size).toBeGreaterThan(0);
      expect([...x.up.values()].every((up) => up === '1')).toBe(true);
    }
    const victim = gateways.findIndex((_, i) => (v[i]?.relayed.size ?? 0) > 0);
    const moved = [...(v[victim]?.relayed.keys() ?? [])];
    await gateways[victim]!.kill();
    const survivors = gateways.filter((_, i) => i !== victim);
    // None of the killed gateway's devices is ever shown down on the others meanwhile.
    const downSeen = new Set<string>();
    await eventually(
      async () => {
        for (const x of await views(survivors))
          for (const [d, up] of x.up) if (up !== '1') downSeen.add(d);
        return exactlyOnce(survivors);
      },
      20_000,
      'the killed gateway’s devices on the others',
    );
    expect([...downSeen]).toEqual([]);
    const after = await views(survivors);
    for (const d of moved) expect(after.some((x) => x.relayed.has(d))).toBe(true);
    for (const gw of survivors)
      expect(await gw.metrics()).toContain('gpulse_fleet_group_members 2');
    // The relayed values are current: the latest batches, not a stale copy.
    const latest = Math.min(...after.flatMap((x) => [...x.relayed.values()].map(Number)));
    expect(latest).toBeGreaterThan(before);
  }, 90_000);
});
